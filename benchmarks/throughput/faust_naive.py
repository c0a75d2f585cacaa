"""``faust-naive``: the same processor in a faust agent written the way most faust apps are written.

    python -m benchmarks.throughput.faust_naive      (PSEUDO_* environment, like the product's worker)

One agent, ``async for event in stream.events()``, one ``await topic.send()`` per output record, records
handed to faust as dicts for its default ``json`` codec, and faust's default producer and commit settings
(no compression, no linger tuning). Only what a benchmark needs differs from a fresh app: the in-memory
store, and the web server off (its port would collide with other faust apps on this machine).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import faust

from benchmarks.throughput.common import load_runtime
from transforms.process import Route
from transforms.quarantine import quarantine_record


def create_app() -> faust.App:
    runtime = load_runtime()
    settings = runtime.settings
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        store="memory://",
        datadir=str(settings.data_dir),
        web_enabled=False,
        topic_partitions=settings.partitions,
    )
    raw = app.topic(settings.input_topic, value_serializer="raw")
    analytics = app.topic(settings.analytics_topic)
    abuse = app.topic(settings.abuse_topic)
    quarantine = app.topic(settings.quarantine_topic)
    process, sealer = runtime.processor, runtime.sealer

    @app.agent(raw)
    async def pseudonymize(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            ingest = datetime.fromtimestamp(message.timestamp, UTC)
            outcome = process(message.value or b"", ingest)
            for record in outcome.analytics:
                await analytics.send(value=record)
            for record in outcome.abuse:
                await abuse.send(key=record["subject"], value=record)
            if outcome.route is Route.QUARANTINE:
                envelope = quarantine_record(
                    reason=outcome.reason or "unknown",
                    field=outcome.field,
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    ingest_time=ingest.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    payload=message.value or b"",
                    sealer=sealer,
                )
                await quarantine.send(value=envelope)

    return app


def main() -> None:
    asyncio.set_event_loop(asyncio.new_event_loop())
    app = create_app()
    faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
