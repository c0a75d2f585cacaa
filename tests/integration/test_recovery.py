"""A worker killed with ``kill -9`` under steady traffic (issue 11, item 5): outputs resume in seconds, none lost.

The short version of ``python -m benchmarks.recovery`` (README "Delivery and recovery"), on the session's broker.
"""

from __future__ import annotations

import random

import pytest

from benchmarks.recovery import measure

pytestmark = pytest.mark.integration


def test_after_kill_9_and_a_restart_outputs_resume_within_15_s_and_nothing_is_lost(kafka_bootstrap: str) -> None:
    result = measure(kafka_bootstrap, kills=1, pause_s=2.0, static=True, rng=random.Random(3))
    (row,) = result.rows
    assert row["output_gap_s"] is not None, "no output after the restart"
    assert row["output_gap_s"] < 15, row
    assert row["detector_resume_s"] is not None
    assert row["detector_resume_s"] < 15, row
    assert result.acknowledged > 1000
    assert result.read_all, "the ingest's committed offsets never reached the end of the input"
