"""What every benchmarked system shares: the project's runtime, built from the same ``PSEUDO_*`` settings as
the product's worker, and one routing function that turns a raw record into its output messages.

The routing is exactly the product agent's per-record work (``pipeline/app.py``): process, serialize each
analytics and abuse record with orjson (abuse keyed by the security pseudonym), seal and serialize the
quarantine envelope. The baselines do not run the stateful detector (``product`` does, behind a repartition
topic); ``limit`` reports it separately.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import orjson

from config.settings import Settings
from pipeline.runtime import Runtime, build_runtime
from transforms.process import Outcome, Route
from transforms.quarantine import quarantine_record

ANALYTICS, ABUSE, QUARANTINE = 0, 1, 2
OUTPUT_NAMES = ("analytics", "abuse", "quarantine")

Output = tuple[int, bytes | None, bytes]  # (output index, key, value)
Router = Callable[[bytes, datetime, str, int, int], list[Output]]


def load_runtime() -> Runtime:
    """The runtime the product's worker would build from this process's ``PSEUDO_*`` environment."""
    logging.basicConfig(level=logging.WARNING)
    return build_runtime(Settings.from_env())


def output_topics(settings: Settings) -> tuple[str, str, str]:
    return settings.analytics_topic, settings.abuse_topic, settings.quarantine_topic


def build_router(runtime: Runtime) -> tuple[Router, Callable[[Outcome, bytes, datetime, str, int, int], list[Output]]]:
    """``(route, outputs_of)``: ``route(raw, ingest_time, topic, partition, offset) -> [(output, key, value)]``,
    and ``outputs_of(outcome, raw, ...)``, its second half, for callers that also need the outcome itself."""
    process, sealer, dumps = runtime.processor, runtime.sealer, orjson.dumps
    quarantine = Route.QUARANTINE

    def outputs_of(outcome: Outcome, raw: bytes, ingest: datetime, topic: str, partition: int, offset: int) -> list[Output]:
        out: list[Output] = [(ANALYTICS, None, dumps(record)) for record in outcome.analytics]
        for record in outcome.abuse:
            # Keyed by the security pseudonym, as the product does: one subject's events stay in one partition.
            out.append((ABUSE, record["subject"].encode(), dumps(record)))
        if outcome.route is quarantine:
            envelope = quarantine_record(
                reason=outcome.reason or "unknown",
                field=outcome.field,
                topic=topic,
                partition=partition,
                offset=offset,
                ingest_time=ingest.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                payload=raw,
                sealer=sealer,
            )
            out.append((QUARANTINE, None, dumps(envelope)))
        return out

    def route(raw: bytes, ingest: datetime, topic: str, partition: int, offset: int) -> list[Output]:
        return outputs_of(process(raw, ingest), raw, ingest, topic, partition, offset)

    return route, outputs_of
