"""The faust app: consumes raw records, runs the shared processor, produces to the routed topics.

The agent only wires: decoding, routing and minimization all happen in ``transforms``. Agent
concurrency stays 1 (faust issue #606: with more, offsets can be committed past in-flight records);
scale out with partitions and worker processes. Output sends are *attached* to the source offset, so
faust publishes them before it commits that offset: at-least-once, nothing lost on a crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import cast

import faust
import orjson
from aiohttp import web
from aiokafka.partitioner import murmur2

from pipeline.metrics import RouteCounters
from pipeline.routing import Output, Source, grouped_observations, outcome_messages
from pipeline.runtime import Runtime
from transforms.model import Observation

log = logging.getLogger("pseudonymizer")


def create_app(runtime: Runtime, counters: RouteCounters | None = None) -> faust.App:
    settings = runtime.settings
    counters = counters or RouteCounters()
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        store=settings.store,
        datadir=str(settings.data_dir),
        # The web server's default views serve table contents over HTTP: never expose them.
        web_enabled=False,
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        producer_compression_type=None if settings.compression == "none" else settings.compression,
        producer_linger_ms=settings.producer_linger_ms,
        producer_max_batch_size=settings.producer_batch_bytes,
        broker_max_poll_records=settings.max_poll_records,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        # Waiting for empty streams on rebalance/stop stalled batched agents for a second or more (p50 latency
        # 1.1 s instead of 32 ms, measured with detection off); unacked events are simply re-read after a
        # rebalance, which at-least-once delivery allows.
        stream_wait_empty=False,
    )
    raw = app.topic(settings.input_topic, value_type=bytes, value_serializer="raw", key_serializer="raw")
    analytics = app.topic(settings.analytics_topic, value_serializer="raw", key_serializer="raw")
    abuse = app.topic(settings.abuse_topic, value_serializer="raw", key_serializer="raw")
    quarantine = app.topic(settings.quarantine_topic, value_serializer="raw", key_serializer="raw")
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
    topics = {
        Output.ANALYTICS: analytics,
        Output.ABUSE: abuse,
        Output.QUARANTINE: quarantine,
        Output.OBSERVATIONS: observations,
    }
    names = {output: topic.get_topic_name() for output, topic in topics.items()}
    process = runtime.processor
    sealer = runtime.sealer
    dumps = orjson.dumps

    async def produce(
        topic: str, key: bytes | None, value: bytes, partition: None, timestamp: None, headers: None
    ) -> Awaitable[object]:
        # faust's Topic.send/send_soon wrap each record in futures, attachments and a buffer (about half
        # of the worker's CPU per record, measured); outputs need none of it: hand them to the producer.
        return await app.producer.send(topic, key, value, partition, timestamp, headers)

    @app.agent(raw, concurrency=1)
    async def pseudonymize_records(stream: faust.StreamT[bytes]) -> None:
        # Batches amortise faust's per-event machinery; send_soon() buffers in the producer, and faust
        # flushes the producer before it commits the batch's offsets (acked after the batch), so a crash
        # replays the batch instead of losing it: at-least-once.
        batches = cast(faust.Stream[bytes], stream).take_events(settings.batch_size, within=settings.batch_within_s)
        async for batch in batches:
            pending: list[Observation] = []
            deliveries: list[Awaitable[object]] = []
            for event in batch:
                message = event.message
                payload = message.value if isinstance(message.value, bytes) else bytes(message.value or b"")
                ingest = datetime.fromtimestamp(message.timestamp, UTC) if message.timestamp else datetime.now(UTC)
                outcome = process(payload, ingest)
                counters.count(outcome)
                source = Source(message.topic, message.partition, message.offset, ingest)
                for output, key, value in outcome_messages(outcome, payload, source, sealer, observations=False):
                    deliveries.append(await produce(names[output], key, value, None, None, None))
                if detecting:
                    pending.extend(outcome.observations)
            for key, value in grouped_observations(pending):
                deliveries.append(await produce(names[Output.OBSERVATIONS], key, value, None, None, None))
            # Every output of the batch is acknowledged by the broker before the batch's offsets can be
            # committed (faust acks the events when this loop asks for the next batch): at-least-once.
            await asyncio.gather(*deliveries)

    if detector is not None:
        # Per-subject leaky-bucket state, changelogged to "<app>-detector-state-changelog": a restarted or
        # rebalanced worker recovers it from there. Values are the detector's JSON state (pseudonyms only).
        # bytes key/value types make faust use the "raw" codec for the table and its changelog topic;
        # use_partitioner sends each changelog record to its key's partition (murmur2, like the observation).
        states = app.Table(
            "detector-state",
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            use_partitioner=True,
        )
        partitions = settings.partitions

        def partition_of(key: bytes) -> int:
            """The partition the producer's default (murmur2) partitioner gives a key, as for observations."""
            return (murmur2(key) & 0x7FFFFFFF) % partitions

        @app.agent(observations, concurrency=1)
        async def detect_abuse(stream_t: faust.StreamT[bytes]) -> None:
            stream = cast(faust.Stream[bytes], stream_t)
            latest_event_time = 0.0
            latest_by_partition: dict[int, faust.EventT[bytes]] = {}
            next_sweep = time.monotonic() + settings.detector_expire_interval_s
            async for batch in stream.take_events(settings.batch_size, within=settings.batch_within_s):
                deliveries: list[Awaitable[object]] = []
                for event in batch:
                    # The table's store (RocksDB: one database per partition) and its changelog both read
                    # "the current event"; a batch has none unless we name it, as per-event iteration does.
                    stream._set_current_event(event)
                    latest_by_partition[event.message.partition] = event
                    key = event.message.key or b""
                    stored = states.get(key)
                    state = orjson.loads(stored) if stored else None
                    for item in orjson.loads(event.message.value or b"[]"):
                        observation = Observation.from_json_dict(item)
                        latest_event_time = max(latest_event_time, observation.time)
                        state, alerts = detector(state, observation)
                        counters.alerts += len(alerts)
                        for alert in alerts:
                            deliveries.append(await produce(names[Output.ABUSE], key, dumps(alert), None, None, None))
                    # One table write (and changelog record) per subject per batch, not per event.
                    if state is None:
                        states.pop(key, None)
                    else:
                        states[key] = dumps(state)
                await asyncio.gather(*deliveries)
                if time.monotonic() >= next_sweep:
                    # Drop fully leaked buckets so the table holds only subjects active in event time. This
                    # runs inside the agent (not a timer) because the store needs an event of the key's
                    # partition to write to the right database.
                    next_sweep = time.monotonic() + settings.detector_expire_interval_s
                    for key, stored in list(states.items()):
                        owner = latest_by_partition.get(partition_of(key))
                        if owner is None:
                            continue
                        stream._set_current_event(owner)
                        kept = detector.expire(orjson.loads(stored), latest_event_time)
                        if kept is None:
                            states.pop(key, None)
                        elif kept != orjson.loads(stored):
                            states[key] = dumps(kept)

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

    if settings.metrics_port:

        @app.task
        async def serve_metrics() -> None:
            async def metrics(_: web.Request) -> web.Response:
                return web.Response(text=counters.prometheus(settings.app_id), content_type="text/plain")

            async def summary(_: web.Request) -> web.Response:
                return web.json_response(counters.summary())

            web_app = web.Application()
            web_app.router.add_get("/metrics", metrics)
            web_app.router.add_get("/summary", summary)
            runner = web.AppRunner(web_app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, settings.metrics_host, settings.metrics_port).start()
            log.info("metrics: http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)

    app.counters = counters  # type: ignore[attr-defined]  # for tests and the CLI
    return app
