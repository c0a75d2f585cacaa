"""What every benchmarked system shares: the project's runtime, built from the same ``PSEUDO_*`` settings as
the product's worker, and the product's own guarded routing (:func:`pipeline.routing.route_record`).

The baselines do not run the stateful detector (``product`` does, behind a repartition topic), so they route
without observations; ``limit`` reports the detector's cost separately. Nor do they run the k-anonymous release
stage: with the shipped policy the routing turns each analytics record into a release row (the record, its daily
visitor and its time, keyed by unit), which the product's ingest writes to its internal release topic; the
baselines write those same rows to their analytics topic, so their per-record work is the product's ingest's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime

from config.settings import Settings
from pipeline.routing import Message, Output, Source, route_record
from pipeline.runtime import Runtime, build_runtime

Router = Callable[[bytes, datetime, str, int, int], Iterator[Message]]


def load_runtime() -> Runtime:
    """The runtime the product's worker would build from this process's ``PSEUDO_*`` environment."""
    logging.basicConfig(level=logging.WARNING)
    return build_runtime(Settings.from_env())


def output_topics(settings: Settings) -> dict[Output, str]:
    return {
        Output.ANALYTICS: settings.analytics_topic,
        Output.ABUSE: settings.abuse_topic,
        Output.QUARANTINE: settings.quarantine_topic,
        # Where the product's ingest writes its release topic: the baselines have no release stage to read it.
        Output.RELEASE: settings.analytics_topic,
    }


def build_router(runtime: Runtime) -> Router:
    """``route(raw, ingest_time, topic, partition, offset)``: process one record, yield its messages."""
    process, sealer = runtime.processor, runtime.sealer

    def route(raw: bytes, ingest: datetime, topic: str, partition: int, offset: int) -> Iterator[Message]:
        source = Source(topic, partition, offset, ingest)
        return iter(route_record(process, raw, source, sealer).messages)

    return route
