"""benchmarks.token_detection: the goals, checked on a fixed seed (deterministic, not timed)."""

from __future__ import annotations

import pytest

from benchmarks.datasets import shared_dir
from benchmarks.token_detection import FIXTURE_LOGS, PRIMARY_LOGS, _segments, detection, false_positives


def test_generated_secrets_are_caught_in_every_placement() -> None:
    """Secrets of 16+ characters of every family are caught at 99%+ wherever a client can plant them."""
    result = detection(per_family=300, seed=7)
    for family, placements in result.items():
        for placement, figures in placements.items():
            assert figures["rate"] >= 0.99, (family, placement, figures["missed"])


@pytest.mark.shared_data
@pytest.mark.parametrize("folders", [PRIMARY_LOGS, FIXTURE_LOGS])
def test_real_path_segments_are_rarely_taken_for_tokens(folders: tuple[str, ...]) -> None:
    """Under 1% of the distinct real path segments become a token placeholder without being machine-generated."""
    root = shared_dir()
    if root is None:
        pytest.skip("shared data not found")
    segments = _segments(root, folders)
    assert len(segments) > 300
    assert false_positives(segments)["false_positive_rate"] < 0.01
