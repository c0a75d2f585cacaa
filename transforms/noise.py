"""Optional differential privacy for the aggregates: contribution bounding and OpenDP's discrete Laplace noise.

Why: k-suppression hides small cells, but exact counts of the cells it keeps still move by one when one
visitor comes or goes, and a series of releases (hour and day windows, every dimension set) can be
differenced. With ``analytics.aggregates.dp`` set, each aggregate window is released with (epsilon, delta)-differential
privacy for one *visitor* (the daily visitor pseudonym: address + user agent, a day). Off by default, so that
daily pageviews stay exact.

What is protected, and how much (decisions where issue 9 is silent):

* **(epsilon, delta) per window, split across the window's queries.** ``epsilon`` and ``delta`` are the budget
  of one aggregate window (one hour, or one day): the all-traffic row and every dimension set, pageviews and
  visitors, and which cells appear at all. A visitor appears in every dimension set of the window, so by
  sequential composition the losses add up; splitting the policy's epsilon evenly over the
  ``2 * (1 + len(dimensions))`` counts, and delta evenly over the dimension sets (the only queries that spend
  it), makes the numbers in the policy the guarantee of the window's whole release rather than of one of its
  parts. Each row states its share.
  Windows of different lengths (an hour inside its day) and consecutive windows a visitor returns to are
  separate releases: a visitor seen in ``h`` hour windows of a day spends up to ``(h + 1) * epsilon`` over that
  day's hour and day rows (sequential composition; no bounding across windows).
* **Contribution bounding per visitor per window.** Before noise, each visitor counts at most
  ``max_pageviews`` pageviews in a cell, and at most ``max_cells`` cells per dimension set: the cells where it
  has the most pageviews, ties broken by the smallest cell key. The choice depends only on the window's
  content, never on arrival order, so the stream and the file mode compute the same pre-noise values
  (:func:`bound_contributions`). The sensitivity (L1, one visitor added or removed) of one dimension set is
  then ``max_cells * max_pageviews`` for pageviews and ``max_cells`` for visitors; of the all-traffic row,
  where a visitor has exactly one cell, ``max_pageviews`` and ``1``. Bounding biases heavy visitors (crawlers
  above ``max_pageviews``) downwards: the utility figures in ``benchmarks/results/privacy.md`` include it.
* **Noise.** OpenDP's discrete Laplace, scale ``sensitivity / epsilon_share``, checked against OpenDP's own
  privacy map when built; OpenDP samples with its own cryptographic randomness (no float sampler here).
  Counts whose key is public (the all-traffic row; the pageviews of a cell already selected) use
  ``make_laplace`` on ``atom_domain(T=i64)``; negative results are clamped to 0 (post-processing).
* **Which cells appear, and k.** The cells that exist are the cells that were seen, so releasing "the noisy
  count of every seen cell above k" would leak presence: with the noise of a dimension set at epsilon 1
  (scale 56), a cell of one visitor passes a noisy threshold of k = 5 with probability 0.5 * e^(-4/56), 47 %
  (a first version did this: on the Elastic days it released dimension rows off by 30x on average). A
  dimension set's visitor counts therefore go through OpenDP's ``make_laplace_threshold`` (propose-test-release
  over a map of counts, ``l01inf_distance``: a visitor changes at most ``max_cells`` cells by one), which
  releases a cell only when its noisy visitor count reaches a threshold, and spends delta for the cells it could
  reveal. The threshold is the smallest integer, at least k, for which OpenDP's map gives the set's delta
  share; so every released dimension row has a noisy visitor count of at least k (k now holds for the noisy
  count, not the exact one) and the selection is covered by the (epsilon, delta) guarantee. The pageviews of
  the selected cells are then noised with keys that are public (the selection's output). The price: the
  threshold grows with the scale times ``ln(1/delta)`` (hundreds of visitors at epsilon 1), so small sites get
  their all-traffic rows and few, if any, dimension rows.
* **What the guarantee does not cover.** It is stated for one release stage: the stream keys release rows by
  the window-lived unit, so with ``PSEUDO_RELEASE_PARTITIONS`` above one (default one) a visitor can reach
  several stages' rows of a day and its loss multiplies by the stages it reaches. A person behind several
  addresses or user agents is several visitors (group privacy: the loss scales with their number).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import opendp.prelude as dp
import orjson
from pydantic import BaseModel, ConfigDict, Field

MECHANISM = "discrete_laplace"
Cell = TypeVar("Cell", bound=tuple[int, Hashable])  # (dimension set index, cell values)


class DifferentialPrivacy(BaseModel):
    """``analytics.aggregates.dp``: the budget of one aggregate window and the bounds of one visitor in it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epsilon: float = Field(gt=0, le=20)
    delta: float = Field(1e-6, gt=0, lt=1e-2)
    max_pageviews: int = Field(20, ge=1, le=100_000)
    max_cells: int = Field(4, ge=1, le=10_000)


@dataclass(frozen=True, slots=True)
class CountNoise:
    """OpenDP's discrete Laplace for one count of known sensitivity: ``noise(count) -> noisy count >= 0``."""

    scale: float
    epsilon: float
    sensitivity: int
    _measurement: Callable[[int], int]
    mechanism: str = MECHANISM

    @classmethod
    def build(cls, epsilon: float, sensitivity: int) -> CountNoise:
        """The mechanism that spends ``epsilon`` on a count that one visitor moves by at most ``sensitivity``."""
        if not epsilon > 0 or not math.isfinite(epsilon):
            raise ValueError(f"epsilon must be a positive number, not {epsilon!r}")
        if sensitivity < 1:
            raise ValueError(f"sensitivity must be at least 1, not {sensitivity!r}")
        dp.enable_features("contrib")
        space = dp.atom_domain(T="i64"), dp.absolute_distance(T="i64")
        scale = sensitivity / epsilon
        measurement = dp.m.make_laplace(*space, scale=scale)
        # OpenDP's privacy map rounds up (conservative float arithmetic): widen the scale by a few ulps until the
        # map itself says the budget holds, so that the stated epsilon is OpenDP's, not ours.
        for _ in range(64):
            if measurement.map(sensitivity) <= epsilon:
                break
            scale = math.nextafter(scale, math.inf)
            measurement = dp.m.make_laplace(*space, scale=scale)
        else:
            raise ValueError(f"no discrete Laplace scale near {sensitivity / epsilon} spends epsilon {epsilon}")
        return cls(scale, epsilon, sensitivity, measurement)

    def __call__(self, count: int) -> int:
        noisy = self._measurement(count)
        return noisy if noisy > 0 else 0  # post-processing: a count is never negative

    def describe(self) -> dict[str, Any]:
        return {"mechanism": self.mechanism, "scale": self.scale, "epsilon": self.epsilon}


@dataclass(frozen=True, slots=True)
class CellSelection:
    """OpenDP's Laplace threshold over one dimension set's visitor counts: the cells it releases, noisy.

    ``select({key: visitors}) -> {key: noisy visitors}`` for the keys whose noisy count reaches ``threshold``.
    """

    scale: float
    threshold: int
    epsilon: float
    delta: float
    _measurement: Callable[[dict[str, int]], dict[str, int]]

    @classmethod
    def build(cls, epsilon: float, delta: float, max_cells: int, k: int) -> CellSelection:
        """A visitor changes at most ``max_cells`` counts by one; the threshold: the smallest >= ``k`` for ``delta``."""
        dp.enable_features("contrib")
        domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T="i64"))
        metric = dp.l01inf_distance(dp.absolute_distance(T="i64"))
        distance = (max_cells, max_cells, 1)  # (cells changed, sum of the changes, largest change)

        def measurement(scale: float, threshold: int) -> Any:
            return dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)

        scale = max_cells / epsilon
        for _ in range(64):
            if measurement(scale, k).map(distance)[0] <= epsilon:
                break
            scale = math.nextafter(scale, math.inf)
        else:
            raise ValueError(f"no Laplace threshold scale near {max_cells / epsilon} spends epsilon {epsilon}")
        # delta falls as the threshold rises: double, then bisect, on OpenDP's own map.
        low, high = k - 1, k
        while measurement(scale, high).map(distance)[1] > delta:
            low, high = high, 2 * high
            if high > 1 << 40:
                raise ValueError(f"no threshold reaches delta {delta}")
        while high - low > 1:
            middle = (low + high) // 2
            if measurement(scale, middle).map(distance)[1] > delta:
                low = middle
            else:
                high = middle
        return cls(scale, high, epsilon, delta, measurement(scale, high))

    def __call__(self, visitors: dict[str, int]) -> dict[str, int]:
        return self._measurement(visitors)


@dataclass(frozen=True, slots=True)
class SetNoise:
    """The mechanisms of one dimension set (or of the all-traffic row, which has no selection) of a window."""

    pageviews: CountNoise
    visitors: CountNoise | CellSelection

    def describe(self) -> dict[str, Any]:
        """What a row states: the mechanism, each count's scale, what this row's counts spend, the threshold."""
        described: dict[str, Any] = {
            "mechanism": MECHANISM,
            "scale": {"pageviews": self.pageviews.scale, "visitors": self.visitors.scale},
            "epsilon": self.pageviews.epsilon + self.visitors.epsilon,
        }
        if isinstance(self.visitors, CellSelection):
            described["delta"] = self.visitors.delta
            described["threshold"] = self.visitors.threshold
        return described


def build_window_noise(params: DifferentialPrivacy, dimension_sets: int, k: int) -> list[SetNoise]:
    """One :class:`SetNoise` per set, index 0 the all-traffic row: the window's budget split evenly over them."""
    share = params.epsilon / (2 * (1 + dimension_sets))
    noises = [SetNoise(CountNoise.build(share, params.max_pageviews), CountNoise.build(share, 1))]
    if dimension_sets:
        cells = params.max_cells
        per_set = SetNoise(
            CountNoise.build(share, cells * params.max_pageviews),
            CellSelection.build(share, params.delta / dimension_sets, cells, k),
        )
        noises += [per_set] * dimension_sets
    return noises


def add_noise(counts: Mapping[Cell, tuple[int, int]], noises: list[SetNoise]) -> dict[Cell, tuple[int, int]]:
    """Noisy (pageviews, visitors) of the cells released: the all-traffic cell always, a dimension cell when its
    set's :class:`CellSelection` keeps it. ``counts`` are the bounded, pre-noise counts."""
    by_key: dict[int, dict[str, Cell]] = defaultdict(dict)
    for cell in counts:
        by_key[cell[0]][orjson.dumps(cell[1]).decode()] = cell
    noisy: dict[Cell, tuple[int, int]] = {}
    for index, cells in by_key.items():
        noise = noises[index]
        if isinstance(noise.visitors, CountNoise):
            for cell in cells.values():
                pageviews, visitors = counts[cell]
                noisy[cell] = (noise.pageviews(pageviews), noise.visitors(visitors))
            continue
        kept = noise.visitors({key: counts[cell][1] for key, cell in cells.items()})
        for key, visitors in kept.items():
            cell = cells[key]
            noisy[cell] = (noise.pageviews(counts[cell][0]), visitors)
    return noisy


def bound_contributions(
    cells: Mapping[Cell, Mapping[str, int]], max_pageviews: int, max_cells: int
) -> dict[Cell, tuple[int, int]]:
    """Pre-noise (pageviews, visitors) per cell with each visitor's contribution bounded.

    ``cells`` maps ``(dimension set index, cell values)`` to each visitor's pageviews there. A visitor keeps at
    most ``max_cells`` cells per set (its busiest; ties: the smallest cell by canonical bytes) and counts at most
    ``max_pageviews`` pageviews in each. Cells no visitor keeps are left out. Independent of the mapping's order.
    """
    by_visitor: dict[tuple[int, str], list[tuple[int, bytes, Cell]]] = defaultdict(list)
    for cell, visitors in cells.items():
        order = orjson.dumps(cell[1])
        for visitor, pageviews in visitors.items():
            by_visitor[(cell[0], visitor)].append((-pageviews, order, cell))
    bounded: dict[Cell, list[int]] = {}
    for contributions in by_visitor.values():
        if len(contributions) > max_cells:
            contributions.sort(key=lambda item: (item[0], item[1]))
            del contributions[max_cells:]
        for negative, _, cell in contributions:
            slot = bounded.get(cell)
            if slot is None:
                slot = bounded[cell] = [0, 0]
            slot[0] += min(-negative, max_pageviews)
            slot[1] += 1
    return {cell: (pageviews, visitors) for cell, (pageviews, visitors) in bounded.items()}
