"""The worker on a 3-broker cluster (issue 11, item 7): one broker killed with ``kill -9`` mid-stream loses nothing.

The test starts its own cluster (``KAFKA_BROKERS=3 scripts/kafka.sh``) on KAFKA_CLUSTER_TEST_PORT (29500; the
nodes on +0, +10, +20, their controllers one above) and stops it. About 80 s on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.keystore import write_keyring
from pipeline.traffic import generate
from tests.integration.cluster import KafkaCluster, describe_sync
from tests.integration.helpers import ROOT, consumed, drain, running_worker, summary, worker_env
from transforms.keyring import generate_keyring

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PORT = int(os.environ.get("KAFKA_CLUSTER_TEST_PORT", "29500"))
RATE = 150.0  # records per second
BEFORE_KILL_S = 6.0
# The controller moves the dead broker's partitions after its broker.session.timeout.ms (Kafka's 9 s), so the
# producer and the worker stall on those partitions that long: the stream runs on well past it.
AFTER_KILL_S = 20.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    subject = KafkaCluster(tmp_path_factory.mktemp("cluster"), PORT)
    try:
        subject.start()
        yield subject
    finally:
        subject.stop()


class Traffic(threading.Thread):
    """Generated records at RATE per second through an idempotent acks=all producer; keeps what was acknowledged."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.stop = threading.Event()
        self.acknowledged: list[bytes] = []
        self.failed = 0
        self.ack_times: list[float] = []

    def run(self) -> None:
        asyncio.run(self._produce())

    async def _produce(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=30_000,
        )
        await producer.start()
        pending: list[asyncio.Future[object]] = []

        def settled(record: bytes, future: asyncio.Future[object]) -> None:
            if future.cancelled() or future.exception() is not None:
                self.failed += 1
            else:
                self.acknowledged.append(record)
                self.ack_times.append(time.monotonic())

        try:
            started = time.monotonic()
            records = generate(None, seed=11, start=datetime.now(UTC), events_per_second=RATE)
            for sent, record in enumerate(records):
                if self.stop.is_set():
                    break
                # Not send_and_wait: records keep coming while a partition has no leader, as from a real shipper.
                future = await producer.send(self.topic, record)
                future.add_done_callback(functools.partial(settled, record))
                pending.append(future)
                delay = started + (sent + 1) / RATE - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            await producer.stop()


def _create_topics(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "topics", "create"],
        env=env,
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_broker_killed_mid_stream_loses_no_record_and_the_worker_goes_on(
    cluster: KafkaCluster, tmp_path: Path
) -> None:
    keys = tmp_path / "keyring.json"
    write_keyring(generate_keyring(), keys)
    base = f"cl{uuid.uuid4().hex[:6]}"
    topics = {n: f"{base}.{n}" for n in ("input", "analytics", "abuse", "quarantine", "aggregates")}
    env = worker_env(
        cluster.bootstrap,
        topics,
        keys,
        tmp_path / "data",
        PSEUDO_PARTITIONS="3",
        PSEUDO_REPLICATION_FACTOR="3",
        PSEUDO_MIN_INSYNC_REPLICAS="2",
        PSEUDO_GROUP_INSTANCE_ID="worker-0",
        # faust creates its own topics (the detector table's changelog, its assignor's) with its
        # topic_replication_factor (1 by default), which the app does not set: on this cluster,
        # min.insync.replicas 2 would refuse every acks=all write to a single copy.
    )
    _create_topics(env)
    app = env["PSEUDO_APP_ID"]
    created = [*topics.values(), f"{app}-observations", f"{app}-release", f"{app}-release-progress"]
    layout = describe_sync(cluster.bootstrap, created)
    assert {name: (set(replicas), min_isr) for name, (replicas, _, min_isr) in layout.items()} == {
        name: ({3}, "2") for name in created
    }

    traffic = Traffic(cluster.bootstrap, topics["input"])
    with running_worker(env, tmp_path / "worker.log") as worker:
        traffic.start()
        try:
            time.sleep(BEFORE_KILL_S)
            _, leaders, _ = describe_sync(cluster.bootstrap, [topics["input"]])[topics["input"]]
            victim = leaders[0]  # leads at least one input partition: its readers and writers must move
            killed_at = time.monotonic()
            cluster.kill_node(victim)
            time.sleep(AFTER_KILL_S)
        finally:
            traffic.stop.set()
            traffic.join(timeout=60)
        acknowledged = traffic.acknowledged
        after_kill = sum(1 for moment in traffic.ack_times if moment > killed_at + 1)
        assert after_kill > RATE * 5, "the producer barely got through after the kill"

        # The ingest's group has committed every input partition to its end: each record read and its outputs
        # acknowledged (a poll commits only after that).
        deadline = time.monotonic() + 90
        group = f"{app}-ingest"
        while not (
            asyncio.run(consumed(cluster.bootstrap, group, topics["input"]))
            and asyncio.run(consumed(cluster.bootstrap, app, f"{app}-observations"))  # the detector's faust group
        ):
            assert time.monotonic() < deadline, "the worker never read the whole input after the kill"
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.5)
        stats = summary(env)
        assert worker.poll() is None, "the worker stopped"
        worker.send_signal(signal.SIGTERM)

    # 0 lost: every record the cluster acknowledged is in the input topic, and the worker read each of them
    # (and routed it: analytics, quarantine or filtered).
    stored = Counter(value for _, value in asyncio.run(drain(cluster.bootstrap, topics["input"], timeout_s=60)))
    assert not Counter(acknowledged) - stored, "an acknowledged record is missing from the input topic"
    assert stats is not None
    assert stats["input"] >= len(acknowledged) > 0
    assert stats["input"] == stats["analytics"] + stats["quarantine"] + stats["filtered"]
    quarantined = asyncio.run(drain(cluster.bootstrap, topics["quarantine"], timeout_s=60))
    assert len(quarantined) >= stats["quarantine"]
    cluster.start_node(victim)  # it catches up with the others and joins again
    assert cluster.run("status").returncode == 0
    print(
        f"cluster: node {victim} killed; acknowledged {len(acknowledged)} ({after_kill} after the kill), "
        f"not acknowledged {traffic.failed}, worker read {stats['input']}, "
        f"longest pause between acknowledgements {_longest_pause(traffic.ack_times):.2f} s"
    )


def _longest_pause(times: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(sorted(times))), default=0.0)
