"""One outcome -> the messages it produces: shared by the stream worker, the file mode and the benchmarks.

Keeping this in one place means the topics (or files) every mode writes hold byte-for-byte the same
records: analytics records, per-record abuse events keyed by subject, and the sealed quarantine envelope.
(The stream worker also writes the outcome's observations for its detector: pipeline/ingest.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import orjson

from transforms.process import Outcome, Route
from transforms.quarantine import QuarantineSealer, quarantine_record


class Output(StrEnum):
    ANALYTICS = "analytics"
    ABUSE = "abuse"
    QUARANTINE = "quarantine"
    OBSERVATIONS = "observations"


@dataclass(frozen=True, slots=True)
class Source:
    """Where a raw record came from: quarantine envelopes name it, and bind it into their seal."""

    topic: str
    partition: int
    offset: int
    ingest: datetime


def outcome_messages(
    outcome: Outcome, payload: bytes, source: Source, sealer: QuarantineSealer
) -> Iterator[tuple[Output, bytes | None, bytes]]:
    """Yield (output, key, value) for every record the outcome sends; keys are security pseudonyms or None."""
    dumps = orjson.dumps
    for record in outcome.analytics:
        yield Output.ANALYTICS, None, dumps(record)
    for record in outcome.abuse:
        # Keyed by the security pseudonym: one subject's events stay ordered in one partition.
        yield Output.ABUSE, record["subject"].encode(), dumps(record)
    if outcome.route is Route.QUARANTINE:
        envelope = quarantine_record(
            reason=outcome.reason or "unknown",
            field=outcome.field,
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
            ingest_time=source.ingest.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            payload=payload,
            sealer=sealer,
        )
        yield Output.QUARANTINE, None, dumps(envelope)
