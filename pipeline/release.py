"""The stream's release stage: held analytics rows -> k-anonymous analytics records and aggregates, per window.

The ingest writes each analytics record, with its window-lived pseudonyms, to the internal release topic
keyed by its unit (pipeline/routing.py), so that one unit's records meet in one partition whatever
partition, process or host they came from. This service reads that topic with its own consumer group and runs
one :class:`~transforms.release.ReleaseStage` per assigned partition: the pure core the file mode runs.

Durability without a per-record changelog: the release topic *is* the log of the window state (as Kafka
Streams uses a source topic as a table's changelog). The group's committed offset of a partition stays at the
first row of its oldest open window, so a restarted or rebalanced worker rebuilds every open window by reading
the rows again. What a partition has already released is recorded in the compacted progress topic (one record
per partition: the offset read up to and the windows closed), written with the outputs and before the commit,
so re-read rows of closed windows are skipped, never released twice. The cost is one write per record (the
row) instead of two (the row and a changelog entry), and a restart that re-reads up to one oldest window.

Delivery is at-least-once: a crash after a window's outputs are acknowledged and before its progress record is
can release that window again (the same records, byte for byte).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from mode import Service

from config.settings import Settings
from pipeline import kafka_clients
from pipeline.ingest import PollOutputs
from pipeline.metrics import RouteCounters
from pipeline.routing import Output, closed_window_messages, topic_names
from pipeline.transactions import TransactionAborted, Transactions, transactional_id
from transforms.event_id import EventIds
from transforms.release import AggregateParams, ClosedWindow, ReleaseParams, ReleaseRow, ReleaseStage

log = logging.getLogger("pseudonymizer.release")


@dataclass(slots=True)
class _Partition:
    """One assigned partition of the release topic: its windows and where its open rows start."""

    stage: ReleaseStage
    replay_until: int = 0  # rows before this offset were read before a restart: their closed windows are done
    # (window size, start) of each open window -> the offset of its first row: what a restart must re-read
    first_offsets: dict[tuple[int, float], int] = field(default_factory=dict)
    next_offset: int = 0
    last_row_wall: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class Progress:
    """What one partition has released: the progress topic's value (keyed by partition number)."""

    offset: int  # rows before this were processed
    closed_through: float
    aggregates_closed: dict[int, float]

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {"offset": self.offset, "closed": self.closed_through, "aggregates": self.aggregates_closed},
            option=orjson.OPT_NON_STR_KEYS,
        )

    @classmethod
    def from_bytes(cls, value: bytes) -> Progress:
        data = orjson.loads(value)
        return cls(
            int(data["offset"]), float(data["closed"]), {int(k): float(v) for k, v in data["aggregates"].items()}
        )


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, service: ReleaseService) -> None:
        self._service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._service.drop_partitions(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # Nothing to do yet: a partition's state is opened with its first poll (_handle), because aiokafka can
        # hand out a poll before a slow listener returns (found: rows skipped as "not assigned").
        return None


class ReleaseService(Service):
    """Consume the release topic; close windows by event time (or an idle input); write, record, commit."""

    def __init__(
        self,
        settings: Settings,
        release: ReleaseParams,
        aggregates: AggregateParams,
        counters: RouteCounters,
        *,
        event_ids: EventIds | None = None,
        **kwargs: Any,
    ) -> None:
        """``event_ids``: the runtime's (``Runtime.event_ids``), for the aggregate rows' ids; released analytics
        records carry the ids their rows hold whatever it is."""
        super().__init__(**kwargs)
        self._settings = settings
        self._event_ids = event_ids
        self._release = release
        self._aggregate_params = aggregates
        self._counters = counters
        self._partitions: dict[int, _Partition] = {}
        self._progress: dict[int, Progress] = {}
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._transactions: Transactions | None = None  # exactly_once: outputs, progress and offsets together
        self._partition_counts: dict[str, int] = {}
        self._names = topic_names(settings, (Output.ANALYTICS, Output.AGGREGATES))
        self._polls = 0
        self._admin: Any = None  # an AIOKafkaAdminClient, started with the service
        self._offsets: Any = None  # a group-less consumer that reads the input's end offsets
        self._drained_checked_at = 0.0

    @property
    def group_id(self) -> str:
        return f"{self._settings.app_id}-release"

    async def on_start(self) -> None:
        settings = self._settings
        self._producer = kafka_clients.batch_producer(
            settings, self.group_id, transactional_id=transactional_id(settings, "release")
        )
        await self._producer.start()
        if kafka_clients.exactly_once(settings):
            self._transactions = Transactions(self._producer, self.group_id)
        self._admin = kafka_clients.admin(settings, client_id=self.group_id)
        await self._admin.start()
        self._offsets = kafka_clients.consumer(settings, enable_auto_commit=False)
        await self._offsets.start()
        for topic in (*self._names.values(), settings.release_progress_topic):
            self._partition_counts[topic] = len(await self._producer.partitions_for(topic))
        self._consumer = kafka_clients.consumer(
            settings,
            client_id=self.group_id,
            **kafka_clients.group_member(settings, self.group_id),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.max_poll_records,
        )
        self._consumer.subscribe([settings.release_topic], listener=_Rebalance(self))
        await self._consumer.start()
        log.info(
            "release: reading %s as consumer group %s (k=%d)", settings.release_topic, self.group_id, self._release.k
        )

    async def on_stop(self) -> None:
        async with self._lock:
            if self._consumer is not None:
                with contextlib.suppress(Exception):
                    await self._consumer.stop()
            if self._producer is not None:
                await self._producer.stop()
            if self._offsets is not None:
                await self._offsets.stop()
            if self._admin is not None:
                await self._admin.close()

    # --- partitions ----------------------------------------------------------------------------------------
    async def _read_progress(self) -> dict[int, Progress]:
        """The latest progress record per partition, read from the start of the compacted progress topic."""
        topic = self._settings.release_progress_topic
        reader = kafka_clients.consumer(self._settings, enable_auto_commit=False)
        await reader.start()
        found: dict[int, Progress] = {}
        try:
            partitions = [TopicPartition(topic, p) for p in range(self._partition_counts[topic])]
            reader.assign(partitions)
            await reader.seek_to_beginning(*partitions)
            ends = await reader.end_offsets(partitions)
            while [tp for tp in partitions if await reader.position(tp) < ends[tp]]:
                for messages in (await reader.getmany(timeout_ms=500)).values():
                    for message in messages:
                        if message.key is not None and message.value is not None:
                            found[int(message.key)] = Progress.from_bytes(message.value)
        finally:
            await reader.stop()
        return found

    async def _open_partition(self, p: int) -> _Partition:
        """A partition's windows, resumed where the progress topic says its releases stopped."""
        known = (await self._read_progress()).get(p)
        # The partition scopes the aggregate ids: each release partition counts its own rows of a window and cell.
        stage = ReleaseStage(self._release, self._aggregate_params, event_ids=self._event_ids, scope=p)
        partition = _Partition(stage)
        if known is not None:
            partition.stage.restore(known.closed_through, known.aggregates_closed)
            partition.replay_until = known.offset
        log.info("release: took partition %d (resuming at offset %d)", p, partition.replay_until)
        return partition

    async def drop_partitions(self, revoked: list[TopicPartition]) -> None:
        # Open windows are not released here: the next owner rebuilds them from the committed offset.
        async with self._lock:
            for tp in revoked:
                self._partitions.pop(tp.partition, None)

    # --- the loop ------------------------------------------------------------------------------------------
    @Service.task
    async def _consume(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self.should_stop:
            try:
                polled = await consumer.getmany(timeout_ms=200)
            except Exception:
                if self.should_stop:
                    return
                raise
            async with self._lock:
                if self.should_stop:
                    return
                await self._handle(polled)

    async def _handle(self, polled: dict[TopicPartition, list[Any]]) -> None:
        assert self._producer is not None
        assert self._consumer is not None
        self._polls += 1
        outputs = PollOutputs(self._producer, self._partition_counts, self._polls)
        now = time.monotonic()
        read: set[int] = set()
        for tp, messages in polled.items():
            partition = self._partitions.get(tp.partition)
            if partition is None:
                partition = self._partitions[tp.partition] = await self._open_partition(tp.partition)
            for message in messages:
                self._add(partition, message.offset, message.value or b"")
            partition.last_row_wall = now
            read.add(tp.partition)
        idle_after = self._settings.release_idle_close_s
        wall_limit = _wall_clock() - self._release.max_delay_s
        idle = [
            p
            for p, partition in self._partitions.items()
            if p not in read and now - partition.last_row_wall >= idle_after and partition.stage.open_windows()
        ]
        drained = bool(idle) and await self._input_drained(now)
        written: dict[TopicPartition, _Partition] = {}
        for p, partition in self._partitions.items():
            stage = partition.stage
            if p in read:
                # In a thread: generalizing a big window takes seconds of CPU (about 1 s per 1,000 sources,
                # measured), and a blocked event loop would miss the group's heartbeats. The lock holds rows back.
                closed = await asyncio.to_thread(stage.close_due)
            elif p in idle and drained:
                # An idle, fully read input: nothing else can arrive to move event time on, so wall-clock time does
                # (a window closes once it ended max_delay_s ago; a replay of old logs closes everything it holds).
                closed = await asyncio.to_thread(stage.close_due, max(stage.due(), wall_limit))
                if not closed:
                    continue
            else:
                continue
            self._write(outputs, p, partition, closed)
            written[TopicPartition(self._settings.release_topic, p)] = partition
        if not written:
            return
        if self._transactions is not None:
            await self._transact(outputs, {tp: self._commit_offset(partition) for tp, partition in written.items()})
            return
        try:
            await asyncio.gather(*(batch.delivered for batch in await outputs.send_batches()))
            # Only now, with the outputs and the progress record acknowledged, may the offsets move on.
            await self._consumer.commit({tp: self._commit_offset(partition) for tp, partition in written.items()})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A broker outage the producer gave up on (this crashed the whole worker, found by the fault campaign):
            # read the windows again from the committed offsets, on a new producer, and write them again (what did
            # arrive is repeated under the same event ids).
            log.warning("release: outputs not delivered (%s); reading again from committed offsets", type(exc).__name__)
            await self._reread(renew=True)

    async def _transact(self, outputs: PollOutputs, offsets: dict[TopicPartition, int]) -> None:
        """exactly_once: the closed windows' records, the progress record and the offsets commit together. Aborted,
        none of it is visible: every partition is read again from its committed offset and its windows rebuilt."""
        assert self._transactions is not None
        assert self._consumer is not None
        try:
            await self._transactions.run(outputs, offsets)
        except TransactionAborted:
            await self._reread(renew=False)
            self._transactions.recover()
            log.warning("release: a transaction aborted; reading again from the committed offsets")

    async def _reread(self, *, renew: bool) -> None:
        """Seek every partition back to its committed offset and forget its windows (they are rebuilt from the rows
        read again); ``renew``: on a new producer first. Retried while the broker is away."""
        consumer = self._consumer
        assert consumer is not None

        async def reread() -> None:
            if renew:
                self._producer = await kafka_clients.replace_producer(
                    self._producer, lambda: kafka_clients.batch_producer(self._settings, self.group_id)
                )
            await kafka_clients.seek_to_committed(consumer)
            self._partitions.clear()

        await kafka_clients.until_done(reread, stopping=lambda: self.should_stop, what="release: read again")

    async def _input_drained(self, now: float) -> bool:
        """Whether the ingest has read and committed the whole input topic: only then is a quiet release topic
        the end of the input rather than a pause (an ingest stalled for seconds closed windows early and made
        the rest of their rows late: found by the stream/file equality test). Asked at most once a second."""
        if now < self._drained_checked_at + 1.0:
            return False
        self._drained_checked_at = now
        settings = self._settings
        try:
            described = await self._admin.describe_topics([settings.input_topic])
            count = len(described[0]["partitions"])
            partitions = [TopicPartition(settings.input_topic, p) for p in range(count)]
            ends = await self._offsets.end_offsets(partitions)
            committed = await self._admin.list_consumer_group_offsets(f"{settings.app_id}-ingest")
        except Exception:  # a broker hiccup only postpones closing; the next check retries
            log.warning("release: could not read the ingest's progress; idle windows stay open for now")
            return False
        return all(committed.get(tp) is not None and committed[tp].offset >= end for tp, end in ends.items() if end)

    def _add(self, partition: _Partition, offset: int, value: bytes) -> None:
        stage = partition.stage
        partition.next_offset = offset + 1
        self._counters.release_rows_read += 1
        try:
            row = ReleaseRow.from_bytes(value)
        except (ValueError, TypeError, KeyError):
            # Only the ingest writes this topic; a row it cannot read (a version skew) is counted, not fatal.
            self._counters.late(1)
            log.warning("release: skipped an unreadable release row (reason release_row)")
            return
        replayed = offset < partition.replay_until
        if not stage.add(row, count_late=not replayed) and not replayed:
            self._counters.late(1)
        for window in stage.windows_of(row.time):
            partition.first_offsets.setdefault(window, offset)

    def _write(self, outputs: PollOutputs, p: int, partition: _Partition, closed: list[ClosedWindow]) -> None:
        names = self._names
        for window in closed:
            self._counters.closed(window)
            for output, key, value in closed_window_messages(window):
                outputs.add(names[output], key, value)
        stage = partition.stage
        still_open = stage.open_windows()
        partition.first_offsets = {w: o for w, o in partition.first_offsets.items() if w in still_open}
        progress = Progress(max(partition.next_offset, partition.replay_until), *stage.closed_state())
        topic = self._settings.release_progress_topic
        outputs.add(topic, str(p).encode(), progress.to_bytes(), p % self._partition_counts[topic])

    def _commit_offset(self, partition: _Partition) -> int:
        """The first row of the oldest open window (re-read after a restart), or past everything read."""
        if partition.first_offsets:
            return min(partition.first_offsets.values())
        return partition.next_offset


def _wall_clock() -> float:
    return time.time()
