"""Generalization hierarchies: known answers per level, monotone agreement, levels read back from values."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms.hierarchy import HIERARCHIES, first_segment_pattern

GEO = {"country": "DE", "region": "BE", "asn": 3320, "as_org": "DTAG", "db": {"city": "2026-06-01"}}
UA = {"browser": "Firefox", "browser_major": "128", "os": "Linux", "device": "desktop", "bot": False}

# (hierarchy, value, level, expected)
CASES: list[tuple[str, Any, int, Any]] = [
    ("ip_prefix", "83.149.9.0/24", 0, "83.149.9.0/24"),
    ("ip_prefix", "83.149.9.0/24", 1, "83.149.0.0/16"),
    ("ip_prefix", "83.149.9.0/24", 2, "83.0.0.0/8"),
    ("ip_prefix", "83.149.9.0/24", 3, None),
    ("ip_prefix", "2001:db8:1234::/48", 1, "2001:db8::/32"),  # IPv6: /48 -> /32 -> /16
    ("ip_prefix", "2001:db8:1234::/48", 2, "2001::/16"),
    ("geo", GEO, 1, {"country": "DE", "region": "BE", "db": {"city": "2026-06-01"}}),  # the network goes first
    ("geo", GEO, 2, {"country": "DE", "db": {"city": "2026-06-01"}}),
    ("geo", GEO, 3, None),
    ("geo", {"asn": 3320, "db": {}}, 1, None),  # nothing of the location left: no geo at all
    ("user_agent", UA, 1, {"browser": "Firefox", "os": "Linux", "device": "desktop", "bot": False}),
    ("user_agent", UA, 2, {"device": "desktop", "bot": False}),
    ("user_agent", UA, 3, {"bot": False}),
    ("user_agent", UA, 4, None),
    ("url", {"path": "/docs/{id}/edit", "query": {"utm_source": "x"}}, 1, {"path": "/docs/{id}/edit"}),
    ("url", {"path": "/docs/{id}/edit"}, 2, {"path": "/docs*"}),
    ("url", {"path": "/"}, 2, {"path": "/*"}),
    ("url", {"path": "/docs"}, 3, None),
    ("time", "2015-05-17T10:05:00Z", 1, "2015-05-17T10:00:00Z"),
    ("time", "2015-05-17T10:05:00Z", 2, "2015-05-17T00:00:00Z"),
    ("status", 404, 1, "4xx"),
    ("status", 404, 2, None),
    ("size", 12345, 1, "10000-99999"),
    ("size", 0, 1, "0"),
    ("size", 7, 1, "1-9"),
    ("domain", "www.google.co.uk", 1, "google.co.uk"),  # the Public Suffix List knows co.uk
    ("domain", "{ip}", 1, "{ip}"),  # a placeholder has no registered domain: it is its own coarsest form
    ("domain", "news.example.com", 2, None),
    ("keep_or_drop", "GET", 0, "GET"),
    ("keep_or_drop", "GET", 1, None),
]


@pytest.mark.parametrize(("name", "value", "level", "expected"), CASES)
def test_known_generalizations(name: str, value: Any, level: int, expected: Any) -> None:
    assert HIERARCHIES[name].generalize(value, level) == expected


@pytest.mark.parametrize(("name", "value", "level", "expected"), [c for c in CASES if c[3] is not None])
def test_a_generalized_value_reads_back_at_its_level_or_coarser(
    name: str, value: Any, level: int, expected: Any
) -> None:
    # Coarser only where the text allows no finer reading (a /16 that was already a /16, a midnight minute).
    assert HIERARCHIES[name].level_of(expected) >= min(level, HIERARCHIES[name].level_of(value))


def test_level_zero_is_the_value_and_the_top_is_the_coarsest() -> None:
    for hierarchy in HIERARCHIES.values():
        assert hierarchy.generalize("x" if hierarchy.name == "keep_or_drop" else None, 0) in ("x", None)
        assert hierarchy.top == hierarchy.levels - 1


PREFIXES = st.builds(lambda a, b, c: f"{a}.{b}.{c}.0/24", st.integers(1, 223), st.integers(0, 3), st.integers(0, 3))
PATHS = st.lists(st.sampled_from(["a", "b", "{id}", "x.png"]), min_size=0, max_size=3).map(lambda p: "/" + "/".join(p))


@given(PREFIXES, PREFIXES)
def test_prefixes_that_agree_at_a_level_agree_at_every_coarser_level(a: str, b: str) -> None:
    hierarchy = HIERARCHIES["ip_prefix"]
    agree = [hierarchy.generalize(a, level) == hierarchy.generalize(b, level) for level in range(hierarchy.levels)]
    assert agree == sorted(agree)  # False ... False True ... True: the release's level search relies on it


@given(PATHS, PATHS)
def test_paths_that_agree_at_a_level_agree_at_every_coarser_level(a: str, b: str) -> None:
    hierarchy = HIERARCHIES["url"]
    values = [{"path": a}, {"path": b}]
    agree = [hierarchy.generalize(values[0], lv) == hierarchy.generalize(values[1], lv) for lv in range(4)]
    assert agree == sorted(agree)


@given(PATHS)
def test_a_first_segment_pattern_matches_its_path(path: str) -> None:
    pattern = first_segment_pattern(path)
    assert pattern.endswith("*")
    assert path.startswith(pattern[:-1]) or pattern == "/*"
