"""``limit``: the project's parse + transform + serialize in a tight loop, no Kafka, one process.

    python -m benchmarks.throughput.limit RECORDS_FILE

Reads the benchmark input (``records.py`` format) into memory, then times one pass of exactly the routing every
Kafka system runs (:func:`benchmarks.throughput.common.build_router`), and a second pass that also serializes
the observations and runs the stateful detector on them as the product does (``with_detector``). Prints one
JSON object; CPU is this process's own (``time.process_time``), the peak RSS its ``VmHWM``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks.throughput.common import build_router, load_runtime
from benchmarks.throughput.monitor import own_peak_rss_mb
from benchmarks.throughput.records import read_records
from pipeline.ingest import observation_batches, positioned_row, read_observation_batch
from pipeline.routing import Source, route_record
from transforms.model import Observation

POLL = 2000  # records per ingest poll (the product's PSEUDO_MAX_POLL_RECORDS default)
PARTITIONS = 4  # observation partitions (the harness's default)


def _timed(loop: Callable[[list[bytes]], int], records: list[bytes]) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    outputs = loop(records)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "events": len(records),
        "outputs": outputs,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "events_per_s": round(len(records) / wall, 1),
        "cpu_s_per_million": round(cpu / len(records) * 1e6, 2),
    }


def main() -> None:
    runtime = load_runtime()
    records = read_records(Path(sys.argv[1]))
    route = build_router(runtime)
    process, sealer, detector = runtime.processor, runtime.sealer, runtime.detector
    ingest = datetime.now(UTC)  # the Kafka systems take it from each message's timestamp

    def plain(batch: list[bytes]) -> int:
        outputs = 0
        for offset, raw in enumerate(batch):
            for _ in route(raw, ingest, "bench", 0, offset):
                outputs += 1
        return outputs

    def with_detector(batch: list[bytes]) -> int:
        # The product's work: observations encoded as for its repartition topic (per poll of POLL records),
        # decoded, and fed to the detector.
        states: dict[str, Any] = {}
        outputs = 0
        dumps = orjson.dumps
        for start in range(0, len(batch), POLL):
            rows = []
            for offset, raw in enumerate(batch[start : start + POLL], start):
                routed = route_record(process, raw, Source("bench", 0, offset, ingest), sealer)
                outputs += len(routed.messages)
                rows.extend((subject, positioned_row(0, offset, row)) for subject, row in routed.observation_rows)
            for _, value in observation_batches(rows, PARTITIONS, "bench", None):
                for subject, entries in read_observation_batch(value).groups:
                    state = states.get(subject)
                    for observation in (Observation.from_row(subject, row) for _, _, row in entries):
                        state, alerts = detector(state, observation)  # type: ignore[misc]
                        for alert in alerts:
                            dumps(alert)
                        outputs += len(alerts)
                    if state is None:
                        states.pop(subject, None)
                    else:
                        states[subject] = state
        return outputs

    result: dict[str, Any] = _timed(plain, records)
    if detector is not None:
        result["with_detector"] = _timed(with_detector, records)
    result["peak_rss_mb"] = own_peak_rss_mb()
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
