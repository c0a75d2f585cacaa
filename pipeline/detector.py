"""The stream's detector: observation messages -> each subject's ordered detection -> alerts and changelogged state.

The pure core is :class:`transforms.event_time.OrderedDetector` (the file mode runs the same one): each
subject's observations wait in its buffer until the watermark passes them, are applied in event-time order,
and carry their input positions, so a replayed message changes nothing. This module only wires it to faust:

* the ``detect_abuse`` agent reads the observation topic (repartitioned by security pseudonym) in batches;
  its concurrency stays 1 (faust issue #606: with more, offsets can be committed past in-flight records);
  scale out with partitions and processes;
* each partition's watermark is the minimum over the ingest writers' (:class:`WriterWatermarks`);
* a batch's new states and alerts are computed first, then the alerts are sent and acknowledged, then the
  states go to the changelog, and only then to the local store. A failed send is retried until it succeeds
  (the state stays as it was meanwhile); a crash in between replays the batch, whose positions the changelog
  either holds (skipped) or not (applied again, the alert sent again under the same ``event_id``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import faust
import orjson
from faust.types import TP, StoreT

from config.settings import Settings
from pipeline.ingest import BatchIngest, PollOutputs, SentBatch, key_partition, read_observation_batch
from pipeline.metrics import RouteCounters
from pipeline.routing import alert_with_id
from pipeline.transactions import FATAL
from transforms.detect import Detector
from transforms.event_id import EventIds
from transforms.event_time import DueSubjects, OrderedDetector, Tally, WriterWatermarks

log = logging.getLogger("pseudonymizer.detector")

# How long a failed send of alerts or state waits before the next try (doubling up to the maximum).
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0


@contextmanager
def _naming_events(stream: faust.Stream[bytes]) -> Iterator[Callable[[faust.EventT[bytes]], None]]:
    """Lets a batch name each of its events as the current one (the table's store reads it), then puts the
    stream's own back. faust's take_events buffer reads ``stream.current_event`` for the message that
    arrives while a batch is processed; left set to the batch's last event, it took that one in place of
    the new message: one observation message skipped, another processed twice (found by the stream/file
    equality test). So no await may happen inside the block. ``_set_current_event`` is faust's private
    setter (faust-streaming 0.11); tests/pipeline/test_detector.py breaks if it goes away."""
    previous = stream.current_event
    try:
        yield stream._set_current_event
    finally:
        stream._set_current_event(previous)


class StreamDetector:
    """One worker's detector over its observation partitions: the buffers' index, watermarks and the store."""

    def __init__(
        self,
        settings: Settings,
        detector: Detector,
        ingest: BatchIngest,
        counters: RouteCounters,
        store: StoreT,
        changelog: str,
        event_ids: EventIds,
    ) -> None:
        self._settings = settings
        self._event_ids = event_ids
        self._ordered = OrderedDetector(
            detector,
            max_buffered=settings.detector_max_buffered,
            replay_horizon_s=settings.detector_replay_horizon_s,
        )
        self._ingest = ingest
        self._counters = counters
        self._store = store
        self._changelog = changelog
        self._abuse_topic = settings.abuse_topic
        self._partitions = settings.partitions
        self._watermarks: dict[int, WriterWatermarks] = {}
        self._due: dict[int, DueSubjects] = {}
        self._owners: dict[int, faust.EventT[bytes]] = {}  # the latest event of each partition (names its store)
        self._next_sweep = 0.0  # the first batch indexes what the store already buffers

    def _watermark(self, partition: int) -> float | None:
        clock = self._watermarks.get(partition)
        return clock.current() if clock is not None else None

    async def handle(self, stream: faust.Stream[bytes], batch: Sequence[faust.EventT[bytes]]) -> None:
        tally = Tally()
        changes: dict[bytes, tuple[int, dict[str, Any] | None]] = {}
        alerts: list[tuple[bytes, dict[str, Any]]] = []
        with _naming_events(stream) as name:  # no await inside: see _naming_events
            for event in batch:
                # Every subject in a message hashes to the message's partition (observation_batches), as does its
                # changelog record; RocksDB keeps one database per partition and reads "the current event".
                name(event)
                partition = event.message.partition
                self._owners[partition] = event
                self._take(event, partition, changes, alerts, tally)
            for partition in {event.message.partition for event in batch}:
                self._release(name, partition, changes, alerts, tally)
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self._settings.detector_expire_interval_s
            with _naming_events(stream) as name:
                self._sweep(name, changes, alerts, tally)
        self._count(tally)
        await self._commit(stream, changes, alerts)

    def _load(self, key: bytes, changes: dict[bytes, tuple[int, dict[str, Any] | None]]) -> dict[str, Any] | None:
        if key in changes:
            return changes[key][1]
        stored = self._store.get(key)
        return orjson.loads(stored) if stored else None

    def _take(
        self,
        event: faust.EventT[bytes],
        partition: int,
        changes: dict[bytes, tuple[int, dict[str, Any] | None]],
        alerts: list[tuple[bytes, dict[str, Any]]],
        tally: Tally,
    ) -> None:
        try:
            message = read_observation_batch(event.message.value or b"{}")
        except (ValueError, TypeError):
            # Only this app writes the topic; a record it cannot read (a version skew) is counted and skipped
            # rather than stopping detection for every subject.
            self._counters.undecodable_observations += 1
            log.warning("detector: skipped an undecodable observation batch (reason observation_batch)")
            return
        if message.writer is not None:
            clock = self._watermarks.setdefault(partition, WriterWatermarks(self._settings.watermark_writer_timeout_s))
            clock.heard(message.writer, message.watermark, event.message.timestamp)  # faust's: in seconds
        due = self._due.setdefault(partition, DueSubjects())
        for subject, entries in message.groups:
            key = subject.encode()
            state = self._ordered.accept(self._load(key, changes), entries, tally)
            changes[key] = (partition, state)
            due.push(key, OrderedDetector.earliest(state))
            if message.writer is None:  # a message from before watermarks: apply it as it comes
                self._release_one(key, partition, float("inf"), changes, alerts, tally)

    def _release(
        self,
        name: Callable[[faust.EventT[bytes]], None],
        partition: int,
        changes: dict[bytes, tuple[int, dict[str, Any] | None]],
        alerts: list[tuple[bytes, dict[str, Any]]],
        tally: Tally,
    ) -> None:
        watermark = self._watermark(partition)
        owner = self._owners.get(partition)
        if watermark is None or owner is None:
            return
        name(owner)
        for key in self._due.setdefault(partition, DueSubjects()).due(watermark):
            self._release_one(key, partition, watermark, changes, alerts, tally)

    def _release_one(
        self,
        key: bytes,
        partition: int,
        watermark: float,
        changes: dict[bytes, tuple[int, dict[str, Any] | None]],
        alerts: list[tuple[bytes, dict[str, Any]]],
        tally: Tally,
    ) -> None:
        state = self._load(key, changes)
        if state is None:
            return
        state, fired = self._ordered.release(key.decode(), state, watermark, tally)
        changes[key] = (partition, state)
        alerts.extend((key, alert) for alert in fired)
        self._due.setdefault(partition, DueSubjects()).push(key, OrderedDetector.earliest(state))

    def _sweep(
        self,
        name: Callable[[faust.EventT[bytes]], None],
        changes: dict[bytes, tuple[int, dict[str, Any] | None]],
        alerts: list[tuple[bytes, dict[str, Any]]],
        tally: Tally,
    ) -> None:
        """Index what the store buffers (after a restart or a rebalance), release what is due and drop drained
        state, so the table holds only subjects active in event time. It runs inside the agent (not a timer)
        because the store needs an event of the key's partition to write to the right database."""
        for key, stored in list(self._store.items()):
            partition = key_partition(key, self._partitions)
            owner = self._owners.get(partition)
            if owner is None or key in changes:
                continue
            name(owner)
            state = loaded = orjson.loads(stored)
            watermark = self._watermark(partition)
            if watermark is not None:
                state, fired = self._ordered.release(key.decode(), state, watermark, tally)
                alerts.extend((key, alert) for alert in fired)
                if state is not None:
                    state = self._ordered.expire(state, watermark)
                if fired or state != loaded:  # an unchanged state is not written again
                    changes[key] = (partition, state)
            self._due.setdefault(partition, DueSubjects()).push(key, OrderedDetector.earliest(state))

    def _count(self, tally: Tally) -> None:
        counters = self._counters
        counters.alerts += tally.alerts
        counters.detector_failures += tally.failed
        counters.detector_replayed += tally.replayed
        counters.detector_late.update({reason.value: n for reason, n in tally.late.items() if n})

    async def _commit(
        self,
        stream: faust.Stream[bytes],
        changes: dict[bytes, tuple[int, dict[str, Any] | None]],
        alerts: list[tuple[bytes, dict[str, Any]]],
    ) -> None:
        """Alerts first, then the changelog, then the store: no state is kept whose alerts were not delivered.

        exactly_once: the alerts and the changelog records commit in one transaction (pipeline/transactions.py), and
        the store is written after it commits."""
        dumps = orjson.dumps
        topic, event_ids = self._abuse_topic, self._event_ids
        together = self._ingest.detector_transactions is not None

        def add_alerts(outputs: PollOutputs) -> None:
            for key, alert in alerts:
                outputs.add(topic, key, dumps(alert_with_id(alert, event_ids)))

        if alerts and not together:
            await self._send(add_alerts)
        values = {
            key: (partition, orjson.dumps(state) if state is not None else None)
            for key, (partition, state) in changes.items()
        }
        if not values and not (alerts and together):
            return
        changelog = self._changelog

        def add_states(outputs: PollOutputs) -> None:
            if together:
                add_alerts(outputs)
            for key, (partition, value) in values.items():
                outputs.add(changelog, key, value, partition)

        sent = await self._send(add_states)
        store = self._store
        with _naming_events(stream) as name:
            for key, (partition, value) in values.items():
                name(self._owners[partition])
                try:
                    if value is None:
                        if store.get(key) is not None:
                            del store[key]
                    else:
                        store[key] = value
                except Exception as exc:
                    # A partition revoked while the sends were awaited: its database may be closed. The changelog
                    # already holds the state, and its new owner restores it from there; this worker goes on.
                    log.warning("detector: store write skipped (%s); the changelog holds the state", type(exc).__name__)
        for written in sent:
            if written.topic != changelog:  # the alerts of the same transaction
                continue
            # As the table's own send callback does: a restart replays only the changelog after this.
            store.set_persisted_offset(TP(changelog, written.partition), written.last_offset)

    async def _send(self, add: Callable[[PollOutputs], None]) -> list[SentBatch]:
        """Send records and wait for the broker's acknowledgement, retrying until it comes."""
        delay = RETRY_FIRST_S
        while True:
            outputs = self._ingest.outputs(detector=True)
            add(outputs)
            transactions = self._ingest.detector_transactions
            try:
                if transactions is not None:  # exactly_once: committed as one transaction, or aborted
                    return await transactions.run(outputs)
                sent = await outputs.send_batches()
                await asyncio.gather(*(written.delivered for written in sent))
                return sent
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker's answer; stopping the worker cancels the wait instead
                if transactions is not None and isinstance(exc, FATAL):
                    raise  # fenced: another process has this worker's transactional id
                self._counters.detector_send_retries += 1
                # No data in the message: the exception's type names the broker's answer.
                log.warning("detector: sending alerts or state failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                if transactions is not None:
                    transactions.recover()  # this batch is the one retried: nothing after it was sent
                else:
                    # Retrying on the same idempotent producer after an outage kept failing with
                    # OutOfOrderSequenceNumber (found by the fault campaign: two alerts never sent).
                    try:
                        await self._ingest.renew_detector_producer()
                    except Exception as renew:  # the broker still away: the next round tries again
                        log.warning("detector: cannot renew its producer yet (%s)", type(renew).__name__)


def install(
    app: faust.App,
    settings: Settings,
    detector: Detector,
    ingest: BatchIngest,
    counters: RouteCounters,
    observations: faust.TopicT,
    event_ids: EventIds,
) -> None:
    """Add the detector's table and agent to ``app``."""
    # Per-subject state, changelogged to "<app>-detector-state-changelog": a restarted or rebalanced worker
    # recovers it from there. Values are OrderedDetector's JSON state (pseudonyms only). bytes key/value types
    # make faust use the "raw" codec for the table and its changelog topic, which the agent writes itself
    # (StreamDetector._commit) to each key's partition; use_partitioner makes the store look a key up in every
    # partition's database rather than only the current event's.
    states = app.Table(
        "detector-state",
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        use_partitioner=True,
    )

    @app.agent(observations, concurrency=1)
    async def detect_abuse(stream_t: faust.StreamT[bytes]) -> None:
        stream = cast(faust.Stream[bytes], stream_t)
        # The table's store (memory or RocksDB), written directly rather than through faust's per-record
        # changelog path: a future, a buffer entry and a publish each, and past 100 queued records faust
        # paused every stream (the detector trailed by 1.35 s; README "Performance").
        run = StreamDetector(
            settings,
            detector,
            ingest,
            counters,
            cast(StoreT, states.data),
            states.changelog_topic.get_topic_name(),
            event_ids,
        )
        async for batch in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            await ingest.ready.wait()  # alerts and changelog records go out through its producer
            await run.handle(stream, batch)
