"""Event time across partitions: watermarks, partition alignment and each subject's reorder buffer.

The detector's results depend on the order in which one subject's observations are applied. A shipper such
as kcat writes a file to a topic in chunks, one partition after another, and a consumer reads one
partition's fetch before the next: the same source's events then arrive hours out of order, and a fixed
tolerance (the detector's ``max_out_of_order_s``) dropped most of a scanner's requests as late. This module
applies event time the way Flink and Kafka Streams do, in three pure parts shared by the stream worker and
the file mode:

* :class:`PartitionClocks` (the ingest, per input partition): each partition's event time is the latest
  observation time read from it; the ingest's **watermark** is the minimum over its partitions of that time
  less ``disorder_s`` (the out-of-order allowance within one partition), so it promises that every
  observation still to come from its partitions is newer. A partition that is caught up with its log end
  for ``idle_s`` stops holding the watermark back (Flink's idleness, Kafka Streams' ``max.task.idle.ms``).
  :meth:`PartitionClocks.ahead` names the partitions whose event time runs more than ``max_ahead_s``
  ahead of the slowest one: the ingest pauses them (Flink's watermark alignment), which also bounds what
  the reorder buffers hold.
* :class:`WriterWatermarks` (the detector, per observation partition): every ingest writes its watermark on
  each observation message; a partition's event time is the minimum over the writers heard from within
  ``idle_s`` (of message time, so a replayed backlog gives the same answer), never moving back.
* :class:`OrderedDetector` (per subject): observations wait in the subject's buffer, sorted by event time,
  until the watermark passes them, and are then applied to :class:`~transforms.detect.Detector` in that
  order (equal times in one canonical order, whatever their arrival). The buffer travels in the subject's
  state, with the **input position applied**: for each input partition the highest offset already taken in.
  A replay (the ingest re-reading an unacknowledged poll, the detector re-reading observation messages after
  a crash or a rebalance) is recognised by its positions and skipped, so each observation changes the state
  once.

Lateness that remains is counted per :class:`Lateness` reason.

Subject state (JSON; ``d`` is the detector's own state)::

    {"d": detector state or null, "p": [observation row, ...] (buffered, by time),
     "o": {input partition: highest offset taken in}, "w": event time released to, "m": latest event time}
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from transforms.detect import Detector
from transforms.model import Observation

__all__ = ["DueSubjects", "Lateness", "OrderedDetector", "PartitionClocks", "SubjectTable", "Tally", "WriterWatermarks"]

Row = list[Any]  # Observation.to_row(): the event time first
Entry = tuple[int | None, int | None, Row]  # (input partition, input offset, row); no position in the file mode
# "Before any event time" in a state: JSON has no infinity (orjson would write null).
_NEVER = -1e18


class Lateness(StrEnum):
    """Why an observation was not applied in event-time order (a metrics label)."""

    # It arrived after the watermark had passed its time (its partition was more than disorder_s out of
    # order, or it was idle and woke up behind the others): applied at once, out of order.
    AFTER_WATERMARK = "after_watermark"
    # The subject's buffer held max_buffered observations: the oldest were applied before the watermark.
    BUFFER_FULL = "buffer_full"
    # Older than the detector's max_out_of_order_s behind the subject's latest applied event: dropped.
    BEYOND_TOLERANCE = "beyond_tolerance"


@dataclass(slots=True)
class Tally:
    """What the calls of one batch did, for the caller's counters."""

    alerts: int = 0
    replayed: int = 0  # observations already taken in (their input position is applied): skipped
    failed: int = 0  # rows the detector could not read or raised on: skipped, the state kept
    late: Counter[Lateness] = field(default_factory=Counter)


def _time(row: Row) -> float:
    return float(row[0])


def _canonical(row: Row) -> tuple[float, bytes]:
    try:
        return _time(row), orjson.dumps(row)
    except (TypeError, ValueError, IndexError, orjson.JSONEncodeError):
        return math.inf, b""  # unreadable: counted as failed when it is applied


class OrderedDetector:
    """A subject's observations in event-time order, each applied once: a buffer and positions around a Detector."""

    __slots__ = ("_detector", "_horizon", "_max_buffered")

    def __init__(self, detector: Detector, *, max_buffered: int, replay_horizon_s: float) -> None:
        self._detector = detector
        self._max_buffered = max_buffered
        # How long (event time) a subject with nothing else left keeps its positions, so that a replay
        # arriving after its state drained is still recognised.
        self._horizon = replay_horizon_s

    def accept(self, state: dict[str, Any] | None, entries: Iterable[Entry], tally: Tally) -> dict[str, Any]:
        """Take one message's observations of a subject into its buffer; replayed positions are skipped.

        The positions of one message are checked against those applied before it: a record can yield
        several observations of one subject, all at one offset.
        """
        state = dict(state) if state else {"d": None, "p": [], "o": {}, "w": _NEVER, "m": _NEVER}
        applied: dict[str, int] = state["o"]
        positions = dict(applied)
        buffered: list[Row] = list(state["p"])
        released_to, latest = state["w"], state["m"]
        for partition, offset, row in entries:
            if offset is not None:
                key = str(partition)
                if offset <= applied.get(key, -1):
                    tally.replayed += 1
                    continue
                if offset > positions.get(key, -1):
                    positions[key] = offset
            try:
                time = _time(row)
                if not math.isfinite(time):
                    raise ValueError("event time is not finite")
            except (TypeError, ValueError, IndexError):
                tally.failed += 1
                continue
            if time < released_to:
                tally.late[Lateness.AFTER_WATERMARK] += 1
            bisect.insort_right(buffered, row, key=_time)  # stable: equal times keep their arrival order
            latest = max(latest, time)
        state.update(p=buffered, o=positions, m=latest)
        return state

    def release(
        self, subject: str, state: dict[str, Any], watermark: float, tally: Tally
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """Apply the buffered observations the watermark has passed, oldest first; (new state, alerts)."""
        buffered: list[Row] = state["p"]
        due = bisect.bisect_right(buffered, watermark, key=_time)
        overflow = len(buffered) - due - self._max_buffered
        if overflow > 0:
            due += overflow
            tally.late[Lateness.BUFFER_FULL] += overflow
        detector_state = state["d"]
        alerts: list[dict[str, Any]] = []
        if due:
            observations = []
            # Equal event times (a second is often all a log line says) are applied in one canonical order, not in
            # order of arrival: a source's records of one second written to several partitions then count alike
            # however they were partitioned (the fault campaign saw counts off by one).
            for row in sorted(buffered[:due], key=_canonical):
                try:
                    observations.append(Observation.from_row(subject, row))
                except (TypeError, ValueError):
                    tally.failed += 1
            if detector_state is not None:
                # Applied in time order, an observation is dropped as late only if it is older than the
                # tolerance behind what earlier releases applied (the ones before it in this call are older).
                cutoff = detector_state["t"] - self._detector.max_out_of_order_s
                tally.late[Lateness.BEYOND_TOLERANCE] += sum(1 for obs in observations if obs.time < cutoff)
            detector_state, alerts, failed = self._detector.observe(detector_state, observations)
            tally.failed += failed
            tally.alerts += len(alerts)
        released_to = max(state["w"], min(watermark, state["m"]))
        return self._kept({**state, "d": detector_state, "p": buffered[due:], "w": released_to}, watermark), alerts

    def expire(self, state: dict[str, Any], watermark: float) -> dict[str, Any] | None:
        """Release what is due, then prune the detector's state at ``watermark`` (the periodic sweep)."""
        detector_state = state["d"]
        if detector_state is not None and not state["p"]:
            detector_state = self._detector.expire(detector_state, watermark)
        return self._kept({**state, "d": detector_state}, watermark)

    def _kept(self, state: dict[str, Any], watermark: float) -> dict[str, Any] | None:
        """The state, or None once nothing is left: no detector state, no buffer, positions past the horizon."""
        if state["d"] is not None or state["p"]:
            return state
        if state["o"] and state["m"] >= watermark - self._horizon:
            return state
        return None

    @staticmethod
    def earliest(state: Mapping[str, Any] | None) -> float | None:
        """The event time of the subject's oldest buffered observation (None: nothing buffered)."""
        if not state or not state["p"]:
            return None
        return _time(state["p"][0])


@dataclass(slots=True)
class _Partition:
    high: float | None = None  # latest observation time read (records' own times)
    high_any: float | None = None  # the same, ingest times of records without a plausible time included
    read: bool = False  # records were read since the assignment
    assigned_at: float = 0.0  # wall time
    caught_up_since: float | None = None  # wall time since the partition has been at its log end
    lagging: bool = False  # records are known to wait in it


class PartitionClocks:
    """The ingest's event time per input partition: its watermark, and which partitions run ahead."""

    def __init__(self, *, disorder_s: float, max_ahead_s: float, idle_s: float) -> None:
        self._disorder = disorder_s
        self._max_ahead = max_ahead_s
        self._idle = idle_s
        self._partitions: dict[int, _Partition] = {}

    def assign(self, partitions: Iterable[int], now: float) -> None:
        for partition in partitions:
            self._partitions.setdefault(partition, _Partition(assigned_at=now))

    def revoke(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._partitions.pop(partition, None)

    @property
    def assigned(self) -> bool:
        return bool(self._partitions)

    def read(self, partition: int, latest_time: float | None, latest_any: float | None = None) -> None:
        """Records were read from ``partition``: ``latest_time`` is the latest of their observations' own times,
        ``latest_any`` the latest including times that are the ingest time of a record without a plausible one.

        Only records' own times move event time on: one record with a broken clock (its ingest time, days ahead
        of a replayed log) would otherwise pass the watermark over everything else (found by the fault campaign).
        """
        state = self._partitions.setdefault(partition, _Partition())
        state.read = True
        if latest_time is not None and (state.high is None or latest_time > state.high):
            state.high = latest_time
        latest_any = latest_time if latest_any is None else latest_any
        if latest_any is not None and (state.high_any is None or latest_any > state.high_any):
            state.high_any = latest_any

    def position(self, partition: int, *, at_end: bool | None, now: float) -> None:
        """Whether ``partition`` is caught up with its log end (nothing more to read right now); None: not known
        yet (no fetch has answered for it)."""
        state = self._partitions.get(partition)
        if state is None:
            return
        state.lagging = at_end is False
        if not at_end:
            state.caught_up_since = None
        elif state.caught_up_since is None:
            state.caught_up_since = now

    def _holding(self, now: float, *, reading: bool = False) -> tuple[list[float], bool]:
        """The event times of the partitions that hold the watermark back, and whether one blocks it unknown.

        ``reading``: those that hold the others' reading back. A partition at its log end does not: pausing the
        others would not make its records come sooner (measured: a backlog whose slowest partition ended first
        stalled for partition_idle_s, and the release stage closed its windows meanwhile).
        """
        highs: list[float] = []
        blocked = False
        for state in self._partitions.values():
            if state.caught_up_since is not None and (reading or now - state.caught_up_since >= self._idle):
                continue  # idle: it must not hold the others back
            if state.high is not None:
                highs.append(state.high)
            elif not state.read and (state.lagging or now - state.assigned_at < self._idle):
                # Not read yet, with records waiting (or not known yet): they may be the oldest of all. A slow
                # first fetch must not let the others run ahead (found on a loaded machine: 320 observations late).
                blocked = True
        return highs, blocked

    def watermark(self, now: float) -> float | None:
        """Event time the partitions have all passed, less the allowance (None: not known yet)."""
        highs, blocked = self._holding(now)
        if blocked:
            return None
        if highs:
            return min(highs) - self._disorder
        known = [state.high_any for state in self._partitions.values() if state.high_any is not None]
        # Every partition idle: everything read is final, release it all.
        return max(known) if known else None

    def ahead(self, now: float) -> set[int]:
        """The partitions to pause: their event time runs more than max_ahead_s ahead of the slowest."""
        highs, _ = self._holding(now, reading=True)
        if not highs:
            return set()
        bound = min(highs) + self._max_ahead
        return {p for p, state in self._partitions.items() if state.high is not None and state.high > bound}


@dataclass(slots=True)
class _Writer:
    watermark: float | None
    heard_at: float  # message time


class WriterWatermarks:
    """One observation partition's event time: the minimum over its writers' watermarks, never moving back.

    Times here are message times (the producer's timestamps), so a detector replaying a backlog reaches the
    decisions the live one reached. A writer not heard from for ``idle_s`` (a stopped or rebalanced ingest)
    no longer counts. After a (re)start the partition is held for ``idle_s`` of message time, long enough to
    hear every live writer (each writes at least every ``idle_s`` / 2): releasing on the first writer's word
    could pass observations a slower writer still holds.
    """

    def __init__(self, idle_s: float) -> None:
        self._idle = idle_s
        self._writers: dict[str, _Writer] = {}
        self._first: float | None = None
        self._latest = -math.inf
        self._released: float | None = None

    def heard(self, writer: str, watermark: float | None, at: float) -> None:
        if self._first is None:
            self._first = at
        self._latest = max(self._latest, at)
        self._writers[writer] = _Writer(watermark, at)

    def current(self) -> float | None:
        """The partition's watermark (None: not known yet)."""
        if self._first is None or self._latest - self._first < self._idle:
            return self._released
        live = [w.watermark for w in self._writers.values() if self._latest - w.heard_at <= self._idle]
        if live and None not in live:
            value = min(w for w in live if w is not None)
            if self._released is None or value > self._released:
                self._released = value
        # A writer that left is forgotten (it cannot come back under the same name: names are per process).
        self._writers = {name: w for name, w in self._writers.items() if self._latest - w.heard_at <= self._idle}
        return self._released


class DueSubjects:
    """Subjects with buffered observations, by their oldest one: whom to release when the watermark moves.

    A subject may be pushed several times (its oldest buffered time changes); :meth:`due` yields it once per
    call, and the caller pushes it again with whatever it still buffers.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, Any]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, subject: Any, earliest: float | None) -> None:
        if earliest is not None:
            heapq.heappush(self._heap, (earliest, subject))

    def due(self, watermark: float) -> list[Any]:
        """The subjects whose oldest buffered observation the watermark has passed (removed from the index)."""
        heap = self._heap
        seen: dict[Any, None] = {}  # a dict keeps the order of their oldest times
        while heap and heap[0][0] <= watermark:
            seen[heapq.heappop(heap)[1]] = None
        return list(seen)


class SubjectTable:
    """Subjects' states in a dict with the index of what they buffer: the file mode's stand-in for the stream's
    changelogged table (pipeline/detector.py keeps the same index over its store)."""

    def __init__(self, ordered: OrderedDetector) -> None:
        self._ordered = ordered
        self._states: dict[str, dict[str, Any]] = {}
        self._due = DueSubjects()

    def accept(self, subject: str, entries: Iterable[Entry], tally: Tally) -> None:
        self._states[subject] = state = self._ordered.accept(self._states.get(subject), entries, tally)
        self._due.push(subject, OrderedDetector.earliest(state))

    def release(self, watermark: float, tally: Tally) -> list[dict[str, Any]]:
        """Apply what the watermark has passed, subject by subject; the alerts, drained subjects dropped."""
        alerts: list[dict[str, Any]] = []
        for subject in self._due.due(watermark):
            state, fired = self._ordered.release(subject, self._states[subject], watermark, tally)
            if state is None:
                del self._states[subject]
            else:
                self._states[subject] = state
                self._due.push(subject, OrderedDetector.earliest(state))
            alerts += fired
        return alerts
