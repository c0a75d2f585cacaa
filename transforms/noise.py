"""Optional differential privacy for the aggregates: contribution bounding and OpenDP's discrete Laplace noise.

Why: k-suppression hides small cells, but exact counts of the cells it keeps still move by one when one
visitor comes or goes, and a series of releases (hour and day windows, every dimension set) can be
differenced. With ``analytics.aggregates.dp`` set, each aggregate window is released with epsilon-differential
privacy for one *visitor* (the daily visitor pseudonym: address + user agent, a day). Off by default, so that
daily pageviews stay exact.

What is protected, and how much (decisions where issue 9 is silent):

* **Epsilon is per window, split across the window's queries.** ``epsilon`` is the budget of one aggregate
  window (one hour, or one day): the all-traffic row and every dimension set, pageviews and visitors. A visitor
  appears in every dimension set of the window, so by sequential composition the losses add up; splitting the
  policy's epsilon evenly over the ``2 * (1 + len(dimensions))`` counts makes the number in the policy the
  guarantee of the window's whole release rather than of one of its parts. Each row states its share.
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
* **Noise.** OpenDP's discrete Laplace (``opendp.measurements.make_laplace`` on ``atom_domain(T=i64)`` with
  ``absolute_distance(T=i64)``), scale ``sensitivity / epsilon_share``, checked against OpenDP's own privacy
  map when built; OpenDP samples with its own cryptographic randomness (no float sampler here). Negative
  results are clamped to 0, which is post-processing and costs no privacy.
* **What the guarantee does not cover.** The cells that exist are the cells that were seen: a cell appears in
  the window's rows only if some visitor produced it, and dimension cells are then kept when their *noisy*
  visitor count reaches k. That selection is not differentially private (a cell one visitor alone produced
  can appear, with small probability when its noisy count reaches k); a thresholded (epsilon, delta)
  mechanism over the cells would cover it and is not implemented. The all-traffic row is always released.
  The guarantee is stated for one release stage: the stream keys release rows by the window-lived unit, so
  with ``PSEUDO_RELEASE_PARTITIONS`` above one (default one) a visitor can reach several stages' rows of a day
  and its loss multiplies by the stages it reaches. A person behind several addresses or user agents is
  several visitors (group privacy: the loss scales with their number).
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
class SetNoise:
    """The two mechanisms of one dimension set (or of the all-traffic row) of a window."""

    pageviews: CountNoise
    visitors: CountNoise

    def describe(self) -> dict[str, Any]:
        """What a row states: the mechanism, each count's scale, and the epsilon this row's counts spend."""
        return {
            "mechanism": MECHANISM,
            "scale": {"pageviews": self.pageviews.scale, "visitors": self.visitors.scale},
            "epsilon": self.pageviews.epsilon + self.visitors.epsilon,
        }


def build_window_noise(params: DifferentialPrivacy, dimension_sets: int) -> list[SetNoise]:
    """One :class:`SetNoise` per set, index 0 the all-traffic row: the window's epsilon split evenly over them."""
    share = params.epsilon / (2 * (1 + dimension_sets))
    noises = [SetNoise(CountNoise.build(share, params.max_pageviews), CountNoise.build(share, 1))]
    cells = params.max_cells
    per_set = SetNoise(CountNoise.build(share, cells * params.max_pageviews), CountNoise.build(share, cells))
    return noises + [per_set] * dimension_sets


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
