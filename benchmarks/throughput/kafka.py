"""The one broker the harness measures on, and the few admin reads the harness makes.

The broker is started with ``scripts/kafka.sh`` on its own ports (29092/29093 by default) with its state under
``<repo>/.kafka``, or an already running one is reused (``--bootstrap``). Output topics are created with
``message.timestamp.type=LogAppendTime``: the broker stamps each output record when it is written, so "time
from first to last output" does not depend on which timestamp a system puts on what it produces (Quix Streams
copies the input's; faust and aiokafka put the send time).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "scripts" / "kafka.sh"


@dataclass
class Broker:
    bootstrap: str
    pid: int | None  # the broker's JVM, for its CPU share; None when it cannot be found
    started: bool  # this run started it (and stops it unless asked to keep it)
    env: dict[str, str]

    @classmethod
    def start(cls, port: int, controller_port: int, state_dir: Path) -> Broker:
        env = {
            **os.environ,
            "KAFKA_PORT": str(port),
            "KAFKA_CONTROLLER_PORT": str(controller_port),
            "KAFKA_STATE_DIR": str(state_dir),
        }
        holder = _listener_pid(port)
        if holder is not None:
            # A broker left running (--keep-broker) or anything else: starting another one there waited forever.
            raise RuntimeError(
                f"port {port} is already in use (pid {holder}): reuse a broker with --bootstrap 127.0.0.1:{port}, "
                "stop it, or pick another --port"
            )
        try:
            done = subprocess.run(
                [str(KAFKA_SH), "start"], env=env, text=True, capture_output=True, check=False, timeout=300
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"the broker on port {port} did not start within {exc.timeout:.0f} s") from None
        if done.returncode != 0:
            raise RuntimeError(f"could not start the broker on port {port}:\n{done.stderr[-3000:]}")
        pidfile = state_dir / f"broker-{port}.pid"
        pid = int(pidfile.read_text().strip()) if pidfile.exists() else _listener_pid(port)
        return cls(f"127.0.0.1:{port}", pid, True, env)

    @classmethod
    def attach(cls, bootstrap: str) -> Broker:
        port = int(bootstrap.split(",")[0].rsplit(":", 1)[1])
        return cls(bootstrap, _listener_pid(port), False, dict(os.environ))

    def stop(self) -> None:
        if self.started:
            subprocess.run([str(KAFKA_SH), "stop"], env=self.env, text=True, capture_output=True, check=False)

    def version(self) -> str | None:
        """The broker's release, from the kafka jar on its class path (``kafka_2.13-4.1.1.jar``)."""
        if self.pid is None:
            return None
        with contextlib.suppress(psutil.Error):
            for part in " ".join(psutil.Process(self.pid).cmdline()).replace(":", " ").split():
                name = Path(part).name
                if name.startswith("kafka_2.") and name.endswith(".jar"):
                    return name.removesuffix(".jar").split("-", 1)[-1]
        lib = ROOT / ".kafka" / "lib"
        jars = sorted(lib.glob("kafka_2.*.jar")) if lib.is_dir() else []
        return jars[0].stem.split("-", 1)[-1] if jars else None


def _listener_pid(port: int) -> int | None:
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return int(conn.pid)
    return None


class Inspector:
    """One admin client and one unsubscribed consumer, for the harness's reads between and after phases."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-admin")
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=2**16
        )

    async def start(self) -> None:
        await self._admin.start()
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def create_topics(self, names: list[str], partitions: int, *, log_append_time: bool) -> None:
        config = {"message.timestamp.type": "LogAppendTime"} if log_append_time else {}
        topics = [NewTopic(n, num_partitions=partitions, replication_factor=1, topic_configs=config) for n in names]
        with contextlib.suppress(TopicAlreadyExistsError):
            await self._admin.create_topics(topics)

    async def delete_topics_with_prefix(self, prefix: str) -> int:
        names = [name for name in await self._admin.list_topics() if name.startswith(prefix)]
        if names:
            with contextlib.suppress(Exception):
                await self._admin.delete_topics(names)
        return len(names)

    async def committed_total(self, group: str, topic: str) -> int:
        """The sum of the group's committed offsets on ``topic`` (= records done, for a topic that starts at 0)."""
        try:
            offsets = await self._admin.list_consumer_group_offsets(group)
        except KafkaError:  # no coordinator yet: the group has not committed anything
            return 0
        return sum(max(0, meta.offset) for tp, meta in offsets.items() if tp.topic == topic)

    async def stable_members(self, group: str) -> int:
        """How many members the group has once it is Stable (0 while it is forming or rebalancing)."""
        try:
            responses = await self._admin.describe_consumer_groups([group])
        except KafkaError:
            return 0
        for response in responses:
            for described in response.groups:
                # (error_code, group_id, state, protocol_type, protocol, members, ...)
                if described[1] == group and described[0] == 0 and described[2] == "Stable":
                    return len(described[5])
        return 0

    async def end_offsets(self, topics: list[str]) -> dict[TopicPartition, int]:
        tps: list[TopicPartition] = []
        for topic in topics:
            partitions = self._consumer.partitions_for_topic(topic)
            if not partitions:
                await self._consumer._client.force_metadata_update()  # a topic created after start
                partitions = self._consumer.partitions_for_topic(topic) or set()
            tps += [TopicPartition(topic, p) for p in sorted(partitions)]
        return dict(await self._consumer.end_offsets(tps)) if tps else {}

    async def output_window(self, ends: dict[TopicPartition, int]) -> dict[str, tuple[float, float]]:
        """Per topic, (first, last) broker append time in seconds over the records of partitions that start at 0."""
        consumer = self._consumer
        window: dict[str, tuple[float, float]] = {}
        for tp, end in ends.items():
            if end <= 0:
                continue
            consumer.assign([tp])
            # The last record a little before the end: a topic written in transactions (PSEUDO_PROCESSING_GUARANTEE=
            # exactly_once) ends with a commit marker, which is no record.
            for offset, last in ((0, False), (max(0, end - 8), True)):
                consumer.seek(tp, offset)
                got = (await consumer.getmany(tp, timeout_ms=5000)).get(tp, [])
                if not got:
                    raise RuntimeError(f"could not read {tp} at offset {offset}")
                stamp = (got[-1] if last else got[0]).timestamp / 1000
                first, last = window.get(tp.topic, (stamp, stamp))
                window[tp.topic] = (min(first, stamp), max(last, stamp))
        consumer.unsubscribe()
        return window


async def produce_input(
    bootstrap: str, topic: str, records: list[bytes], partitions: int, timestamp_ms: int | None = None
) -> float:
    """Write the input round-robin over the partitions as a log shipper would (lz4 batches); returns seconds.

    ``timestamp_ms``: every record's CreateTime (the worker's ingest time), for a backlog; default: send time."""
    import time

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        compression_type="lz4",
        linger_ms=20,
        max_batch_size=512 * 1024,
        max_request_size=2 * 2**20,
    )
    began = time.perf_counter()
    await producer.start()
    try:
        pending = []
        for n, value in enumerate(records):
            pending.append(await producer.send(topic, value, partition=n % partitions, timestamp_ms=timestamp_ms))
            if len(pending) >= 20_000:
                for future in pending:
                    await future
                pending.clear()
        for future in pending:
            await future
    finally:
        await producer.stop()
    return time.perf_counter() - began
