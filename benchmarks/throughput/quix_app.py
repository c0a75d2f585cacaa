"""``quixstreams``: the same processor in a Quix Streams application (confluent-kafka / librdkafka).

    python -m benchmarks.throughput.quix_app      (PSEUDO_* environment, like the product's worker)

One StreamingDataFrame: ``apply(..., expand=True)`` runs the processor and the product's routing
(:func:`pipeline.routing.route_record`, so the output bytes are the product's), then ``to_topic`` with a
callable that picks each message's topic and key. The output topics' serializer passes the routed bytes through.
Producer settings follow the product's (lz4, linger 5 ms; librdkafka's default acks=all); commits every second
like the product's worker. Stops on SIGTERM/SIGINT (Quix handles them).
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime
from typing import Any

from quixstreams import Application, message_context
from quixstreams.models.serializers import SerializationContext, Serializer

from benchmarks.throughput.common import Message, build_router, load_runtime, output_topics


class RoutedValue(Serializer):
    """The value of a routed ``(output, key, value)`` message, already serialized by the routing."""

    def __call__(self, value: Message, ctx: SerializationContext) -> bytes:
        return value[2]


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
    topics = {
        output: app.topic(name, value_serializer=RoutedValue(), key_serializer="bytes")
        for output, name in output_topics(settings).items()
    }
    route = build_router(runtime)

    def pseudonymize(value: bytes, key: Any, timestamp: int, headers: Any) -> list[Message]:
        context = message_context()
        ingest = datetime.fromtimestamp(timestamp / 1000, UTC)
        return list(route(value or b"", ingest, context.topic, context.partition, context.offset))

    sdf = app.dataframe(source)
    sdf = sdf.apply(pseudonymize, metadata=True, expand=True)
    sdf.to_topic(lambda message, key, timestamp, headers: topics[message[0]], key=lambda message: message[1])
    app.run()


if __name__ == "__main__":
    main()
