"""Generalization hierarchies: each released analytics value, from as released (level 0) to dropped.

A hierarchy maps a value and a level to a coarser value *of the same kind* (a shorter CIDR prefix, a
country instead of a region, a path pattern with ``*``, a time truncated further) or ``None`` (the field is
left out). ``generalize(v, 0)`` is ``v``; every level is a function of the level below it, so two values that
agree at one level agree at every higher one (the release searches levels upward on that property).
``level_of`` reads the level back from a released value, for the privacy report.

The policy names a hierarchy per released field (``analytics.release.quasi_identifiers``); the registry below is
the one list of names it may use.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from publicsuffixlist import PublicSuffixList

Generalize = Callable[[Any, int], Any]


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """``levels`` values from finest (0) to coarsest (``levels - 1``); ``generalize(value, level)``."""

    name: str
    levels: int
    generalize: Generalize
    level_of: Callable[[Any], int]
    doc: str

    @property
    def top(self) -> int:
        return self.levels - 1


def _keep_or_drop(value: Any, level: int) -> Any:
    return value if level == 0 else None


def _keep_or_drop_level(value: Any) -> int:
    return 1 if value is None else 0


# --- network prefix: as released (/24, /48) -> /16 (/32) -> /8 (/16) -> dropped --------------------------------
_V4_CHAIN = (16, 8)
_V6_CHAIN = (32, 16)


@lru_cache(maxsize=65_536)
def _prefix(value: str, level: int) -> str | None:
    if level == 0:
        return value
    if level > len(_V4_CHAIN):
        return None
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None  # not a prefix: nothing coarser of the same kind exists
    target = (_V4_CHAIN if network.version == 4 else _V6_CHAIN)[level - 1]
    if network.prefixlen <= target:
        return str(network)
    return str(network.supernet(new_prefix=target))


def _prefix_level(value: Any) -> int:
    if not isinstance(value, str):
        return 1 + len(_V4_CHAIN)
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return 0
    chain = _V4_CHAIN if network.version == 4 else _V6_CHAIN
    return next((i + 1 for i, length in reversed(list(enumerate(chain))) if network.prefixlen <= length), 0)


# --- geo: {country, region, asn, as_org} -> {country, region} -> {country} -> dropped ----------------------------
# ``db`` (the databases' build dates) is the same for every record of a deployment: kept wherever geo is.
_GEO_LEVELS: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset({"country", "region", "db"}),
    frozenset({"country", "db"}),
)


def _geo(value: Any, level: int) -> Any:
    if level == 0 or value is None:
        return value
    if level >= len(_GEO_LEVELS) or not isinstance(value, dict):
        return None
    keep = _GEO_LEVELS[level]
    out = {key: v for key, v in value.items() if key in keep}
    return out if set(out) - {"db"} else None


def _geo_level(value: Any) -> int:
    if not isinstance(value, dict):
        return len(_GEO_LEVELS)
    if "asn" in value or "as_org" in value or "lat" in value:
        return 0
    return 1 if "region" in value else 2


# --- user agent: full -> no browser version -> {device, bot} -> {bot} -> dropped ---------------------------------
_UA_LEVELS: tuple[frozenset[str], ...] = (
    frozenset(),  # level 0: as released
    frozenset({"browser", "os", "device", "bot"}),
    frozenset({"device", "bot"}),
    frozenset({"bot"}),
)


def _user_agent(value: Any, level: int) -> Any:
    if level == 0 or value is None:
        return value
    if level >= len(_UA_LEVELS) or not isinstance(value, dict):
        return None
    keep = _UA_LEVELS[level]
    out = {key: v for key, v in value.items() if key in keep}
    return out or None


def _user_agent_level(value: Any) -> int:
    if not isinstance(value, dict):
        return len(_UA_LEVELS)
    if "browser_major" in value:
        return 0
    if "browser" in value or "os" in value:
        return 1
    return 2 if "device" in value else 3


# --- URL: {path, query} -> {path} -> {path: "/first*"} -> dropped --------------------------------------------------


def first_segment_pattern(path: str) -> str:
    """``/docs/a/b`` -> ``/docs*``: every path that starts with the first segment (``*`` matches anything)."""
    first = path.lstrip("/").split("/", 1)[0]
    return f"/{first}*" if first else "/*"


def _url(value: Any, level: int) -> Any:
    if level == 0 or value is None:
        return value
    if not isinstance(value, dict) or not isinstance(value.get("path"), str):
        return None
    if level == 1:
        return {"path": value["path"]}
    if level == 2:
        return {"path": first_segment_pattern(value["path"])}
    return None


def _url_level(value: Any) -> int:
    if not isinstance(value, dict) or not isinstance(value.get("path"), str):
        return 3
    if "*" in value["path"]:
        return 2
    return 0 if "query" in value else 1


# --- time: as released (minute) -> hour -> day; never dropped (every record has a time) --------------------------


def _time(value: Any, level: int) -> Any:
    if level == 0 or not isinstance(value, str) or len(value) < 20:
        return value
    if level == 1:
        return value[:14] + "00:00Z"
    return value[:11] + "00:00:00Z"


def _time_level(value: Any) -> int:
    # A record of minute 00 of hour 00 reads like a day; the report counts it at the coarsest level its text
    # allows, which can only overstate generalization.
    if not isinstance(value, str) or len(value) < 20:
        return 0
    if value[11:] == "00:00:00Z":
        return 2
    return 1 if value[14:] == "00:00Z" else 0


# --- status: 404 -> "4xx" -> dropped; bytes: 12345 -> "10000-99999" -> dropped --------------------------------------


def _status(value: Any, level: int) -> Any:
    if level == 0 or value is None:
        return value
    if level == 1 and isinstance(value, int):
        return f"{value // 100}xx"
    return None


def _status_level(value: Any) -> int:
    if value is None:
        return 2
    return 1 if isinstance(value, str) else 0


def _size(value: Any, level: int) -> Any:
    if level == 0 or value is None:
        return value
    if level == 1 and isinstance(value, int):
        if value <= 0:
            return "0"
        low = 10 ** (len(str(value)) - 1)
        return f"{low}-{low * 10 - 1}"
    return None


def _size_level(value: Any) -> int:
    if value is None:
        return 2
    return 1 if isinstance(value, str) else 0


# --- referrer host: host -> registered domain (Public Suffix List) -> dropped --------------------------------------
_PSL = PublicSuffixList()


@lru_cache(maxsize=16_384)
def _registered_domain(host: str) -> str:
    # Placeholders ("{ip}") and single labels have no registered domain: they are their own coarsest form.
    return _PSL.privatesuffix(host) or host


def _domain(value: Any, level: int) -> Any:
    if level == 0 or value is None:
        return value
    if level == 1 and isinstance(value, str):
        return _registered_domain(value)
    return None


def _domain_level(value: Any) -> int:
    if value is None:
        return 2
    return 1 if isinstance(value, str) and _registered_domain(value) == value else 0


HIERARCHIES: dict[str, Hierarchy] = {
    h.name: h
    for h in (
        Hierarchy("keep_or_drop", 2, _keep_or_drop, _keep_or_drop_level, "as released -> dropped"),
        Hierarchy("ip_prefix", 4, _prefix, _prefix_level, "/24 (/48) -> /16 (/32) -> /8 (/16) -> dropped"),
        Hierarchy("geo", 4, _geo, _geo_level, "country, region, ASN -> country, region -> country -> dropped"),
        Hierarchy(
            "user_agent", 5, _user_agent, _user_agent_level, "family+major, OS, device -> no major -> device -> bot"
        ),
        Hierarchy("url", 4, _url, _url_level, "path+query -> path -> first segment pattern -> dropped"),
        Hierarchy("time", 3, _time, _time_level, "minute -> hour -> day"),
        Hierarchy("status", 3, _status, _status_level, "status -> class (4xx) -> dropped"),
        Hierarchy("size", 3, _size, _size_level, "byte count -> decade range -> dropped"),
        Hierarchy("domain", 3, _domain, _domain_level, "host -> registered domain -> dropped"),
    )
}
