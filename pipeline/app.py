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

import logging
import os
from typing import cast

import faust

from pipeline import kafka_clients
from pipeline.detector import install as install_detector
from pipeline.ingest import BatchIngest, default_partitioner
from pipeline.metrics import MetricsEndpoint, RouteCounters
from pipeline.release import ReleaseService
from pipeline.runtime import Runtime

log = logging.getLogger("pseudonymizer")


def faust_default_replication() -> int:
    """faust's own default for the topics it creates: its TOPIC_REPLICATION_FACTOR variable, else 1."""
    return int(os.environ.get("TOPIC_REPLICATION_FACTOR", "1"))


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
        # faust creates the detector's changelog and its assignor topic itself: with the factor the worker's other
        # topics get (on a cluster with min.insync.replicas=2, a topic with one copy refuses every acks=all write).
        # Unset, faust's own default (1, or its TOPIC_REPLICATION_FACTOR variable).
        topic_replication_factor=settings.replication_factor or faust_default_replication(),
        # TLS and SASL from the one connection model (pipeline/kafka_clients.py); none for PLAINTEXT.
        **kafka_clients.faust_options(settings.kafka),
        # exactly_once: faust's consumer reads read_committed, its offsets commit in faust's transactions.
        **kafka_clients.faust_guarantee(settings),
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

    # The raw topic is read poll by poll outside faust's per-event machinery (pipeline/ingest.py says why);
    # faust accepts a service instance here (App._prepare_subservice), its signature only says "class".
    analytics_policy = runtime.policy.analytics
    releasing = analytics_policy.release.enabled
    ingest = BatchIngest(
        settings,
        runtime.processor,
        runtime.sealer,
        counters,
        detecting=detecting,
        releasing=releasing,
        event_ids=runtime.event_ids,
    )
    app.service(cast(type[BatchIngest], ingest))
    if releasing:
        # Held analytics rows -> k-anonymous records and aggregates, window by window (pipeline/release.py).
        release = ReleaseService(
            settings, analytics_policy.release, analytics_policy.aggregates, counters, event_ids=runtime.event_ids
        )
        app.service(cast(type[ReleaseService], release))

    if detector is not None:
        install_detector(app, settings, detector, ingest, counters, observations, runtime.event_ids)

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
