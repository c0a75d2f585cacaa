"""PSEUDO_PROCESSING_GUARANTEE=exactly_once through a ``kill -9`` (issue 11, item 4): nothing twice, nothing lost.

The short version of ``python -m benchmarks.exactly_once`` (README "Delivery and recovery"), on the session's broker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.exactly_once import run_guarantee

pytestmark = pytest.mark.integration


def test_after_kill_9_a_read_committed_consumer_sees_each_output_once_and_none_lost(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    result = run_guarantee(kafka_bootstrap, "exactly_once", records=8000, kills=1, workdir=tmp_path)
    assert result["kills"] == 1, "the worker never read enough to be killed mid-stream"
    assert result["records"] == 8000
    for name in ("analytics", "abuse", "quarantine"):
        counted = result[name]
        assert counted["expected"] > 0, name
        assert counted["duplicated"] == 0, (name, counted)
        assert counted["lost"] == 0, (name, counted)
    # every analytics record the ingest writes for this input, and nothing else
    assert result["analytics"]["read"] == result["analytics"]["expected"]
