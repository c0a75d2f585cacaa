"""The k-anonymous release: every released window satisfies k for any input; counts stay exact; nothing is lost."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter, defaultdict
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config import load_policy
from transforms.event_id import EventIds
from transforms.noise import DifferentialPrivacy
from transforms.release import AggregateParams, ReleaseParams, ReleaseRow, ReleaseStage, release_rows

POLICY = load_policy()
RELEASE = POLICY.analytics.release
AGGREGATES = POLICY.analytics.aggregates
HOUR = 3600.0
T0 = 1_431_856_800.0  # 2015-05-17T10:00:00Z


def _record(
    unit: int, visitor: int, *, country: str, prefix: str, path: str, status: int, minute: int
) -> dict[str, Any]:
    return {
        "schema": "analytics/1",
        "time": f"2015-05-17T10:{minute:02d}:00Z",
        "time_quality": "event",
        "client": {"pseudonym": f"a-u{unit}", "visitor": f"a-v{visitor}", "prefix": prefix, "scope": "public"},
        "geo": {"country": country, "region": country + "-1", "asn": 64500 + unit % 7, "as_org": "AS"},
        "http": {"method": "GET", "url": {"path": path}, "status": status, "bytes": 100 + unit, "referrer_host": None},
        "user_agent": {"browser": "Firefox", "browser_major": str(unit % 3), "os": "Linux", "device": "desktop"},
    }


unit_rows = st.lists(
    st.tuples(
        st.integers(0, 60),  # unit
        st.integers(0, 2),  # visitor of the unit (user agent)
        st.sampled_from(["DE", "FR", "US", "BR"]),
        st.integers(0, 5),  # /24 within a few /16s
        st.sampled_from(["/", "/docs/a", "/docs/b", "/blog/x", "/img/1.png"]),
        st.sampled_from([200, 200, 304, 404]),
        st.integers(0, 59),  # minute
        st.floats(0, 3 * HOUR - 1),  # event time within three hourly windows
    ),
    min_size=0,
    max_size=300,
)


def _rows(draw: list[tuple[Any, ...]]) -> list[ReleaseRow]:
    rows = []
    for unit, visitor, country, net, path, status, minute, offset in draw:
        prefix = f"10.{net % 2}.{net}.0/24"
        record = _record(unit, visitor, country=country, prefix=prefix, path=path, status=status, minute=minute)
        window = int(offset // HOUR)
        record["client"]["pseudonym"] = f"a-u{unit}-w{window}"  # pseudonyms live one window
        rows.append(ReleaseRow.of(record, f"daily-v{unit}-{visitor}", T0 + offset, RELEASE.unit))
    return sorted(rows, key=lambda r: r.time)


def _release(rows: list[ReleaseRow], release: ReleaseParams = RELEASE) -> tuple[list[dict[str, Any]], list[Any]]:
    analytics: list[dict[str, Any]] = []
    aggregates: list[Any] = []
    for window in release_rows(rows, ReleaseStage(release, AGGREGATES)):
        (analytics if window.kind == "analytics" else aggregates).append(window)
    return analytics, aggregates


def _profile(record: dict[str, Any]) -> bytes:
    client = {k: v for k, v in record["client"].items() if k not in ("pseudonym", "visitor")}
    return orjson.dumps({**record, "client": client}, option=orjson.OPT_SORT_KEYS)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(unit_rows, st.sampled_from([2, 5, 10]))
def test_every_released_window_satisfies_k_and_every_record_is_accounted_for(draw: list[Any], k: int) -> None:
    rows = _rows(draw)
    release = RELEASE.model_copy(update={"k": k})
    windows, _ = _release(rows, release)
    released = [record for window in windows for record in window.records]
    assert sum(w.stats.released + w.stats.suppressed for w in windows) == len(rows)
    assert len(released) == sum(w.stats.released for w in windows)
    units_by_profile: dict[tuple[str, bytes], set[str]] = defaultdict(set)
    profiles_of_unit: dict[str, set[bytes]] = defaultdict(set)
    for record in released:
        assert record["schema"] == "analytics/2"
        unit = record["client"]["pseudonym"]
        units_by_profile[(unit.rsplit("-w", 1)[1], _profile(record))].add(unit)
        profiles_of_unit[unit].add(_profile(record))
    assert all(len(units) >= k for units in units_by_profile.values())  # k distinct units share each profile
    assert all(len(profiles) == 1 for profiles in profiles_of_unit.values())  # one profile per unit-window
    for window in windows:
        assert window.stats.min_k is None or window.stats.min_k >= k


def test_released_values_are_coarser_values_of_the_same_kind() -> None:
    rng = random.Random(3)
    draw = [
        (rng.randrange(40), 0, rng.choice("AB"), rng.randrange(3), "/docs/a", 200, 5, rng.uniform(0, HOUR - 1))
        for _ in range(200)
    ]
    windows, _ = _release(_rows(draw))
    for record in (r for w in windows for r in w.records):
        prefix = record["client"].get("prefix")
        assert prefix is None or (prefix.startswith("10.") and prefix.endswith(("/24", "/16", "/8")))
        assert set(record.get("geo", {})) <= {"country", "region", "asn", "as_org"}
        assert record["time"].startswith("2015-05-17T")


def test_a_unit_alone_in_its_window_is_suppressed_and_counted() -> None:
    rows = _rows([(1, 0, "DE", 0, "/", 200, 5, 10.0)])
    windows, aggregates = _release(rows)
    assert [w.stats.suppressed for w in windows] == [1]
    assert not windows[0].records
    # ... but it is counted: the all-traffic rows of its hour and day hold it.
    totals = [row for w in aggregates for row in w.records if row["dimensions"] == {}]
    assert [row["pageviews"] for row in totals] == [1, 1]


def test_the_result_does_not_depend_on_arrival_order_within_the_delay() -> None:
    rng = random.Random(5)
    draw = [
        (
            rng.randrange(50),
            rng.randrange(2),
            rng.choice(["DE", "FR"]),
            rng.randrange(4),
            "/docs/a",
            200,
            5,
            rng.uniform(0, 2 * HOUR),
        )
        for _ in range(400)
    ]
    rows = _rows(draw)
    shuffled = rows.copy()
    # Disorder of up to a minute (the policy waits five): every row still reaches its window.
    shuffled.sort(key=lambda r: r.time + rng.uniform(0, 60))

    def flat(rs: list[ReleaseRow]) -> Counter[bytes]:
        analytics, aggregates = _release(rs)
        return Counter(orjson.dumps(r) for w in analytics + aggregates for r in w.records)

    assert flat(shuffled) == flat(rows)


def test_a_row_for_a_released_window_is_late_not_lost() -> None:
    stage = ReleaseStage(RELEASE, AGGREGATES)
    early, late = _rows([(1, 0, "DE", 0, "/", 200, 5, 10.0), (2, 0, "DE", 0, "/", 200, 5, 20.0)])
    assert stage.add(early)
    stage.close_due(T0 + HOUR)
    assert not stage.add(late)
    assert stage.late == 1


def test_aggregates_count_every_record_and_hide_cells_of_fewer_than_k_visitors() -> None:
    draw = [(u, 0, "DE", 0, "/docs/a", 200, 5, 60.0 * u) for u in range(6)]  # six visitors in Germany
    draw.append((99, 0, "FR", 1, "/docs/a", 404, 5, 30.0))  # one in France
    _, aggregates = _release(_rows(draw))
    rows = [row for w in aggregates for row in w.records if row["window"]["end"].endswith("11:00:00Z")]
    total = next(row for row in rows if row["dimensions"] == {})
    assert (total["pageviews"], total["visitors"]) == (7, 7)
    countries = {row["dimensions"]["country"]: row["visitors"] for row in rows if "country" in row["dimensions"]}
    assert countries == {"DE": 6}  # France, one visitor, is suppressed
    statuses = {row["dimensions"]["status_class"] for row in rows if "status_class" in row["dimensions"]}
    assert statuses == {"2xx"}


def test_a_restored_stage_skips_the_windows_it_already_released() -> None:
    rows = _rows([(u, 0, "DE", 0, "/", 200, 5, 10.0 * u) for u in range(8)])
    first = ReleaseStage(RELEASE, AGGREGATES)
    for row in rows:
        first.add(row)
    released = first.close_due(T0 + HOUR)
    assert released
    again = ReleaseStage(RELEASE, AGGREGATES)
    again.restore(*first.closed_state())
    assert not any(again.add(row, count_late=False) for row in rows)
    assert again.late == 0  # a row read again after a restart is not late


def test_a_release_row_survives_its_bytes_and_refuses_what_is_not_one() -> None:
    row = _rows([(1, 0, "DE", 0, "/", 200, 5, 10.0)])[0]
    assert ReleaseRow.from_bytes(row.to_bytes()).record == row.record
    for bad in (b"[]", b'{"r": {}, "v": "x", "t": 1e20}', b'{"r": 1, "v": "x", "t": 1}'):
        with pytest.raises(ValueError, match="release row"):
            ReleaseRow.from_bytes(bad)


def test_aggregate_windows_must_divide_a_day() -> None:
    with pytest.raises(ValueError, match="divide a day"):
        AggregateParams(windows_s=[7000])


# --- differential privacy (analytics.aggregates.dp; transforms/noise.py) -------------------------------------------

DP = AGGREGATES.model_copy(update={"dp": DifferentialPrivacy(epsilon=1.0, max_pageviews=20, max_cells=4)})
# Epsilon 20 a window: dimension cells of a few dozen visitors pass the selection (threshold 47, not 914).
LOOSE_DP = AGGREGATES.model_copy(update={"dp": DifferentialPrivacy(epsilon=20.0, max_pageviews=20, max_cells=4)})


def _aggregate_rows(stage: ReleaseStage, rows: list[ReleaseRow]) -> list[dict[str, Any]]:
    return [r for w in release_rows(rows, stage) if w.kind == "aggregates" for r in w.records]


def _pre_noise(aggregates: AggregateParams, rows: list[ReleaseRow]) -> dict[Any, tuple[int, int]]:
    """The bounded counts of every open aggregate window, before noise: what stream and file mode must agree on."""
    stage = ReleaseStage(RELEASE, aggregates)
    for row in rows:
        stage.add(row)
    return {
        (key, cell): counts
        for key, window in stage._aggregates.items()
        for cell, counts in stage._aggregate_counts(window).items()
    }


def test_the_shipped_policy_counts_exactly() -> None:
    assert AGGREGATES.dp is None  # daily pageviews exact unless the policy opts in
    rows = _rows([(u, 0, "DE", 0, "/docs/a", 200, 5, 60.0 * u) for u in range(6)])
    assert not any("noise" in row for row in _aggregate_rows(ReleaseStage(RELEASE, AGGREGATES), rows))


def test_with_dp_every_row_states_its_mechanism_and_scales() -> None:
    rows = _rows([(u, 0, "DE", 0, "/docs/a", 200, 5, 60.0 * u) for u in range(30)])
    released = _aggregate_rows(ReleaseStage(RELEASE, DP), rows)
    assert [row["dimensions"] for row in released] == [{}, {}]  # hour and day: 30 visitors are far below 914
    for row in released:
        noise = row["noise"]
        assert noise["mechanism"] == "discrete_laplace"
        # epsilon 1 over 7 sets x 2 counts: 1/14 each; the all-traffic sensitivities are 20 and 1
        assert (noise["scale"]["pageviews"], noise["scale"]["visitors"]) == pytest.approx((280.0, 14.0))
        assert noise["epsilon"] == pytest.approx(1 / 7)
        assert row["pageviews"] >= 0
        assert row["visitors"] >= 0


def test_with_dp_dimension_rows_are_selected_on_the_noisy_count_and_say_so() -> None:
    draw = [(u, 0, "DE", 0, "/docs/a", 200, 5, 30.0 * u) for u in range(100)]  # a hundred visitors in Germany
    draw.append((999, 0, "FR", 1, "/docs/a", 404, 5, 30.0))  # one in France
    for _ in range(5):
        rows = _aggregate_rows(ReleaseStage(RELEASE, LOOSE_DP), _rows(draw))
        countries = [r for r in rows if "country" in r["dimensions"]]
        assert {r["dimensions"]["country"] for r in countries} == {"DE"}  # France never: far below the threshold
        for row in (r for r in rows if r["dimensions"]):
            noise = row["noise"]
            assert noise["threshold"] >= RELEASE.k
            assert row["visitors"] >= noise["threshold"]  # k (and more) holds for the noisy count
            assert noise["delta"] == pytest.approx(1e-6 / 6)
            # a set's sensitivities: four cells of twenty pageviews, four cells changed by one; epsilon 20/14 each
            assert (noise["scale"]["pageviews"], noise["scale"]["visitors"]) == pytest.approx((56.0, 2.8))


def test_with_dp_the_counts_are_noisy_and_centred_on_the_bounded_truth() -> None:
    """Generous bounds: 40 runs of 30 visitors at scale 14 give a mean within 14 * sqrt(2) / sqrt(40) = 3 (1 sd);
    we allow 15 (5 sd), and ask only that some run differs from the truth."""
    rows = _rows([(u, 0, "DE", 0, "/docs/a", 200, 5, 60.0 * u) for u in range(30)])
    visitors = []
    for _ in range(40):
        day = [r for r in _aggregate_rows(ReleaseStage(RELEASE, DP), rows) if r["dimensions"] == {}][-1]
        visitors.append(day["visitors"])
    assert len(set(visitors)) > 1
    assert abs(sum(visitors) / len(visitors) - 30) < 15


def test_with_dp_each_visitor_counts_at_most_max_pageviews_and_max_cells() -> None:
    heavy = [(1, 0, "DE", 0, f"/docs/{p}", 200, 5, 10.0 + p) for p in range(50)]  # 50 pageviews on 50 paths
    light = [(u, 0, "DE", 0, "/docs/0", 200, 5, 60.0 * u) for u in range(2, 8)]  # six visitors, one page each
    counts = _pre_noise(DP, _rows(heavy + light))
    hour = {cell: n for ((size, _), cell), n in counts.items() if size == 3600}
    assert hour[(0, ())] == (20 + 6, 7)  # the heavy visitor counts 20 of its 50 pageviews
    # Its four kept paths: one pageview each (a tie), so the smallest keys: /docs/0, /docs/1, /docs/10, /docs/11.
    paths = {cell[0]: n for (index, cell), n in hour.items() if index == 1}
    assert paths == {"/docs/0": (7, 7), "/docs/1": (1, 1), "/docs/10": (1, 1), "/docs/11": (1, 1)}
    assert hour[(2, ("DE",))] == (26, 7)
    exact = _pre_noise(AGGREGATES, _rows(heavy + light))
    assert exact[((3600, T0), (0, ()))] == (56, 7)  # without DP nothing is bounded


def test_with_dp_the_pre_noise_counts_do_not_depend_on_arrival_order() -> None:
    rng = random.Random(11)
    draw = [
        (rng.randrange(30), rng.randrange(2), rng.choice(["DE", "FR"]), 0, rng.choice(["/a", "/b", "/c", "/d", "/e"]),
         200, 5, rng.uniform(0, 2 * HOUR))
        for _ in range(600)
    ]  # fmt: skip
    rows = _rows(draw)
    shuffled = sorted(rows, key=lambda r: r.time + rng.uniform(0, 60))
    assert _pre_noise(DP, shuffled) == _pre_noise(DP, rows)
    # The bound bit (visitors with five paths kept four), so which cells it kept mattered and did not move.
    assert _pre_noise(DP, rows) != _pre_noise(AGGREGATES, rows)


def test_lateness_does_not_depend_on_how_often_windows_are_closed() -> None:
    """The stream closes windows once a poll, the file mode once a line: a row that event time has left behind
    is late in both, so both release the same records (a late row used to slip into a not-yet-closed window)."""
    rng = random.Random(9)
    draw = [(rng.randrange(30), 0, "DE", rng.randrange(3), "/docs/a", 200, 5, 600.0 * i) for i in range(40)]
    rows = _rows(draw)
    # Hour 3's straggler, after rows of hour 4 (its window is due, not yet closed at the last poll's close).
    rows.insert(30, _rows([(99, 0, "DE", 0, "/", 200, 5, 3 * HOUR + 30.0)])[0])

    def released(every: int) -> tuple[Counter[bytes], int]:
        stage = ReleaseStage(RELEASE, AGGREGATES)
        out: Counter[bytes] = Counter()
        for index, row in enumerate(rows, 1):
            stage.add(row)
            if index % every == 0:
                out.update(orjson.dumps(r) for w in stage.close_due() for r in w.records)
        out.update(orjson.dumps(r) for w in stage.close_all() for r in w.records)
        return out, stage.late

    per_line, per_poll = released(1), released(20)
    assert per_line == per_poll
    assert per_line[1] == 1  # the straggler is late, counted, in either


# --- event ids (transforms/event_id.py) ------------------------------------------------------------------------------

IDS = EventIds(bytes(range(32)))


def _with_ids(rows: list[ReleaseRow]) -> list[ReleaseRow]:
    """Each row with the id the routing gives it: a keyed hash of its (here made-up) input position."""
    return [dataclasses.replace(row, event_id=IDS.record("analytics", "t", 0, i, 0)) for i, row in enumerate(rows)]


def _without_id(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "event_id"}


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(unit_rows, st.sampled_from([2, 5]))
def test_released_records_carry_their_rows_ids_once_and_nothing_else_changes(draw: list[Any], k: int) -> None:
    release = RELEASE.model_copy(update={"k": k})
    plain, plain_aggregates = _release(_rows(draw), release)
    rows = _with_ids(_rows(draw))
    windows, aggregates = _release(rows, release)
    released = [record for window in windows for record in window.records]
    ids = [record["event_id"] for record in released]
    assert len(ids) == len(set(ids))  # one id per released record
    assert set(ids) <= {row.event_id for row in rows}  # ... each the id of one row (of the units not suppressed)
    # Stripped of its id, the release is what it was without ids: k and the profiles are untouched.
    expected = Counter(orjson.dumps(r) for w in plain for r in w.records)
    assert Counter(orjson.dumps(_without_id(r)) for r in released) == expected
    assert [w.stats for w in windows] == [w.stats for w in plain]
    assert [[_without_id(r) for r in w.records] for w in aggregates] == [w.records for w in plain_aggregates]


def test_the_id_of_each_released_record_is_that_of_its_own_row() -> None:
    draw = [(u, 0, "DE", 0, "/docs/a", 200, 5, 60.0 * u) for u in range(6)]
    draw.append((3, 1, "DE", 0, "/docs/a", 200, 5, 600.0))  # unit 3's second record: another visitor, a variant
    rows = _with_ids(_rows(draw))
    windows, _ = _release(rows)
    released = {record["event_id"]: record for window in windows for record in window.records}
    assert set(released) == {row.event_id for row in rows}  # six units, k = 5: nothing suppressed
    for row in rows:
        record = released[row.event_id]
        assert record["client"]["pseudonym"] == row.record["client"]["pseudonym"]
        assert record["client"]["visitor"] == row.record["client"]["visitor"]


def test_released_ids_and_their_order_do_not_depend_on_arrival_order() -> None:
    rng = random.Random(3)
    draw = [(rng.randrange(20), rng.randrange(2), "DE", 0, "/docs/a", 200, 5, rng.uniform(0, HOUR)) for _ in range(200)]
    rows = _with_ids(_rows(draw))
    shuffled = sorted(rows, key=lambda r: r.time + rng.uniform(0, 60))
    first, _ = _release(rows)
    again, _ = _release(shuffled)
    assert [w.records for w in first] == [w.records for w in again]


def test_rows_written_before_event_ids_are_released_without_one() -> None:
    rows = _rows([(u, 0, "DE", 0, "/", 200, 5, 10.0 * u) for u in range(6)])
    windows, _ = _release(rows)
    assert all("event_id" not in record for window in windows for record in window.records)


def test_a_release_row_keeps_its_id_through_its_bytes_and_refuses_one_that_is_not_text() -> None:
    row = _with_ids(_rows([(1, 0, "DE", 0, "/", 200, 5, 10.0)]))[0]
    assert ReleaseRow.from_bytes(row.to_bytes()).event_id == row.event_id
    assert b'"e"' not in dataclasses.replace(row, event_id=None).to_bytes()
    with pytest.raises(ValueError, match="event id"):
        ReleaseRow.from_bytes(b'{"r": {}, "v": "x", "t": 1, "e": 7}')


def _aggregate_ids(stage: ReleaseStage, rows: list[ReleaseRow]) -> list[str]:
    return [row["event_id"] for row in _aggregate_rows(stage, rows)]


def test_aggregate_rows_get_an_id_of_what_they_are() -> None:
    rows = _rows([(u, 0, "DE", 0, "/docs/a", 200, 5, 60.0 * u) for u in range(8)])
    ids = _aggregate_ids(ReleaseStage(RELEASE, AGGREGATES, event_ids=IDS), rows)
    assert len(ids) == len(set(ids)) > 2  # hour and day totals and cells: each its own id
    # A window released again (a restart before its progress was recorded) repeats its ids, noisy or exact.
    assert _aggregate_ids(ReleaseStage(RELEASE, AGGREGATES, event_ids=IDS), rows) == ids
    noisy = [_aggregate_ids(ReleaseStage(RELEASE, DP, event_ids=IDS), rows) for _ in range(2)]
    assert noisy[0] == noisy[1]  # only the totals pass DP's threshold with eight visitors, both times
    assert set(noisy[0]) <= set(ids)
    # Another release partition counts other rows for the same window and cell: another id.
    assert set(_aggregate_ids(ReleaseStage(RELEASE, AGGREGATES, event_ids=IDS, scope=1), rows)).isdisjoint(ids)
    # Without the key, no id.
    assert all("event_id" not in row for row in _aggregate_rows(ReleaseStage(RELEASE, AGGREGATES), rows))
