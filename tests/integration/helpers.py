"""Shared helpers for broker tests: a worker subprocess, producing, draining topics, leak scanning."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from config.settings import Settings
from pipeline.kafka_clients import client_options

ROOT = Path(__file__).resolve().parents[2]
IPV4 = re.compile(rb"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
EMAIL = re.compile(rb"[\w.+-]+@[\w-]+\.[\w.-]+")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_env(bootstrap: str, topics: dict[str, str], keys: Path, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSEUDO_")}
    env.update(
        {
            "PSEUDO_BROKER": f"kafka://{bootstrap}",
            "PSEUDO_APP_ID": f"app-{topics['input']}",
            "PSEUDO_INPUT_TOPIC": topics["input"],
            "PSEUDO_ANALYTICS_TOPIC": topics["analytics"],
            "PSEUDO_ABUSE_TOPIC": topics["abuse"],
            "PSEUDO_QUARANTINE_TOPIC": topics["quarantine"],
            "PSEUDO_AGGREGATES_TOPIC": topics.get("aggregates", f"{topics['input']}.aggregates"),
            "PSEUDO_PARTITIONS": "2",
            "PSEUDO_KEYS_FILE": str(keys),
            "PSEUDO_DATA_DIR": str(data_dir),
            "PSEUDO_METRICS_PORT": str(free_port()),
            "PSEUDO_STATS_INTERVAL_S": "2",
            "PSEUDO_DETECTOR_EXPIRE_INTERVAL_S": "1",  # the expiry timer must run (and not crash) in tests
            # The detector waits this long (5 s by default) after a start before it releases anything: within the
            # 2 s for which wait_for_input_count wants the counters still.
            "PSEUDO_WATERMARK_WRITER_TIMEOUT_S": "1",
            **extra,
        }
    )
    return env


def worker_connection(env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The worker's bootstrap and its aiokafka connection options (TLS, SASL) from its environment."""
    settings = Settings.from_env(env)
    return settings.bootstrap, {"bootstrap_servers": settings.bootstrap, **client_options(settings.kafka)}


def summary(env: dict[str, str]) -> dict[str, Any] | None:
    url = f"http://127.0.0.1:{env['PSEUDO_METRICS_PORT']}/summary"
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return dict(orjson.loads(response.read()))
    except OSError:
        return None


@contextmanager
def running_worker(env: dict[str, str], log_path: Path, root: Path = ROOT) -> Iterator[subprocess.Popen[bytes]]:
    """The worker of the checkout at ``root`` (a benchmark may run an older one for its "before" figures)."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "worker"], env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 90
        while summary(env) is None:
            if proc.poll() is not None:
                raise AssertionError(f"worker exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker did not come up:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_input_count(
    env: dict[str, str], expected: int, timeout_s: float = 120, *, released: bool = True
) -> dict[str, Any]:
    """Wait until the worker has read ``expected`` records and its counters (incl. alerts) stop moving."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        last = summary(env)
        if last and last["input"] >= expected:
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"worker processed {last and last['input']} of {expected} records in {timeout_s} s")
    # The detector runs in a second agent behind a repartition topic: let it read all of it (faust commits
    # what its agent has processed about every second), then wait for the counters to settle.
    bootstrap, connection = worker_connection(env)
    observations = f"{env['PSEUDO_APP_ID']}-observations"
    while time.monotonic() < deadline and not asyncio.run(
        consumed(bootstrap, env["PSEUDO_APP_ID"], observations, connection)
    ):
        time.sleep(0.3)
    # The release holds analytics in windows until event time (or an idle input) closes them: wait for every
    # held record to be released or suppressed (``released`` False: only read by the release stage).
    while time.monotonic() < deadline and (last := summary(env)) is not None and last.get("analytics_held"):
        if released and last["analytics_records"] + last["analytics_suppressed"] >= last["analytics_held"]:
            break
        if not released and last["release_rows_read"] >= last["analytics_held"]:
            break
        time.sleep(0.3)
    stable = 0
    while stable < 4 and time.monotonic() < deadline:
        time.sleep(0.5)
        current = summary(env)
        stable = stable + 1 if current == last else 0
        last = current
    assert last is not None
    return last


def _client(bootstrap: str, connection: dict[str, Any] | None) -> dict[str, Any]:
    """aiokafka keyword arguments: the plaintext ``bootstrap``, or a secured connection (SecuredBroker.options)."""
    return dict(connection) if connection else {"bootstrap_servers": bootstrap}


async def consumed(bootstrap: str, group: str, topic: str, connection: dict[str, Any] | None = None) -> bool:
    """Whether ``group`` has committed up to the end of every partition of ``topic`` (True if it has none)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**_client(bootstrap, connection))
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **_client(bootstrap, connection))
    await admin.start()
    await consumer.start()
    try:
        # The admin's answer, not the consumer's metadata cache: on a fresh client partitions_for_topic can still be
        # empty, and this said "consumed" before anything was (found while measuring exactly-once).
        (described,) = await admin.describe_topics([topic])
        if described.get("error_code") or not described["partitions"]:
            return True
        partitions = range(len(described["partitions"]))
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        committed = await admin.list_consumer_group_offsets(group)
        return all(committed.get(tp) is not None and committed[tp].offset >= end for tp, end in ends.items() if end)
    finally:
        await consumer.stop()
        await admin.close()


async def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[bytes],
    partition: int | None = None,
    connection: dict[str, Any] | None = None,
) -> int:
    producer = AIOKafkaProducer(linger_ms=5, max_request_size=2_000_000, **_client(bootstrap, connection))
    await producer.start()
    count = 0
    try:
        for record in records:
            await producer.send(topic, record, partition=partition)
            count += 1
        await producer.flush()
    finally:
        await producer.stop()
    return count


async def drain(
    bootstrap: str, topic: str, timeout_s: float = 20, connection: dict[str, Any] | None = None
) -> list[tuple[bytes | None, bytes]]:
    """Every record of a topic from the beginning to its current end (key, value)."""
    return [(m.key, m.value) for m in await drain_messages(bootstrap, topic, timeout_s, connection)]


async def drain_messages(
    bootstrap: str, topic: str, timeout_s: float = 20, connection: dict[str, Any] | None = None
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message of a topic from the beginning to its current end, with its partition, offset and timestamp."""
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, auto_offset_reset="earliest", **_client(bootstrap, connection)
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()  # first contact with a fresh topic
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + timeout_s

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind() and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(messages)
        return out
    finally:
        await consumer.stop()


def drain_sync(
    bootstrap: str, topic: str, connection: dict[str, Any] | None = None
) -> list[tuple[bytes | None, bytes]]:
    return asyncio.run(drain(bootstrap, topic, connection=connection))


def leaked_addresses(blob: bytes, addresses: set[bytes]) -> set[bytes]:
    """Input addresses that appear verbatim in ``blob`` (as a whole dotted quad, not inside a longer number)."""
    return {m.group(0) for m in IPV4.finditer(blob)} & addresses


def without_event_id(value: bytes) -> bytes:
    """An output record without its ``event_id``, the rest as it was: for comparing the stream with the file mode,
    whose ids hash other source positions (a file and line, not a topic, partition and offset)."""
    record = orjson.loads(value)
    record.pop("event_id", None)
    return orjson.dumps(record)
