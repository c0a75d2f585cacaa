"""One raw record -> the messages it produces: shared by the stream worker, the file mode and the benchmarks.

Keeping this in one place means the topics (or files) every mode writes hold byte-for-byte the same
records: analytics records, per-record abuse events keyed by subject, the sealed quarantine envelope,
and the serialized observation rows the stream worker batches for its detector (pipeline/ingest.py).

:func:`route_record` is the one guarded path between "bytes received" and "bytes handed to a producer":
parsing, transforms, signals, output building and serialization all happen inside it, so whatever any of
them raises turns that one record into a quarantine envelope with a reason code, and the caller goes on
with the rest of its poll or file. A poison record is therefore written (to quarantine) and committed
like any other: it can never be re-read forever.

It is also where each output record gets its ``event_id`` (:mod:`transforms.event_id`): a keyed hash of the
output's name (:class:`Output`: the same in every deployment, where topic names differ), the source position and
the record's index among that input's outputs of its kind. A release row carries the id its analytics record will
be released with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson

from config.settings import Settings
from transforms.errors import Reason
from transforms.event_id import EventIds
from transforms.process import Outcome, Route
from transforms.quarantine import QuarantineSealer, quarantine_record
from transforms.release import ClosedWindow, ReleaseRow


class Output(StrEnum):
    ANALYTICS = "analytics"
    ABUSE = "abuse"
    QUARANTINE = "quarantine"
    OBSERVATIONS = "observations"
    # With the k-anonymous release on: analytics rows held in event-time windows (internal, keyed by unit),
    # and what the release stage writes besides analytics.
    RELEASE = "release"
    AGGREGATES = "aggregates"


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """Where one output goes: its topic (from the settings), if the file mode writes it, its file, and who reads it."""

    topic: Callable[[Settings], str]
    file: str | None  # None: internal to the stream (the file mode hands these rows over in memory)
    # The audience whose principal may read the topic (pipeline/acls.py); None: only the worker (internal).
    reader: str | None


# The one table of outputs: a new output is a row here (and a member of Output), a topic in Settings.
OUTPUTS: dict[Output, OutputSpec] = {
    Output.ANALYTICS: OutputSpec(lambda s: s.analytics_topic, "analytics.jsonl", "analyst"),
    Output.ABUSE: OutputSpec(lambda s: s.abuse_topic, "abuse.jsonl", "security"),
    Output.QUARANTINE: OutputSpec(lambda s: s.quarantine_topic, "quarantine.jsonl", "operator"),
    Output.AGGREGATES: OutputSpec(lambda s: s.aggregates_topic, "aggregates.jsonl", "analyst"),
    Output.OBSERVATIONS: OutputSpec(lambda s: s.observation_topic, None, None),
    Output.RELEASE: OutputSpec(lambda s: s.release_topic, None, None),
}


def topic_names(settings: Settings, outputs: Iterable[Output] = OUTPUTS) -> dict[Output, str]:
    """Each output's topic name under these settings."""
    return {output: OUTPUTS[output].topic(settings) for output in outputs}


@dataclass(frozen=True, slots=True)
class Source:
    """Where a raw record came from: quarantine envelopes name it, and bind it into their seal."""

    topic: str
    partition: int
    offset: int
    ingest: datetime


Message = tuple[Output, bytes | None, bytes]  # (output, key, value); keys are security pseudonyms or None


@dataclass(frozen=True, slots=True)
class RoutedRecord:
    """Everything one raw record produces, already serialized: nothing after this can fail on its data."""

    outcome: Outcome  # what is counted: a quarantine outcome if any step after parsing failed
    messages: list[Message]
    # (subject, JSON row) per observation for the stream's detector; rows are joined into batches as bytes
    observation_rows: list[tuple[str, bytes]]


def route_record(
    process: Callable[[bytes, datetime], Outcome],
    payload: bytes,
    source: Source,
    sealer: QuarantineSealer,
    event_ids: EventIds | None = None,
) -> RoutedRecord:
    """Process, build and serialize every output of one record, failing closed to a quarantine envelope.

    ``event_ids`` (the runtime's, built from the keyring) gives every analytics, abuse and quarantine record and
    every release row its ``event_id``. None leaves them without one: for tests and benchmarks that need no ids;
    the stream worker and the file mode pass the runtime's.
    """
    dumps = orjson.dumps
    try:
        outcome = process(payload, source.ingest)
        if outcome.release_rows:
            # Held for the k-anonymous release: keyed by the unit, so one unit's rows meet in one partition.
            # Each row holds the id of the analytics record it may become.
            messages: list[Message] = [
                (Output.RELEASE, row.unit.encode() if row.unit else None, _row_with_id(row, event_ids, source, i))
                for i, row in enumerate(outcome.release_rows)
            ]
        else:
            messages = [
                (Output.ANALYTICS, None, dumps(_with_id(record, event_ids, Output.ANALYTICS, source, i)))
                for i, record in enumerate(outcome.analytics)
            ]
        for i, record in enumerate(outcome.abuse):
            # Keyed by the security pseudonym: one subject's events stay ordered in one partition.
            messages.append(
                (Output.ABUSE, record["subject"].encode(), dumps(_with_id(record, event_ids, Output.ABUSE, source, i)))
            )
        if outcome.route is Route.QUARANTINE:
            messages.append(_quarantine_message(outcome, payload, source, sealer, event_ids))
        rows = [(observation.subject, dumps(observation.to_row())) for observation in outcome.observations]
    except Exception:  # fail closed: whatever the record did, it leaves as a sealed quarantine envelope
        outcome = Outcome(Route.QUARANTINE, Reason.TRANSFORM_FAILED.value)
        return RoutedRecord(outcome, [_quarantine_message(outcome, payload, source, sealer, event_ids)], [])
    return RoutedRecord(outcome, messages, rows)


def alert_with_id(alert: dict[str, Any], event_ids: EventIds) -> dict[str, Any]:
    """A detector alert (``kind: "alert"``) with its ``event_id``: a keyed hash of its rule, subject and time.

    Alerts come from no single input position, so their id names the alert itself: the detector raises the same
    alert again on a replay (at most one per rule and subject per quiet period), with the same id. For the stream's
    detector (pipeline/app.py) and the file mode alike.
    """
    return {**alert, "event_id": event_ids.alert(alert["rule"], alert["subject"], alert["time"])}


def _id(event_ids: EventIds, output: Output, source: Source, index: int) -> str:
    return event_ids.record(output.value, source.topic, source.partition, source.offset, index)


def _with_id(
    record: dict[str, object], event_ids: EventIds | None, output: Output, source: Source, index: int
) -> dict[str, object]:
    # A copy: the outcome's records stay as the processor built them (tests and the fuzz harness read them).
    return record if event_ids is None else {**record, "event_id": _id(event_ids, output, source, index)}


def _row_with_id(row: ReleaseRow, event_ids: EventIds | None, source: Source, index: int) -> bytes:
    # The id of the analytics record the row may be released as: released records count as analytics outputs.
    if event_ids is not None:  # built directly: dataclasses.replace cost 2 us a row, as much as the id itself
        row = ReleaseRow(row.record, row.visitor, row.time, row.unit, _id(event_ids, Output.ANALYTICS, source, index))
    return row.to_bytes()


def _quarantine_message(
    outcome: Outcome, payload: bytes, source: Source, sealer: QuarantineSealer, event_ids: EventIds | None
) -> Message:
    envelope = quarantine_record(
        reason=outcome.reason or Reason.TRANSFORM_FAILED.value,
        field=outcome.field,
        topic=source.topic,
        partition=source.partition,
        offset=source.offset,
        ingest_time=source.ingest.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        payload=payload,
        sealer=sealer,
    )
    if event_ids is not None:
        envelope["event_id"] = _id(event_ids, Output.QUARANTINE, source, 0)  # one envelope per input at most
    return Output.QUARANTINE, None, orjson.dumps(envelope)


def closed_window_messages(window: ClosedWindow) -> Iterator[Message]:
    """What a closed release window writes: released analytics records, or aggregate rows.

    One at a time: each serialized record goes into the producer's batch before the next is made (a list of a
    window's records as bytes, 4 KiB of allocation each with orjson, raised the worker's peak RSS by 178 MB).
    """
    output = Output.ANALYTICS if window.kind == "analytics" else Output.AGGREGATES
    dumps = orjson.dumps
    for record in window.records:
        yield output, None, dumps(record)


def observation_batch(groups: dict[str, list[bytes]]) -> bytes:
    """``{subject: [row, ...]}`` as JSON, from rows :func:`route_record` already serialized.

    Assembled as bytes, so a batch of a whole poll cannot fail on one record's values (each row was
    serialized inside that record's guarded path). Subjects are security pseudonyms.
    """
    dumps = orjson.dumps
    return b"{" + b",".join(dumps(subject) + b":[" + b",".join(rows) + b"]" for subject, rows in groups.items()) + b"}"
