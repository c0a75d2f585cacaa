"""``window_state``: what the release stage holds for the benchmark input, and what closing it costs (no Kafka).

    python -m benchmarks.throughput.window_state RECORDS_FILE INGEST_UNIX_SECONDS

Routes the benchmark input with the product's own routing (:func:`pipeline.routing.route_record`, this process's
``PSEUDO_*`` environment and policy), with the ingest time the worker takes from the records' Kafka timestamp,
and keeps the release rows as the bytes the ingest writes to its release topic. Then it feeds them, decoded one
by one as the release service does, to one :class:`~transforms.release.ReleaseStage` (the stream's default: one
release partition sees every unit) and reports:

* ``held``: rows, units (unit pseudonyms per release window), daily visitors and windows of all the rows, and
  ``open_records``: the rows still held after the last poll (windows of old log lines close on the way);
* ``traced_mb``: under ``tracemalloc``, the memory the stage keeps after the last row (what it holds of each
  decoded row: the unit's reference values and levels, its variants, the aggregate cells and their visitor sets),
  and ``traced_peak_mb`` during the feed; ``close_traced_peak_mb``: the peak while closing every window still
  open and serializing what it releases (the released records exist as dicts and as bytes at once);
  ``rss_growth_mb``: the process's RSS growth over the same feed without tracemalloc;
* ``sizes``: for a quarter, a half and all of the rows (each a fresh stage): seconds to decode and add them poll
  by poll, to close what is due after each poll on the way (as the service does), then to close every window
  still open (the generalization and the released records built), each also per million rows (the least of
  three passes): does the cost per row grow with the window?

Prints one JSON object. Run it in its own process (as the harness does): tracemalloc and RSS are then the stage's.
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks.throughput.common import load_runtime
from benchmarks.throughput.monitor import current_rss_mb
from benchmarks.throughput.records import read_records
from pipeline.routing import Output, Source, closed_window_messages, route_record
from pipeline.runtime import Runtime
from transforms.release import ClosedWindow, ReleaseParams, ReleaseRow, ReleaseStage

FRACTIONS = (0.25, 0.5, 1.0)
REPEATS = 3  # timed passes per size
POLL = 2000  # rows per poll of the release service (the product's PSEUDO_MAX_POLL_RECORDS default)
Row = tuple[bytes | None, bytes]  # (key: the unit's pseudonym, value): a message of the release topic


def release_messages(runtime: Runtime, records: list[bytes], ingest: datetime) -> list[Row]:
    """The release topic's messages for ``records``, as the ingest writes them (the release must be on)."""
    if not runtime.policy.analytics.release.enabled:
        raise SystemExit("window_state: the policy has [analytics.release] enabled = false: nothing is held")
    rows: list[Row] = []
    for offset, raw in enumerate(records):
        routed = route_record(runtime.processor, raw, Source("bench", 0, offset, ingest), runtime.sealer)
        rows += [(key, value) for output, key, value in routed.messages if output is Output.RELEASE]
    return rows


def held(rows: list[Row], release: ReleaseParams) -> dict[str, int]:
    """What a stage holds once ``rows`` are in, counted from the rows themselves (not from its internals)."""
    units, visitors, windows = set(), set(), set()
    for key, value in rows:
        row = ReleaseRow.from_bytes(value)
        window = int(row.time // release.window_s)
        windows.add(window)
        units.add((window, key))
        visitors.add((int(row.time // 86_400), row.visitor))
    return {"rows": len(rows), "units": len(units), "daily_visitors": len(visitors), "windows": len(windows)}


def _feed(stage: ReleaseStage, rows: list[Row]) -> tuple[list[ClosedWindow], float]:
    """Add the rows poll by poll, closing what is due after each poll as the release service does; returns the
    windows closed on the way (old real log lines: their hours close once later traffic moves event time on)
    and the seconds those closes took."""
    closed: list[ClosedWindow] = []
    closing = 0.0
    for start in range(0, len(rows), POLL):
        for _, value in rows[start : start + POLL]:  # decoded per row, as the service does
            stage.add(ReleaseRow.from_bytes(value))
        began = time.perf_counter()
        closed += stage.close_due()
        closing += time.perf_counter() - began
    return closed, closing


def measure(rows: list[Row], release: ReleaseParams, stage_factory: Callable[[], ReleaseStage]) -> dict[str, Any]:
    """Memory held and the cost of adding and closing, for ``rows`` (``stage_factory()`` -> a fresh stage)."""
    gc.collect()
    before = current_rss_mb()
    stage = stage_factory()
    _feed(stage, rows)
    gc.collect()
    rss_growth = (current_rss_mb() or 0.0) - (before or 0.0)
    del stage
    gc.collect()

    tracemalloc.start()
    stage = stage_factory()
    _feed(stage, rows)
    gc.collect()
    traced, peak = tracemalloc.get_traced_memory()
    open_records = stage.open_records
    # Closing: every window's released records built, then serialized as the service hands them to its producer
    # (the record batches it then builds, compressed, come on top). Measured from what the stage already holds.
    tracemalloc.reset_peak()
    closed = stage.close_all()
    messages = [message for window in closed for message in closed_window_messages(window)]
    _, close_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del stage, closed, messages
    gc.collect()

    sizes = []
    for fraction in FRACTIONS:
        part = rows[: max(1, int(len(rows) * fraction))]
        timings: list[tuple[float, float, float]] = []  # (decode + add, closes on the way, final close)
        for _ in range(REPEATS):  # the least of each: a shared machine only ever adds time
            stage = stage_factory()
            began = time.perf_counter()
            closed_on_the_way, closing = _feed(stage, part)
            added = time.perf_counter()
            at_end = stage.close_all()
            done = time.perf_counter()
            timings.append((added - began - closing, closing, done - added))
        add, on_the_way, final = (min(t[i] for t in timings) for i in range(3))
        closed = closed_on_the_way + at_end
        stats = [w.stats for w in closed if w.stats is not None]
        sizes.append(
            {
                "rows": len(part),
                "units": held(part, release)["units"],
                "add_s": round(add, 3),  # decode and add, without the closes on the way
                "closes_on_the_way_s": round(on_the_way, 3),
                "close_s": round(final, 3),  # the windows still open: what the idle close releases
                "add_s_per_million": round(add / len(part) * 1e6, 1),
                "closes_on_the_way_s_per_million": round(on_the_way / len(part) * 1e6, 1),
                "close_s_per_million": round(final / len(part) * 1e6, 1),
                "windows_closed_while_adding": len(closed_on_the_way),
                "windows_closed_at_end": len(at_end),
                "released": sum(s.released for s in stats),
                "suppressed": sum(s.suppressed for s in stats),
                "aggregate_rows": sum(len(w.records) for w in closed if w.stats is None),
            }
        )
        del stage, closed, closed_on_the_way, at_end
        gc.collect()
    return {
        "held": held(rows, release) | {"open_records": open_records},
        "traced_mb": round(traced / 2**20, 1),
        "traced_peak_mb": round(peak / 2**20, 1),
        "close_traced_peak_mb": round(close_peak / 2**20, 1),
        "traced_bytes_per_row": round(traced / max(1, len(rows))),
        "rss_growth_mb": round(rss_growth, 1),
        "sizes": sizes,
    }


def main() -> None:
    records = read_records(Path(sys.argv[1]))
    ingest = datetime.fromtimestamp(float(sys.argv[2]), UTC)
    runtime = load_runtime()
    release, aggregates = runtime.policy.analytics.release, runtime.policy.analytics.aggregates
    rows = release_messages(runtime, records, ingest)
    del runtime, records
    result = measure(rows, release, lambda: ReleaseStage(release, aggregates))
    result["k"] = release.k
    result["window_s"] = release.window_s
    result["aggregate_windows_s"] = aggregates.windows_s if aggregates.enabled else []
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
