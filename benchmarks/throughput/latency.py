"""End-to-end latency at a fixed input rate: a paced producer and a probe consumer, in the harness's process.

The pacer sends at ``rate`` records per second (ticks of 2 ms, paced against the phase start so that slow
ticks do not add up), writing its send time into each HTTP record (see :mod:`benchmarks.throughput.inputs`)
and into the message's CreateTime. Its producer lingers 5 ms like the product's, and that wait is part of the
measured latency, as a real shipper's batching would be. The probe reads the system's analytics topic (for the
product with the k-anonymous release on: its release topic, where the ingest writes each analytics record to wait
for its window; a released record leaves an hour or more later by design) and, per
record, takes ``receive time - produce time`` (its own clock and the pacer's are the same machine's), and also
``broker append time - produce time`` (the topic is LogAppendTime), which leaves out the probe's own fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from benchmarks.throughput.inputs import MARKER_FLOOR, Template

TICK_S = 0.002


@dataclass
class Phase:
    label: str
    rate: float
    start: float = 0.0  # wall clock, seconds
    end: float = 0.0
    sent: int = 0
    marked: int = 0


class Pacer:
    def __init__(self, bootstrap: str, topic: str, templates: list[Template], partitions: int) -> None:
        self._topic, self._templates, self._partitions = topic, templates, partitions
        self._next = 0
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=5,
            max_batch_size=256 * 1024,
            max_request_size=2 * 2**20,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def run(self, phase: Phase, duration: float, until: asyncio.Event | None = None) -> Phase:
        """Send at ``phase.rate`` for ``duration`` seconds, or until ``until`` is set."""
        loop = asyncio.get_running_loop()
        templates, count, send, topic = self._templates, len(self._templates), self._producer.send, self._topic
        began = loop.time()
        phase.start = time.time()
        sent = 0
        while True:
            elapsed = loop.time() - began
            if elapsed >= duration or (until is not None and until.is_set()):
                break
            due = int(elapsed * phase.rate) - sent
            for _ in range(due):
                template = templates[self._next % count]
                partition = self._next % self._partitions
                self._next += 1
                stamp_us = int(time.time() * 1_000_000)
                if isinstance(template, tuple):
                    value = template[0] + str(stamp_us).encode() + template[1]
                    phase.marked += 1
                else:
                    value = template
                await send(topic, value, partition=partition, timestamp_ms=stamp_us // 1000)
            sent += max(0, due)
            await asyncio.sleep(TICK_S)
        await self._producer.flush()
        phase.end, phase.sent = time.time(), sent
        return phase


@dataclass
class Probe:
    bootstrap: str
    topic: str
    partitions: int
    produced_us: list[int] = field(default_factory=list)
    received: list[float] = field(default_factory=list)
    appended: list[float] = field(default_factory=list)
    seen: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _consumer: AIOKafkaConsumer | None = None
    # read_committed for a product with PSEUDO_PROCESSING_GUARANTEE=exactly_once: a record counts once its
    # transaction commits, as its consumers see it
    isolation_level: str = "read_uncommitted"

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
            isolation_level=self.isolation_level,
        )
        await self._consumer.start()
        tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)  # a fresh topic: everything on it is this phase's
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        loads = orjson.loads
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            now = time.time()
            for messages in batches.values():
                for message in messages:
                    with contextlib.suppress(Exception):
                        marker = produced_marker(loads(message.value))
                        if marker is not None:
                            self.produced_us.append(marker)
                            self.received.append(now)
                            self.appended.append(message.timestamp / 1000)
            if self.received:
                self.seen.set()

    async def settle(self, quiet_s: float = 2.0, limit_s: float = 30.0) -> None:
        """Wait until no new sample has arrived for ``quiet_s`` (at most ``limit_s``)."""
        deadline = time.monotonic() + limit_s
        count, since = len(self.received), time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            if len(self.received) != count:
                count, since = len(self.received), time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    def phase_stats(self, phase: Phase, skip_s: float) -> dict[str, Any]:
        """Percentiles over the records the pacer sent in the phase, its first ``skip_s`` left out."""
        low, high = (phase.start + skip_s) * 1e6, phase.end * 1e6
        e2e, broker = [], []
        for produced, received, appended in zip(self.produced_us, self.received, self.appended, strict=True):
            if low <= produced <= high:
                e2e.append((received - produced / 1e6) * 1000)
                broker.append((appended - produced / 1e6) * 1000)
        window = max(1e-9, phase.end - phase.start - skip_s)
        expected = phase.marked * window / max(1e-9, phase.end - phase.start)
        return {
            "rate_target": round(phase.rate, 1),
            "rate_achieved": round(phase.sent / max(1e-9, phase.end - phase.start), 1),
            "seconds": round(phase.end - phase.start, 2),
            "samples": len(e2e),
            "received_fraction": round(min(1.0, len(e2e) / expected), 4) if expected else None,
            "p50_ms": _percentile(e2e, 50),
            "p90_ms": _percentile(e2e, 90),
            "p99_ms": _percentile(e2e, 99),
            "max_ms": round(max(e2e), 2) if e2e else None,
            "broker_append_p50_ms": _percentile(broker, 50),
            "broker_append_p99_ms": _percentile(broker, 99),
        }


def produced_marker(message: dict[str, Any]) -> int | None:
    """The produce time (us) an analytics record carries in ``http.bytes``, also inside a release row (``r``)."""
    record = message.get("r", message)  # a release row wraps the analytics record (transforms/release.py)
    value = record.get("http", {}).get("bytes") if isinstance(record, dict) else None
    return value if isinstance(value, int) and value >= MARKER_FLOOR else None


def _percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1], 2)
