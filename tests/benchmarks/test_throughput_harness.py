"""The streaming throughput harness: a quick run on the session broker writes well-formed results.

The figures are measurements (``python -m benchmarks.throughput``), not asserted here: only their shape.
"""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("psutil", reason="the throughput harness measures processes with psutil")

from benchmarks.throughput import __main__ as cli
from benchmarks.throughput.common import output_topics
from benchmarks.throughput.harness import DETECTION, RELEASE, Span, SystemFailed, measured_window, switch_off
from benchmarks.throughput.inputs import GENERATOR_RATE, backlog_end
from benchmarks.throughput.latency import produced_marker
from benchmarks.throughput.monitor import quietest_stretch
from benchmarks.throughput.report import REQUIRED, check_document, evaluate_goals, release_markdown
from benchmarks.throughput.window_state import measure
from config import load_policy
from config.settings import Settings
from pipeline.routing import Source, route_record
from pipeline.traffic import generate
from tests.transforms.keyfixtures import fixed_keyring
from transforms.policy import validate_policy
from transforms.process import RecordProcessor
from transforms.quarantine import QuarantineSealer
from transforms.release import AggregateParams, ReleaseParams, ReleaseRow, ReleaseStage

POLICY = Path(__file__).resolve().parents[2] / "config" / "policy.toml"

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
    assert len(doc["goals"]) == 9
    product = doc["systems"][-1]
    assert product["release"]["on"] is True  # shipped policy: analytics rows go through the release stage
    assert product["release"]["summary"]["analytics_held"] > 0
    release = doc["product_release"]
    assert release["order"] == ["on", "off"]  # --quick: one pair
    assert release["on_events_per_s"] > 0
    assert release["off_events_per_s"] > 0
    assert release["window_state"]["held"]["rows"] > 0
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


# --------------------------------------------------------------------------------------------- the release's cost


def test_switch_off_disables_the_release_and_the_aggregates_and_nothing_else() -> None:
    """The release-off policy is the shipped one with both release sections disabled, and it still validates."""
    text = POLICY.read_text()
    off = tomllib.loads(switch_off(text, RELEASE))
    shipped = tomllib.loads(text)
    assert shipped["analytics"]["release"]["enabled"]
    assert shipped["analytics"]["aggregates"]["enabled"]
    assert off["analytics"]["release"]["enabled"] is False
    assert off["analytics"]["aggregates"]["enabled"] is False
    for section in (off, shipped):  # only the two switches differ
        section["analytics"]["release"].pop("enabled")
        section["analytics"]["aggregates"].pop("enabled")
    assert off == shipped
    assert not validate_policy(tomllib.loads(switch_off(text, RELEASE)), "test").analytics.release.enabled
    assert tomllib.loads(switch_off(text, DETECTION + RELEASE))["detection"]["enabled"] is False


def test_switch_off_refuses_a_section_it_cannot_find() -> None:
    """A policy whose section does not start with ``enabled = true`` stops the measurement, naming the section."""
    with pytest.raises(SystemFailed, match=r"\[analytics.release\]"):
        switch_off("[analytics.release]\nk = 5\nenabled = true\n", RELEASE)


@pytest.mark.parametrize(
    ("per_topic", "stage_topics", "idle_s", "expected", "end"),
    [
        # release off: the span runs from the first to the last output; nothing is taken off
        ({"analytics": (10.0, 16.0), "abuse": (10.5, 15.0)}, set(), 0.0, Span(10.0, 16.0, None, 16.0), 16.0),
        # release on: the stage's outputs came 5 s (its idle close) plus 0.4 s of closing after the ingest's last
        (
            {"release": (10.0, 16.0), "analytics": (21.3, 21.4), "aggregates": (12.0, 21.4)},
            {"analytics", "aggregates"},
            5.0,
            Span(10.0, 16.0, 16.4, 21.4),
            16.4,
        ),
        # release on, the stage done (less the wait) before the detector's last changelog record: that one counts
        (
            {"release": (10.0, 16.0), "changelog": (10.2, 17.0), "analytics": (20.5, 20.5)},
            {"analytics"},
            5.0,
            Span(10.0, 17.0, 15.5, 20.5),
            17.0,
        ),
    ],
)
def test_measured_window_takes_only_the_idle_wait_off_the_release_stage(
    per_topic: dict[str, tuple[float, float]], stage_topics: set[str], idle_s: float, expected: Span, end: float
) -> None:
    """events/s runs to the later of the ingest's last output and the release stage's last one less its wait."""
    span = measured_window(per_topic, stage_topics, idle_s)
    assert span == expected
    assert span.end == pytest.approx(end)


@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 12, 6, 0, 0, 1, tzinfo=UTC),  # just after midnight: yesterday's day window still ends late
        datetime(2026, 12, 6, 11, 46, tzinfo=UTC),
        datetime(2026, 12, 6, 23, 59, 59, tzinfo=UTC),
        datetime(2027, 1, 1, 0, 3, tzinfo=UTC),
    ],
)
def test_backlog_lets_the_idle_close_release_every_window(now: datetime) -> None:
    """The input's last event time lies in a day (so in an hour) that ended more than max_delay_s before the run,
    and the default input's generated span fits in one release window."""
    params = validate_policy(tomllib.loads(POLICY.read_text()), "test").analytics
    end = backlog_end(now)
    wall_limit = now.timestamp() - params.release.max_delay_s  # what the idle close releases up to
    for size in {params.release.window_s, *params.aggregates.windows_s}:
        assert (end.timestamp() // size + 1) * size <= wall_limit
    start = end - timedelta(seconds=cli.DEFAULT_EVENTS * 0.9 / GENERATOR_RATE)  # 10 % are real log lines
    assert start.timestamp() // params.release.window_s == end.timestamp() // params.release.window_s


def test_baselines_have_a_topic_for_every_output_the_shipped_routing_makes() -> None:
    """With the release on, the routing makes release rows: the baselines write them where analytics go."""
    keyring = fixed_keyring()
    processor = RecordProcessor.build(load_policy(), keyring)
    sealer = QuarantineSealer(keyring.quarantine_key())
    topics = output_topics(Settings())
    ingest = datetime(2026, 12, 4, 12, tzinfo=UTC)
    records = list(generate(200, seed=3, start=ingest - timedelta(seconds=10), events_per_second=20.0))
    made = {
        output
        for offset, raw in enumerate(records)
        for output, _, _ in route_record(processor, raw, Source("t", 0, offset, ingest), sealer).messages
    }
    assert "release" in made
    assert made <= set(topics)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"http": {"bytes": 1_765_000_000_000_000}}, 1_765_000_000_000_000),  # an analytics record
        ({"r": {"http": {"bytes": 1_765_000_000_000_000}}, "v": "x", "t": 1.0}, 1_765_000_000_000_000),  # release row
        ({"r": {"http": {"bytes": 5120}}, "v": "x", "t": 1.0}, None),  # a real response size, not a marker
        ({"schema": "aggregate/1", "pageviews": 3}, None),
    ],
)
def test_probe_reads_the_marker_in_analytics_records_and_release_rows(message: dict, expected: int | None) -> None:
    """The latency probe finds the produce time inside a release row as in an analytics record."""
    assert produced_marker(message) == expected


def _rows(units: int, records_each: int) -> list[tuple[bytes | None, bytes]]:
    rows = []
    for n in range(records_each):
        for unit in range(units):
            record = {"client": {"pseudonym": f"u{unit}"}, "http": {"status": 200 + unit % 3}}
            rows.append((f"u{unit}".encode(), ReleaseRow(record, f"v{unit}", 1_765_000_000.0 + n).to_bytes()))
    return rows


def test_window_state_counts_what_is_held_and_accounts_for_every_row() -> None:
    """The in-process measurement counts held rows and units, and every row is released or suppressed."""
    release = ReleaseParams(
        k=2, unit="client.pseudonym", links=["client.pseudonym"], quasi_identifiers={"http.status": "status"}
    )
    aggregates = AggregateParams(windows_s=[3600], dimensions=[["status_class"]])
    rows = _rows(units=12, records_each=5)
    result = measure(rows, release, lambda: ReleaseStage(release, aggregates))
    assert result["held"] == {"rows": 60, "units": 12, "daily_visitors": 12, "windows": 1, "open_records": 60}
    assert result["traced_mb"] >= 0
    assert result["traced_bytes_per_row"] > 0
    assert [size["rows"] for size in result["sizes"]] == [15, 30, 60]
    for size in result["sizes"]:
        assert size["released"] + size["suppressed"] == size["rows"]


@pytest.mark.parametrize(("ratio", "passed"), [(0.9, True), (0.85, True), (0.84, False), (None, None)])
def test_release_goal_reads_the_side_by_side_ratio(ratio: float | None, passed: bool | None) -> None:
    """The issue-9 goal passes at 0.85 and above, and is n/a without a side-by-side measurement."""
    doc = {"systems": [], "product_release": None if ratio is None else {"ratio": ratio, "cpu_ratio": ratio}}
    goals = [g for g in evaluate_goals(doc) if "issue 9" in g["goal"]]
    assert len(goals) == 2  # events/s, and CPU per event
    for goal in goals:
        assert goal["pass"] is passed
        assert goal["value"] == ratio


def test_release_section_states_both_variants_and_the_window_state() -> None:
    """The markdown names both variants' rates, the ratio and the rows held."""
    release = {
        "order": ["on", "off"],
        "on_events_per_s": 900.0,
        "off_events_per_s": 1000.0,
        "ratio": 0.9,
        "cpu_ratio": 0.8,
        "on_runs": [900.0],
        "off_runs": [1000.0],
        "on_ingest_events_per_s": 950.0,
        "on_cpu_s_per_million": 120.0,
        "off_cpu_s_per_million": 100.0,
        "on_peak_rss_mb": 220.0,
        "off_peak_rss_mb": 200.0,
        "rss_difference_mb": 20.0,
        "release_after_ingest_s": [0.5],
        "on_summary": None,
        "window_state": None,
    }
    text = "\n".join(release_markdown(release))
    assert "| on | 900 |" in text
    assert "| off | 1,000 |" in text
    assert "×0.900 in events/s, ×0.800 in CPU per event" in text
    assert release_markdown(None) == []
    assert "failed" in "\n".join(release_markdown({"error": "boom"}))


def test_quietest_stretch_finds_the_idle_wait_between_two_bursts() -> None:
    """A 5 s wait at 0.01 CPU s/s between busy stretches is found, and never more than it took is taken off."""

    def cpu_at(t: float) -> float:  # busy (1 CPU s/s) until 10, idle until 15, busy again until 16
        return min(t, 10.0) + 0.01 * max(0.0, min(t, 15.0) - 10.0) + max(0.0, min(t, 16.0) - 15.0)

    assert quietest_stretch(cpu_at, 9.0, 16.0, 5.0) == pytest.approx(0.05)
    assert quietest_stretch(cpu_at, 10.0, 15.0, 5.0) == pytest.approx(0.05)  # the range is the wait itself
    assert quietest_stretch(cpu_at, 0.0, 4.0, 5.0) == pytest.approx(4.0)  # shorter than the wait: all of it


def test_measured_window_takes_the_detectors_idle_wait_off_too() -> None:
    """A backlog's last alerts wait for the input to be idle (the watermark); that wait is not work."""
    per_topic = {"analytics": (10.0, 12.0), "abuse": (10.0, 13.5), "changelog": (10.1, 13.6)}
    span = measured_window(per_topic, set(), 0.0, frozenset({"abuse", "changelog"}), 1.0)
    assert span.ingest_end == pytest.approx(12.6)
    assert span.last == 13.6  # CPU is still counted to the very last output
