"""The fault campaign's short version (issue 11, item 6): a kill -9 during a backlog, then a rebalance.

``python -m benchmarks.faults`` runs the whole campaign on a broker of its own; this runs one phase of it on the
session's broker: a worker starts on a backlog of generated traffic with attacks, is killed with ``kill -9`` while
it drains it and started again, then a second worker joins and leaves with SIGTERM while the stream goes on.
Nothing acknowledged may be lost, every repeated output must carry the id of its first copy, and the detector's
alerts must equal the file mode's over the same records, rule, subject and count.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks.faults import Context, Scenario, run_scenario

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

BACKLOG = 10_000
RATE = 100.0


def kill_in_backlog_then_rebalance(ctx: Context) -> None:
    assert ctx.workers.reading(0), "the worker never read its backlog"
    time.sleep(ctx.rng.uniform(0.3, 1.0))
    ctx.fault("kill -9 during the backlog")
    ctx.workers.kill(0)
    time.sleep(1.0)
    ctx.workers.start(0)
    assert ctx.workers.reading(0), "the restarted worker never read again"
    ctx.fault("worker 1 joins")
    ctx.workers.start(1)
    time.sleep(8)
    ctx.fault("worker 1 leaves (SIGTERM)")
    assert ctx.workers.terminate(1) is not None, "worker 1 did not stop on SIGTERM"


@pytest.fixture(scope="module")
def result(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # Keyed by client address: each source's records in one partition, as a shipper keying by host writes them. The
    # keyless case (records of one second from one source in several partitions) is the campaign's
    # (benchmarks.faults reports alerts_recounted; equal event times are applied in one canonical order).
    scenario = Scenario("short", BACKLOG, kill_in_backlog_then_rebalance, tail_s=3, workers=2, keyed=True)
    work: Path = tmp_path_factory.mktemp("faults")
    outcome = run_scenario(kafka_bootstrap, scenario, rate=RATE, seed=3, work=work)
    print({k: v for k, v in outcome.items() if k != "lost_examples"})
    return outcome


def test_nothing_acknowledged_is_lost(result: dict[str, Any]) -> None:
    assert result["ingest_read_all"], "the ingest never committed the whole input"
    assert result["produced"] >= BACKLOG
    assert result["lost_at_broker"] == 0
    assert result["lost"] == 0, result["lost_examples"]
    assert result["accounted"] == result["in_topic"]


def test_every_duplicate_carries_the_id_of_its_first_copy(result: dict[str, Any]) -> None:
    """A replay writes outputs again; a consumer can drop each repeat only if it has an id seen before."""
    assert result["unexpected_ids_total"] == 0, result["unexpected_ids"]


def test_alerts_equal_the_file_modes_by_rule_subject_and_count(result: dict[str, Any]) -> None:
    assert result["alerts_reference"] > 0, "the traffic raised no alert: nothing compared"
    assert result["alerts_false_list"] == []
    assert result["alerts_missing_list"] == []


def test_the_worker_survived_without_a_crashed_agent(result: dict[str, Any]) -> None:
    assert result["worker_alive_at_end"]
    assert result["worker_exits"] == []
    assert result["crashed_agent_lines"] == 0
