"""The fuzz benchmark harness: a tiny run is well-formed, and its leak checker finds what is leaked.

The figures are measurements (``python -m benchmarks.fuzz``), not asserted here.
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from random import Random

import orjson
import pytest

from benchmarks import fuzz, hostile
from benchmarks.hostile import Canary
from pipeline.runtime import Runtime
from transforms.process import Outcome

REPORT_KEYS = {
    "schema",
    "command",
    "generated",
    "machine",
    "seed",
    "records",
    "crashes",
    "crash_kinds",
    "detector_failures",
    "records_leaking",
    "leaks",
    "leaks_by_output",
    "planted",
    "routes",
    "reasons",
    "families",
    "benign_median_ms",
    "slowest",
    "max_ratio_to_benign",
    "amplification",
}


def test_a_tiny_run_reports_every_record_once() -> None:
    """300 records: the report has its keys, every record has one route, and the slowest list is re-timed."""
    doc = fuzz.run(300, seed=7, jobs=1)
    assert set(doc) >= REPORT_KEYS
    assert doc["schema"] == fuzz.SCHEMA
    assert doc["records"] == 300
    assert sum(doc["routes"].values()) == 300
    assert sum(row["records"] for row in doc["families"].values()) == 300
    assert doc["families"]["benign"]["records"] == 300 // fuzz.BENIGN_EVERY
    assert sum(doc["planted"].values()) > 300  # several canaries per planted record
    assert doc["crashes"] == sum(row["records"] for row in doc["crash_kinds"])
    assert 0 < len(doc["slowest"]) <= fuzz.SLOWEST_KEPT
    assert [row["ms"] for row in doc["slowest"]] == sorted((row["ms"] for row in doc["slowest"]), reverse=True)
    assert {"analytics", "abuse", "observations", "alerts"} <= set(doc["amplification"])
    orjson.dumps(doc)  # the report itself serializes


def test_records_are_reproducible_from_seed_and_index() -> None:
    """--show INDEX must give the record the run had: a record depends on the seed and its index only."""
    real = hostile.RealLines()
    first, again = fuzz.RecordSource(5, real), fuzz.RecordSource(5, real)
    assert [first(i).raw for i in (1, 2, 99, 4)] == [again(i).raw for i in (1, 2, 99, 4)]
    assert first(1).raw != fuzz.RecordSource(6, real)(1).raw


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with tempfile.TemporaryDirectory() as tmp:
        yield fuzz.fuzz_runtime(Path(tmp))


def test_the_checker_finds_every_canary_a_leaky_processor_copies_out(runtime: Runtime) -> None:
    """A processor that copies the raw record into its analytics output leaks every planted canary: all found."""
    process = runtime.processor

    def leaky(raw: bytes, ingest: datetime) -> Outcome:
        outcome = process(raw, ingest)
        leak = raw.decode("utf-8", "replace")
        outcome.analytics.append({"leak": leak})
        for row in outcome.release_rows:  # the policy holds analytics for the k-anonymous release
            row.record["leak"] = leak
        return outcome

    step = fuzz.FileModeStep(runtime)
    step._process = leaky  # type: ignore[assignment]
    rng = Random(11)
    checked = 0
    for family in ("apache_combined", "ecs_json", "flat_json", "json_wrapped", "sshd_syslog", "error_log"):
        for _ in range(20):
            sample = hostile.generate(family, rng)
            routed = step(sample.raw, 0)
            assert routed.crash is None or routed.crash_stage != "route_record"
            found = {canary for _, canary in fuzz.check_leaks(routed, sample.canaries, deque())}
            if routed.route == "analytics":
                assert found == set(sample.canaries), family
                checked += len(found)
    assert checked > 100


def test_the_checker_matches_whole_addresses_case_and_encoding_insensitively() -> None:
    """A /24 prefix or a longer address is no leak of an IPv4 canary; case and percent-encoding hide nothing."""
    address = Canary("ipv4", "method", "203.0.113.7", ("203.0.113.7",))
    assert hostile.find_leaks('{"prefix":"203.0.113.0/24"}', [address]) == []
    assert hostile.find_leaks('{"path":"/203.0.113.77"}', [address]) == []
    assert hostile.find_leaks('{"path":"/1203.0.113.7"}', [address]) == []
    assert hostile.find_leaks('{"method":"203.0.113.7"}', [address]) == [address]
    assert hostile.find_leaks('{"path":"/v1.203.0.113.7/x"}', [address]) == [address]
    token = Canary("aws_key", "utm", "AKIAABCDEFGHIJKLMNOP", ("akiaabcdefghijklmnop",))
    assert hostile.find_leaks('{"q":"akiaabcdefghijklmnop"}', [token]) == [token]
    email = Canary("email", "path", "bob1234567@example.com", ("bob1234567@example.com", "bob1234567"))
    assert hostile.find_leaks('{"path":"/BOB1234567%40example.com"}', [email]) == [email]
    assert hostile.find_leaks('{"path":"/{email}"}', [email]) == []


def test_planted_values_are_distinct_within_a_record_and_never_a_prefix_output() -> None:
    """A record's canaries are told apart; addresses end in a non-zero group, so no policy prefix matches one."""
    rng = Random(3)
    for _ in range(200):
        planter = hostile.Planter(rng)
        planter.client()
        for _ in range(12):
            planter.ident("path")
        values = [canary.value for canary in planter.canaries]
        assert len(set(values)) == len(values)
        for canary in planter.canaries:
            if canary.kind in ("ipv4", "client_ipv4"):
                assert not canary.value.endswith(".0")
            if canary.kind in ("ipv6", "client_ipv6"):
                assert "::" not in canary.value
                assert len(canary.value.split(":")) == 8


def test_a_planted_value_that_a_mutation_cut_apart_is_no_longer_counted() -> None:
    """Found by Hypothesis (mutated_generated, seed 1055): the mutation cut "@exampl" out of a planted e-mail, leaving
    a path word; the address, still whole, is still counted."""
    from random import Random

    from benchmarks import fuzz, hostile

    sample = hostile.generate("mutated_generated", Random(1055))
    planted = {c.kind: c.value for c in sample.canaries}
    assert planted["email"].encode() not in sample.raw  # cut apart
    counted = {c.kind for c in fuzz._counted_canaries(sample)}
    assert "email" not in counted
    assert planted["client_ipv4"].encode() in sample.raw
    assert "client_ipv4" in counted
