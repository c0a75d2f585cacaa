"""The streaming throughput harness: a quick run on the session broker writes well-formed results.

The figures are measurements (``python -m benchmarks.throughput``), not asserted here: only their shape.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("psutil", reason="the throughput harness measures processes with psutil")

from benchmarks.throughput import __main__ as cli
from benchmarks.throughput.report import REQUIRED, check_document

SYSTEMS = ("limit", "aiokafka", "product")
LATENCY_KEYS = {f"p{q}_ms_at_{pct}pct" for q in (50, 99) for pct in (25, 50, 75)}


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_quick_run_writes_well_formed_results(kafka_bootstrap: str, tmp_path: Path) -> None:
    """A --quick run of limit, aiokafka and product on a running broker fills every row and writes json, md and png."""
    status = cli.main(
        ["--quick", "--systems", ",".join(SYSTEMS), "--bootstrap", kafka_bootstrap, "--out", str(tmp_path)]
    )
    assert status == 0

    doc = json.loads((tmp_path / "latest.json").read_text())
    check_document(doc)
    assert {"cpu", "cores", "python", "load_avg_start", "load_avg_end"} <= set(doc["machine"])
    assert [row["system"] for row in doc["systems"]] == list(SYSTEMS)
    for row in doc["systems"]:
        assert set(REQUIRED) | LATENCY_KEYS <= set(row)
        assert row["events_per_s"] > 0
        assert row["cpu_s_per_million"] > 0
        assert row["peak_rss_mb"] > 0
    limit, *kafka_rows = doc["systems"]
    assert all(limit[key] is None for key in LATENCY_KEYS)  # no Kafka, no latency
    for row in kafka_rows:
        assert row["outputs"] > 0
        assert 0 < row["p50_ms_at_50pct"] <= row["p99_ms_at_50pct"]
        assert row["latency"]["50pct"]["samples"] > 0
    assert len(doc["goals"]) == 7
    assert all(goal["pass"] in (True, False, None) for goal in doc["goals"])
    assert set(doc["ratios"]) == {"product/limit", "product/aiokafka"}
    markdown = (tmp_path / "throughput.md").read_text()
    assert all(f"| {name} |" in markdown for name in SYSTEMS)
    if (tmp_path / "throughput.png").exists():
        assert (tmp_path / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_document_check_rejects_a_row_without_the_promised_keys() -> None:
    """check_document names the missing key of a system row."""
    with pytest.raises(ValueError, match="p99_ms_at_50pct"):
        check_document(
            {
                "machine": {},
                "systems": [
                    {
                        "system": "limit",
                        "events_per_s": 1.0,
                        "cpu_s_per_million": 1.0,
                        "peak_rss_mb": 1.0,
                        "p50_ms_at_50pct": None,
                    }
                ],
            }
        )


@pytest.mark.parametrize(
    ("worker", "broker", "rate", "cores", "expected"),
    [
        # 2 cores shared with the broker: 2 / (50 + 25) us = 26,667/s at most, over 10,000/s
        (50.0, 25.0, 10_000.0, 2, 2.667),
        # enough cores: each worker is bound by its own core, 1 / 50 us = 20,000/s each
        (50.0, 25.0, 10_000.0, 8, 4.0),
        # a worker already at its full core: 2 processes can at most double it
        (50.0, 0.0, 20_000.0, 4, 2.0),
    ],
)
def test_cpu_bound_ceiling(worker: float, broker: float, rate: float, cores: int, expected: float) -> None:
    """The scaling ceiling is the CPU-bound two-process rate over the measured one-process rate."""
    from benchmarks.throughput.harness import _cpu_bound_ceiling

    run = {"events_per_s": rate, "cpu_s_per_million": worker, "broker_cpu_s_per_million": broker}
    assert _cpu_bound_ceiling(run, run, cores) == expected
    assert _cpu_bound_ceiling(run, {}, cores) == expected  # a failed second run is left out
    assert _cpu_bound_ceiling(run, run, None) is None
