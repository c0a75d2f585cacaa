"""The file mode: the stream's parsing, transforms and routing over files, with the same outputs.

Writes ``analytics.jsonl``, ``abuse.jsonl``, ``quarantine.jsonl`` and ``summary.json`` into the
output folder, and ``aggregates.jsonl`` when the policy releases analytics through k-anonymous windows
(the stream's release stage, pipeline/release.py, runs the same ``transforms.release.ReleaseStage``).
Records are processed in order of arrival (file order, files in the order given); pseudonym epochs come
from each record's event time, so the output equals the stream's for the same input and keyring, except for
``event_id``: a record's id hashes its source position, here (file name, 0, line number), in the stream (topic,
partition, offset). Aggregate ids agree (they name the window and cell) while the stream has one release partition.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import orjson

from pipeline.metrics import RouteCounters
from pipeline.routing import OUTPUTS, Output, Source, alert_with_id, closed_window_messages, route_record
from pipeline.runtime import Runtime
from transforms.event_time import OrderedDetector, SubjectTable, Tally
from transforms.release import ClosedWindow, ReleaseRow, ReleaseStage


def _lines(handle: BinaryIO) -> Iterator[bytes]:
    for line in handle:
        # Strip only the line terminator: a record's own trailing spaces are part of its payload.
        yield line.rstrip(b"\r\n") if line.endswith(b"\n") else line


def iter_inputs(inputs: Iterable[str]) -> Iterator[tuple[str, int, bytes]]:
    """Yield (source name, line number from 0, raw line) for each input path, ``-`` meaning stdin."""
    for name in inputs:
        if name == "-":
            for number, line in enumerate(_lines(sys.stdin.buffer)):
                yield "stdin", number, line
            continue
        source = Path(name).name
        with open(name, "rb") as handle:
            for number, line in enumerate(_lines(handle)):
                yield source, number, line


def process_files(
    runtime: Runtime, inputs: Iterable[str], out_dir: Path, *, ingest_time: datetime | None = None
) -> dict[str, object]:
    """Run the pipeline over the inputs; returns the summary also written to ``summary.json``."""
    ingest = ingest_time or datetime.now(UTC)
    out_dir.mkdir(parents=True, exist_ok=True)
    counters = RouteCounters()
    process, sealer, dumps, detector = runtime.processor, runtime.sealer, orjson.dumps, runtime.detector
    event_ids = runtime.event_ids
    # The stream keeps detector state in a table keyed by subject; here a dict plays that part. The same
    # ordered core as the stream's (transforms/event_time.py): observations are applied in event-time order
    # once the watermark, the latest event time read less the allowed disorder, has passed them.
    settings = runtime.settings
    table = (
        SubjectTable(
            OrderedDetector(
                detector,
                max_buffered=settings.detector_max_buffered,
                replay_horizon_s=settings.detector_replay_horizon_s,
            )
        )
        if detector is not None
        else None
    )
    tally, latest = Tally(), -math.inf
    analytics_policy = runtime.policy.analytics
    stage = (
        ReleaseStage(analytics_policy.release, analytics_policy.aggregates, event_ids=event_ids)
        if analytics_policy.release.enabled
        else None
    )
    written = {output: spec.file for output, spec in OUTPUTS.items() if spec.file is not None}
    if stage is None:
        # No aggregates without the release; a file from an earlier run with it on would mislead.
        (out_dir / written.pop(Output.AGGREGATES)).unlink(missing_ok=True)
    with contextlib.ExitStack() as opened:
        files = {output: opened.enter_context(open(out_dir / name, "wb")) for output, name in written.items()}
        abuse = files[Output.ABUSE]

        def release(watermark: float) -> None:
            assert table is not None
            for alert in table.release(watermark, tally):
                abuse.write(dumps(alert_with_id(alert, event_ids)) + b"\n")

        def write_closed(windows: list[ClosedWindow]) -> None:
            for window in windows:
                counters.closed(window)
                for output, _, value in closed_window_messages(window):
                    files[output].write(value + b"\n")

        for name, number, line in iter_inputs(inputs):
            if not line:
                continue  # a blank line in a file is layout, not a record (a blank Kafka message is one)
            # The same guarded path as the stream: whatever the line does, it ends as outputs or in quarantine.
            routed = route_record(process, line, Source(name, 0, number, ingest), sealer, event_ids)
            counters.count(routed.outcome)
            for output, _, value in routed.messages:
                if output is Output.RELEASE and stage is not None:
                    # The same bytes the stream's release stage reads from its topic.
                    if not stage.add(ReleaseRow.from_bytes(value)):
                        counters.late(1)
                    continue
                files[output].write(value + b"\n")
            if stage is not None:
                write_closed(stage.close_due())
            if table is not None and routed.outcome.observations:
                for observation in routed.outcome.observations:
                    table.accept(observation.subject, [(None, None, observation.to_row())], tally)
                    if observation.timed and math.isfinite(observation.time):
                        latest = max(latest, observation.time)  # only records' own times move event time on
                release(latest - settings.event_time_disorder_s)
        if table is not None:
            release(math.inf)  # the end of the input: everything read is final
            counters.alerts += tally.alerts
            counters.detector_failures += tally.failed
            counters.detector_late.update({reason.value: n for reason, n in tally.late.items() if n})
        if stage is not None:
            write_closed(stage.close_all())  # the end of the input closes every window
    summary = counters.summary()
    (out_dir / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    return summary
