"""The worker's hot path: raw records are read, processed and written one consumer poll at a time.

faust hands an agent one ``Event`` per record, built through its conductor, stream queues and per-record
acks, and its ``Topic.send`` wraps every output in futures and buffers. Measured on the throughput
harness, that machinery cost about two thirds of the worker's CPU per record (175 CPU s per million
events against 58 for the processing and detection themselves; README "Performance"). The raw topic is
therefore read here with aiokafka's ``getmany``: a whole poll is processed, its outputs are appended to
one record batch per output partition, and the poll's offsets are committed once the broker has
acknowledged every one of them, which is at-least-once with per-poll rather than per-record overhead.

faust still runs the app: lifecycle, the detector agent and its changelogged table, timers, topic
declarations. This service is one of its services, started after table recovery, stopped before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.partitioner import murmur2
from mode import Service

from config.settings import Settings
from pipeline import kafka_clients
from pipeline.metrics import RouteCounters
from pipeline.routing import Output, Source, observation_batch, route_record, topic_names
from pipeline.transactions import TransactionAborted, Transactions, transactional_id
from transforms.event_id import EventIds
from transforms.event_time import Entry, PartitionClocks
from transforms.model import OBSERVATION_ROW_LENGTH
from transforms.process import RecordProcessor
from transforms.quarantine import QuarantineSealer

log = logging.getLogger("pseudonymizer.ingest")

# A partition fetch of 4 MiB holds a full poll of typical log records (about 500 bytes each).
MAX_PARTITION_FETCH_BYTES = 4 * 2**20
# Polls processed ahead of the broker's acknowledgement of earlier ones (bounds replay after a crash).
MAX_POLLS_IN_FLIGHT = 2


@functools.lru_cache(maxsize=1 << 16)
def _key_hash(key: bytes) -> int:
    # aiokafka's murmur2 is pure Python (about 10 us a call, measured: a tenth of the worker's CPU per record
    # before this cache); keys are security pseudonyms that repeat from poll to poll, never raw data.
    return murmur2(key) & 0x7FFFFFFF


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as in aiokafka and the Java client) gives a key."""
    return _key_hash(key) % partitions


def default_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's ``DefaultPartitioner`` with the cached hash: the same partition for every key."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[_key_hash(key) % len(all_partitions)]


def positioned_row(partition: int, offset: int, row: bytes) -> bytes:
    """An observation row with the input position it came from: ``[partition, offset, row]``.

    The detector keeps, per subject, the highest input offset it has taken in for each input partition
    (transforms/event_time.py): a replayed poll carries the same positions and is skipped.
    """
    return b"[%d,%d,%s]" % (partition, offset, row)


def observation_batches(
    rows: Iterable[tuple[str, bytes]], partitions: int, writer: str, watermark: float | None
) -> Iterator[tuple[int, bytes]]:
    """One message per observation partition, every partition, with the writer's watermark.

    ``{"w": writer, "wm": watermark, "s": {subject: [positioned row, ...]}}``, subjects in first-seen order.
    ``rows`` are (subject, :func:`positioned_row`) pairs. Each subject goes to the partition its pseudonym
    hashes to, so its detector state lives in one place (the detector table's changelog uses the same
    partitioner). One message per partition per poll rather than one per subject or per event: the detector
    then pays faust's per-event cost a few times per poll, and reads, updates and changelogs each active
    subject once. Every partition gets one, with or without rows: the watermark is how the detector learns
    that event time has moved on there.
    """
    by_partition: dict[int, dict[str, list[bytes]]] = {partition: {} for partition in range(partitions)}
    for subject, row in rows:
        group = by_partition[key_partition(subject.encode(), partitions)]
        group.setdefault(subject, []).append(row)
    head = b'{"w":' + orjson.dumps(writer) + b',"wm":' + orjson.dumps(watermark) + b',"s":'
    for partition, groups in by_partition.items():
        yield partition, head + observation_batch(groups) + b"}"


@dataclass(frozen=True, slots=True)
class ObservationBatch:
    """One observation message: who wrote it, the event time its writer has passed, and the rows per subject."""

    writer: str | None  # None: a message from before watermarks (no position either)
    watermark: float | None
    groups: list[tuple[str, list[Entry]]]


def read_observation_batch(value: bytes) -> ObservationBatch:
    """One :func:`observation_batches` message; ValueError if malformed."""
    try:
        message = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError("observation batch is not JSON") from exc
    if not isinstance(message, dict):
        raise ValueError("observation batch is not an object")
    if "s" not in message:  # written before watermarks: {subject: [row, ...]}
        return ObservationBatch(None, None, [(subject, _unpositioned(rows)) for subject, rows in message.items()])
    writer, watermark, groups = message.get("w"), message.get("wm"), message["s"]
    if not isinstance(writer, str) or not (watermark is None or type(watermark) in (int, float)):
        raise ValueError("observation batch with a wrong writer or watermark")
    if not isinstance(groups, dict):
        raise ValueError("observation batch groups are not an object")
    entries: list[tuple[str, list[Entry]]] = []
    for subject, rows in groups.items():
        if not isinstance(rows, list):
            raise ValueError("observation batch group is not a list")
        for row in rows:
            if not (isinstance(row, list) and len(row) == 3 and type(row[0]) is int and type(row[1]) is int):
                raise ValueError("observation row without its input position")
            _check_row(row[2])
        entries.append((subject, [(row[0], row[1], row[2]) for row in rows]))
    return ObservationBatch(writer, watermark, entries)


def _unpositioned(rows: object) -> list[Entry]:
    if not isinstance(rows, list):
        raise ValueError("observation batch group is not a list")
    for row in rows:
        _check_row(row)
    return [(None, None, row) for row in rows]


def _check_row(row: object) -> None:
    # The shape only (a version skew fails the whole message); values are checked where they are used.
    if not isinstance(row, list) or len(row) not in (OBSERVATION_ROW_LENGTH, OBSERVATION_ROW_LENGTH - 1):
        raise ValueError("observation row of the wrong shape")


class PollOutputs:
    """A poll's outputs as aiokafka record batches, one open batch per (topic, partition).

    Appending to a ``BatchBuilder`` costs about a microsecond per record; ``producer.send`` costs a
    coroutine, a future and a partitioner call each. Unkeyed records of a poll all go to one partition
    per topic, rotating from poll to poll (Kafka's sticky partitioner does the same), which keeps
    batches large; keyed records go where the default partitioner would put them.
    """

    def __init__(self, producer: AIOKafkaProducer, partition_counts: Mapping[str, int], poll_number: int) -> None:
        self._producer = producer
        self._counts = partition_counts
        self._poll_number = poll_number
        self._open: dict[tuple[str, int], Any] = {}
        self._full: list[tuple[str, int, Any]] = []

    def add(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        """Append a record (``value`` None: a tombstone); ``partition`` None: the default partitioner's choice."""
        if partition is None:
            count = self._counts[topic]
            partition = key_partition(key, count) if key is not None else self._poll_number % count
        slot = (topic, partition)
        builder = self._open.get(slot)
        if builder is None:
            builder = self._open[slot] = self._producer.create_batch()
        if builder.append(key=key, value=value, timestamp=None) is None:
            # Full: queue it and start another (a batch always accepts its first record, whatever its size).
            self._full.append((topic, partition, builder))
            builder = self._open[slot] = self._producer.create_batch()
            builder.append(key=key, value=value, timestamp=None)

    async def send_batches(self) -> list[SentBatch]:
        """Hand every batch to the producer; returns where each went, its record count and its delivery."""
        batches = self._full + [(topic, partition, builder) for (topic, partition), builder in self._open.items()]
        self._full, self._open = [], {}
        send = self._producer.send_batch
        return [
            SentBatch(topic, partition, builder.record_count(), await send(builder, topic, partition=partition))
            for topic, partition, builder in batches
        ]


@dataclass(frozen=True, slots=True)
class SentBatch:
    topic: str
    partition: int
    records: int
    delivered: asyncio.Future[Any]  # resolves to aiokafka's RecordMetadata of the batch (its first offset)

    @property
    def last_offset(self) -> int:
        """The offset of the batch's last record, once delivered."""
        return int(self.delivered.result().offset) + self.records - 1


class _SettleBeforeRevoke(ConsumerRebalanceListener):
    """A rebalance waits for the polls in flight, so their offsets are committed by the worker that did them,
    and the event-time clocks follow the assignment."""

    def __init__(self, ingest: BatchIngest) -> None:
        self._ingest = ingest

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        await self._ingest.settle_all()
        self._ingest.forget(revoked)

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        self._ingest.clocks.assign((tp.partition for tp in assigned), time.monotonic())


class BatchIngest(Service):
    """Consume the raw topic in polls; process, route, produce and commit each poll as a unit."""

    def __init__(
        self,
        settings: Settings,
        processor: RecordProcessor,
        sealer: QuarantineSealer,
        counters: RouteCounters,
        *,
        detecting: bool,
        releasing: bool = False,
        event_ids: EventIds | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self._event_ids = event_ids
        self._process = processor
        self._sealer = sealer
        self._counters = counters
        self._detecting = detecting
        written = [Output.ANALYTICS, Output.ABUSE, Output.QUARANTINE, Output.OBSERVATIONS]
        if releasing:  # analytics records wait for the k-anonymous release (pipeline/release.py)
            written.append(Output.RELEASE)
        self._names = topic_names(settings, written)
        # Polls whose outputs are sent but not yet acknowledged, oldest first, with the offsets to commit
        # once they are. Processing the next poll while the broker acknowledges the last one keeps the CPU
        # busy (commit order stays poll order, so a commit never passes an unacknowledged output).
        self._pending: deque[tuple[asyncio.Future[Any], dict[Any, int]]] = deque()
        self._lock = asyncio.Lock()
        self.ready = asyncio.Event()  # set once the producer is started and the topics are known
        self._partition_counts: dict[str, int] = {}
        self._polls = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._detector_producer: AIOKafkaProducer | None = None
        # exactly_once (pipeline/transactions.py): each poll's outputs and offsets commit as one transaction; the
        # detector's alerts and state likewise, on its producer. None with at_least_once.
        self._transactions: Transactions | None = None
        self.detector_transactions: Transactions | None = None
        # Event time per input partition (transforms/event_time.py): the watermark every observation message
        # carries, and which partitions to pause because they run ahead of the slowest.
        self.clocks = PartitionClocks(
            disorder_s=settings.event_time_disorder_s,
            max_ahead_s=settings.align_max_ahead_s,
            idle_s=settings.partition_idle_s,
        )
        # This process's name on the observation topic: the detector takes the minimum over its writers.
        self.writer = f"{settings.app_id}-{uuid.uuid4().hex[:12]}"
        self._next_offsets: dict[Any, int] = {}
        self._watermark_sent_at = 0.0
        self._watermark_sent: float | None = None

    @property
    def _client_id(self) -> str:
        return f"{self._settings.app_id}-ingest"

    async def renew_detector_producer(self) -> None:
        """A fresh producer for the detector after a failed send (at_least_once; see _rewind)."""
        settings = self._settings
        self._detector_producer = await kafka_clients.replace_producer(
            self._detector_producer, lambda: kafka_clients.batch_producer(settings, f"{settings.app_id}-detector")
        )

    @property
    def group_id(self) -> str:
        # Its own group: faust's consumer group uses faust's own assignor protocol for the detector's topics.
        return f"{self._settings.app_id}-ingest"

    async def on_start(self) -> None:
        settings = self._settings

        self._producer = kafka_clients.batch_producer(
            settings, self._client_id, transactional_id=transactional_id(settings, "ingest")
        )
        # The detector's own: an aiokafka producer keeps one request in flight per broker, so sharing it
        # queued the detector's writes behind the ingest's.
        self._detector_producer = (
            kafka_clients.batch_producer(
                settings, f"{settings.app_id}-detector", transactional_id=transactional_id(settings, "detector")
            )
            if self._detecting
            else None
        )
        self._consumer = kafka_clients.consumer(
            settings,
            client_id=f"{settings.app_id}-ingest",
            **kafka_clients.group_member(settings, self.group_id),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.max_poll_records,
            max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        )
        await self._producer.start()
        if self._detector_producer is not None:
            await self._detector_producer.start()
        if kafka_clients.exactly_once(settings):
            self._transactions = Transactions(self._producer, self.group_id)
            if self._detector_producer is not None:
                self.detector_transactions = Transactions(self._detector_producer)
        for output, topic in self._names.items():
            if output is Output.OBSERVATIONS and not self._detecting:
                continue
            self._partition_counts[topic] = len(await self._producer.partitions_for(topic))
        observed = self._partition_counts.get(settings.observation_topic, settings.partitions)
        if observed != settings.partitions:
            # The detector table has settings.partitions partitions; subjects must land where their state is.
            raise RuntimeError(
                f"topic {settings.observation_topic} has {observed} partitions, expected {settings.partitions} "
                "(PSEUDO_PARTITIONS): delete it or set PSEUDO_PARTITIONS to match"
            )
        self._consumer.subscribe([settings.input_topic], listener=_SettleBeforeRevoke(self))
        await self._consumer.start()
        self.ready.set()
        log.info("ingest: reading %s as consumer group %s", settings.input_topic, self.group_id)

    def outputs(self, *, detector: bool = False) -> PollOutputs:
        """An empty set of record batches on this service's producer (``detector``: the detector agent's)."""
        producer = self._detector_producer if detector else self._producer
        assert producer is not None
        self._polls += 1
        return PollOutputs(producer, self._partition_counts, self._polls)

    async def on_stop(self) -> None:
        # Let the polls in flight finish and commit, then leave the group and flush the producer.
        await self.settle_all()
        async with self._lock:
            if self._consumer is not None:
                with contextlib.suppress(Exception):
                    await self._consumer.stop()
            if self._producer is not None:
                await self._producer.stop()
            if self._detector_producer is not None:
                await self._detector_producer.stop()

    async def settle_all(self) -> None:
        async with self._lock:
            await self._settle(keep=0)

    async def _settle(self, keep: int) -> None:
        """Wait for the oldest polls' acknowledgements and commit their offsets until ``keep`` are in flight."""
        assert self._consumer is not None
        while len(self._pending) > keep:
            delivered, offsets = self._pending[0]
            try:
                await delivered
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an aborted transaction, or a send the producer gave up on (a long outage)
                if self._transactions is not None and not isinstance(exc, TransactionAborted):
                    raise
                await self._rewind(exc)
                return
            self._pending.popleft()
            if offsets:  # a watermark alone commits nothing
                try:
                    await self._consumer.commit(offsets)
                except Exception as exc:
                    # Not committed (a rebalance, the coordinator away): the next commit covers these offsets, or
                    # the next owner reads the poll again; at-least-once either way. The worker goes on.
                    log.warning("ingest: commit failed (%s); a later commit covers it", type(exc).__name__)

    async def _rewind(self, cause: Exception) -> None:
        """A poll's outputs did not all reach the broker (exactly_once: its transaction aborted). It and the polls
        after it are read again from the committed offsets (with exactly_once, nothing of them is visible to
        read_committed readers; with at_least_once, what did arrive is repeated, under the same event ids). With
        at_least_once the producer is replaced: an idempotent producer that lost track of its sequence numbers
        (OutOfOrderSequenceNumber after a broker outage) does not recover by retrying."""
        assert self._consumer is not None
        pending, self._pending = list(self._pending), deque()
        for delivered, _ in pending:
            with contextlib.suppress(Exception):
                await delivered
        log.warning(
            "ingest: outputs not delivered (%s); reading again from the committed offsets", type(cause).__name__
        )
        consumer = self._consumer

        async def rewind() -> None:
            if self._transactions is None:
                self._producer = await kafka_clients.replace_producer(
                    self._producer, lambda: kafka_clients.batch_producer(self._settings, self._client_id)
                )
            for tp in await kafka_clients.seek_to_committed(consumer):
                self._next_offsets.pop(tp, None)

        await kafka_clients.until_done(rewind, stopping=lambda: self.should_stop, what="ingest: rewind")
        if self._transactions is not None:
            self._transactions.recover()

    async def _deliver(
        self, outputs: PollOutputs, offsets: dict[Any, int]
    ) -> tuple[asyncio.Future[Any], dict[Any, int]]:
        """Hand a poll's outputs over: (what to wait for, the offsets to commit after it). at_least_once: the batches'
        acknowledgements, then a commit (_settle); exactly_once: a transaction that carries the offsets itself."""
        if self._transactions is not None:
            return self._transactions.submit(outputs, offsets), {}
        return asyncio.gather(*(batch.delivered for batch in await outputs.send_batches())), offsets

    @Service.task
    async def _consume(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self.should_stop:
            try:
                # With a poll in flight, look for more without blocking; idle, wait up to 200 ms.
                polled = await consumer.getmany(timeout_ms=0 if self._pending else 200)
            except Exception:
                if self.should_stop:  # the consumer was stopped under us: normal shutdown
                    return
                raise
            async with self._lock:
                if self.should_stop:
                    return  # not committed: the next owner reads this poll again
                await self._align(consumer)
                if polled:
                    self._pending.append(await self._handle(polled))
                    # Processing a poll never yields; let the producer's sender put this poll's batches on
                    # the wire before the next one starts (they waited for it: p99 100 ms at half load).
                    await asyncio.sleep(0)
                elif self._detecting and self._watermark_due():
                    self._pending.append(await self._send_watermark())
                # Keep at most MAX_POLLS_IN_FLIGHT unacknowledged; with nothing new, settle the oldest (and so
                # all of them, poll by poll, while the input stays idle).
                await self._settle(keep=MAX_POLLS_IN_FLIGHT if polled else max(0, len(self._pending) - 1))

    def forget(self, revoked: Iterable[Any]) -> None:
        """Partitions gone to another worker: their clocks and read positions go too."""
        revoked = list(revoked)
        self.clocks.revoke(tp.partition for tp in revoked)
        for tp in revoked:
            self._next_offsets.pop(tp, None)

    def _watermark_due(self) -> bool:
        """Idle input: send the watermark when it moved (idle partitions stop holding it back, so the detector
        releases what it buffers), and at least every second anyway: a writer that stays silent for
        watermark_writer_timeout_s (5 s or more) is taken for gone."""
        since = time.monotonic() - self._watermark_sent_at
        if since >= min(1.0, self._settings.watermark_writer_timeout_s / 2):
            return True
        return since >= 0.2 and self.clocks.watermark(time.monotonic()) != self._watermark_sent

    async def _align(self, consumer: AIOKafkaConsumer) -> None:
        """Update which partitions are caught up, then pause those running ahead in event time, resume the rest.

        Pausing is Flink's watermark alignment: a partition read far ahead of the slowest one would send the
        detector observations it must hold until the others catch up. The slowest partition is never paused,
        so reading always progresses.
        """
        clocks, now = self.clocks, time.monotonic()
        assigned = consumer.assignment()
        for tp in assigned:
            highwater = consumer.highwater(tp)
            position = self._next_offsets.get(tp)
            if position is None and highwater is not None:
                position = await consumer.position(tp)  # known once fetched: returns at once
            at_end = None if highwater is None or position is None else position >= highwater
            clocks.position(tp.partition, at_end=at_end, now=now)
        if self._settings.align_max_ahead_s <= 0:
            return
        ahead = clocks.ahead(now)
        paused = consumer.paused()
        pause = [tp for tp in assigned if tp.partition in ahead and tp not in paused]
        resume = [tp for tp in paused if tp.partition not in ahead]
        if pause:
            consumer.pause(*pause)
        if resume:
            consumer.resume(*resume)

    async def _send_watermark(self) -> tuple[asyncio.Future[Any], dict[Any, int]]:
        outputs = self.outputs()
        self._add_observations(outputs, [])
        return await self._deliver(outputs, {})

    def _add_observations(self, outputs: PollOutputs, rows: list[tuple[str, bytes]]) -> None:
        topic = self._names[Output.OBSERVATIONS]
        watermark = self.clocks.watermark(time.monotonic())
        for partition, value in observation_batches(rows, self._partition_counts[topic], self.writer, watermark):
            outputs.add(topic, None, value, partition)
        self._watermark_sent_at, self._watermark_sent = time.monotonic(), watermark

    async def _handle(self, polled: Mapping[Any, list[Any]]) -> tuple[asyncio.Future[Any], dict[Any, int]]:
        """Process one poll and hand its outputs to the producer; (their acknowledgement, offsets to commit)."""
        outputs = self.outputs()
        names, process, sealer, count = self._names, self._process, self._sealer, self._counters.count
        fromtimestamp, now = datetime.fromtimestamp, datetime.now
        observation_rows: list[tuple[str, bytes]] = []
        offsets = {}
        detecting, isfinite, event_ids = self._detecting, math.isfinite, self._event_ids
        for tp, messages in polled.items():
            partition = tp.partition
            latest: float | None = None  # of records' own times
            latest_any: float | None = None  # ingest times of records without a plausible one included
            for message in messages:
                payload = message.value or b""
                ingest = fromtimestamp(message.timestamp / 1000, UTC) if message.timestamp > 0 else now(UTC)
                # Every step that reads the record's data is inside route_record: whatever this record does,
                # it ends as outputs or a quarantine envelope, and the poll goes on.
                source = Source(tp.topic, partition, message.offset, ingest)
                routed = route_record(process, payload, source, sealer, event_ids)
                count(routed.outcome)
                for output, key, value in routed.messages:
                    outputs.add(names[output], key, value)
                for observation in routed.outcome.observations:
                    if isfinite(observation.time):
                        if latest_any is None or observation.time > latest_any:
                            latest_any = observation.time
                        if observation.timed and (latest is None or observation.time > latest):
                            latest = observation.time
                if detecting:
                    offset = message.offset
                    observation_rows.extend(
                        (subject, positioned_row(partition, offset, row)) for subject, row in routed.observation_rows
                    )
            offsets[tp] = self._next_offsets[tp] = messages[-1].offset + 1
            self.clocks.read(partition, latest, latest_any)
        if detecting:
            self._add_observations(outputs, observation_rows)
        # Offsets are committed only once the broker holds every output of the poll (see _settle): a crash
        # in between replays the poll (at-least-once), it never skips it. exactly_once: in the poll's transaction.
        return await self._deliver(outputs, offsets)
