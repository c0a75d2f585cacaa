"""The fault campaign's measures without a broker: its input, the alert comparison and the output gap.

The figures are measurements (``python -m benchmarks.faults``); tests/integration/test_faults.py runs a phase.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from benchmarks.faults import compare_alerts, garbage_record, output_gaps, traffic, traffic_start


def _message(
    value: bytes, timestamp_s: float = 0.0, partition: int = 0, offset: int = 0
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("t", partition, offset, int(timestamp_s * 1000), 0, None, value, None, 0, len(value), [])


def _alert(rule: str, subject: str, count: int, event_id: str) -> dict[str, Any]:
    return {"kind": "alert", "rule": rule, "subject": subject, "count": count, "time": "t", "event_id": event_id}


def test_garbage_is_one_non_empty_line() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        value = garbage_record(rng, b'203.0.113.9 - - [01/Jun/2025:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "x"')
        assert value
        assert b"\n" not in value
        assert b"\r" not in value


def test_traffic_is_in_event_time_order_and_garbage_alternates_with_good_records() -> None:
    start = datetime(2026, 3, 1, 10, tzinfo=UTC)
    good = traffic(300, seed=2, start=start, rate=100, garbage=False)
    mixed = traffic(300, seed=2, start=start, rate=100, garbage=True)
    assert [value for _, value in mixed[::2]] == [value for _, value in good]
    assert all(key is None for key, _ in mixed[1::2])
    assert all(b"\n" not in value for _, value in mixed)


def test_the_start_stays_in_the_current_year() -> None:
    """sshd lines take the ingest time's year: a start in another year would make their event times jump a year."""
    assert traffic_start(datetime(2026, 6, 5, 12, tzinfo=UTC)) == datetime(2026, 6, 3, 10, tzinfo=UTC)
    assert traffic_start(datetime(2026, 1, 1, 12, tzinfo=UTC)).year == 2026


def test_alerts_compare_once_per_event_id_and_name_false_missing_and_recounted() -> None:
    stream = [
        _alert("ssh.bruteforce", "s-a", 5, "id1"),
        _alert("ssh.bruteforce", "s-a", 5, "id1"),  # a repeat after a crash: same id, counted once
        _alert("http.probing", "s-b", 11, "id2"),  # the reference counted 12 for the same alert
        _alert("http.crawl", "s-c", 3, "id3"),  # the reference has none
    ]
    reference = [
        _alert("ssh.bruteforce", "s-a", 5, "id1"),
        _alert("http.probing", "s-b", 12, "id2"),
        _alert("http.scan", "s-d", 7, "id4"),
    ]
    result = compare_alerts([_message(orjson.dumps(a)) for a in stream], reference)
    assert result["alert_duplicates"] == 1
    assert result["alerts_stream"] == 3
    assert result["alerts_false_list"] == [["http.crawl", "s-c", 3, 1], ["http.probing", "s-b", 11, 1]]
    assert result["alerts_missing_list"] == [["http.probing", "s-b", 12, 1], ["http.scan", "s-d", 7, 1]]
    assert result["alerts_recounted"] == [["http.probing", "s-b", "t", 11, 12]]


def test_the_output_gap_is_the_longest_pause_and_each_fault_names_its_next_output() -> None:
    drained = {
        "release": [_message(b"r", t) for t in (100.0, 101.0, 109.5, 110.0)],
        "quarantine": [_message(b"q", 102.0)],
        # alerts are not the ingest's output: a late alert must not shorten the gap
        "abuse": [_message(b'{"kind":"alert"}', 105.0), _message(b'{"kind":"abuse"}', 100.5)],
    }
    gaps = output_gaps(drained, [("kill -9 #1", 103.0)])
    assert gaps["output_gap_s"] == 7.5
    assert gaps["after_fault"] == [{"fault": "kill -9 #1", "next_output_s": 6.5}]
