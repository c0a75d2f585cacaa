"""``quixstreams``: the same processor in a Quix Streams application (confluent-kafka / librdkafka).

    python -m benchmarks.throughput.quix_app      (PSEUDO_* environment, like the product's worker)

Written the way Quix documents it: one StreamingDataFrame whose ``apply(..., expand=True)`` calls the processor
and yields the output records as dicts, then ``to_topic`` with a callable that picks the output topic from the
record's ``schema`` (Quix's JSON serializer is orjson, as the product's). Producer settings follow the product's
(lz4, linger 5 ms; librdkafka's default acks=all); commits every second like the product's worker.
Stops on SIGTERM/SIGINT (Quix handles them).
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime
from typing import Any

from quixstreams import Application, message_context

from benchmarks.throughput.common import load_runtime
from transforms.process import Route
from transforms.quarantine import quarantine_record


def main() -> None:
    runtime = load_runtime()
    settings = runtime.settings
    app = Application(
        broker_address=settings.bootstrap,
        consumer_group=settings.app_id,
        auto_offset_reset="earliest",
        commit_interval=1.0,
        producer_extra_config={"compression.type": "lz4", "linger.ms": 5},
        state_dir=tempfile.mkdtemp(prefix="quix-state-"),
        auto_create_topics=False,  # the harness creates every topic (the broker refuses auto-creation)
        loglevel=logging.WARNING,
    )
    source = app.topic(settings.input_topic, value_deserializer="bytes", key_deserializer="bytes")
    outputs = {
        "analytics/1": app.topic(settings.analytics_topic, value_serializer="json", key_serializer="str"),
        "abuse/1": app.topic(settings.abuse_topic, value_serializer="json", key_serializer="str"),
        "quarantine/1": app.topic(settings.quarantine_topic, value_serializer="json", key_serializer="str"),
    }
    process, sealer = runtime.processor, runtime.sealer

    def pseudonymize(value: bytes, key: Any, timestamp: int, headers: Any) -> list[dict[str, Any]]:
        ingest = datetime.fromtimestamp(timestamp / 1000, UTC)
        outcome = process(value or b"", ingest)
        records: list[dict[str, Any]] = [*outcome.analytics, *outcome.abuse]
        if outcome.route is Route.QUARANTINE:
            context = message_context()
            records.append(
                quarantine_record(
                    reason=outcome.reason or "unknown",
                    field=outcome.field,
                    topic=context.topic,
                    partition=context.partition,
                    offset=context.offset,
                    ingest_time=ingest.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    payload=value or b"",
                    sealer=sealer,
                )
            )
        return records

    sdf = app.dataframe(source)
    sdf = sdf.apply(pseudonymize, metadata=True, expand=True)
    sdf.to_topic(lambda value, key, timestamp, headers: outputs[value["schema"]], key=lambda value: value.get("subject"))
    app.run()


if __name__ == "__main__":
    main()
