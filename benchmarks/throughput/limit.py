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
from pipeline.routing import Source, outcome_messages


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
        # The product's work: observations serialized (for its repartition topic) and fed to the detector.
        states: dict[str, Any] = {}
        outputs = 0
        dumps = orjson.dumps
        for offset, raw in enumerate(batch):
            outcome = process(raw, ingest)
            for _ in outcome_messages(outcome, raw, Source("bench", 0, offset, ingest), sealer, observations=True):
                outputs += 1
            for observation in outcome.observations:
                state, alerts = detector(states.get(observation.subject), observation)  # type: ignore[misc]
                if state is None:
                    states.pop(observation.subject, None)
                else:
                    states[observation.subject] = state
                for alert in alerts:
                    dumps(alert)
                outputs += len(alerts)
        return outputs

    result: dict[str, Any] = _timed(plain, records)
    if detector is not None:
        result["with_detector"] = _timed(with_detector, records)
    result["peak_rss_mb"] = own_peak_rss_mb()
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
