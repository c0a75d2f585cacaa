"""DP for the aggregates: OpenDP's discrete Laplace at the stated scale, the window's budget, contribution bounds."""

from __future__ import annotations

import math
import random
import statistics

import opendp.prelude as dp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from transforms.noise import (
    MECHANISM,
    CellSelection,
    CountNoise,
    DifferentialPrivacy,
    add_noise,
    bound_contributions,
    build_window_noise,
)

DRAWS = 4000


@pytest.mark.parametrize(
    ("epsilon", "sensitivity", "scale"),
    [
        (1.0, 1, 1.0),  # one visitor moves a visitor count by one
        (0.5, 20, 40.0),  # twenty pageviews per visitor, half the budget
        (1 / 14, 4, 56.0),  # a dimension set of the default split: four cells per visitor
    ],
)
def test_the_scale_is_sensitivity_over_epsilon_and_opendp_agrees_it_spends_epsilon(
    epsilon: float, sensitivity: int, scale: float
) -> None:
    noise = CountNoise.build(epsilon, sensitivity)
    assert noise.mechanism == MECHANISM == "discrete_laplace"
    assert noise.scale == pytest.approx(scale, rel=1e-12)
    dp.enable_features("contrib")
    measurement = dp.m.make_laplace(dp.atom_domain(T="i64"), dp.absolute_distance(T="i64"), scale=noise.scale)
    assert measurement.map(sensitivity) <= epsilon  # OpenDP's own privacy map, not our arithmetic


@pytest.mark.parametrize(("epsilon", "sensitivity"), [(0.0, 1), (-1.0, 1), (math.inf, 1), (math.nan, 1), (1.0, 0)])
def test_a_mechanism_without_a_budget_or_a_sensitivity_is_refused(epsilon: float, sensitivity: int) -> None:
    with pytest.raises(ValueError, match=r"epsilon|sensitivity"):
        CountNoise.build(epsilon, sensitivity)


def test_noise_is_centred_with_the_spread_of_its_scale() -> None:
    """Generous bounds: the mean of 4000 draws at scale 10 is off by 0.22 (one sd); we allow 2 (9 sd)."""
    noise = CountNoise.build(0.1, 1)  # scale 10: standard deviation 10 * sqrt(2)
    draws = [noise(10_000) for _ in range(DRAWS)]
    assert all(isinstance(d, int) for d in draws)
    assert abs(statistics.fmean(draws) - 10_000) < 2
    assert 0.8 < statistics.pstdev(draws) / (noise.scale * math.sqrt(2)) < 1.2
    assert len(set(draws)) > 20  # random, not a constant offset


def test_a_smaller_epsilon_spreads_wider() -> None:
    loose, tight = CountNoise.build(2.0, 1), CountNoise.build(0.05, 1)
    spread = [statistics.pstdev(n(1000) for _ in range(DRAWS)) for n in (loose, tight)]
    assert spread[1] > 10 * spread[0]  # the scales differ 40-fold


def test_a_noisy_count_is_never_negative() -> None:
    noise = CountNoise.build(0.1, 1)
    draws = [noise(0) for _ in range(DRAWS)]
    assert min(draws) == 0  # about half the draws fall at or below zero and are clamped
    assert max(draws) > 0


def test_two_runs_draw_different_noise() -> None:
    noise = CountNoise.build(1.0, 1)
    assert [noise(100) for _ in range(50)] != [noise(100) for _ in range(50)]


def test_the_window_budget_is_split_evenly_and_adds_up_to_epsilon() -> None:
    params = DifferentialPrivacy(epsilon=1.0, delta=1e-6, max_pageviews=20, max_cells=4)
    noises = build_window_noise(params, dimension_sets=6, k=5)
    assert len(noises) == 7  # the all-traffic row and six dimension sets
    assert sum(n.pageviews.epsilon + n.visitors.epsilon for n in noises) == pytest.approx(1.0)
    assert isinstance(noises[0].visitors, CountNoise)  # the all-traffic row is always there: no selection
    selections = [n.visitors for n in noises[1:]]
    assert all(isinstance(s, CellSelection) for s in selections)
    assert sum(s.delta for s in selections if isinstance(s, CellSelection)) == pytest.approx(1e-6)
    assert (noises[0].pageviews.sensitivity, noises[0].visitors.sensitivity) == (20, 1)  # one cell per visitor
    assert all(n.pageviews.sensitivity == 80 for n in noises[1:])  # four cells of twenty pageviews
    assert all(n.visitors.scale == pytest.approx(56.0) for n in noises[1:])  # four cells changed by one
    described = noises[0].describe()
    assert described["mechanism"] == "discrete_laplace"
    assert described["scale"] == {"pageviews": pytest.approx(280.0), "visitors": pytest.approx(14.0)}
    assert described["epsilon"] == pytest.approx(1 / 7)


@pytest.mark.parametrize(
    "bad",
    [{"epsilon": 0}, {"epsilon": 1, "max_pageviews": 0}, {"epsilon": 1, "delta": 0.5}, {"epsilon": 1, "sigma": 1}],
)
def test_dp_settings_are_checked_once(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        DifferentialPrivacy.model_validate(bad)


# --- which cells appear: OpenDP's Laplace threshold -------------------------------------------------------------


@pytest.mark.parametrize(
    ("epsilon", "delta", "max_cells", "k"), [(1 / 14, 1e-6 / 6, 4, 5), (1.0, 1e-6, 1, 5), (5.0, 1e-3, 1, 10)]
)
def test_the_threshold_is_the_smallest_at_least_k_that_opendp_says_spends_delta(
    epsilon: float, delta: float, max_cells: int, k: int
) -> None:
    selection = CellSelection.build(epsilon, delta, max_cells, k)
    assert selection.scale == pytest.approx(max_cells / epsilon, rel=1e-12)
    assert selection.threshold >= k
    dp.enable_features("contrib")
    domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T="i64"))
    metric = dp.l01inf_distance(dp.absolute_distance(T="i64"))

    def spent(threshold: int) -> tuple[float, float]:
        measurement = dp.m.make_laplace_threshold(domain, metric, scale=selection.scale, threshold=threshold)
        return measurement.map((max_cells, max_cells, 1))  # type: ignore[no-any-return]

    assert spent(selection.threshold)[0] <= epsilon
    assert spent(selection.threshold)[1] <= delta
    assert selection.threshold == k or spent(selection.threshold - 1)[1] > delta


def test_a_cell_far_below_the_threshold_never_appears_and_one_far_above_always_does() -> None:
    """Scale 1, delta 1e-9: a cell of one visitor passes with probability below 1e-9 per draw (1e-6 a run)."""
    selection = CellSelection.build(1.0, 1e-9, 1, 5)
    kept = [selection({"rare": 1, "common": 1000}) for _ in range(1000)]
    assert all("rare" not in draw for draw in kept)
    assert all(abs(draw["common"] - 1000) < 30 for draw in kept)
    assert len({draw["common"] for draw in kept}) > 1


def test_add_noise_keeps_the_all_traffic_cell_and_selects_dimension_cells() -> None:
    dp_params = DifferentialPrivacy(epsilon=10.0, delta=1e-9, max_pageviews=5, max_cells=1)
    noises = build_window_noise(dp_params, 1, k=5)  # FR passes with probability below 1e-9 a draw
    counts = {(0, ()): (3, 2), (1, ("DE",)): (500, 400), (1, ("FR",)): (1, 1)}
    for _ in range(200):
        noisy = add_noise(counts, noises)
        assert set(noisy) == {(0, ()), (1, ("DE",))}  # the all-traffic row even with two visitors; FR never
        assert all(pageviews >= 0 and visitors >= 0 for pageviews, visitors in noisy.values())
        assert noisy[(1, ("DE",))][1] >= noises[1].visitors.threshold  # type: ignore[union-attr]


# --- contribution bounding (deterministic: no noise) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("cells", "max_pageviews", "max_cells", "expected"),
    [
        # a crawler's 50 pageviews count as 20; the other visitor's 3 as 3
        ({(0, ()): {"crawler": 50, "v": 3}}, 20, 4, {(0, ()): (23, 2)}),
        # five cells for one visitor, four kept: its busiest (/d, 9 pageviews), then the smallest keys of the ties
        (
            {(1, (p,)): {"v": n} for p, n in [("/a", 1), ("/b", 1), ("/c", 1), ("/d", 9), ("/e", 1)]},
            20,
            4,
            {(1, ("/a",)): (1, 1), (1, ("/b",)): (1, 1), (1, ("/c",)): (1, 1), (1, ("/d",)): (9, 1)},
        ),
        # the bound is per dimension set: set 1 and set 2 each keep one cell of the same visitor
        (
            {(1, ("/a",)): {"v": 2}, (1, ("/b",)): {"v": 1}, (2, ("DE",)): {"v": 3}},
            20,
            1,
            {(1, ("/a",)): (2, 1), (2, ("DE",)): (3, 1)},
        ),
        # a cell every visitor dropped is left out; another visitor keeps /b
        (
            {(1, ("/a",)): {"v": 5, "w": 1}, (1, ("/b",)): {"v": 1, "w": 2}},
            20,
            1,
            {(1, ("/a",)): (5, 1), (1, ("/b",)): (2, 1)},
        ),
    ],
)
def test_each_visitor_counts_a_bounded_number_of_pageviews_and_cells(
    cells: dict[tuple[int, tuple[str, ...]], dict[str, int]],
    max_pageviews: int,
    max_cells: int,
    expected: dict[tuple[int, tuple[str, ...]], tuple[int, int]],
) -> None:
    assert bound_contributions(cells, max_pageviews, max_cells) == expected


visits = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from(["/", "/a", "/b", "/c", None]), st.integers(0, 9)), max_size=200
)


def _cells(draw: list[tuple[int, str | None, int]]) -> dict[tuple[int, tuple[str | None]], dict[str, int]]:
    cells: dict[tuple[int, tuple[str | None]], dict[str, int]] = {}
    for index, path, visitor in draw:
        slot = cells.setdefault((index, (path,)), {})
        slot[f"v{visitor}"] = slot.get(f"v{visitor}", 0) + 1
    return cells


@given(visits, st.randoms(use_true_random=False))
def test_bounding_does_not_depend_on_the_order_the_visits_arrived_in(
    draw: list[tuple[int, str | None, int]], rnd: random.Random
) -> None:
    shuffled = draw.copy()
    rnd.shuffle(shuffled)
    assert bound_contributions(_cells(shuffled), 3, 2) == bound_contributions(_cells(draw), 3, 2)


@given(visits, st.integers(1, 5), st.integers(1, 5))
def test_bounds_hold_and_wide_bounds_give_the_exact_counts(
    draw: list[tuple[int, str | None, int]], pv: int, mc: int
) -> None:
    cells = _cells(draw)
    exact = {cell: (sum(v.values()), len(v)) for cell, v in cells.items()}
    assert bound_contributions(cells, 10**6, 10**6) == exact
    bounded = bound_contributions(cells, pv, mc)
    for cell, (pageviews, visitors) in bounded.items():
        assert visitors <= exact[cell][1]
        assert pageviews <= min(exact[cell][0], pv * visitors)
    for index in (0, 1, 2):
        reached: dict[str, int] = {}
        for cell, visitors in cells.items():
            for visitor in visitors if cell[0] == index else ():
                reached[visitor] = reached.get(visitor, 0) + 1
        # every visitor keeps min(its cells, mc) cells of the set: no more (the sensitivity), no fewer
        assert sum(n for c, (_, n) in bounded.items() if c[0] == index) == sum(min(n, mc) for n in reached.values())
