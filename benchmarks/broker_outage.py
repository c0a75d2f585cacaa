"""How much a broker outage writes to the worker's log, and whether the worker comes back by itself.

    .venv/bin/python -m benchmarks.broker_outage                     # the repeat limit off, then on
    .venv/bin/python -m benchmarks.broker_outage --modes on --outage-s 30 --port 29740

Per mode (``off``: ``PSEUDO_LOG_REPEAT_INTERVAL_S=0``; ``on``: the default 30 s), on a broker of its own started
with ``scripts/kafka.sh`` on ``--port``: a worker starts on fresh topics, ``--records`` records go in and are read,
the broker is stopped for ``--outage-s`` seconds and started again, as many records go in again. Reported: the
worker's log lines from the broker stop until it answers again, and until the end of the run (one repeat interval
and 10 s after every record was read, so that the counts the limit held back are written too), each split by
kind of message (digits made alike); how long after the broker answered again the worker read its first new
record; and whether every produced record was accounted (``input`` of ``/summary`` equal to the records produced).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks.throughput.kafka import ROOT, Broker
from pipeline.keystore import write_keyring
from pipeline.traffic import generate
from tests.integration.helpers import produce, running_worker, summary, wait_for_input_count, worker_env
from transforms.keyring import generate_keyring

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STAMP = re.compile(r"^\[[^\]]*\] \[\d+\] ")  # faust's "[2025-06-01 10:00:00,123] [4242] " prefix
REPEAT_INTERVAL_S = 30.0  # the "on" mode: the shipped default of PSEUDO_LOG_REPEAT_INTERVAL_S


def kind(line: str) -> str:
    """A log line's kind: without colours, time stamp and pid, with every number made alike."""
    text = STAMP.sub("", ANSI.sub("", line)).strip()
    return re.sub(r"\d+", "#", text)[:110]


def lines_between(log: Path, start: int, end: int | None = None) -> list[str]:
    data = log.read_bytes()[start:end]
    return data.decode("utf-8", "replace").splitlines()


def run_mode(mode: str, broker: Broker, port: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    interval = REPEAT_INTERVAL_S if mode == "on" else 0.0
    name = f"outage-{mode}-{uuid.uuid4().hex[:8]}"
    topics = {t: f"{name}.{t}" for t in ("input", "analytics", "abuse", "quarantine", "aggregates")}
    keys = work / f"{name}.keys.json"
    write_keyring(generate_keyring(), keys)
    env = worker_env(
        broker.bootstrap,
        topics,
        keys,
        work / f"{name}.state",
        PSEUDO_LOG_REPEAT_INTERVAL_S=str(interval),
        PSEUDO_STATS_INTERVAL_S="30",  # the shipped default, not the tests' 2 s
        PSEUDO_DETECTOR_EXPIRE_INTERVAL_S="60",
        PSEUDO_STORE="memory://",
    )
    log = work / f"{name}.log"
    # Event times of the past: the release closes their windows at once instead of holding them until then.
    records = list(generate(2 * args.records, seed=5, start=datetime(2025, 6, 1, 10, tzinfo=UTC)))
    first, second = records[: args.records], records[args.records :]
    with running_worker(env, log) as worker:
        produced = asyncio.run(produce(broker.bootstrap, topics["input"], first))
        wait_for_input_count(env, produced, timeout_s=180, released=False)

        stop_at = log.stat().st_size
        t_stop = time.monotonic()
        broker.stop()
        t_down = time.monotonic()
        time.sleep(max(0.0, args.outage_s - (t_down - t_stop)))
        restarted = Broker.start(port, port + 1, broker_state(args))
        broker.pid = restarted.pid
        t_back = time.monotonic()
        back_at = log.stat().st_size

        produced += asyncio.run(produce(broker.bootstrap, topics["input"], second))
        resumed_s = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            current = summary(env)
            if current and current["input"] > args.records:
                resumed_s = time.monotonic() - t_back
                break
            time.sleep(0.1)
        final = summary(env)
        if resumed_s is not None:
            final = wait_for_input_count(env, produced, timeout_s=240, released=False)
        # Counts held back are written at the latest one interval (plus a flusher tick) after their group began.
        time.sleep(interval + 10 if interval else 5)
        end_at = log.stat().st_size
        alive = worker.poll() is None

    outage_lines = lines_between(log, stop_at, back_at)
    run_lines = lines_between(log, stop_at, end_at)
    return {
        "mode": mode,
        "log_repeat_interval_s": interval,
        "outage_s": round(t_back - t_stop, 1),
        "log_lines_outage": len(outage_lines),
        "log_lines_outage_to_end": len(run_lines),
        "kinds_outage_to_end": Counter(kind(line) for line in run_lines).most_common(args.kinds),
        "worker_alive": alive,
        "resumed_s": None if resumed_s is None else round(resumed_s, 2),
        "produced": produced,
        "input_counted": (final or {}).get("input"),
        "accounted": bool(final) and final["input"] == produced,
        "log": str(log),
    }


def broker_state(args: argparse.Namespace) -> Path:
    return Path(args.state_dir).resolve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=29740, help="the broker's port (controller: port + 1)")
    parser.add_argument("--state-dir", default=str(ROOT / ".kafka"), help="the broker state folder")
    parser.add_argument("--outage-s", type=float, default=30.0, help="how long the broker is down")
    parser.add_argument("--records", type=int, default=2000, help="records before the outage (as many after)")
    parser.add_argument("--modes", nargs="+", choices=("off", "on"), default=["off", "on"])
    parser.add_argument("--kinds", type=int, default=8, help="kinds of log line listed per mode")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    results = []
    broker = Broker.start(args.port, args.port + 1, broker_state(args))
    try:
        work = Path(tempfile.mkdtemp(prefix="broker-outage-"))  # kept: the worker logs are the evidence
        for mode in args.modes:
            result = run_mode(mode, broker, args.port, args, work)
            results.append(result)
            print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode(), flush=True)
    finally:
        broker.stop()
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
