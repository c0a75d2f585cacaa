"""The privacy report: what an analyst, or an insider holding both outputs, can learn from a release.

Pure functions from iterables of released records (analytics, abuse, aggregate rows) to a report dict,
and a text renderer, in the spirit of ARX's risk analysis. Nothing here holds keys: every measure uses
only what the audience receives, except the optional :class:`GroundTruth` a benchmark passes in to say
which of the attacks' links are right.

Terms. A *window* is the lifetime of the released linking pseudonyms (an hour in ``analytics/2``, a day
in ``analytics/1``): records are grouped by their released time truncated to it. A *unit* is one value
of the unit field in one window (the policy's unit of protection: ``client.pseudonym`` in
``analytics/2``, ``client.visitor`` in ``analytics/1``). A unit's *profile* is the sorted set of the
quasi-identifier (QI) tuples of its records; its *k* is the number of units of its window with the same
profile. Every released field is a QI except the linking pseudonyms and ``schema``.

The same code reads the old release (``analytics/1``) and the new one, so a before/after table compares
like with like: window and unit are parameters.
"""

from __future__ import annotations

import ipaddress
import re
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from transforms.hierarchy import HIERARCHIES, Hierarchy

# Values that link records to each other; never quasi-identifiers (see the analytics/2 contract).
LINK_FIELDS = frozenset({"client.pseudonym", "client.visitor", "user"})
# Released as one value although they are objects: their keys are generalized together.
COMPOUND_FIELDS = frozenset({"geo", "user_agent", "http.url"})
# Not data about anyone: the schema, and the event id (a keyed hash of one input position, unique per record by
# design: as a quasi-identifier it would make every record "unique" and every profile k = 1).
NOT_RELEASED_DATA = frozenset({"schema", "event_id"})
# Histogram buckets of k: (label, lowest k in the bucket).
K_BUCKETS = (("1", 1), ("2", 2), ("3-4", 3), ("5-9", 5), ("10-19", 10), ("20+", 20))
# Buckets of the abuse join's candidate counts.
CANDIDATE_BUCKETS = (("0", 0), ("1", 1), ("2-4", 2), ("5+", 5))
LINK_ATTACKS = {
    "prefix": "the released prefix alone",
    "device": "country + ASN + browser/major + OS + device",
    "device_paths": "country + ASN + browser/major + OS + device, ties broken by path overlap",
    # The same fingerprints, but the attacker commits to a link only when exactly one earlier unit matches:
    # "found" then means singled out, as in the before-figures, not "guessed among many".
    "prefix_unique": "the released prefix alone, only where it matches one earlier unit",
    "device_unique": "country + ASN + browser/major + OS + device, only where it matches one earlier unit",
}
REPORT_SCHEMA = "privacy-report/1"
_DEVICE_FIELDS = (
    ("geo", "country"),
    ("geo", "asn"),
    ("user_agent", "browser"),
    ("user_agent", "browser_major"),
    ("user_agent", "os"),
    ("user_agent", "device"),
)


# --- generalization levels -----------------------------------------------------------------------------

# The hierarchy of each analytics field as config/policy.toml names it (``analytics.release.quasi_identifiers``);
# a field not named here reads as kept or dropped. A caller holding the policy passes its own map.
DEFAULT_HIERARCHIES: Mapping[str, str] = {
    "time": "time",
    "client.prefix": "ip_prefix",
    "geo": "geo",
    "http.url": "url",
    "http.status": "status",
    "http.bytes": "size",
    "http.referrer_host": "domain",
    "user_agent": "user_agent",
}
LEVEL_NAMES: Mapping[str, tuple[str, ...]] = {
    "keep_or_drop": ("kept", "dropped"),
    "ip_prefix": ("/24 (/48)", "/16 (/32)", "/8 (/16)", "dropped"),
    "geo": ("with ASN", "region", "country", "dropped"),
    "user_agent": ("browser+major", "browser, OS", "device", "bot flag", "dropped"),
    "url": ("path+query", "path", "first segment", "dropped"),
    "time": ("minute", "hour", "day"),
    "status": ("code", "class", "dropped"),
    "size": ("bytes", "range", "dropped"),
    "domain": ("host", "registered domain", "dropped"),
}
# Width of a released time at each level of the "time" hierarchy.
TIME_LEVEL_S = (60.0, 3600.0, 86400.0)


def hierarchy_of(name: str, hierarchies: Mapping[str, str] = DEFAULT_HIERARCHIES) -> Hierarchy:
    """The generalization hierarchy of a released field (``keep_or_drop`` where none is named)."""
    return HIERARCHIES[hierarchies.get(name, "keep_or_drop")]


def level_names(hierarchy: Hierarchy) -> tuple[str, ...]:
    names = LEVEL_NAMES.get(hierarchy.name)
    return names if names and len(names) == hierarchy.levels else tuple(f"level {i}" for i in range(hierarchy.levels))


# --- reading a release -----------------------------------------------------------------------------------


def get_field(record: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted path, or None where any part is missing."""
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def released_fields(record: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the QI fields a record carries: compound objects count as one field."""
    names = []
    for key, value in record.items():
        name = prefix + key
        if name in LINK_FIELDS or name in NOT_RELEASED_DATA or value is None:
            continue
        if isinstance(value, dict) and name not in COMPOUND_FIELDS:
            names.extend(released_fields(value, name + "."))
        else:
            names.append(name)
    return names


_TRUNCATED = {10: ("%Y-%m-%d", 86400.0), 13: ("%Y-%m-%dT%H", 3600.0), 16: ("%Y-%m-%dT%H:%M", 60.0)}


@lru_cache(maxsize=65_536)
def time_span(text: str, granularity_s: float | None = None) -> tuple[float, float] | None:
    """The [start, end) Unix seconds a released time stands for; None if unreadable.

    A full timestamp is as wide as ``granularity_s`` when the caller knows it (``analytics/1`` truncates to
    the minute), else as wide as the coarsest level its text allows (``10:00:00Z`` reads as an hour: a
    record of minute 00 counts wider than it is, the analyst's side of the doubt).
    """
    if not isinstance(text, str):
        return None
    core = text.removesuffix("Z").removesuffix("+00:00")
    try:
        if len(core) in _TRUNCATED:
            fmt, width = _TRUNCATED[len(core)]
            start = datetime.strptime(core, fmt).replace(tzinfo=UTC)
        else:
            start = datetime.fromisoformat(text.replace("Z", "+00:00"))
            start = start if start.tzinfo else start.replace(tzinfo=UTC)
            if granularity_s is not None:
                width = granularity_s
            elif start.second or start.microsecond:
                width = 1.0
            else:
                width = TIME_LEVEL_S[min(HIERARCHIES["time"].level_of(text), len(TIME_LEVEL_S) - 1)]
    except ValueError:
        return None
    return start.timestamp(), start.timestamp() + width


@lru_cache(maxsize=65_536)
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _canonical(value: Any) -> Hashable:
    if isinstance(value, dict | list):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return value


@dataclass
class Unit:
    """One unit of protection in one window: its released records and what the attacks read of them."""

    window: int
    value: str
    records: list[Mapping[str, Any]] = field(default_factory=list)
    tuples: list[tuple[Hashable, ...]] = field(default_factory=list)

    @property
    def profile(self) -> tuple[tuple[Hashable, ...], ...]:
        return tuple(sorted(set(self.tuples), key=repr))


@dataclass
class Release:
    """A per-record release grouped into windows and units (built once; every measure reads it)."""

    unit_field: str
    window_s: int
    quasi_identifiers: tuple[str, ...]
    windows: dict[int, list[Unit]]
    records: int
    time_granularity_s: float | None = None
    hierarchies: Mapping[str, str] = field(default_factory=lambda: DEFAULT_HIERARCHIES)

    @classmethod
    def read(
        cls,
        analytics: Iterable[Mapping[str, Any]],
        *,
        unit: str,
        window_s: int,
        quasi_identifiers: Sequence[str] | None = None,
        hierarchies: Mapping[str, str] = DEFAULT_HIERARCHIES,
        time_granularity_s: float | None = None,
    ) -> Release:
        """Group records by window (released time truncated to ``window_s``) and unit.

        A unit belongs to the window of its earliest record, so one pseudonym is never split. A record
        without the unit field (or without a readable time) is a unit of its own: nothing links it.
        ``quasi_identifiers`` defaults to every released field but the links; ``hierarchies`` names each
        field's hierarchy (the policy's map); ``time_granularity_s`` is the width of a full timestamp when
        known (see :func:`time_span`).
        """
        records = list(analytics)
        names = tuple(quasi_identifiers) if quasi_identifiers is not None else _all_fields(records)
        by_value: dict[str, Unit] = {}
        loose = 0
        for record in records:
            value = get_field(record, unit)
            if value is None:
                loose += 1
                value = f"\x00record-{loose}"  # not a pseudonym: cannot meet a released one
            span = _span(record.get("time"), time_granularity_s)
            window = int(span[0] // window_s) if span else -1
            found = by_value.get(value)
            if found is None:
                found = by_value[value] = Unit(window, value)
            elif window != -1 and (found.window == -1 or window < found.window):
                found.window = window
            found.records.append(record)
            found.tuples.append(tuple(_canonical(get_field(record, name)) for name in names))
        windows: dict[int, list[Unit]] = defaultdict(list)
        for item in by_value.values():
            windows[item.window].append(item)
        grouped = dict(sorted(windows.items()))
        return cls(unit, window_s, names, grouped, len(records), time_granularity_s, hierarchies)

    def units(self) -> Iterable[Unit]:
        for units in self.windows.values():
            yield from units


def _span(value: Any, granularity_s: float | None) -> tuple[float, float] | None:
    return time_span(value, granularity_s) if isinstance(value, str) else None


def _all_fields(records: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for record in records:
        for name in released_fields(record):
            seen.setdefault(name, None)
    return tuple(sorted(seen))


# --- measures --------------------------------------------------------------------------------------------


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def k_distribution(release: Release, fields: Sequence[str] | None = None) -> dict[str, Any]:
    """k of every unit's profile in its window (on ``fields`` only when given, else on every QI)."""
    if fields is None:
        profile_of: Callable[[Unit], Hashable] = lambda u: u.profile  # noqa: E731
    else:
        index = [release.quasi_identifiers.index(f) for f in fields if f in release.quasi_identifiers]
        missing = [f for f in fields if f not in release.quasi_identifiers]

        def profile_of(u: Unit) -> Hashable:
            picked = {tuple(t[i] for i in index) for t in u.tuples}
            return (tuple(sorted(picked, key=repr)), tuple(missing))

    ks: list[tuple[int, int]] = []  # (k, records of the unit)
    for units in release.windows.values():
        profiles = [profile_of(u) for u in units]
        counts = Counter(profiles)
        ks.extend((counts[p], len(u.records)) for p, u in zip(profiles, units, strict=True))
    units_total = len(ks)
    records_total = sum(n for _, n in ks)
    histogram = {}
    for position, (label, low) in enumerate(K_BUCKETS):
        high = K_BUCKETS[position + 1][1] if position + 1 < len(K_BUCKETS) else None
        histogram[label] = sum(1 for k, _ in ks if k >= low and (high is None or k < high))

    def below(bound: int) -> dict[str, float | None]:
        return {
            "units": _share(sum(1 for k, _ in ks if k < bound), units_total),
            "records": _share(sum(n for k, n in ks if k < bound), records_total),
        }

    return {
        "fields": list(fields) if fields is not None else "all",
        "windows": len(release.windows),
        "units": units_total,
        "records": records_total,
        "min_k": min((k for k, _ in ks), default=None),
        "k1": below(2),
        "k_below_5": below(5),
        "k_below_10": below(10),
        "histogram": histogram,
    }


def tuple_uniqueness(release: Release) -> dict[str, Any]:
    """Share of records whose QI tuple is held by a single unit of their window."""
    unique = 0
    for units in release.windows.values():
        holders: dict[tuple[Hashable, ...], set[str]] = defaultdict(set)
        for u in units:
            for t in u.tuples:
                holders[t].add(u.value)
        unique += sum(1 for u in units for t in u.tuples if len(holders[t]) == 1)
    return {"records": release.records, "unique": unique, "share": _share(unique, release.records)}


def level_shares(release: Release, summary: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Per QI field, the share of released records at each generalization level; and the suppressed share.

    Levels are read back from the values (``Hierarchy.level_of``): where a coarser level looks like a finer
    one (a URL without a query, a host that is its own registered domain) the hierarchy decides.
    """
    fields: dict[str, dict[str, float | None]] = {}
    for name in release.quasi_identifiers:
        hierarchy = hierarchy_of(name, release.hierarchies)
        counts: Counter[int] = Counter()
        for u in release.units():
            for record in u.records:
                counts[hierarchy.level_of(get_field(record, name))] += 1
        names = level_names(hierarchy)
        fields[name] = {label: _share(counts[i], release.records) for i, label in enumerate(names)}
    suppressed = released = None
    if summary is not None:
        suppressed = summary.get("analytics_suppressed")
        released = summary.get("analytics")
    return {
        "fields": fields,
        "suppressed": suppressed,
        "analytics": released,
        "suppressed_share": _share(suppressed, released) if isinstance(suppressed, int) and released else None,
    }


@dataclass(frozen=True)
class GroundTruth:
    """What only the benchmark knows (from the raw log and the keys), to score the attacks.

    ``identity`` maps a released unit value to the true identity the attacker wants to re-link (human
    visitors only: units missing from it are candidates but are not scored). ``source`` maps a released
    unit value to its source address, ``abuse_source`` an abuse ``subject`` to its source address.
    """

    identity: Mapping[str, Hashable]
    source: Mapping[str, str] = field(default_factory=dict)
    abuse_source: Mapping[str, str] = field(default_factory=dict)


def _prefix_fingerprint(u: Unit) -> Hashable | None:
    prefixes = frozenset(p for r in u.records if (p := get_field(r, "client.prefix")) is not None)
    return prefixes or None


def _device_fingerprint(u: Unit) -> Hashable | None:
    seen = set()
    for r in u.records:
        values = tuple(_canonical((r.get(top) or {}).get(leaf)) for top, leaf in _DEVICE_FIELDS)
        if any(v is not None for v in values):
            seen.add(values)
    return frozenset(seen) or None


def _paths(u: Unit) -> frozenset[str]:
    return frozenset(p for r in u.records if isinstance(p := get_field(r, "http.url.path"), str))


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def _link(attack: str, u: Unit, pool: list[Unit], paths: Mapping[str, frozenset[str]]) -> list[Unit]:
    """The candidates an attack links ``u`` to (several: a random pick among them; none: no link)."""
    if attack.endswith("_unique"):
        return pool if len(pool) == 1 else []
    if attack != "device_paths" or len(pool) < 2:
        return pool
    scores = [_jaccard(paths[u.value], paths[c.value]) for c in pool]
    best = max(scores)
    chosen = [c for score, c in zip(scores, pool, strict=True) if score == best]
    return chosen if len(chosen) == 1 else []


def linking_attacks(release: Release, truth: GroundTruth | None = None) -> dict[str, Any]:
    """Re-link units of a later window to units of an earlier one by identical fingerprints, pooled over pairs.

    ``prefix`` and ``device`` link to any unit with the same fingerprint (a random pick: the expected
    share right is 1/candidates when the true unit is among them, and that expectation is what is
    scored); ``device_paths`` links only where one candidate has a strictly best path overlap. With
    ground truth: ``found`` is the share of returning scored units (their identity has a unit in the
    earlier window) that get a link, ``right`` the share of the scored units' links that are correct, and
    ``relinked`` the share of returning scored units linked to their own earlier unit (expected, as right).
    """
    windows = [w for w in release.windows if w != -1]
    indexes: dict[str, dict[int, dict[Hashable, list[Unit]]]] = {}
    for name, fingerprint in (("prefix", _prefix_fingerprint), ("device", _device_fingerprint)):
        indexes[name] = {}
        for w in windows:
            index: dict[Hashable, list[Unit]] = defaultdict(list)
            for u in release.windows[w]:
                fp = fingerprint(u)
                if fp is not None:
                    index[fp].append(u)
            indexes[name][w] = index
    identity = truth.identity if truth is not None else {}
    present = {w: {identity[u.value] for u in release.windows[w] if u.value in identity} for w in windows}
    paths = {u.value: _paths(u) for w in windows for u in release.windows[w]}
    results = {}
    for attack, description in LINK_ATTACKS.items():
        by_fingerprint = indexes["prefix" if attack.startswith("prefix") else "device"]
        tally: Counter[str] = Counter()
        right = 0.0
        for position, b in enumerate(windows):
            for a in windows[:position]:
                for fp, later in by_fingerprint[b].items():
                    pool = by_fingerprint[a].get(fp, [])
                    for u in later:
                        chosen = _link(attack, u, pool, paths) if pool else []
                        tally["links"] += bool(chosen)
                        tally["candidates"] += len(chosen)
                        if u.value not in identity:
                            continue
                        me = identity[u.value]
                        returning = me in present[a]
                        tally["returning"] += returning
                        if chosen:
                            tally["scored_links"] += 1
                            tally["found"] += returning
                            right += sum(identity.get(c.value) == me for c in chosen) / len(chosen)
                tally["tried"] += sum(len(v) for v in by_fingerprint[b].values())
        results[attack] = {
            "description": description,
            "window_pairs": len(windows) * (len(windows) - 1) // 2,
            "tried": tally["tried"],
            "links": tally["links"],
            "mean_candidates": _share(tally["candidates"], tally["links"]),
            "returning": tally["returning"] if truth else None,
            "found": _share(tally["found"], tally["returning"]) if truth else None,
            "scored_links": tally["scored_links"] if truth else None,
            "right": _share(right, tally["scored_links"]) if truth else None,
            "relinked": _share(right, tally["returning"]) if truth else None,
        }
    return results


@lru_cache(maxsize=4096)
def _path_matcher(released: str) -> Callable[[str], bool]:
    if "*" not in released:
        return released.__eq__
    pattern = re.compile(".*".join(re.escape(part) for part in released.split("*")), re.DOTALL)
    return lambda path: pattern.fullmatch(path) is not None


def _status_consistent(released: Any, status: Any) -> bool:
    if isinstance(released, int):
        return released == status
    text = str(released)
    if text.endswith("xx"):
        return str(status).startswith(text[:-2])
    if "-" in text:  # a range bucket
        low, _, high = text.partition("-")
        return low.isdigit() and high.isdigit() and int(low) <= int(status) <= int(high)
    return text == str(status)


def _dict_consistent(released: Any, known: Any, ignore: frozenset[str] = frozenset({"db"})) -> bool:
    """Every key the release keeps agrees with the abuse side's value, where the abuse side has one."""
    if not isinstance(released, dict) or not isinstance(known, dict):
        return True
    return all(
        key in ignore or value is None or known.get(key) is None or known[key] == value
        for key, value in released.items()
    )


@dataclass(frozen=True, slots=True)
class _Joinable:
    start: float
    end: float
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    record: Mapping[str, Any]
    unit: str


def _consistent(row: _Joinable, event: Mapping[str, Any]) -> bool:
    source = event.get("source") or {}
    detail = event.get("event") or {}
    prefix = source.get("prefix")
    if row.network is not None and isinstance(prefix, str):
        theirs = _network(prefix)
        if theirs is None or theirs.version != row.network.version or not theirs.subnet_of(row.network):  # type: ignore[arg-type]
            return False
    http = row.record.get("http") or {}
    method = http.get("method")
    if method is not None and detail.get("method") is not None and method != detail["method"]:
        return False
    path = get_field(http, "url.path")
    theirs_path = get_field(detail, "url.path")
    if isinstance(path, str) and isinstance(theirs_path, str) and not _path_matcher(path)(theirs_path):
        return False
    status = http.get("status")
    if status is not None and detail.get("status") is not None and not _status_consistent(status, detail["status"]):
        return False
    return _dict_consistent(row.record.get("geo"), source.get("geo")) and _dict_consistent(
        row.record.get("user_agent"), detail.get("user_agent")
    )


def abuse_join(
    release: Release, abuse: Iterable[Mapping[str, Any]], truth: GroundTruth | None = None
) -> dict[str, Any]:
    """For each abuse event, the analytics units whose released records are consistent with its fields.

    Consistent: the event's time lies in a record's released time span, its prefix inside the released
    prefix, and its method, path (or the released pattern), status (or class), country/ASN and
    user-agent parts equal the released ones; a field absent on either side constrains nothing.
    """
    rows = []
    for u in release.units():
        for record in u.records:
            span = _span(record.get("time"), release.time_granularity_s)
            prefix = get_field(record, "client.prefix")
            network = _network(prefix) if isinstance(prefix, str) else None
            start, end = span if span else (float("-inf"), float("inf"))
            rows.append(_Joinable(start, end, network, record, u.value))
    rows.sort(key=lambda r: r.start)
    starts = [r.start for r in rows]
    widest = max((r.end - r.start for r in rows if r.end != float("inf")), default=0.0)
    untimed = [r for r in rows if r.start == float("-inf")]
    counts: list[int] = []
    unique_right = 0
    for event in abuse:
        if event.get("kind") != "event":
            continue
        span = _span(event.get("time"), 1.0)
        if span is None:
            window = rows
        else:
            moment = span[0]
            window = untimed + rows[bisect_left(starts, moment - widest) : bisect_right(starts, moment)]
            window = [r for r in window if r.start <= moment < r.end]
        candidates = {r.unit for r in window if _consistent(r, event)}
        counts.append(len(candidates))
        if truth is not None and len(candidates) == 1:
            (only,) = candidates
            source = truth.abuse_source.get(str(event.get("subject")))
            unique_right += source is not None and truth.source.get(only) == source
    histogram = {}
    for position, (label, low) in enumerate(CANDIDATE_BUCKETS):
        high = CANDIDATE_BUCKETS[position + 1][1] if position + 1 < len(CANDIDATE_BUCKETS) else None
        histogram[label] = sum(1 for c in counts if c >= low and (high is None or c < high))
    exactly_one = sum(1 for c in counts if c == 1)
    return {
        "events": len(counts),
        "candidates": histogram,
        "exactly_one": exactly_one,
        "exactly_one_share": _share(exactly_one, len(counts)),
        "exactly_one_right": unique_right if truth is not None else None,
        "median_candidates": sorted(counts)[len(counts) // 2] if counts else None,
    }


def single_unit_cells(release: Release) -> dict[str, Any]:
    """The (released time, released prefix) cells that hold one unit only: one known visit singles it out."""
    cells: dict[tuple[Hashable, Hashable], set[str]] = defaultdict(set)
    records: Counter[tuple[Hashable, Hashable]] = Counter()
    for u in release.units():
        for record in u.records:
            cell = (_canonical(record.get("time")), _canonical(get_field(record, "client.prefix")))
            cells[cell].add(u.value)
            records[cell] += 1
    single = [c for c, units in cells.items() if len(units) == 1]
    return {
        "cells": len(cells),
        "single_unit": len(single),
        "share": _share(len(single), len(cells)),
        "records_share": _share(sum(records[c] for c in single), release.records),
    }


def aggregate_check(rows: Iterable[Mapping[str, Any]], k: int) -> dict[str, Any]:
    """What the aggregate release holds: rows per window length, its smallest cell, cells below k."""
    lengths: Counter[str] = Counter()
    smallest: int | None = None
    below = noisy = total = 0
    for row in rows:
        total += 1
        window = row.get("window") or {}
        start, end = time_span(str(window.get("start"))), time_span(str(window.get("end")))
        lengths[f"{(end[0] - start[0]) / 3600:g} h" if start and end else "?"] += 1
        noisy += "noise" in row
        if row.get("dimensions"):
            visitors = row.get("visitors")
            if isinstance(visitors, int | float):
                smallest = int(visitors) if smallest is None else min(smallest, int(visitors))
                below += visitors < k and "noise" not in row
    return {"rows": total, "windows": dict(lengths), "smallest_cell": smallest, "cells_below_k": below, "noisy": noisy}


def privacy_report(
    analytics: Iterable[Mapping[str, Any]],
    abuse: Iterable[Mapping[str, Any]] = (),
    aggregates: Iterable[Mapping[str, Any]] = (),
    summary: Mapping[str, Any] | None = None,
    *,
    unit: str = "client.pseudonym",
    window_s: int = 3600,
    k: int = 5,
    quasi_identifiers: Sequence[str] | None = None,
    hierarchies: Mapping[str, str] = DEFAULT_HIERARCHIES,
    time_granularity_s: float | None = None,
    truth: GroundTruth | None = None,
) -> dict[str, Any]:
    """The whole report (a JSON-ready dict) for one release (see :meth:`Release.read` for the options)."""
    release = Release.read(
        analytics,
        unit=unit,
        window_s=window_s,
        quasi_identifiers=quasi_identifiers,
        hierarchies=hierarchies,
        time_granularity_s=time_granularity_s,
    )
    return {
        "schema": REPORT_SCHEMA,
        "unit": unit,
        "window_s": window_s,
        "k": k,
        "records": release.records,
        "units": sum(len(units) for units in release.windows.values()),
        "windows": len(release.windows),
        "quasi_identifiers": list(release.quasi_identifiers),
        "k_distribution": k_distribution(release),
        "uniqueness": tuple_uniqueness(release),
        "levels": level_shares(release, summary),
        "linking": linking_attacks(release, truth),
        "abuse_join": abuse_join(release, abuse, truth),
        "single_unit_cells": single_unit_cells(release),
        "aggregates": aggregate_check(aggregates, k),
    }


# --- rendering ---------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render_report(report: Mapping[str, Any]) -> str:
    """The report as text, one section per measure (what `pseudonymizer privacy-report` prints)."""
    kd, uq, lv = report["k_distribution"], report["uniqueness"], report["levels"]
    lines = [
        f"privacy report: {report['records']} records, {report['units']} units ({report['unit']}), "
        f"{report['windows']} windows of {report['window_s']} s; target k = {report['k']}",
        "",
        "k of unit profiles (all released quasi-identifiers):",
        f"  min k {kd['min_k']}; k = 1: {_pct(kd['k1']['units'])} of units ({_pct(kd['k1']['records'])} of records);"
        f" k < 5: {_pct(kd['k_below_5']['units'])} ({_pct(kd['k_below_5']['records'])});"
        f" k < 10: {_pct(kd['k_below_10']['units'])} ({_pct(kd['k_below_10']['records'])})",
        "  histogram (units): " + ", ".join(f"k {label}: {n}" for label, n in kd["histogram"].items()),
        f"QI tuples held by one unit of their window: {_pct(uq['share'])} of records",
        "",
        "generalization levels (share of released records):",
    ]
    for name, shares in lv["fields"].items():
        lines.append(f"  {name:20} " + ", ".join(f"{label} {_pct(s)}" for label, s in shares.items() if s))
    if lv["suppressed"] is not None:
        lines.append(f"  suppressed: {lv['suppressed']} of {lv['analytics']} records ({_pct(lv['suppressed_share'])})")
    lines += ["", "cross-window linking attacks (pooled over window pairs):"]
    for name, result in report["linking"].items():
        line = (
            f"  {name:13} {result['links']} links of {result['tried']} tried over {result['window_pairs']} pairs, "
            f"{result['mean_candidates'] or 0:.1f} candidates per link"
        )
        if result["found"] is not None or result["right"] is not None:
            line += (
                f"; found {_pct(result['found'])} of {result['returning']} returning, right {_pct(result['right'])},"
                f" re-linked {_pct(result['relinked'])}"
            )
        lines.append(line)
    aj, cells, agg = report["abuse_join"], report["single_unit_cells"], report["aggregates"]
    lines += [
        "",
        f"abuse join: {aj['events']} events; candidates "
        + ", ".join(f"{label}: {n}" for label, n in aj["candidates"].items())
        + f"; exactly one: {_pct(aj['exactly_one_share'])}"
        + (f" ({aj['exactly_one_right']} right)" if aj["exactly_one_right"] is not None else ""),
        f"(time, prefix) cells holding one unit: {_pct(cells['share'])} of {cells['cells']} cells, "
        f"{_pct(cells['records_share'])} of records",
        f"aggregates: {agg['rows']} rows {agg['windows']}, smallest cell {agg['smallest_cell']}, "
        f"cells below k {agg['cells_below_k']}, with noise {agg['noisy']}",
    ]
    return "\n".join(lines) + "\n"
