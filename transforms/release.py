"""k-anonymous per-record release and k-suppressed aggregates over event-time windows (pure; shared by both modes).

Why: a daily pseudonym hides an address, not a person. The analytics records themselves (prefix, geo, browser,
paths, times) re-linked 90 % of returning visitors across days and singled out most visitors within a day
(issue 9). The unit of protection is what one released pseudonym links. So:

* **Pseudonyms live one window.** With the release on, every analytics pseudonym is re-keyed per event-time
  window (``window_s``, an hour by default): a unit (the policy's ``unit`` field, the source address by
  default) links one window of records, never more.
* **One profile per unit-window, shared by k units.** Every other released field is a quasi-identifier with a
  generalization hierarchy (:mod:`transforms.hierarchy`). Within a window, all records of a unit carry the
  same generalized values (each field at the finest level where the unit's own records agree, and at least
  the window's global level), and that tuple is shared by at least ``k`` units. The global levels are
  searched top-down (full-domain global recoding, as ARX does, by top-down specialization): lower the field
  that splits the units into the most classes while at most ``max_suppression`` of the window's records
  would be suppressed.
  Units still in classes below k are then tried at the top of every hierarchy (one shared, nearly empty
  profile); what cannot reach k even there is suppressed from the per-record release, never from the counts.
* **Aggregates** (hour and day tumbling windows by default) count every analytics record, suppressed or not:
  pageviews and distinct daily visitors in total and per dimension, cells below k distinct visitors suppressed;
  optionally with differential privacy (``analytics.aggregates.dp``: bounding and noise, :mod:`transforms.noise`).

**Event ids.** Each released record carries the ``event_id`` of the row it stands for (``ReleaseRow.event_id``,
given by the routing): one opaque keyed hash of one input position per record, so it links nothing within or
across windows. Records of one unit that release identically are ordered by id, not by arrival. Aggregate rows get
an id of what they are (the stage's ``scope``, the window and the cell) under the same key.

Windows are closed by event time: a window ``[start, end)`` closes when the stage has seen a record at or
after ``end + max_delay_s`` (or when the caller closes it: end of input in the file mode, an idle input in the
stream). A record that arrives for a closed release window is *late*: it is counted in ``late`` and in the
suppressed records, never released on its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from transforms.event_id import EventIds
from transforms.hierarchy import HIERARCHIES, Hierarchy
from transforms.noise import DifferentialPrivacy, SetNoise, add_noise, bound_contributions, build_window_noise

ANALYTICS_RELEASE_SCHEMA = "analytics/2"
AGGREGATE_SCHEMA = "aggregate/1"
_SORTED = orjson.OPT_SORT_KEYS

Dimension = Literal["path", "country", "browser", "device", "referrer_host", "status_class"]
_DIMENSIONS: tuple[Dimension, ...] = ("path", "country", "browser", "device", "referrer_host", "status_class")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AggregateParams(_Frozen):
    """``analytics.aggregates``: tumbling windows, the dimension sets counted in each, and optional DP."""

    enabled: bool = True
    windows_s: list[int] = Field(default_factory=lambda: [3600, 86_400], min_length=1)
    dimensions: list[list[Dimension]] = Field(default_factory=lambda: [[d] for d in _DIMENSIONS])
    # Differential privacy per window (transforms/noise.py); None: exact counts.
    dp: DifferentialPrivacy | None = None

    @model_validator(mode="after")
    def _windows_fit(self) -> AggregateParams:
        for size in self.windows_s:
            if size < 60 or 86_400 % size:
                raise ValueError(f"aggregate window {size} s must divide a day (60 s at least)")
        return self


class ReleaseParams(_Frozen):
    """``analytics.release``: k, the window, and what each released analytics field is."""

    enabled: bool = True
    k: int = Field(5, ge=2, le=1000)
    window_s: int = Field(3600, ge=60, le=86_400)
    # Event-time lateness a window waits for after its end before it is generalized and released.
    max_delay_s: float = Field(300.0, ge=0, le=86_400)
    # Share of its records a pass of the level search may leave in classes below k, for the next pass.
    max_leftover: float = Field(0.3, ge=0, le=1)
    # The released pseudonym whose records form one profile (the unit k counts), and every other one.
    unit: str = "client.pseudonym"
    links: list[str] = Field(default_factory=lambda: ["client.pseudonym", "client.visitor"])
    # Released field -> hierarchy name (transforms.hierarchy.HIERARCHIES).
    quasi_identifiers: dict[str, str] = Field(default_factory=dict)
    # Released field -> why it is not a quasi-identifier (kept as is, per record).
    not_quasi_identifiers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> ReleaseParams:
        if 86_400 % self.window_s:
            raise ValueError("window_s must divide a day (pseudonym epochs are days)")
        if self.unit not in self.links:
            raise ValueError(f"unit {self.unit!r} must be one of links {self.links}")
        for name, hierarchy in self.quasi_identifiers.items():
            if hierarchy not in HIERARCHIES:
                valid = ", ".join(sorted(HIERARCHIES))
                raise ValueError(f"quasi_identifiers.{name}: unknown hierarchy {hierarchy!r}; valid: {valid}")
        for name, reason in self.not_quasi_identifiers.items():
            if len(reason.strip()) < 10:
                raise ValueError(f"not_quasi_identifiers.{name}: give the reason it cannot single anyone out")
        return self

    def check_fields(self, released: list[str]) -> None:
        """Every released field is exactly one of link, quasi-identifier or declared non-identifying."""
        kinds: dict[str, list[str]] = defaultdict(list)
        for name in self.links:
            kinds[name].append("links")
        for name in self.quasi_identifiers:
            kinds[name].append("quasi_identifiers")
        for name in self.not_quasi_identifiers:
            kinds[name].append("not_quasi_identifiers")
        unknown = sorted(set(kinds) - set(released))
        if unknown:
            raise ValueError(f"release names field(s) the analytics output does not have: {', '.join(unknown)}")
        unclassified = [name for name in released if name not in kinds]
        if unclassified:
            raise ValueError(
                f"analytics field(s) {', '.join(unclassified)} not classified for the release: every released field is "
                "a quasi-identifier (quasi_identifiers), a link, or not_quasi_identifiers with a reason"
            )
        twice = sorted(name for name, where in kinds.items() if len(where) > 1)
        if twice:
            raise ValueError(f"field(s) classified more than once: {', '.join(twice)}")


@dataclass(frozen=True, slots=True)
class ReleaseRow:
    """One analytics record on its way to the release: as built by the policy (pseudonyms window-lived)."""

    record: dict[str, Any]
    visitor: str  # the *daily* visitor pseudonym: counted in aggregates, never released
    time: float  # event time, Unix seconds
    unit: str | None = None  # the unit's pseudonym: the stream keys the row by it (one unit, one partition)
    # The id the released analytics record carries (transforms.event_id; set by the routing). None: a row written
    # before event ids existed, released without one.
    event_id: str | None = None

    def to_bytes(self) -> bytes:
        row: dict[str, Any] = {"r": self.record, "v": self.visitor, "t": self.time}
        if self.event_id is not None:
            row["e"] = self.event_id
        return orjson.dumps(row)

    @classmethod
    def from_bytes(cls, value: bytes) -> ReleaseRow:
        row = orjson.loads(value)
        if not isinstance(row, dict) or not isinstance(row.get("r"), dict) or not isinstance(row.get("v"), str):
            raise ValueError("release row: not a release row")
        time = row.get("t")
        if not isinstance(time, int | float) or not 0 <= time < 1e11:
            raise ValueError("release row: time out of range")
        event_id = row.get("e")
        if event_id is not None and not isinstance(event_id, str):
            raise ValueError("release row: event id is not a string")
        return cls(row["r"], row["v"], float(time), event_id=event_id)

    @classmethod
    def of(cls, record: dict[str, Any], visitor: str, time: float, unit_field: str) -> ReleaseRow:
        unit = _get(record, tuple(unit_field.split(".")))
        return cls(record, visitor, time, unit if isinstance(unit, str) else None)


def _get(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = record
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _getter(path: tuple[str, ...]) -> Callable[[dict[str, Any]], Any]:
    """``_get`` for one fixed path, built once: the release reads about twenty fields of every row."""
    if len(path) == 1:
        (key,) = path
        return lambda record: record.get(key)
    if len(path) == 2:
        outer, inner = path

        def get_two(record: dict[str, Any]) -> Any:
            value = record.get(outer)
            return value.get(inner) if isinstance(value, dict) else None

        return get_two
    return lambda record: _get(record, path)


def _put(record: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    if value is None:
        return
    target = record
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class _Unit:
    refs: list[Any]  # each quasi-identifier's value in the unit's first record
    levels: list[int]  # each quasi-identifier's finest level at which all the unit's records agree
    # (other links, non-QI values) -> the event id of each of the unit's records with them
    variants: dict[bytes, list[str | None]] = field(default_factory=dict)
    records: int = 0


@dataclass(frozen=True, slots=True)
class WindowStats:
    """What one closed release window did: the figures the worker exports and the summary counts."""

    start: float
    end: float
    units: int
    records: int
    released: int
    suppressed: int
    min_k: int | None  # smallest class released (None: nothing released)
    levels: dict[str, int]  # the level the first (largest) pass chose per quasi-identifier


@dataclass(slots=True)
class ClosedWindow:
    kind: Literal["analytics", "aggregates"]
    records: list[dict[str, Any]]  # released analytics records or aggregate rows, in a deterministic order
    stats: WindowStats | None = None  # release windows only


class _ReleaseWindow:
    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.units: dict[str, _Unit] = {}


class _Aggregates:
    """Each daily visitor's pageviews per cell of one tumbling window (what exact counts and DP bounding need)."""

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.cells: dict[tuple[int, tuple[Any, ...]], dict[str, int]] = {}


def _status_class(record: dict[str, Any]) -> Any:
    status = _get(record, ("http", "status"))
    return f"{status // 100}xx" if isinstance(status, int) else None


# How each aggregate dimension reads a record (as built by the policy, before generalization).
_DIMENSION_VALUES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "path": lambda record: _get(record, ("http", "url", "path")),
    "country": _getter(("geo", "country")),
    "browser": _getter(("user_agent", "browser")),
    "device": _getter(("user_agent", "device")),
    "referrer_host": _getter(("http", "referrer_host")),
    "status_class": _status_class,
}


class ReleaseStage:
    """The windows of one stream partition (or of the whole input in the file mode). Build once, feed rows.

    ``event_ids`` keys the aggregate rows' ids, ``scope`` tells apart the stages whose aggregates could share a
    window and cell (the stream's release partition; the file mode's one stage is 0, as the stream's only
    partition by default). Without ``event_ids`` aggregate rows carry no id.
    """

    def __init__(
        self, release: ReleaseParams, aggregates: AggregateParams, *, event_ids: EventIds | None = None, scope: int = 0
    ) -> None:
        self.params = release
        self.aggregate_params = aggregates
        self._event_ids = event_ids
        self._scope = scope
        self._qi: list[tuple[str, tuple[str, ...], Hierarchy]] = [
            (name, tuple(name.split(".")), HIERARCHIES[h]) for name, h in release.quasi_identifiers.items()
        ]
        self._unit_path = tuple(release.unit.split("."))
        self._unit_getter = _getter(self._unit_path)
        self._qi_getters = [_getter(path) for _, path, _ in self._qi]
        self._qi_hierarchies = [h for _, _, h in self._qi]
        self._variant_paths = [tuple(n.split(".")) for n in release.links if n != release.unit] + [
            tuple(n.split(".")) for n in release.not_quasi_identifiers
        ]
        self._variant_getters = [_getter(path) for path in self._variant_paths]
        self._dimension_getters = [[_DIMENSION_VALUES[d] for d in dims] for dims in aggregates.dimensions]
        # Every window size a row belongs to (the stream asks per row, for where its place in the topic is kept).
        self._window_sizes = sorted({release.window_s, *(aggregates.windows_s if aggregates.enabled else ())})
        self._release: dict[float, _ReleaseWindow] = {}
        self._aggregates: dict[tuple[int, float], _Aggregates] = {}
        self.max_time = 0.0  # the latest event time seen: what closes windows
        self.closed_through = 0.0  # release windows ending at or before this are closed
        self._aggregate_closed: dict[int, float] = dict.fromkeys(aggregates.windows_s, 0.0)
        self._noise: list[SetNoise] | None = (
            build_window_noise(aggregates.dp, len(aggregates.dimensions), release.k)
            if aggregates.dp is not None
            else None
        )
        self.late = 0

    # --- input -----------------------------------------------------------------------------------------------
    def add(self, row: ReleaseRow, *, count_late: bool = True) -> bool:
        """Add one record; False when its release window is already closed (late: counted, not released).

        ``count_late`` False: a row read again after a restart, whose closed windows are already out.
        """
        time = row.time
        # A window is due once event time has passed its end by the allowed delay, closed or not yet: lateness
        # is decided in arrival order, never by when the caller last closed windows (the stream closes once a
        # poll, the file mode once a line; deciding by "closed" made one row late in one and not the other).
        due = self.max_time - self.params.max_delay_s
        if time > self.max_time:
            self.max_time = time
        if self.aggregate_params.enabled:
            self._count(row, due)
        size = self.params.window_s
        start = float(int(time // size) * size)
        if start + size <= self.closed_through or start + size <= due:
            self.late += count_late
            return False
        window = self._release.get(start)
        if window is None:
            window = self._release[start] = _ReleaseWindow(start, start + size)
        self._add_to_window(window, row.record, row.event_id)
        return True

    def _add_to_window(self, window: _ReleaseWindow, record: dict[str, Any], event_id: str | None) -> None:
        unit_value = self._unit_getter(record)
        key = unit_value if isinstance(unit_value, str) else "\x00none"
        values = [get(record) for get in self._qi_getters]
        unit = window.units.get(key)
        if unit is None:
            unit = window.units[key] = _Unit(values, [0] * len(values))
        else:
            levels, refs = unit.levels, unit.refs
            for i, hierarchy in enumerate(self._qi_hierarchies):
                level, ref, value = levels[i], refs[i], values[i]
                if value == ref or level == hierarchy.top:
                    continue  # most of a unit's records repeat its first values: nothing to compare
                gen = hierarchy.generalize
                while level < hierarchy.top and gen(ref, level) != gen(value, level):
                    level += 1
                levels[i] = level
        variant = orjson.dumps([get(record) for get in self._variant_getters])
        ids = unit.variants.get(variant)
        if ids is None:
            unit.variants[variant] = [event_id]
        else:
            ids.append(event_id)
        unit.records += 1

    def _count(self, row: ReleaseRow, due: float) -> None:
        keys = None
        visitor = row.visitor
        for size in self.aggregate_params.windows_s:
            start = float(int(row.time // size) * size)
            if start + size <= self._aggregate_closed[size] or start + size <= due:
                continue  # that aggregate window is (or is due to be) out: counted as late by the release side only
            window = self._aggregates.get((size, start))
            if window is None:
                window = self._aggregates[(size, start)] = _Aggregates(start, start + size)
            if keys is None:
                record = row.record
                keys = [(0, ())] + [
                    (index, tuple(get(record) for get in getters))
                    for index, getters in enumerate(self._dimension_getters, 1)
                ]
            cells = window.cells
            for key in keys:
                slot = cells.get(key)
                if slot is None:
                    slot = cells[key] = {}
                slot[visitor] = slot.get(visitor, 0) + 1

    # --- where the stream keeps its place ----------------------------------------------------------------------
    def windows_of(self, time: float) -> list[tuple[int, float]]:
        """(size, start) of every window, release and aggregate, that a row of this time belongs to."""
        return [(size, float(int(time // size) * size)) for size in self._window_sizes]

    def open_windows(self) -> set[tuple[int, float]]:
        size = self.params.window_s
        return {(size, start) for start in self._release} | set(self._aggregates)

    def closed_state(self) -> tuple[float, dict[int, float]]:
        """How far the windows are closed: restored after a restart so that nothing is released twice."""
        return self.closed_through, dict(self._aggregate_closed)

    def restore(self, closed_through: float, aggregates_closed: dict[int, float]) -> None:
        self.closed_through = closed_through
        for size, end in aggregates_closed.items():
            if size in self._aggregate_closed:
                self._aggregate_closed[size] = end

    # --- closing ---------------------------------------------------------------------------------------------
    def due(self) -> float:
        """Windows ending at or before this are due (event time: the latest seen less the allowed delay)."""
        return self.max_time - self.params.max_delay_s

    def close_due(self, until: float | None = None) -> list[ClosedWindow]:
        """Close every window that ends at or before ``until`` (default: :meth:`due`), oldest first."""
        limit = self.due() if until is None else until
        closed: list[tuple[float, int, ClosedWindow]] = []
        for start in sorted(self._release):
            window = self._release[start]
            if window.end > limit:
                break
            del self._release[start]
            self.closed_through = max(self.closed_through, window.end)
            closed.append((window.end, 0, self._generalize(window)))
        for key in sorted(self._aggregates, key=lambda k: (self._aggregates[k].end, k[0])):
            aggregate = self._aggregates[key]
            if aggregate.end > limit:
                continue
            del self._aggregates[key]
            self._aggregate_closed[key[0]] = max(self._aggregate_closed[key[0]], aggregate.end)
            closed.append((aggregate.end, 1, self._aggregate_rows(aggregate)))
        closed.sort(key=lambda item: (item[0], item[1]))
        return [window for _, _, window in closed]

    def close_all(self) -> list[ClosedWindow]:
        return self.close_due(float("inf"))

    @property
    def open_records(self) -> int:
        return sum(u.records for w in self._release.values() for u in w.units.values())

    # --- the k-anonymous release of one window ----------------------------------------------------------------
    def _generalize(self, window: _ReleaseWindow) -> ClosedWindow:
        k = self.params.k
        names = [name for name, _, _ in self._qi]
        hierarchies = [h for _, _, h in self._qi]
        units = sorted(window.units.items())
        total = sum(u.records for _, u in units)
        # Per unit, field and level: the generalized value and its canonical bytes (the grouping key).
        memo: list[list[dict[int, bytes]]] = [[{} for _ in hierarchies] for _ in units]

        def key_of(index: int, unit: _Unit, field_index: int, level: int) -> bytes:
            level = max(level, unit.levels[field_index])
            cached = memo[index][field_index].get(level)
            if cached is None:
                value = hierarchies[field_index].generalize(unit.refs[field_index], level)
                cached = memo[index][field_index][level] = orjson.dumps(value, option=_SORTED)
            return cached

        def key_at(index: int, levels: list[int]) -> tuple[bytes, ...]:
            unit = units[index][1]
            return tuple(key_of(index, unit, f, level) for f, level in enumerate(levels))

        def refine(groups: list[list[int]], f: int, level: int) -> list[list[int]]:
            """The classes after lowering field ``f`` to ``level``: each class splits by that field alone (the
            other fields already agree within it), so a trial costs one key per unit, not one per field."""
            out: list[list[int]] = []
            for members in groups:
                if len(members) < k:
                    out.append(members)  # below k it stays below k however it splits: left to the next pass
                    continue
                split: dict[bytes, list[int]] = defaultdict(list)
                for i in members:
                    split[key_of(i, units[i][1], f, level)].append(i)
                out.extend(split.values())
            return out

        def below_k(groups: list[list[int]]) -> int:
            return sum(units[i][1].records for members in groups if len(members) < k for i in members)

        def specialize(members: list[int]) -> tuple[list[int], list[list[int]]]:
            """Top-down specialization (Fung, Wang and Yu's TDS) of one pass: start with every field at its top,
            lower one level at a time the field that splits the members into the most classes of k while at
            most ``max_leftover`` of their records stay in classes below k, until no field can be lowered.
            (A bottom-up search, Datafly's, was tried first: with every field unique at level 0 no single raise
            helped, and it dropped fields that need not have been.)"""
            budget = self.params.max_leftover * sum(units[i][1].records for i in members)
            levels = [h.top for h in hierarchies]
            top_groups: dict[tuple[bytes, ...], list[int]] = defaultdict(list)
            for i in members:  # units whose own records disagree below the top differ even at the top
                top_groups[key_at(i, levels)].append(i)
            groups = list(top_groups.values())
            while True:
                best: tuple[int, int, int, int] | None = None  # (classes of k, -left over, -field, field)
                best_groups = groups
                for f in range(len(hierarchies)):
                    if levels[f] == 0:
                        continue
                    trial_groups = refine(groups, f, levels[f] - 1)
                    lost = below_k(trial_groups)
                    if lost > budget:
                        continue
                    candidate = (sum(1 for m in trial_groups if len(m) >= k), -lost, -f, f)
                    if best is None or candidate > best:
                        best, best_groups = candidate, trial_groups
                if best is None:
                    return levels, groups
                levels[best[3]] -= 1
                groups = best_groups

        # Passes: the units a pass leaves in classes below k go to the next pass, which specializes them on
        # their own (coarser where they are rare); what no pass places is tried at the top of every hierarchy
        # with whatever already sits there, and suppressed if even that class stays below k. Every class a pass
        # keeps holds at least k units, and classes of different passes can only merge (same values), never split.
        assigned: dict[int, tuple[bytes, ...]] = {}
        remaining = list(range(len(units)))
        first_levels: list[int] | None = None
        while len(remaining) >= k:
            levels, groups = specialize(remaining)
            first_levels = first_levels or levels
            left = [i for members in groups if len(members) < k for i in members]
            if len(left) == len(remaining):
                break
            for members in groups:
                if len(members) >= k:
                    key = key_at(members[0], levels)  # the same for every member of the class
                    for i in members:
                        assigned[i] = key
            remaining = left
        top = [h.top for h in hierarchies]
        for index in remaining:
            assigned[index] = key_at(index, top)
        final: dict[tuple[bytes, ...], list[int]] = defaultdict(list)
        for index, key in assigned.items():
            final[key].append(index)

        released: list[dict[str, Any]] = []
        released_count = 0
        min_k: int | None = None
        for class_key in sorted(final):
            members = sorted(final[class_key])  # units in id order: the output does not depend on the search
            if len(members) < k:
                continue
            min_k = len(members) if min_k is None else min(min_k, len(members))
            for i in members:
                unit_id, unit = units[i]
                base: dict[str, Any] = {"schema": ANALYTICS_RELEASE_SCHEMA}
                for (_, path, _), value in zip(self._qi, class_key, strict=True):
                    _put(base, path, orjson.loads(value))
                if unit_id != "\x00none":
                    _put(base, self._unit_path, unit_id)
                for variant_bytes, ids in sorted(unit.variants.items()):
                    record = orjson.loads(orjson.dumps(base))  # an independent copy per variant
                    for path, value in zip(self._variant_paths, orjson.loads(variant_bytes), strict=True):
                        _put(record, path, value)
                    # The records of a variant differ only by id: ordered by it, so arrival order shows nowhere.
                    for event_id in sorted(ids, key=_id_order):
                        released.append(record if event_id is None else {**record, "event_id": event_id})
                    released_count += len(ids)
        stats = WindowStats(
            start=window.start,
            end=window.end,
            units=len(units),
            records=total,
            released=released_count,
            suppressed=total - released_count,
            min_k=min_k,
            levels=dict(zip(names, first_levels or [h.top for h in hierarchies], strict=True)),
        )
        return ClosedWindow("analytics", released, stats)

    # --- aggregates ------------------------------------------------------------------------------------------
    def _aggregate_counts(self, window: _Aggregates) -> dict[tuple[int, tuple[Any, ...]], tuple[int, int]]:
        """(pageviews, visitors) per cell before suppression: exact, or bounded per visitor with DP (pre-noise)."""
        dp = self.aggregate_params.dp
        if dp is None:
            return {cell: (sum(visitors.values()), len(visitors)) for cell, visitors in window.cells.items()}
        return bound_contributions(window.cells, dp.max_pageviews, dp.max_cells)

    def _aggregate_rows(self, window: _Aggregates) -> ClosedWindow:
        k = self.params.k
        dimension_sets = [(), *self.aggregate_params.dimensions]
        span = {"start": _iso(window.start), "end": _iso(window.end)}
        noise = self._noise
        counts = self._aggregate_counts(window)
        if noise is not None:
            # Noise, and with it the selection of the dimension cells: OpenDP's threshold (at least k) applies to the
            # noisy visitor count (transforms/noise.py says why).
            counts = add_noise(counts, noise)
        rows = []
        for (index, cell), (pageviews, visitors) in sorted(counts.items(), key=_cell_order):
            if index and visitors < k:
                continue  # a cell of fewer than k visitors says something about each of them
            row: dict[str, Any] = {
                "schema": AGGREGATE_SCHEMA,
                "window": span,
                "dimensions": dict(zip(dimension_sets[index], cell, strict=True)),
                "pageviews": pageviews,
                "visitors": visitors,
            }
            if noise is not None:
                row["noise"] = noise[index].describe()
            if self._event_ids is not None:
                # What the row is, not what it counts: a window released twice (noisy or not) has the same ids.
                row["event_id"] = self._event_ids.aggregate(self._scope, span["start"], span["end"], row["dimensions"])
            rows.append(row)
        return ClosedWindow("aggregates", rows)


def _id_order(event_id: str | None) -> str:
    return event_id or ""


def _cell_order(item: tuple[tuple[int, tuple[Any, ...]], Any]) -> tuple[int, bytes]:
    (index, cell), _ = item
    return index, orjson.dumps(cell)


def release_rows(rows: Iterable[ReleaseRow], stage: ReleaseStage) -> Iterator[ClosedWindow]:
    """Feed rows in order, yielding windows as they close, then the rest at the end (the file mode's loop)."""
    for row in rows:
        stage.add(row)
        yield from stage.close_due()
    yield from stage.close_all()
