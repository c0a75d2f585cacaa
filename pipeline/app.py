"""The faust app: wires the batch ingest (raw -> processor -> routed topics) and the stateful detector.

The app only wires: decoding, routing, minimization and detection all happen in ``transforms``.
- ``BatchIngest`` (pipeline/ingest.py), a service of the app, reads the raw topic poll by poll, runs the
  shared processor, writes analytics, abuse events, quarantine envelopes and the pseudonymized
  observations, and commits a poll once all of its outputs are acknowledged: at-least-once.
- The ``detect_abuse`` agent reads the observations, repartitioned by security pseudonym, and keeps each
  subject's leaky buckets in a changelogged faust table. Its concurrency stays 1 (faust issue #606: with
  more, offsets can be committed past in-flight records); scale out with partitions and processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

import faust
import orjson
from faust.types import TP, StoreT

from pipeline import kafka_clients
from pipeline.ingest import BatchIngest, PollOutputs, default_partitioner, key_partition, read_observation_batch
from pipeline.metrics import MetricsEndpoint, RouteCounters
from pipeline.release import ReleaseService
from pipeline.runtime import Runtime

log = logging.getLogger("pseudonymizer")


@contextmanager
def _naming_events(stream: faust.Stream[bytes]) -> Iterator[Callable[[faust.EventT[bytes]], None]]:
    """Lets a batch name each of its events as the current one (the table's store reads it), then puts the
    stream's own back. faust's take_events buffer reads ``stream.current_event`` for the message that
    arrives while a batch is processed; left set to the batch's last event, it took that one in place of
    the new message: one observation message skipped, another processed twice (found by the stream/file
    equality test). So no await may happen inside the block."""
    previous = stream.current_event
    try:
        yield stream._set_current_event
    finally:
        stream._set_current_event(previous)


def create_app(runtime: Runtime, counters: RouteCounters | None = None) -> faust.App:
    settings = runtime.settings
    counters = counters or RouteCounters()
    member = kafka_clients.group_member(settings, settings.app_id)
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        store=settings.store,
        datadir=str(settings.data_dir),
        # The web server's default views serve table contents over HTTP: never expose them.
        web_enabled=False,
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        producer_compression_type=settings.compression_type,
        producer_linger_ms=settings.producer_linger_ms,
        producer_max_batch_size=settings.producer_batch_bytes,
        # The detector table's changelog is keyed by subject: same partitions as aiokafka's, hash cached.
        producer_partitioner=default_partitioner,
        broker_max_poll_records=settings.max_poll_records,
        table_standby_replicas=settings.table_standby_replicas,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        # Waiting for empty streams on rebalance/stop stalled batched agents for a second or more (p50 latency
        # 1.1 s instead of 32 ms, measured with detection off); unacked events are simply re-read after a
        # rebalance, which at-least-once delivery allows.
        stream_wait_empty=False,
        # faust's group joins like the worker's other groups: session timeout, heartbeats, static membership.
        broker_session_timeout=member["session_timeout_ms"] / 1000,
        broker_heartbeat_interval=member["heartbeat_interval_ms"] / 1000,
        consumer_group_instance_id=member.get("group_instance_id"),
        # TLS and SASL from the one connection model (pipeline/kafka_clients.py); none for PLAINTEXT.
        **kafka_clients.faust_options(settings.kafka),
    )
    # Repartition by security pseudonym, so that each subject's detector state lives in one partition.
    # Only pseudonymized observations travel here: no internal topic carries a raw address.
    observations = app.topic(
        settings.observation_topic,
        value_serializer="raw",
        key_serializer="raw",
        partitions=settings.partitions,
        internal=True,
        retention=settings.observation_retention_days * 86_400,
    )
    detector = runtime.detector
    detecting = detector is not None
    abuse_topic = settings.abuse_topic
    dumps = orjson.dumps

    # The raw topic is read poll by poll outside faust's per-event machinery (pipeline/ingest.py says why);
    # faust accepts a service instance here (App._prepare_subservice), its signature only says "class".
    analytics_policy = runtime.policy.analytics
    releasing = analytics_policy.release.enabled
    ingest = BatchIngest(
        settings, runtime.processor, runtime.sealer, counters, detecting=detecting, releasing=releasing
    )
    app.service(cast(type[BatchIngest], ingest))
    if releasing:
        # Held analytics rows -> k-anonymous records and aggregates, window by window (pipeline/release.py).
        release = ReleaseService(settings, analytics_policy.release, analytics_policy.aggregates, counters)
        app.service(cast(type[ReleaseService], release))

    if detector is not None:
        # Per-subject leaky-bucket state, changelogged to "<app>-detector-state-changelog": a restarted or
        # rebalanced worker recovers it from there. Values are the detector's JSON state (pseudonyms only).
        # bytes key/value types make faust use the "raw" codec for the table and its changelog topic, which the
        # agent writes itself (save() below) to each key's partition; use_partitioner makes the store look a key
        # up in every partition's database rather than only the current event's.
        states = app.Table(
            "detector-state",
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            use_partitioner=True,
        )
        partitions = settings.partitions

        @app.agent(observations, concurrency=1)
        async def detect_abuse(stream_t: faust.StreamT[bytes]) -> None:
            stream = cast(faust.Stream[bytes], stream_t)
            latest_event_time = 0.0
            latest_by_partition: dict[int, faust.EventT[bytes]] = {}
            next_sweep = time.monotonic() + settings.detector_expire_interval_s
            store = cast(StoreT, states.data)  # the table's store (memory or RocksDB): see save() below
            changelog = states.changelog_topic.get_topic_name()

            def save(
                outputs: PollOutputs, key: bytes, stored: bytes | None, state: dict[str, object] | None, partition: int
            ) -> None:
                """One subject's new state, in the store and in the changelog batch, as the table would
                write it (raw key and value, a tombstone on delete, the key's partition), but not through
                faust's per-record changelog path: a future, a buffer entry and a publish each, and past 100
                queued records faust paused every stream (the detector trailed by 1.35 s; README
                "Performance"). The store needs the current event named (``_naming_events``)."""
                if state is None:
                    if stored is not None:
                        del store[key]
                        outputs.add(changelog, key, None, partition)
                else:
                    value = dumps(state)
                    store[key] = value
                    outputs.add(changelog, key, value, partition)

            async def flush(outputs: PollOutputs) -> None:
                """Send the alerts and changelog records, wait for them, then record how far the changelog is
                applied, as the table's own send callback does: a restart replays only what came after."""
                sent = await outputs.send_batches()
                await asyncio.gather(*(written.delivered for written in sent))
                for written in sent:
                    if written.topic == changelog:
                        store.set_persisted_offset(TP(changelog, written.partition), written.last_offset)

            async for batch in stream.take_events(settings.batch_size, within=settings.batch_within_s):
                await ingest.ready.wait()  # alerts and changelog records go out through its producer
                outputs = ingest.outputs(detector=True)
                with _naming_events(stream) as name:  # no await inside: see _naming_events
                    for event in batch:
                        # The table's store (RocksDB: one database per partition) reads "the current event"; a
                        # batch has none unless we name it, as per-event iteration does. Every subject in the
                        # message hashes to the message's partition (observation_batches), as does its changelog.
                        name(event)
                        partition = event.message.partition
                        latest_by_partition[partition] = event
                        try:
                            groups = list(read_observation_batch(event.message.value or b"{}"))
                        except (ValueError, TypeError):
                            # Only this app writes the topic; a record it cannot read (a version skew) is counted
                            # and skipped rather than stopping detection for every subject.
                            counters.undecodable_observations += 1
                            log.warning("detector: skipped an undecodable observation batch (reason observation_batch)")
                            continue
                        for subject, observations_of_subject in groups:
                            key = subject.encode()
                            stored = store.get(key)
                            state = orjson.loads(stored) if stored else None
                            for observation in observations_of_subject:
                                latest_event_time = max(latest_event_time, observation.time)
                            state, alerts, failed = detector.observe(state, observations_of_subject)
                            counters.detector_failures += failed
                            counters.alerts += len(alerts)
                            for alert in alerts:
                                outputs.add(abuse_topic, key, dumps(alert))
                            save(outputs, key, stored, state, partition)  # once per subject per poll, not per event
                await flush(outputs)
                if time.monotonic() >= next_sweep:
                    # Drop fully leaked buckets so the table holds only subjects active in event time. This
                    # runs inside the agent (not a timer) because the store needs an event of the key's
                    # partition to write to the right database.
                    next_sweep = time.monotonic() + settings.detector_expire_interval_s
                    outputs = ingest.outputs(detector=True)
                    with _naming_events(stream) as name:
                        for key, stored in list(store.items()):
                            partition = key_partition(key, partitions)
                            owner = latest_by_partition.get(partition)
                            if owner is None:
                                continue
                            name(owner)
                            state = orjson.loads(stored)
                            kept = detector.expire(state, latest_event_time)
                            if kept != state:
                                save(outputs, key, stored, kept, partition)
                    await flush(outputs)

    @app.timer(settings.stats_interval_s)
    async def log_counters() -> None:
        summary = counters.summary()
        log.info(
            "records: input=%d analytics=%d quarantine=%d filtered=%d abuse=%d",
            summary["input"],
            summary["analytics"],
            summary["quarantine"],
            summary["filtered"],
            summary["abuse"],
        )

    # Built here, before the worker starts: an endpoint bound beyond loopback without TLS or a token stops start-up.
    endpoint = MetricsEndpoint.build(settings, counters)
    if endpoint is not None:

        @app.task
        async def serve_metrics() -> None:
            await endpoint.start()

    app.counters = counters  # type: ignore[attr-defined]  # for tests and the CLI
    return app
