"""CPU per observation of the detector with and without event-time ordering, no Kafka (issue 11, item 1).

    python -m benchmarks.ordering_cost [--keys KEYRING]

The observations of the real logs ``benchmarks.chunked_replay`` replays (or its generated traffic), as they travel on
the observation topic (JSON rows), are fed to the detector twice, in one process: ``direct``, one subject's
observation at a time in arrival order (the detector before this change), and ``ordered``, through
:class:`transforms.event_time.OrderedDetector` with its buffer, input positions and a watermark moved every 500
observations (a poll), as the stream does. Minimum of 5 passes of process CPU time each.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks.chunked_replay import input_records
from config.settings import Settings
from pipeline.keystore import write_keyring
from pipeline.runtime import build_runtime
from transforms.event_time import OrderedDetector, SubjectTable, Tally
from transforms.keyring import generate_keyring
from transforms.model import Observation

POLL = 500


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keyring.json"
        write_keyring(generate_keyring(), keys)
        runtime = build_runtime(Settings.from_env({}), keys_path=keys)
    detector = runtime.detector
    assert detector is not None
    what, records = input_records()
    now = datetime.now(UTC)
    rows = [
        (o.subject, orjson.loads(orjson.dumps(o.to_row())))
        for r in records
        for o in runtime.processor(r, now).observations
    ]

    def direct() -> None:
        states: dict[str, Any] = {}
        for subject, row in rows:
            state, _, _ = detector.observe(states.get(subject), [Observation.from_row(subject, row)])
            if state is None:
                states.pop(subject, None)
            else:
                states[subject] = state

    def ordered() -> None:
        table = SubjectTable(OrderedDetector(detector, max_buffered=10_000, replay_horizon_s=3600))
        tally, latest = Tally(), -1e18
        for start in range(0, len(rows), POLL):
            for offset, (subject, row) in enumerate(rows[start : start + POLL], start):
                table.accept(subject, [(0, offset, row)], tally)
                latest = max(latest, row[0])
            table.release(latest - 5, tally)
        table.release(float("inf"), tally)

    def cost(run: Callable[[], None]) -> float:
        times = []
        for _ in range(5):
            started = time.process_time()
            run()
            times.append(time.process_time() - started)
        return min(times) / len(rows) * 1e6

    result = {"input": what, "observations": len(rows), "direct_us": cost(direct), "ordered_us": cost(ordered)}
    print(orjson.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
