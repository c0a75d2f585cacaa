"""The privacy report on small hand-made releases whose answers are known."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.cli import main
from pipeline.privacy_report import (
    GroundTruth,
    Release,
    abuse_join,
    aggregate_check,
    k_distribution,
    level_shares,
    linking_attacks,
    privacy_report,
    render_report,
    single_unit_cells,
    time_span,
    tuple_uniqueness,
)

HOUR = 3600
CHROME = {"browser": "Chrome", "browser_major": "120", "os": "Linux", "device": "desktop", "bot": False}
FIREFOX = {"browser": "Firefox", "browser_major": "115", "os": "Windows", "device": "desktop", "bot": False}


def rec(
    unit: str,
    time: str = "2015-05-17T10:00:00Z",
    prefix: str | None = "10.1.2.0/24",
    path: str | None = "/a",
    ua: dict[str, Any] | None = None,
    **http: Any,
) -> dict[str, Any]:
    """An analytics/2-like record: ``unit`` is the released ``client.pseudonym``."""
    record: dict[str, Any] = {"schema": "analytics/2", "time": time, "client": {"pseudonym": unit}}
    if prefix is not None:
        record["client"]["prefix"] = prefix
    record["geo"] = {"country": "DE", "asn": 3320}
    record["http"] = {"method": "GET", **({"url": {"path": path}} if path is not None else {}), **http}
    record["user_agent"] = ua if ua is not None else CHROME
    return record


def read(records: list[dict[str, Any]], **options: Any) -> Release:
    return Release.read(records, unit="client.pseudonym", window_s=HOUR, **options)


# --- k of profiles ------------------------------------------------------------------------------------------

K_CASES = [
    # (records, expected min k, expected histogram counts of k 1 / k 2 / k 3-4)
    pytest.param([rec("u1"), rec("u2"), rec("u3", path="/b")], 1, (1, 2, 0), id="a unit alone in its profile has k 1"),
    pytest.param(
        [rec("u1"), rec("u1", path="/b"), rec("u2", path="/b"), rec("u2")],
        2,
        (0, 2, 0),
        id="a profile is the set of a unit's tuples: record order does not matter",
    ),
    pytest.param(
        [rec("u1"), rec("u1"), rec("u2")],
        2,
        (0, 2, 0),
        id="repeating a tuple does not change the profile",
    ),
    pytest.param(
        [rec("u1"), rec("u2"), rec("u3", prefix="10.9.0.0/16")],
        1,
        (1, 2, 0),
        id="a different prefix is a different profile",
    ),
    pytest.param(
        [rec(f"u{i}") for i in range(3)] + [rec("v1", time="2015-05-17T11:00:00Z")],
        1,
        (1, 0, 3),
        id="units of another window are not counted in k",
    ),
]


@pytest.mark.parametrize(("records", "min_k", "histogram"), K_CASES)
def test_k_distribution(records: list[dict[str, Any]], min_k: int, histogram: tuple[int, int, int]) -> None:
    """k counts the units of the same window that have an identical profile."""
    result = k_distribution(read(records))
    assert result["min_k"] == min_k
    assert (result["histogram"]["1"], result["histogram"]["2"], result["histogram"]["3-4"]) == histogram


def test_k_shares_weigh_units_and_records() -> None:
    """The k = 1 share is given per unit and per record (a lone unit of three records weighs three)."""
    records = [rec("lone", path="/x"), rec("lone", path="/y"), rec("lone", path="/z"), rec("u1"), rec("u2")]
    result = k_distribution(read(records))
    assert result["k1"] == {"units": 1 / 3, "records": 3 / 5}
    assert result["k_below_5"] == {"units": 1.0, "records": 1.0}


def test_k_on_a_subset_of_fields() -> None:
    """On prefix alone, units that differ only by path share a profile."""
    release = read([rec("u1", path="/x"), rec("u2", path="/y")])
    assert k_distribution(release)["min_k"] == 1
    assert k_distribution(release, ["client.prefix"])["min_k"] == 2


def test_a_day_window_groups_a_day_of_records() -> None:
    """With day windows (analytics/1's visitor) records of different hours belong to one unit and window."""
    records = [rec("u1", time="2015-05-17T10:05:00Z"), rec("u1", time="2015-05-17T15:30:00Z")]
    release = Release.read(records, unit="client.pseudonym", window_s=86400, time_granularity_s=60)
    assert len(release.windows) == 1
    assert [len(u.records) for u in release.units()] == [2]


def test_uniqueness_of_qi_tuples() -> None:
    """A record is unique when no other unit of its window holds its QI tuple."""
    release = read([rec("u1"), rec("u2"), rec("u2", path="/only-u2")])
    assert tuple_uniqueness(release) == {"records": 3, "unique": 1, "share": 1 / 3}


def test_link_fields_are_not_quasi_identifiers() -> None:
    """The pseudonyms and the schema are left out of the QI tuple; nested objects count as one field."""
    release = read([rec("u1")])
    assert "client.pseudonym" not in release.quasi_identifiers
    assert "schema" not in release.quasi_identifiers
    assert {"geo", "user_agent", "http.url", "client.prefix", "time"} <= set(release.quasi_identifiers)


# --- generalization levels --------------------------------------------------------------------------------


def test_level_shares_read_the_hierarchies() -> None:
    """A /16 prefix is level 1, a dropped one the top level; a status class is level 1; suppression from summary."""
    records = [
        rec("u1", prefix="10.1.0.0/16", status="2xx"),
        rec("u2", prefix=None, status=200),
        rec("u3", status=200),
        rec("u4", prefix="10.0.0.0/8", status=200),
    ]
    result = level_shares(read(records), {"analytics": 10, "analytics_suppressed": 2})
    assert result["fields"]["client.prefix"] == {
        "/24 (/48)": 0.25,
        "/16 (/32)": 0.25,
        "/8 (/16)": 0.25,
        "dropped": 0.25,
    }
    assert result["fields"]["http.status"] == {"code": 0.75, "class": 0.25, "dropped": 0.0}
    assert result["suppressed_share"] == 0.2


# --- linking attacks ------------------------------------------------------------------------------------------

AT_10, AT_11 = "2015-05-17T10:00:00Z", "2015-05-17T11:00:00Z"


def test_a_unique_prefix_in_two_windows_is_linked_right() -> None:
    """The same address alone behind its prefix in two windows: the prefix attack finds it and is right."""
    records = [
        rec("a10", AT_10, prefix="10.1.2.0/24"),
        rec("b10", AT_10, prefix="10.7.7.0/24"),
        rec("a11", AT_11, prefix="10.1.2.0/24"),
    ]
    truth = GroundTruth(identity={"a10": "A", "a11": "A", "b10": "B"})
    result = linking_attacks(read(records), truth)["prefix"]
    assert (result["links"], result["mean_candidates"], result["returning"]) == (1, 1.0, 1)
    assert (result["found"], result["right"]) == (1.0, 1.0)


def test_a_shared_prefix_gives_expected_right_of_one_over_candidates() -> None:
    """Two earlier units behind the linked prefix: a random pick is right half the time, and that is scored."""
    records = [rec("a10", AT_10), rec("b10", AT_10), rec("a11", AT_11)]
    truth = GroundTruth(identity={"a10": "A", "b10": "B", "a11": "A"})
    result = linking_attacks(read(records), truth)["prefix"]
    assert result["mean_candidates"] == 2.0
    assert result["right"] == 0.5


def test_the_unique_attack_commits_only_to_a_single_candidate() -> None:
    """Behind a shared prefix the committing attacker abstains (found 0); behind a unique one it links, right."""
    shared = [rec("a10", AT_10), rec("b10", AT_10), rec("a11", AT_11)]
    truth = GroundTruth(identity={"a10": "A", "b10": "B", "a11": "A"})
    result = linking_attacks(read(shared), truth)["prefix_unique"]
    assert (result["links"], result["returning"], result["found"]) == (0, 1, 0.0)
    unique = [rec("a10", AT_10), rec("b10", AT_10, prefix="10.9.9.0/24"), rec("a11", AT_11)]
    result = linking_attacks(read(unique), truth)["prefix_unique"]
    assert (result["links"], result["found"], result["right"]) == (1, 1.0, 1.0)


def test_a_link_to_someone_else_is_wrong() -> None:
    """A newcomer behind a returning prefix is linked, wrongly; it is not a returning unit."""
    records = [rec("a10", AT_10), rec("c11", AT_11)]
    truth = GroundTruth(identity={"a10": "A", "c11": "C"})
    result = linking_attacks(read(records), truth)["prefix"]
    assert (result["links"], result["returning"], result["found"], result["right"]) == (1, 0, None, 0.0)


def test_without_ground_truth_only_links_and_candidates_are_given() -> None:
    """No truth: the attack still counts its links; found and right are unknown (None)."""
    result = linking_attacks(read([rec("a10", AT_10), rec("a11", AT_11)]))["prefix"]
    assert (result["links"], result["found"], result["right"]) == (1, None, None)


def test_a_dropped_prefix_cannot_link() -> None:
    """Records without a prefix give the prefix attack nothing to match."""
    result = linking_attacks(read([rec("a10", AT_10, prefix=None), rec("a11", AT_11, prefix=None)]))["prefix"]
    assert result["links"] == 0


@pytest.mark.parametrize(
    ("later_paths", "links", "right"),
    [
        pytest.param(["/x", "/y"], 1, 1.0, id="the path overlap picks the right one of two devices"),
        pytest.param(["/z"], 0, None, id="a tie in path overlap makes no link"),
    ],
)
def test_device_attack_breaks_ties_by_paths(later_paths: list[str], links: int, right: float | None) -> None:
    """Two earlier units with the same device fingerprint; the later one's paths decide, or no link."""
    records = [
        rec("a10", AT_10, prefix="10.1.0.0/24", path="/x"),
        rec("a10", AT_10, prefix="10.1.0.0/24", path="/y"),
        rec("b10", AT_10, prefix="10.2.0.0/24", path="/q"),
        *[rec("a11", AT_11, prefix="10.3.0.0/24", path=p) for p in later_paths],
    ]
    truth = GroundTruth(identity={"a10": "A", "b10": "B", "a11": "A"})
    result = linking_attacks(read(records), truth)
    assert result["device"]["mean_candidates"] == 2.0  # the device alone cannot tell them apart
    assert (result["device_paths"]["links"], result["device_paths"]["right"]) == (links, right)


# --- abuse join ----------------------------------------------------------------------------------------------


def event(
    time: str = "2015-05-17T10:00:31Z", prefix: str = "10.1.2.0/24", path: str = "/a", status: int = 200
) -> dict[str, Any]:
    return {
        "schema": "abuse/1",
        "kind": "event",
        "subject": "s-1",
        "time": time,
        "source": {"prefix": prefix, "geo": {"country": "DE", "asn": 3320}},
        "event": {"method": "GET", "url": {"path": path}, "status": status},
    }


MINUTE_RELEASE = [
    rec("u1", "2015-05-17T10:00:00Z", path="/a", status=200),
    rec("u2", "2015-05-17T10:00:00Z", path="/b", status=200),
]
HOUR_RELEASE = [
    rec(f"u{i}", "2015-05-17T10:00:00Z", prefix="10.1.0.0/16", path="/docs*", status="2xx") for i in range(3)
]

JOIN_CASES = [
    pytest.param(MINUTE_RELEASE, event(), 60.0, 1, id="time, prefix, method, path and status match one unit"),
    pytest.param(MINUTE_RELEASE, event(path="/c"), 60.0, 0, id="a path nobody released matches nobody"),
    pytest.param(MINUTE_RELEASE, event(time="2015-05-17T10:01:00Z"), 60.0, 0, id="outside the released minute"),
    pytest.param(MINUTE_RELEASE, event(prefix="10.9.9.0/24"), 60.0, 0, id="another network"),
    pytest.param(HOUR_RELEASE, event("2015-05-17T10:59:59Z", path="/docs/x"), None, 3, id="hour, /16, pattern, class"),
    pytest.param(HOUR_RELEASE, event(path="/docs/x", status=404), None, 0, id="a status outside the released class"),
]


@pytest.mark.parametrize(("records", "abuse", "granularity", "candidates"), JOIN_CASES)
def test_abuse_join_counts_consistent_units(
    records: list[dict[str, Any]], abuse: dict[str, Any], granularity: float | None, candidates: int
) -> None:
    """An abuse event's candidates are the units with a record consistent with all its fields."""
    release = read(records, time_granularity_s=granularity)
    alert = {**abuse, "kind": "alert"}
    result = abuse_join(release, [abuse, alert])
    assert result["events"] == 1  # alerts are not events
    assert result["exactly_one"] == (1 if candidates == 1 else 0)
    assert result["median_candidates"] == candidates


def test_abuse_join_scores_a_unique_match_with_ground_truth() -> None:
    """With the sources known, a unique candidate is right when it is the event's address."""
    truth = GroundTruth(identity={}, source={"u1": "10.1.2.3", "u2": "10.1.2.4"}, abuse_source={"s-1": "10.1.2.3"})
    result = abuse_join(read(MINUTE_RELEASE, time_granularity_s=60), [event()], truth)
    assert (result["exactly_one_share"], result["exactly_one_right"]) == (1.0, 1)


# --- cells, aggregates, spans, the whole report -------------------------------------------------------------------


def test_single_unit_cells() -> None:
    """A (time, prefix) cell of one unit singles it out; a cell shared by two does not."""
    release = read([rec("u1"), rec("u2"), rec("u3", prefix="10.9.9.0/24"), rec("u3", prefix="10.9.9.0/24")])
    assert single_unit_cells(release) == {"cells": 2, "single_unit": 1, "share": 0.5, "records_share": 0.5}


def test_aggregate_check_finds_cells_below_k() -> None:
    """The all-traffic row may be small; a dimension cell below k is counted as a violation."""
    window = {"start": "2015-05-17T10:00:00Z", "end": "2015-05-17T11:00:00Z"}
    rows = [
        {"schema": "aggregate/1", "window": window, "dimensions": {}, "pageviews": 3, "visitors": 2},
        {"schema": "aggregate/1", "window": window, "dimensions": {"country": "DE"}, "pageviews": 9, "visitors": 5},
        {"schema": "aggregate/1", "window": window, "dimensions": {"country": "FR"}, "pageviews": 4, "visitors": 4},
    ]
    result = aggregate_check(rows, k=5)
    assert (result["rows"], result["windows"], result["smallest_cell"], result["cells_below_k"]) == (
        3,
        {"1 h": 3},
        4,
        1,
    )


@pytest.mark.parametrize(
    ("text", "granularity", "span"),
    [
        ("2015-05-17T10:05:00Z", None, (1431857100.0, 1431857160.0)),  # a minute
        ("2015-05-17T10:00:00Z", None, (1431856800.0, 1431860400.0)),  # reads as an hour (the wider reading)
        ("2015-05-17T10:00:00Z", 60.0, (1431856800.0, 1431856860.0)),  # known to be minutes (analytics/1)
        ("2015-05-17T00:00:00Z", None, (1431820800.0, 1431907200.0)),  # reads as a day
        ("2015-05-17T10:00:31Z", None, (1431856831.0, 1431856832.0)),  # a second (abuse records)
        ("2015-05-17", None, (1431820800.0, 1431907200.0)),  # truncated text: a day
        ("2015-05-17T10", None, (1431856800.0, 1431860400.0)),  # truncated text: an hour
        ("yesterday", None, None),
    ],
)
def test_time_span(text: str, granularity: float | None, span: tuple[float, float] | None) -> None:
    """A released time stands for the span its truncation allows."""
    assert time_span(text, granularity) == span


def test_report_and_renderer_on_a_small_release() -> None:
    """The whole report is JSON-ready and its text names every section."""
    report = privacy_report(
        [rec("u1"), rec("u2"), rec("u1b", AT_11)], [event()], [], {"analytics": 4, "analytics_suppressed": 1}
    )
    assert orjson.loads(orjson.dumps(report))["units"] == 3
    text = render_report(report)
    for heading in ("k of unit profiles", "generalization levels", "linking attacks", "abuse join", "cells holding"):
        assert heading in text
    assert "suppressed: 1 of 4 records (25.0%)" in text


def test_cli_reads_a_release_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`pseudonymizer privacy-report DIR --json` reads the folder's files; analytics/1 gets day windows."""
    old = [{**rec("v1", "2015-05-17T10:05:00Z"), "schema": "analytics/1"}]
    old[0]["client"] = {"visitor": "v1", "prefix": "10.1.2.0/24"}
    (tmp_path / "analytics.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in old))
    (tmp_path / "abuse.jsonl").write_bytes(orjson.dumps(event("2015-05-17T10:05:09Z")) + b"\n")
    assert main(["privacy-report", str(tmp_path), "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert (report["unit"], report["window_s"], report["units"]) == ("client.visitor", 86400, 1)
    assert report["abuse_join"]["exactly_one"] == 1
    assert main(["privacy-report", str(tmp_path / "missing")]) == 2


def test_relinked_is_the_share_of_returning_units_linked_to_themselves() -> None:
    """Found counts any link; re-linked counts only the expected right ones among returning units."""
    records = [rec("a10", AT_10), rec("b10", AT_10), rec("c10", AT_10), rec("d10", AT_10), rec("a11", AT_11)]
    truth = GroundTruth(identity={"a10": "A", "b10": "B", "c10": "C", "d10": "D", "a11": "A"})
    result = linking_attacks(read(records), truth)["prefix"]
    assert (result["found"], result["right"], result["relinked"]) == (1.0, 0.25, 0.25)
