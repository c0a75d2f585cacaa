"""``aiokafka``: a plain aiokafka loop around the same processor, run as its own process.

    python -m benchmarks.throughput.aiokafka_loop      (PSEUDO_* environment, like the product's worker)

``getmany`` a batch, route every record, hand all outputs to the producer without waiting per record,
wait for the batch's deliveries, then commit: at-least-once with one commit per batch. The producer uses
the product's settings (lz4, linger 5 ms, acks=all). Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks.throughput.common import build_router, load_runtime, output_topics

MAX_BATCH = 2000


async def run() -> None:
    runtime = load_runtime()
    settings = runtime.settings
    route = build_router(runtime)
    topics = output_topics(settings)
    consumer = AIOKafkaConsumer(
        settings.input_topic,
        bootstrap_servers=settings.bootstrap,
        group_id=settings.app_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 2**20,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        acks="all",
        compression_type="lz4",
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=2 * 2**20,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await producer.start()
    await consumer.start()
    fromtimestamp, utc = datetime.fromtimestamp, UTC
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=MAX_BATCH)
            if not batches:
                continue
            pending = []
            for tp, messages in batches.items():
                for message in messages:
                    ingest = fromtimestamp(message.timestamp / 1000, utc)
                    for output, key, value in route(
                        message.value or b"", ingest, tp.topic, tp.partition, message.offset
                    ):
                        pending.append(await producer.send(topics[output], value, key=key))
            if pending:
                await asyncio.gather(*pending)
            await consumer.commit()
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        await producer.stop()


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
