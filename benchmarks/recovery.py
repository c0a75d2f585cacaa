"""How long the outputs stop when a worker is killed (``kill -9``) mid-stream and restarted (issue 11, item 5).

    python -m benchmarks.recovery [--kills 3] [--pause 2] [--port 29592] [--static]

On the project's own broker (started on ``--port`` and stopped after): one worker, a steady stream of generated
traffic (100 records/s), then ``--kills`` times: ``kill -9`` the worker at a random point, wait ``--pause`` seconds,
start it again with the same state folder. Measured per kill, by a consumer of the abuse and quarantine topics
(written by the ingest for every attack or bad record, so they flow all the time) and by the detector's group offsets:

* ``output gap``: from the kill to the first output record after it;
* ``resume``: from the restart to that record (what the restart itself costs);
* ``detector resume``: from the restart until the detector's consumer group commits on the observations again.

The run ends by checking that every produced record was read by the ingest (its committed offsets reach the end).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.keystore import write_keyring
from pipeline.traffic import generate
from tests.integration.helpers import ROOT, consumed, running_worker, worker_env
from transforms.keyring import generate_keyring

RATE = 100.0


def _kafka(command: str, port: int) -> None:
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(port + 1)}
    subprocess.run([str(ROOT / "scripts" / "kafka.sh"), command], env=env, check=True)


class Traffic(threading.Thread):
    """Produces generated records at RATE per second until stopped; counts what the broker acknowledged."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.stop = threading.Event()
        self.acknowledged = 0

    def run(self) -> None:
        asyncio.run(self._produce())

    async def _produce(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            records = generate(None, seed=5, start=datetime.now(UTC), events_per_second=RATE)
            started = time.monotonic()
            for sent, record in enumerate(records):
                if self.stop.is_set():
                    break
                await producer.send_and_wait(self.topic, record)
                self.acknowledged += 1
                delay = started + (sent + 1) / RATE - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
        finally:
            await producer.stop()


class Arrivals(threading.Thread):
    """Wall-clock arrival times of output records (abuse and quarantine topics)."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topics = bootstrap, topics
        self.stop = threading.Event()
        self.times: list[float] = []

    def run(self) -> None:
        asyncio.run(self._consume())

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(*self.topics, bootstrap_servers=self.bootstrap, auto_offset_reset="latest")
        await consumer.start()
        try:
            while not self.stop.is_set():
                batches = await consumer.getmany(timeout_ms=100)
                now = time.monotonic()
                self.times.extend(now for messages in batches.values() for _ in messages)
        finally:
            await consumer.stop()

    def first_after(self, moment: float, timeout_s: float = 180) -> float | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            later = [t for t in self.times if t > moment]
            if later:
                return min(later)
            time.sleep(0.1)
        return None


async def _partition_offsets(bootstrap: str, group: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return {tp.partition: meta.offset for tp, meta in offsets.items()}
    finally:
        await admin.close()


def _detector_resumed(bootstrap: str, group: str, after: float, timeout_s: float = 180) -> float | None:
    """When the detector's group committed beyond what it had at ``after`` (faust commits about every second)."""

    def committed() -> int:
        return sum(offset for offset in asyncio.run(_partition_offsets(bootstrap, group)).values() if offset >= 0)

    before = committed()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if committed() > before:
            return time.monotonic()
        time.sleep(0.25)
    return None


def _fresh_run(tmp: Path, prefix: str) -> tuple[Path, dict[str, str]]:
    """A new keyring and topic names of their own for one measurement."""
    keys = tmp / "keyring.json"
    write_keyring(generate_keyring(), keys)
    base = f"{prefix}{uuid.uuid4().hex[:6]}"
    return keys, {n: f"{base}.{n}" for n in ("input", "analytics", "abuse", "quarantine", "aggregates")}


def takeover(bootstrap: str, *, static: bool) -> float | None:
    """Two workers share the input; one is killed (``kill -9``, not restarted). Seconds until every input partition
    is committed again by the ingest group, that is until the survivor took over the dead worker's partitions."""
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        keys, topics = _fresh_run(tmp, "tko")
        envs = [worker_env(bootstrap, topics, keys, tmp / f"data-{i}") for i in (0, 1)]
        for i, env in enumerate(envs):  # each its own metrics port (worker_env picks a free one) and state folder
            env["PSEUDO_PARTITIONS"] = "4"
            if static:
                env["PSEUDO_GROUP_INSTANCE_ID"] = f"worker-{i}"
        traffic = Traffic(bootstrap, topics["input"])
        group = f"{envs[0]['PSEUDO_APP_ID']}-ingest"
        with running_worker(envs[0], tmp / "worker-0.log") as first, running_worker(envs[1], tmp / "worker-1.log"):
            traffic.start()
            try:
                time.sleep(20)  # both members settled, every partition committed
                before = asyncio.run(_partition_offsets(bootstrap, group))
                killed_at = time.monotonic()
                first.send_signal(signal.SIGKILL)
                first.wait()
                deadline = killed_at + 180
                while time.monotonic() < deadline:
                    now = asyncio.run(_partition_offsets(bootstrap, group))
                    if before and all(now.get(p, -1) > offset for p, offset in before.items()):
                        return time.monotonic() - killed_at
                    time.sleep(0.25)
                return None
            finally:
                traffic.stop.set()
                traffic.join()


@dataclass
class Recovery:
    rows: list[dict[str, Any]]
    acknowledged: int  # records the broker acknowledged to the traffic producer
    read_all: bool  # the ingest group's committed offsets reached the end of the input


def measure(bootstrap: str, *, kills: int, pause_s: float, static: bool, rng: random.Random) -> Recovery:
    """Kill and restart a worker ``kills`` times under steady traffic on the broker at ``bootstrap``."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        keys, topics = _fresh_run(tmp, "rec")
        env = worker_env(bootstrap, topics, keys, tmp / "data")
        if static:
            env["PSEUDO_GROUP_INSTANCE_ID"] = "worker-0"
        traffic = Traffic(bootstrap, topics["input"])
        arrivals = Arrivals(bootstrap, [topics["abuse"], topics["quarantine"]])
        with running_worker(env, tmp / "worker-0.log") as first:
            arrivals.start()
            traffic.start()
            time.sleep(15)  # steady state
            worker = first
            try:
                for kill in range(1, kills + 1):
                    time.sleep(rng.uniform(3, 10))
                    killed_at = time.monotonic()
                    worker.send_signal(signal.SIGKILL)
                    worker.wait()
                    time.sleep(pause_s)
                    restarted_at = time.monotonic()
                    with open(tmp / f"worker-{kill}.log", "wb") as log:
                        worker = subprocess.Popen(
                            [sys.executable, "-m", "pipeline.cli", "worker"], env=env, cwd=ROOT, stdout=log, stderr=log
                        )
                    output_at = arrivals.first_after(restarted_at)
                    detector_at = _detector_resumed(bootstrap, env["PSEUDO_APP_ID"], restarted_at)
                    rows.append(
                        {
                            "kill": kill,
                            "output_gap_s": None if output_at is None else output_at - killed_at,
                            "resume_s": None if output_at is None else output_at - restarted_at,
                            "detector_resume_s": None if detector_at is None else detector_at - restarted_at,
                        }
                    )
                    print(rows[-1], flush=True)
                traffic.stop.set()
                traffic.join()
                deadline = time.monotonic() + 120
                group = f"{env['PSEUDO_APP_ID']}-ingest"
                while not (read_all := asyncio.run(consumed(bootstrap, group, topics["input"]))):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
            finally:
                traffic.stop.set()
                arrivals.stop.set()
                worker.terminate()
                worker.wait(timeout=30)
    return Recovery(rows, traffic.acknowledged, read_all)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between the kill and the restart")
    parser.add_argument("--port", type=int, default=29592)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--static", action="store_true", help="static group membership (PSEUDO_GROUP_INSTANCE_ID)")
    parser.add_argument("--takeover", action="store_true", help="two workers, one killed: how long the other takes")
    args = parser.parse_args(argv)
    _kafka("start", args.port)
    if args.takeover:
        try:
            seconds = takeover(f"127.0.0.1:{args.port}", static=args.static)
        finally:
            _kafka("stop", args.port)
        membership = "static" if args.static else "dynamic"
        print(f"takeover ({membership} membership): every input partition committed again after {seconds} s")
        return 0
    try:
        result = measure(
            f"127.0.0.1:{args.port}",
            kills=args.kills,
            pause_s=args.pause,
            static=args.static,
            rng=random.Random(args.seed),
        )
    finally:
        _kafka("stop", args.port)
    rows = result.rows
    membership = "static" if args.static else "dynamic"
    print(f"kills: {len(rows)} (pause {args.pause:g} s, {membership} membership), acknowledged: {result.acknowledged}")
    print(f"ingest read the whole input: {result.read_all}")
    for name in ("output_gap_s", "resume_s", "detector_resume_s"):
        values = [r[name] for r in rows if r[name] is not None]
        if values:
            median, worst = statistics.median(values), max(values)
            print(f"{name}: median {median:.1f} s, max {worst:.1f} s ({len(values)} of {len(rows)})")
        else:
            print(f"{name}: never within the timeout")
    return 0


if __name__ == "__main__":
    sys.exit(main())
