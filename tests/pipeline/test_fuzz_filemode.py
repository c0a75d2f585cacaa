"""Hostile records of every input format through the file mode's per-line path, checked with Hypothesis.

The records come from the fuzz benchmark's generators (benchmarks/hostile.py), fed a seeded ``Random``;
``python -m benchmarks.fuzz`` runs the same generators over 100,000 records. The step is the file mode's
(benchmarks.fuzz.FileModeStep: routing, serialization, observation rows, detection), each stage guarded, so
a failure names its stage instead of stopping the test run.
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from random import Random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks import fuzz, hostile
from benchmarks.hostile import Sample
from tests.conftest import SHARED_DATA

# Every family but the mutated real lines (their own test below: they need ../shared/data).
FAMILIES = sorted(hostile.FAMILIES)
FUZZ_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    derandomize=False,
)
ROUTES = {"analytics", "quarantine", "filtered"}
# A generator makes hundreds of random choices per record: Hypothesis draws the seed of a Random, so an
# example costs one draw and a failure names the seed (``hostile.generate(family, Random(seed))`` replays it).
SEEDS = st.integers(min_value=0, max_value=2**64 - 1)


@pytest.fixture(scope="module")
def step() -> Iterator[fuzz.FileModeStep]:
    """One runtime for the module; each example resets its detector state, so examples stay independent."""
    with tempfile.TemporaryDirectory() as tmp:
        yield fuzz.FileModeStep(fuzz.fuzz_runtime(Path(tmp)))


def _shown(sample: Sample) -> str:
    text = repr(sample.raw)
    return f"{sample.family} record {text[:600]}{'...' if len(text) > 600 else ''}"


def _check_one_route(routed: fuzz.Routed, sample: Sample) -> None:
    """No stage raised, and the record ended in exactly one route whose outputs agree with it."""
    assert routed.crash is None, (
        f"{routed.crash_stage} raised {type(routed.crash).__name__}: {routed.crash} on {_shown(sample)}"
    )
    assert routed.route in ROUTES, _shown(sample)
    names = [name for name, _ in routed.outputs]
    quarantined = names.count("quarantine")
    if routed.route == "quarantine":
        assert quarantined == 1, _shown(sample)
        assert "analytics" not in names, _shown(sample)
        assert "abuse" not in names, _shown(sample)
    else:
        assert quarantined == 0, _shown(sample)
        assert ("analytics" in names) == (routed.route == "analytics"), _shown(sample)


def _check_no_leak(routed: fuzz.Routed, sample: Sample) -> None:
    leaks = fuzz.check_leaks(routed, fuzz._counted_canaries(sample), deque())
    assert not leaks, (
        "; ".join(
            f"{canary.kind} planted in {canary.field} ({canary.value!r}) found in {output}" for output, canary in leaks
        )
        + f" -- {_shown(sample)}"
    )


@pytest.mark.parametrize("family", FAMILIES)
@FUZZ_SETTINGS
@given(seed=SEEDS)
def test_every_record_is_routed_once_without_raising(step: fuzz.FileModeStep, family: str, seed: int) -> None:
    """Processing, routing, serialization and detection never raise, and every record takes exactly one route."""
    step.reset()
    sample = hostile.generate(family, Random(seed))
    _check_one_route(step(sample.raw, 0), sample)


@pytest.mark.parametrize("family", FAMILIES)
@FUZZ_SETTINGS
@given(seed=SEEDS)
def test_no_planted_identifier_reaches_any_output(step: fuzz.FileModeStep, family: str, seed: int) -> None:
    """No planted identifier appears in analytics, abuse, quarantine envelopes, observation rows or alerts."""
    step.reset()
    sample = hostile.generate(family, Random(seed))
    routed = step(sample.raw, 0)
    if routed.crash is None:  # a crash is the other test's failure
        _check_no_leak(routed, sample)


@FUZZ_SETTINGS
@given(raw=st.binary(max_size=2000))
def test_arbitrary_bytes_are_routed_once_without_raising(step: fuzz.FileModeStep, raw: bytes) -> None:
    """Any bytes at all end in exactly one route."""
    step.reset()
    _check_one_route(step(raw, 0), Sample("binary", raw))


@pytest.fixture(scope="module")
def real() -> hostile.RealLines:
    lines = hostile.real_lines(SHARED_DATA)
    if not lines.lines:
        pytest.skip(f"shared data not present: {SHARED_DATA / 'logs'}")
    return lines


@pytest.mark.shared_data
@FUZZ_SETTINGS
@given(seed=SEEDS)
def test_mutated_real_lines_are_routed_once_and_keep_the_client_address_out(
    step: fuzz.FileModeStep, real: hostile.RealLines, seed: int
) -> None:
    """Real access, sshd and error-log lines with bytes flipped, inserted, cut, duplicated or swapped."""
    step.reset()
    sample = hostile.mutated_real(Random(seed), real)
    routed = step(sample.raw, 0)
    # a real line is named by file and line, never printed
    assert routed.crash is None, f"{routed.crash_stage} raised {type(routed.crash).__name__} on {sample.origin}"
    assert routed.route in ROUTES, sample.origin
    leaks = fuzz.check_leaks(routed, sample.canaries, deque())
    assert not leaks, f"client address of {sample.origin} ({sample.mutation}) found in {leaks[0][0]}"
