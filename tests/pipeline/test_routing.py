"""The one guarded path from raw bytes to serialized messages: whatever a record does, it ends routed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import load_policy
from pipeline.routing import Output, Source, alert_with_id, observation_batch, route_record
from tests.transforms.keyfixtures import fixed_keyring
from transforms.event_id import EventIds
from transforms.model import Observation
from transforms.process import Outcome, RecordProcessor, Route
from transforms.quarantine import QuarantineSealer, associated_data, unseal
from transforms.release import ReleaseRow

KEYRING = fixed_keyring()
SEALER = QuarantineSealer(KEYRING.quarantine_key())
PROCESSOR = RecordProcessor.build(load_policy(), KEYRING)
INGEST = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SOURCE = Source("logs.raw", 1, 7, INGEST)
GOOD = b'198.51.100.7 - - [27/Nov/2026:11:59:00 +0000] "GET /index.html HTTP/1.1" 200 512 "-" "curl/8"'


def _quarantined(routed: Any) -> dict[str, Any]:
    assert routed.outcome.route is Route.QUARANTINE
    assert [output for output, _, _ in routed.messages] == [Output.QUARANTINE]
    assert routed.observation_rows == []
    return dict(orjson.loads(routed.messages[0][2]))


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        # Apache %b beyond 64 bits: passed parsing and stopped the worker in serialization
        (GOOD.replace(b" 512 ", b" " + b"9" * 30 + b" "), "out_of_range", "bytes_sent"),
        # 100,000 digits: refused before int() reads them
        (GOOD.replace(b" 512 ", b" " + b"1" * 100_000 + b" "), "oversized", None),
        # JSON integers beyond 64 bits (orjson reads them as floats)
        (
            b'{"source":{"ip":"198.51.100.7"},"url":{"original":"/"},"http":{"response":{"status_code":'
            + b"1" * 30
            + b"}}}",
            "out_of_range",
            "http.response.status_code",
        ),
        (
            b'{"source":{"ip":"198.51.100.7"},"url":{"original":"/"},"http":{"response":{"status_code":200,'
            b'"body":{"bytes":123456789012345678901234567890}}}}',
            "out_of_range",
            "http.response.body.bytes",
        ),
        (b'{"remote_addr":"198.51.100.7","status":"99999999999999999999999"}', "out_of_range", "status"),
        (b'{"remote_addr":"198.51.100.7","status":-1}', "out_of_range", "status"),
        (b'{"remote_addr":"198.51.100.7","bytes":1e300}', "out_of_range", "bytes"),
        (b'{"remote_addr":"198.51.100.7","bytes":Infinity}', "invalid_json", None),
    ],
)
def test_out_of_range_numbers_are_quarantined_with_a_reason(payload: bytes, reason: str, field: str | None) -> None:
    envelope = _quarantined(route_record(PROCESSOR, payload, SOURCE, SEALER))
    assert (envelope["reason"], envelope["field"]) == (reason, field)


def test_a_processor_that_raises_quarantines_the_record() -> None:
    def explode(raw: bytes, ingest: datetime) -> Outcome:
        raise RuntimeError("boom 198.51.100.7")

    envelope = _quarantined(route_record(explode, GOOD, SOURCE, SEALER))
    assert envelope["reason"] == "transform_failed"
    assert b"198.51.100.7" not in orjson.dumps(envelope)
    assert unseal(KEYRING, envelope["payload"], associated_data("logs.raw", 1, 7)) == GOOD  # nothing lost


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(Route.ANALYTICS, analytics=[{"bytes": 2**70}]),  # orjson refuses integers beyond 64 bits
        Outcome(Route.ANALYTICS, analytics=[{"x": object()}]),  # not serializable at all
        Outcome(Route.FILTERED, abuse=[{"subject": None}]),  # an abuse record without a usable key
        Outcome(Route.FILTERED, observations=[Observation("s-1", 1.0, "http", status=2**70)]),
    ],
)
def test_a_record_whose_outputs_cannot_be_serialized_is_quarantined(outcome: Outcome) -> None:
    """Serialization is inside the guarded path: it fails this record, never the poll."""
    envelope = _quarantined(route_record(lambda raw, ingest: outcome, GOOD, SOURCE, SEALER))
    assert envelope["reason"] == "transform_failed"


def test_a_good_record_yields_its_messages_and_rows() -> None:
    routed = route_record(PROCESSOR, GOOD, SOURCE, SEALER)
    assert routed.outcome.route is Route.ANALYTICS
    # The default policy holds analytics for the k-anonymous release: one row keyed by the unit's pseudonym.
    assert [output for output, _, _ in routed.messages] == [Output.RELEASE]
    _, key, value = routed.messages[0]
    assert key is not None
    assert key.decode() == routed.outcome.analytics[0]["client"]["pseudonym"]
    assert ReleaseRow.from_bytes(value).record == routed.outcome.analytics[0]
    assert [subject for subject, _ in routed.observation_rows] == [o.subject for o in routed.outcome.observations]


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.lists(st.lists(st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5), max_size=4), max_size=3),
        max_size=5,
    )
)
def test_an_observation_batch_assembled_from_rows_is_the_json_of_the_groups(groups: dict[str, Any]) -> None:
    rows = {subject: [orjson.dumps(row) for row in group] for subject, group in groups.items()}
    assert orjson.loads(observation_batch(rows)) == groups


# --- event ids ---------------------------------------------------------------------------------------------------

IDS = EventIds(KEYRING.event_id_key_material())
TWO_RULES = Outcome(
    Route.ANALYTICS,
    analytics=[{"schema": "analytics/1", "time": "2026-11-27T11:59:00Z"}],
    abuse=[
        {"schema": "abuse/1", "kind": "event", "rule": "http.sqli", "subject": "s-1"},
        {"schema": "abuse/1", "kind": "event", "rule": "http.xss", "subject": "s-1"},
    ],
)


def _ids(routed: Any) -> list[tuple[Output, str]]:
    return [(output, orjson.loads(value)["event_id"]) for output, _, value in routed.messages]


def test_every_output_record_carries_the_id_of_its_position_and_a_replay_repeats_it() -> None:
    process = lambda raw, ingest: TWO_RULES  # noqa: E731
    routed = route_record(process, GOOD, SOURCE, SEALER, IDS)
    assert _ids(routed) == [
        (Output.ANALYTICS, IDS.record("analytics", "logs.raw", 1, 7, 0)),
        (Output.ABUSE, IDS.record("abuse", "logs.raw", 1, 7, 0)),
        (Output.ABUSE, IDS.record("abuse", "logs.raw", 1, 7, 1)),  # the second rule's event: its own id
    ]
    assert len({event_id for _, event_id in _ids(routed)}) == 3
    assert route_record(process, GOOD, SOURCE, SEALER, IDS).messages == routed.messages  # a replay: the same bytes
    twin = route_record(process, GOOD, Source("logs.raw", 1, 8, INGEST), SEALER, IDS)  # the same line, next offset
    assert {i for _, i in _ids(twin)}.isdisjoint(i for _, i in _ids(routed))
    assert "event_id" not in TWO_RULES.analytics[0]  # the processor's records are left as they were


def test_a_quarantined_record_carries_an_id_whatever_sent_it_there() -> None:
    expected = IDS.record("quarantine", "logs.raw", 1, 7, 0)
    refused = route_record(PROCESSOR, b"not a log line", SOURCE, SEALER, IDS)
    assert _quarantined(refused)["event_id"] == expected

    def explode(raw: bytes, ingest: datetime) -> Outcome:
        raise RuntimeError("boom")

    assert _quarantined(route_record(explode, GOOD, SOURCE, SEALER, IDS))["event_id"] == expected


def test_a_release_row_carries_the_id_of_the_analytics_record_it_may_become() -> None:
    routed = route_record(PROCESSOR, GOOD, SOURCE, SEALER, IDS)
    ((output, _, value),) = routed.messages
    assert output is Output.RELEASE
    assert ReleaseRow.from_bytes(value).event_id == IDS.record("analytics", "logs.raw", 1, 7, 0)


def test_without_event_ids_records_carry_none() -> None:
    routed = route_record(lambda raw, ingest: TWO_RULES, GOOD, SOURCE, SEALER)
    assert all("event_id" not in orjson.loads(value) for _, _, value in routed.messages)


def test_an_alert_gets_the_id_of_its_rule_subject_and_time() -> None:
    alert = {"schema": "abuse/1", "kind": "alert", "rule": "ssh.bruteforce", "subject": "s-1", "time": "T"}
    assert alert_with_id(alert, IDS) == {**alert, "event_id": IDS.alert("ssh.bruteforce", "s-1", "T")}
    assert "event_id" not in alert
