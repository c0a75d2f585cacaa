"""Fuzz the file mode: hostile, mutated and random records, checked for crashes, leaks, outcomes and slowness.

    python -m benchmarks.fuzz [--records N] [--seed S] [--jobs J] [--geo] [--out PATH]
    python -m benchmarks.fuzz --seed S --show INDEX     # one record: its bytes, outputs and any traceback

Every record is drawn from :mod:`benchmarks.hostile` (``Random(f"{seed}:{index}")`` picks its family and
content, so a record is reproducible from the seed and its index alone) and goes through what the file
mode does with a line (``pipeline/filemode.py``): the guarded ``route_record`` where it exists (else the
processor and ``outcome_messages``), the observation rows the stream worker writes, and the detector.
Each stage runs under ``try``: an exception is counted as a crash of that record (the file mode itself
would stop there) and the run goes on. Then every output the record produced (analytics, abuse, quarantine
envelopes, observation rows, alerts) is searched for the identifiers planted in it.

Every 25th record is a benign Apache line of a fixed size class: their median time per size class, measured
side by side with the hostile records in the same processes, is the baseline of the slowness ratios. The
slowest records of each process are then timed again, once on each of two fresh, warmed-up runtimes, and
keep their fastest timing: a pause of the shared machine inflates one timing, a costly record (or a cost
each runtime pays once per new input, such as deriving a new epoch's key) is slow every time.

Writes ``benchmarks/results/fuzz.json`` and prints a summary table. Default: 100,000 records on 2
processes, a few minutes. Real lines come from ``../shared/data/logs`` (``PSEUDO_SHARED_DATA``) when present;
reports name a real line by file and line number and never copy it.
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from random import Random
from typing import Any

import orjson

from benchmarks import hostile
from benchmarks.hostile import INGEST, Canary, Sample
from benchmarks.provenance import machine
from config.settings import Settings
from pipeline.keystore import write_keyring
from pipeline.runtime import Runtime, build_runtime
from transforms.keyring import generate_keyring

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PSEUDO_SHARED_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "benchmarks" / "results" / "fuzz.json"
SCHEMA = "fuzz/1"

BENIGN_EVERY = 25  # every 25th record is a benign baseline record
# Upper bounds of the size classes; a record smaller than the smallest benign line is compared with it.
SIZE_CLASSES = (256, 512, 1024, 2048, 4096, 8192, 16_384, 32_768, 65_536)
SLOWEST_KEPT = 20
RETIMED = 40  # per process: the slowest records, timed again on fresh runtimes (the machine is noisy)
RETIMERS = 2
WARMUP_RECORDS = 500
EXAMPLES_KEPT = 3
RECENT_CANARIES = 64  # alerts carry evidence of a subject's earlier records: check them against recent canaries
SYNTHETIC_RAW_SHOWN = 300  # characters of a generated record's repr in a reproducer (real lines: never)
# Canary kinds whose protection depends on where they sit (a user name in a kept path segment is a path word
# by design): they count only in records whose fields were not rearranged by mutations.
POSITIONAL_KINDS = frozenset({"user", "query_word", "hostname"})


# --- one record through the file mode ---------------------------------------------------------------------


@dataclass(slots=True)
class Routed:
    """What one record produced (serialized) and where it failed, if it did."""

    route: str = "none"
    reason: str | None = None
    outputs: list[tuple[str, bytes]] = field(default_factory=list)  # (output name, serialized record)
    observations: int = 0
    abuse: int = 0
    analytics: int = 0
    alerts: int = 0
    detector_failures: int = 0
    crash_stage: str | None = None
    crash: BaseException | None = None


class FileModeStep:
    """The file mode's per-line work (pipeline/filemode.py), one stage at a time, each stage guarded.

    Written against both shapes of the routing module: the guarded ``route_record`` (one call that
    processes and serializes) and the older ``processor`` + ``outcome_messages``.
    """

    def __init__(self, runtime: Runtime) -> None:
        from pipeline import routing

        self._routing = routing
        self._process = runtime.processor
        self._sealer = runtime.sealer
        self._detector = runtime.detector
        self._states: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        """Forget the detector state (tests make each example independent of the ones before)."""
        self._states.clear()

    def __call__(self, raw: bytes, index: int) -> Routed:
        routing, dumps = self._routing, orjson.dumps
        result = Routed()
        source = routing.Source("fuzz", 0, index, INGEST)
        stage = "process"
        try:
            route_record: Callable[..., Any] | None = getattr(routing, "route_record", None)
            if route_record is not None:
                stage = "route_record"
                routed = route_record(self._process, raw, source, self._sealer)
                outcome = routed.outcome
                # Rows held for the k-anonymous release carry the per-record analytics record: checked as analytics.
                result.outputs = [
                    ("analytics" if output == "release" else str(output), value) for output, _, value in routed.messages
                ]
                rows = [row for _, row in routed.observation_rows]
            else:
                outcome = self._process(raw, INGEST)
                stage = "serialize"
                result.outputs = [
                    (str(output), value)
                    for output, _, value in routing.outcome_messages(outcome, raw, source, self._sealer)
                ]
                stage = "observations"  # the stream worker writes these rows to its observations topic
                rows = [dumps(observation.to_row()) for observation in outcome.observations]
            result.route, result.reason = str(outcome.route), outcome.reason
            result.outputs.extend(("observations", row) for row in rows)
            result.observations = len(outcome.observations)
            result.abuse = len(outcome.abuse)
            result.analytics = len(outcome.analytics)
            stage = "detect"
            if self._detector is not None:
                self._detect(outcome.observations, result)
        except Exception as exc:  # the file mode would stop here: count it and go on
            result.crash_stage, result.crash = stage, exc
        return result

    def _detect(self, observations: list[Any], result: Routed) -> None:
        detector, states = self._detector, self._states
        assert detector is not None
        observe = getattr(detector, "observe", None)
        for observation in observations:
            subject = observation.subject
            if observe is not None:
                state, alerts, failed = observe(states.get(subject), (observation,))
                result.detector_failures += failed
            else:
                state, alerts = detector(states.get(subject), observation)
            if state is None:
                states.pop(subject, None)
            else:
                states[subject] = state
            result.alerts += len(alerts)
            result.outputs.extend(("alerts", orjson.dumps(alert)) for alert in alerts)


def fuzz_runtime(tmp: Path, *, geo: bool = False) -> Runtime:
    """A runtime as the file mode builds it, with a throwaway keyring (and the shared geo databases)."""
    keys = tmp / "keyring.json"
    write_keyring(generate_keyring(), keys)
    env: dict[str, str] = {}
    if geo:
        env["PSEUDO_GEO_CITY_DB"] = str(SHARED / "geo" / "dbip-country" / "dbip-country.mmdb")
        env["PSEUDO_GEO_ASN_DB"] = str(SHARED / "geo" / "ip-location-db-asn" / "ip-location-db-asn.mmdb")
    return build_runtime(Settings.from_env(env), keys_path=keys)


# --- drawing records --------------------------------------------------------------------------------------


class RecordSource:
    """Record ``index`` of run ``seed``: a benign baseline record every BENIGN_EVERY, else a weighted family."""

    def __init__(self, seed: int, real: hostile.RealLines) -> None:
        self.seed = seed
        self.real = real
        names = list(hostile.FAMILIES)
        weights = [weight for _, weight in hostile.FAMILIES.values()]
        if real.lines:
            names.append("mutated_real")
            weights.append(hostile.MUTATED_REAL_WEIGHT)
        self.names = names
        self.weights = weights

    def __call__(self, index: int) -> Sample:
        rng = Random(f"{self.seed}:{index}")
        if index % BENIGN_EVERY == 0:
            size = SIZE_CLASSES[(index // BENIGN_EVERY) % len(SIZE_CLASSES)]
            return hostile.benign_sized(rng, size * 15 // 16)  # inside the class, and under max_record_bytes
        family = rng.choices(self.names, self.weights)[0]
        if family == "mutated_real":
            return hostile.mutated_real(rng, self.real)
        return hostile.generate(family, rng)


def size_class(size: int) -> int:
    return SIZE_CLASSES[min(bisect.bisect_left(SIZE_CLASSES, size), len(SIZE_CLASSES) - 1)]


# --- the tally of one process -----------------------------------------------------------------------------


def _reproducer(seed: int, index: int, sample: Sample) -> dict[str, Any]:
    found: dict[str, Any] = {"index": index, "family": sample.family, "size": len(sample.raw)}
    if sample.origin is not None:
        found["origin"] = sample.origin  # a real line: named, never copied
    if sample.mutation is not None:
        found["mutation"] = sample.mutation
    if sample.family != "mutated_real":
        text = repr(sample.raw)
        found["raw"] = text if len(text) <= SYNTHETIC_RAW_SHOWN else text[:SYNTHETIC_RAW_SHOWN] + "..."
    found["reproduce"] = f"python -m benchmarks.fuzz --seed {seed} --show {index}"
    return found


def _counted_canaries(sample: Sample) -> tuple[Canary, ...]:
    if sample.family in ("mutated_generated", "mutated_real"):
        # A mutation may also cut a planted value apart (an e-mail that lost its "@example" is left as a path word,
        # like a user name): only a value still whole in the mutated record is still that kind of identifier.
        text = sample.raw.decode("utf-8", "replace")
        return tuple(
            c for c in sample.canaries if c.kind not in POSITIONAL_KINDS and hostile.find_leaks(text, [_whole_value(c)])
        )
    return sample.canaries


def _whole_value(canary: Canary) -> Canary:
    """The canary with its full value as the only needle (not its parts, such as an e-mail's local part)."""
    return Canary(canary.kind, canary.field, canary.value, (canary.value.lower(),))


@dataclass
class Tally:
    """Everything one process counted; tallies of several processes are merged."""

    records: int = 0
    families: Counter[str] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)
    routes_by_family: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    reasons: Counter[str] = field(default_factory=Counter)
    reasons_by_family: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    crashes: Counter[str] = field(default_factory=Counter)  # "family|stage|exception type"
    crash_examples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    detector_failures: int = 0
    planted: Counter[str] = field(default_factory=Counter)  # "field|kind"
    leaked: Counter[str] = field(default_factory=Counter)  # "field|kind" -> records that leaked it
    leaked_by_family: Counter[str] = field(default_factory=Counter)  # records with a leak
    leaked_by_output: Counter[str] = field(default_factory=Counter)
    leak_examples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    benign_times: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    family_times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    slowest: list[tuple[float, int, str, int]] = field(default_factory=list)  # min-heap (seconds, index, family, size)
    amplification: dict[str, list[Any]] = field(default_factory=dict)  # counter -> [max, index, family]
    seconds: float = 0.0

    def add(self, seed: int, index: int, sample: Sample, routed: Routed, elapsed: float, leaks: list[Any]) -> None:
        family = sample.family
        self.records += 1
        self.families[family] += 1
        self.routes[routed.route] += 1
        self.routes_by_family[family][routed.route] += 1
        if routed.reason is not None:
            key = f"{routed.route}:{routed.reason}"
            self.reasons[key] += 1
            self.reasons_by_family[family][key] += 1
        self.detector_failures += routed.detector_failures
        if routed.crash is not None:
            key = f"{family}|{routed.crash_stage}|{type(routed.crash).__name__}"
            self.crashes[key] += 1
            if len(self.crash_examples[key]) < EXAMPLES_KEPT:
                example = _reproducer(seed, index, sample)
                if family != "mutated_real":  # an exception text may quote the record
                    example["error"] = str(routed.crash)[:160]
                self.crash_examples[key].append(example)
        for canary in _counted_canaries(sample):
            self.planted[f"{canary.field}|{canary.kind}"] += 1
        if leaks:
            self.leaked_by_family[family] += 1
            seen = set()
            for output, canary in leaks:
                key = f"{canary.field}|{canary.kind}"
                self.leaked_by_output[output] += 1
                if key in seen:
                    continue
                seen.add(key)
                self.leaked[key] += 1
                if len(self.leak_examples[key]) < EXAMPLES_KEPT:
                    example = _reproducer(seed, index, sample)
                    example["output"] = output
                    if family != "mutated_real":
                        example["value"] = canary.value
                    self.leak_examples[key].append(example)
        size = len(sample.raw)
        if family == "benign":
            self.benign_times[size_class(size)].append(elapsed)
        self.family_times[family].append(elapsed)
        entry = (elapsed, index, family, size)
        if len(self.slowest) < RETIMED:
            heapq.heappush(self.slowest, entry)
        elif elapsed > self.slowest[0][0]:
            heapq.heapreplace(self.slowest, entry)
        for name in ("analytics", "abuse", "observations", "alerts"):
            value = getattr(routed, name)
            best = self.amplification.get(name)
            if best is None or value > best[0]:
                self.amplification[name] = [value, index, family]

    def merge(self, other: Tally) -> None:
        self.records += other.records
        self.detector_failures += other.detector_failures
        self.seconds = max(self.seconds, other.seconds)
        for name in ("families", "routes", "reasons", "crashes", "planted", "leaked", "leaked_by_family"):
            getattr(self, name).update(getattr(other, name))
        self.leaked_by_output.update(other.leaked_by_output)
        for mine, theirs in (
            (self.routes_by_family, other.routes_by_family),
            (self.reasons_by_family, other.reasons_by_family),
        ):
            for key, counts in theirs.items():
                mine[key].update(counts)
        for mine_lists, their_lists in (
            (self.crash_examples, other.crash_examples),
            (self.leak_examples, other.leak_examples),
        ):
            for key, examples in their_lists.items():
                mine_lists[key] = (mine_lists[key] + examples)[:EXAMPLES_KEPT]
        for size, values in other.benign_times.items():
            self.benign_times[size].extend(values)
        for family, values in other.family_times.items():
            self.family_times[family].extend(values)
        self.slowest = heapq.nlargest(SLOWEST_KEPT, self.slowest + other.slowest)
        for name, best in other.amplification.items():
            if name not in self.amplification or best[0] > self.amplification[name][0]:
                self.amplification[name] = best


def check_leaks(routed: Routed, canaries: tuple[Canary, ...], recent: deque[tuple[Canary, ...]]) -> list[Any]:
    """(output name, canary) for every planted canary found in the record's outputs."""
    leaks = []
    for output, value in routed.outputs:
        text = value.decode("utf-8", "replace")
        for canary in hostile.find_leaks(text, canaries):
            leaks.append((output, canary))
        if output == "alerts":  # evidence may come from the subject's earlier records
            for earlier in recent:
                for canary in hostile.find_leaks(text, earlier):
                    leaks.append((output, canary))
    return leaks


def _warm_step(seed: int, real: hostile.RealLines, geo: bool) -> FileModeStep:
    """A file-mode step on its own runtime, warmed up (first calls compile patterns and fill caches) with
    records of another seed, so that no record of the run is in its caches."""
    with tempfile.TemporaryDirectory() as tmp:
        step = FileModeStep(fuzz_runtime(Path(tmp), geo=geo))
    warm = RecordSource(-seed - 1, real)
    for index in range(WARMUP_RECORDS):
        step(warm(index).raw, -1)
    return step


def _retime(tally: Tally, draw: RecordSource, geo: bool) -> None:
    """Time the slowest candidates again, each once on RETIMERS fresh runtimes, and keep the fastest of the
    three timings: a pause of the machine inflates one timing, a costly record is slow every time."""
    steps = [_warm_step(draw.seed, draw.real, geo) for _ in range(RETIMERS)]
    clock = time.perf_counter
    retimed = []
    for first, index, family, size in tally.slowest:
        raw = draw(index).raw
        best = first
        for step in steps:
            begin = clock()
            step(raw, index)
            best = min(best, clock() - begin)
        retimed.append((best, index, family, size))
    tally.slowest = heapq.nlargest(SLOWEST_KEPT, retimed)


def run_shard(seed: int, records: int, jobs: int, shard: int, geo: bool) -> Tally:
    """Records ``shard, shard + jobs, ...`` below ``records``, in one process."""
    draw = RecordSource(seed, hostile.real_lines(SHARED))
    step = _warm_step(seed, draw.real, geo)
    tally = Tally()
    recent: deque[tuple[Canary, ...]] = deque(maxlen=RECENT_CANARIES)
    clock = time.perf_counter
    started = clock()
    for index in range(shard, records, jobs):
        sample = draw(index)
        begin = clock()
        routed = step(sample.raw, index)
        elapsed = clock() - begin
        canaries = _counted_canaries(sample)
        tally.add(seed, index, sample, routed, elapsed, check_leaks(routed, canaries, recent))
        recent.append(canaries)
    tally.seconds = clock() - started
    _retime(tally, draw, geo)
    return tally


def _shard_entry(args: tuple[int, int, int, int, bool]) -> Tally:
    return run_shard(*args)


# --- the report -------------------------------------------------------------------------------------------


def _split(key: str) -> dict[str, str]:
    where, kind = key.split("|")
    return {"field": where, "kind": kind}


def report(tally: Tally, *, seed: int, records: int, jobs: int, geo: bool, wall_s: float) -> dict[str, Any]:
    benign = {size: statistics.median(times) for size, times in sorted(tally.benign_times.items()) if times}

    def ratio(seconds: float, size: int) -> float | None:
        base = benign.get(size_class(size))
        return round(seconds / base, 1) if base else None

    slowest = [
        {
            "index": index,
            "family": family,
            "size": size,
            "ms": round(seconds * 1000, 3),
            "ratio_to_benign": ratio(seconds, size),
            "reproduce": f"python -m benchmarks.fuzz --seed {seed} --show {index}",
        }
        for seconds, index, family, size in sorted(tally.slowest, reverse=True)
    ]
    families = {}
    for family, count in sorted(tally.families.items()):
        times = sorted(tally.family_times[family])
        families[family] = {
            "records": count,
            "routes": dict(sorted(tally.routes_by_family[family].items())),
            "reasons": dict(tally.reasons_by_family[family].most_common()),
            "crashes": sum(n for key, n in tally.crashes.items() if key.startswith(family + "|")),
            "records_leaking": tally.leaked_by_family.get(family, 0),
            "median_ms": round(statistics.median(times) * 1000, 4),
            "p99_ms": round(times[int(len(times) * 0.99)] * 1000, 4),
        }
    leaks = [
        {
            **_split(key),
            "records": count,
            "planted": tally.planted[key],
            "examples": tally.leak_examples[key],
        }
        for key, count in tally.leaked.most_common()
    ]
    crashes = [
        {
            "family": key.split("|")[0],
            "stage": key.split("|")[1],
            "exception": key.split("|")[2],
            "records": count,
            "examples": tally.crash_examples[key],
        }
        for key, count in tally.crashes.most_common()
    ]
    return {
        "schema": SCHEMA,
        "command": "python -m benchmarks.fuzz " + " ".join(sys.argv[1:]),
        "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "seed": seed,
        "jobs": jobs,
        "geo": geo,
        "real_lines": tally.families.get("mutated_real", 0) > 0,
        "wall_s": round(wall_s, 1),
        "records": tally.records,
        "crashes": sum(tally.crashes.values()),
        "crash_kinds": crashes,
        "detector_failures": tally.detector_failures,
        "records_leaking": sum(tally.leaked_by_family.values()),
        "leaks": leaks,
        "leaks_by_output": dict(tally.leaked_by_output.most_common()),
        "planted": dict(sorted(tally.planted.items())),
        "routes": dict(tally.routes.most_common()),
        "reasons": dict(tally.reasons.most_common()),
        "families": families,
        "benign_median_ms": {str(size): round(seconds * 1000, 4) for size, seconds in benign.items()},
        "slowest": slowest,
        "max_ratio_to_benign": max((row["ratio_to_benign"] or 0 for row in slowest), default=None),
        "amplification": {
            name: {"max_per_record": best[0], "index": best[1], "family": best[2]}
            for name, best in sorted(tally.amplification.items())
        },
    }


def print_table(doc: dict[str, Any]) -> None:
    print(
        f"fuzz: {doc['records']:,} records, seed {doc['seed']}, {doc['jobs']} process(es), {doc['wall_s']} s; "
        f"crashes {doc['crashes']}, records leaking a planted identifier {doc['records_leaking']}, "
        f"detector failures {doc['detector_failures']}"
    )
    print(f"\n{'family':<20}{'records':>9}{'crashes':>9}{'leaking':>9}{'median ms':>11}{'p99 ms':>10}  routes")
    for family, row in doc["families"].items():
        routes = ", ".join(f"{k} {v}" for k, v in row["routes"].items())
        print(
            f"{family:<20}{row['records']:>9}{row['crashes']:>9}{row['records_leaking']:>9}"
            f"{row['median_ms']:>11.3f}{row['p99_ms']:>10.2f}  {routes}"
        )
    if doc["crash_kinds"]:
        print("\ncrashes (family / stage / exception: records)")
        for row in doc["crash_kinds"]:
            print(f"  {row['family']} / {row['stage']} / {row['exception']}: {row['records']}")
    if doc["leaks"]:
        print("\nleaks (planted field / kind: records leaking / planted)")
        for row in doc["leaks"]:
            print(f"  {row['field']} / {row['kind']}: {row['records']} / {row['planted']}")
        print("  by output: " + ", ".join(f"{k} {v}" for k, v in doc["leaks_by_output"].items()))
    print("\nquarantine and filter reasons: " + ", ".join(f"{k} {v}" for k, v in doc["reasons"].items()))
    print("\nslowest records, re-timed (family, bytes, ms, x benign median of its size class)")
    for row in doc["slowest"][:10]:
        print(f"  #{row['index']:<8} {row['family']:<20}{row['size']:>8}{row['ms']:>11.2f}  x{row['ratio_to_benign']}")
    print(
        "\namplification (max per input record): "
        + ", ".join(f"{name} {row['max_per_record']} ({row['family']})" for name, row in doc["amplification"].items())
    )


# --- one record, shown -------------------------------------------------------------------------------------


def show(seed: int, index: int, geo: bool) -> None:
    """Print one record, run it through the file-mode step, and print its outputs or the traceback."""
    sample = RecordSource(seed, hostile.real_lines(SHARED))(index)
    print(f"family {sample.family}, {len(sample.raw)} bytes, origin {sample.origin}, mutation {sample.mutation}")
    print(repr(sample.raw))
    for canary in sample.canaries:
        print(f"  planted {canary.kind} in {canary.field}: {canary.value}")
    with tempfile.TemporaryDirectory() as tmp:
        step = FileModeStep(fuzz_runtime(Path(tmp), geo=geo))
    routed = step(sample.raw, index)
    print(f"route {routed.route} {routed.reason or ''}")
    for output, value in routed.outputs:
        print(f"  {output}: {value.decode('utf-8', 'replace')[:2000]}")
    for output, canary in check_leaks(routed, sample.canaries, deque()):
        print(f"LEAK {canary.kind} planted in {canary.field} found in {output}")
    if routed.crash is not None:
        print(f"CRASH in {routed.crash_stage}:")
        traceback.print_exception(routed.crash)


def _shards(seed: int, records: int, jobs: int, geo: bool) -> Iterator[Tally]:
    args = [(seed, records, jobs, shard, geo) for shard in range(jobs)]
    if jobs == 1:
        yield run_shard(*args[0])
        return
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        yield from pool.imap_unordered(_shard_entry, args)


def run(records: int, seed: int, jobs: int, geo: bool = False) -> dict[str, Any]:
    """Run the fuzz and return the report (not written)."""
    started = time.perf_counter()
    total = Tally()
    for tally in _shards(seed, records, jobs, geo):
        total.merge(tally)
    return report(total, seed=seed, records=records, jobs=jobs, geo=geo, wall_s=time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--geo", action="store_true", help="use the shared DB-IP country + ASN databases")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--show", type=int, metavar="INDEX", help="run and print one record of the seed")
    args = parser.parse_args(argv)
    if args.show is not None:
        show(args.seed, args.show, args.geo)
        return
    doc = run(args.records, args.seed, max(1, args.jobs), args.geo)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    print_table(doc)
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
