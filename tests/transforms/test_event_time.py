"""Event time across partitions (transforms/event_time.py): clocks, watermarks and each subject's ordered buffer."""

from __future__ import annotations

import random
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.detect import DetectionParams, Detector
from transforms.event_time import DueSubjects, Lateness, OrderedDetector, PartitionClocks, Tally, WriterWatermarks
from transforms.model import Observation

DETECTOR = Detector.build(DetectionParams())
T0 = 1_700_000_000.0


def _ordered(max_buffered: int = 10_000) -> OrderedDetector:
    return OrderedDetector(DETECTOR, max_buffered=max_buffered, replay_horizon_s=3600)


def _failed_login(second: float, subject: str = "s-a") -> Observation:
    return Observation(subject, T0 + second, "ssh", ("ssh.auth_failed",), ssh_outcome="failed")


def _row(observation: Observation) -> list[Any]:
    return orjson.loads(orjson.dumps(observation.to_row()))  # as it travels on the observation topic


def _alerts_in_time_order(observations: list[Observation]) -> list[tuple[str, str, int]]:
    state: dict[str, Any] | None = None
    fired: list[tuple[str, str, int]] = []
    for observation in sorted(observations, key=lambda o: o.time):
        state, alerts = DETECTOR(state, observation)
        fired += [(a["rule"], a["subject"], a["count"]) for a in alerts]
    return sorted(fired)


def test_observations_wait_for_the_watermark_and_are_applied_in_event_time_order() -> None:
    ordered, tally = _ordered(), Tally()
    # Six failures in six seconds, arriving newest first: the detector must still see a burst in order.
    entries = [(0, offset, _row(_failed_login(second))) for offset, second in enumerate(range(5, -1, -1))]
    state = ordered.accept(None, entries, tally)
    assert OrderedDetector.earliest(state) == T0
    held, alerts = ordered.release("s-a", state, T0 - 1, tally)
    assert alerts == []
    assert held is not None
    assert len(held["p"]) == 6  # the watermark has passed none of them
    released, alerts = ordered.release("s-a", held, T0 + 10, tally)
    assert sorted((a["rule"], a["count"]) for a in alerts) == [("ssh.bruteforce", 6), ("ssh.persistent_bruteforce", 5)]
    assert released is not None
    assert released["p"] == []
    assert sum(tally.late.values()) == 0
    assert tally.alerts == 2


def test_a_replayed_position_changes_nothing() -> None:
    ordered, tally = _ordered(), Tally()
    entries = [(2, 100 + n, _row(_failed_login(n))) for n in range(3)]
    state = ordered.accept(None, entries, tally)
    again = ordered.accept(state, entries, tally)  # the same message read twice (a crash, a rebalance)
    assert again["p"] == state["p"]
    assert tally.replayed == 3
    # A record's several observations share one offset: taken in together, all count.
    two = ordered.accept(again, [(2, 103, _row(_failed_login(4))), (2, 103, _row(_failed_login(4)))], tally)
    assert len(two["p"]) == 5
    # Positions are per input partition: the same offset of another partition is new.
    other = ordered.accept(two, [(1, 100, _row(_failed_login(5)))], tally)
    assert len(other["p"]) == 6
    assert other["o"] == {"2": 103, "1": 100}


def test_positions_outlive_the_detector_state_for_the_replay_horizon() -> None:
    ordered, tally = _ordered(), Tally()
    state = ordered.accept(None, [(0, 7, _row(Observation("s-a", T0, "ssh", ssh_outcome="accepted")))], tally)
    kept, _ = ordered.release("s-a", state, T0 + 1, tally)
    assert kept is not None
    assert kept["d"] is None
    assert kept["o"] == {"0": 7}  # nothing to detect, positions kept
    assert ordered.accept(kept, [(0, 7, _row(Observation("s-a", T0, "ssh", ssh_outcome="accepted")))], tally)["p"] == []
    assert ordered.expire(kept, T0 + 3601) is None  # past the horizon the subject is gone


def test_lateness_is_counted_per_reason() -> None:
    ordered, tally = _ordered(max_buffered=2), Tally()
    state = ordered.accept(None, [(None, None, _row(_failed_login(n))) for n in (10, 11, 12, 13)], tally)
    state, _ = ordered.release("s-a", state, T0 + 5, tally)  # nothing due, but only 2 may wait
    assert state is not None
    assert tally.late[Lateness.BUFFER_FULL] == 2
    assert len(state["p"]) == 2
    state, _ = ordered.release("s-a", state, T0 + 20, tally)
    assert state is not None
    state = ordered.accept(state, [(None, None, _row(_failed_login(1)))], tally)  # behind what was released
    assert tally.late[Lateness.AFTER_WATERMARK] == 1
    state = ordered.accept(state, [(None, None, _row(_failed_login(-600)))], tally)
    ordered.release("s-a", state, T0 + 20, tally)
    assert tally.late[Lateness.BEYOND_TOLERANCE] == 1  # 600 s behind: the detector's tolerance drops it


def test_a_row_the_detector_cannot_read_is_counted_not_raised() -> None:
    ordered, tally = _ordered(), Tally()
    state = ordered.accept(None, [(None, None, ["soon", "http"]), (None, None, [T0, "http", [], "GET"])], tally)
    assert tally.failed == 1
    ordered.release("s-a", state, T0 + 1, tally)
    assert tally.failed == 2  # the second row has the wrong shape


def test_partition_clocks_hold_the_watermark_at_the_slowest_partition_and_pause_the_fast_ones() -> None:
    clocks = PartitionClocks(disorder_s=5, max_ahead_s=60, idle_s=2)
    clocks.assign([0, 1, 2], now=0)
    assert clocks.watermark(now=0) is None  # nothing read yet: the first records may be the oldest
    clocks.read(0, T0)
    clocks.read(1, T0 + 1000)
    assert clocks.watermark(now=1) is None  # partition 2 not read yet
    clocks.read(2, T0 + 30)
    assert clocks.watermark(now=1) == T0 - 5
    assert clocks.ahead(now=1) == {1}
    for partition in (0, 2):
        clocks.position(partition, at_end=True, now=1)
    assert clocks.watermark(now=2) == T0 - 5  # caught up, but not yet idle for idle_s
    assert clocks.ahead(now=2) == set()  # but nothing waits in them: the others read on
    assert clocks.watermark(now=3.5) == T0 + 1000 - 5
    assert clocks.ahead(now=3.5) == set()
    clocks.position(1, at_end=True, now=4)
    assert clocks.watermark(now=6) == T0 + 1000  # every partition idle: everything read is final
    clocks.revoke([0, 1, 2])
    assert not clocks.assigned


def test_a_partition_never_read_stops_blocking_after_idle_s() -> None:
    clocks = PartitionClocks(disorder_s=0, max_ahead_s=60, idle_s=2)
    clocks.assign([0, 1], now=0)
    clocks.read(0, T0)
    assert clocks.watermark(now=1) is None
    assert clocks.watermark(now=2) == T0


def test_writer_watermarks_take_the_slowest_live_writer_and_never_move_back() -> None:
    clock = WriterWatermarks(idle_s=5)
    clock.heard("a", T0 + 100, at=0)
    clock.heard("b", T0 + 10, at=1)
    assert clock.current() is None  # held for idle_s after the start: every live writer must be heard
    clock.heard("a", T0 + 200, at=5)
    assert clock.current() == T0 + 10
    clock.heard("a", T0 + 300, at=7)  # b last heard at 1: gone after idle_s
    assert clock.current() == T0 + 300
    clock.heard("c", T0 + 50, at=8)  # a newcomer behind: the watermark does not move back
    assert clock.current() == T0 + 300
    clock.heard("d", None, at=9)  # a writer that knows no time yet holds it
    clock.heard("a", T0 + 400, at=9)
    assert clock.current() == T0 + 300


def test_due_subjects_yields_each_subject_once_in_time_order() -> None:
    due = DueSubjects()
    for subject, earliest in (("b", 5.0), ("a", 1.0), ("b", 2.0), ("c", 9.0), ("d", None)):
        due.push(subject, earliest)
    assert due.due(5.0) == ["a", "b"]
    assert due.due(5.0) == []
    assert len(due) == 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(["s-a", "s-b", "s-c"]), min_size=20, max_size=120),
    st.integers(0, 2**32),
    st.integers(2, 5),
)
def test_chunked_partitions_read_in_any_interleaving_give_the_alerts_of_time_order(
    subjects: list[str], seed: int, partitions: int
) -> None:
    """The stream's situation, without Kafka: a time-ordered log written to partitions in chunks (as kcat does),
    read fetch by fetch in a random interleaving that follows the clocks' pausing; observations go to one
    OrderedDetector per subject with the ingest's watermark. The alerts equal those of time-ordered application."""
    rng = random.Random(seed)
    observations = [_failed_login(n * rng.choice((0.5, 1, 3, 40)), subject) for n, subject in enumerate(subjects)]
    observations.sort(key=lambda o: o.time)
    chunks: dict[int, list[tuple[int, Observation]]] = {p: [] for p in range(partitions)}
    chunk = 0
    for start in range(0, len(observations), 8):
        chunk = rng.randrange(partitions)
        for observation in observations[start : start + 8]:
            chunks[chunk].append((len(chunks[chunk]), observation))
    clocks = PartitionClocks(disorder_s=0, max_ahead_s=30, idle_s=1)
    clocks.assign(range(partitions), now=0)
    ordered, tally, due = _ordered(), Tally(), DueSubjects()
    states: dict[str, dict[str, Any] | None] = {}
    fired: list[tuple[str, str, int]] = []
    now, positions = 0.0, dict.fromkeys(range(partitions), 0)
    while any(positions[p] < len(chunks[p]) for p in range(partitions)):
        now += 0.1
        ahead = clocks.ahead(now)
        readable = [p for p in range(partitions) if positions[p] < len(chunks[p]) and p not in ahead]
        if not readable:
            continue  # the slowest partition is at its end, not yet idle: wait (as the ingest does)
        partition = rng.choice(readable)
        fetch = chunks[partition][positions[partition] : positions[partition] + rng.randint(1, 6)]
        positions[partition] += len(fetch)
        clocks.read(partition, max(o.time for _, o in fetch))
        for p in range(partitions):
            clocks.position(p, at_end=positions[p] >= len(chunks[p]), now=now)
        for offset, observation in fetch:
            subject = observation.subject
            states[subject] = state = ordered.accept(
                states.get(subject), [(partition, offset, _row(observation))], tally
            )
            due.push(subject, OrderedDetector.earliest(state))
        watermark = clocks.watermark(now)
        if watermark is not None:
            for subject in due.due(watermark):
                states[subject], alerts = ordered.release(subject, states[subject] or {}, watermark, tally)
                due.push(subject, OrderedDetector.earliest(states[subject]))
                fired += [(a["rule"], a["subject"], a["count"]) for a in alerts]
    for subject in due.due(float("inf")):
        states[subject], alerts = ordered.release(subject, states[subject] or {}, float("inf"), tally)
        fired += [(a["rule"], a["subject"], a["count"]) for a in alerts]
    expected = sorted(
        alert
        for subject in set(subjects)
        for alert in _alerts_in_time_order([o for o in observations if o.subject == subject])
    )
    assert sorted(fired) == expected
    assert sum(tally.late.values()) == 0


def test_a_partition_with_records_waiting_blocks_until_it_is_read() -> None:
    clocks = PartitionClocks(disorder_s=0, max_ahead_s=60, idle_s=2)
    clocks.assign([0, 1], now=0)
    clocks.read(0, T0)
    clocks.position(1, at_end=False, now=0)  # its log end is known to lie ahead: its first fetch is slow
    assert clocks.watermark(now=10) is None
    clocks.read(1, T0 - 50)
    assert clocks.watermark(now=10) == T0 - 50


def test_equal_event_times_are_applied_in_one_order_whatever_their_arrival() -> None:
    # One second, one source: a 404 probe and failed logins, arriving in two orders (two partitions).
    rows = [_row(Observation("s-a", T0, "http", method="GET", status=404, path=f"/p{n}")) for n in range(12)]
    rows += [_row(Observation("s-a", T0, "http", method="GET", status=200, path="/")) for _ in range(3)]
    results = []
    for order in (rows, rows[::-1], rows[3:] + rows[:3]):
        ordered, tally = _ordered(), Tally()
        state = ordered.accept(None, [(None, None, row) for row in order], tally)
        kept, alerts = ordered.release("s-a", state, T0 + 10, tally)
        results.append((orjson.dumps(alerts), orjson.dumps(kept)))
    assert results[0] == results[1] == results[2]


def test_a_record_without_its_own_time_does_not_move_event_time() -> None:
    clocks = PartitionClocks(disorder_s=0, max_ahead_s=60, idle_s=1)
    clocks.assign([0], now=0)
    clocks.read(0, T0, T0 + 86_400)  # one record dated by its ingest time, a day ahead of the log
    assert clocks.watermark(now=0.5) == T0
    clocks.position(0, at_end=True, now=0.5)
    assert clocks.watermark(now=2) == T0 + 86_400  # at the end everything read is released, that one too
