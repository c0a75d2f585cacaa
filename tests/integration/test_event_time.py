"""Detection does not depend on how the input was partitioned (issue 11, item 1).

A time-ordered log is written to a 4-partition topic in chunks, each chunk to a random partition (as kcat's
sticky partitioner does), before the worker starts: the ingest then reads one partition's fetch before the next,
and one source's records would reach the detector hundreds of seconds out of order. The worker's alerts must equal
the file mode's over the same file, byte for byte. The short version of ``python -m benchmarks.chunked_replay``.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from benchmarks.chunked_replay import replay
from pipeline.traffic import generate

pytestmark = pytest.mark.integration


def test_stream_alerts_on_a_chunked_four_partition_backlog_equal_the_file_modes(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # 6,000 records over 50 minutes of event time: chunks of 300-600 records span 150-300 s each, so reading one
    # partition's chunk before another's puts a source's records up to about 45 minutes out of order.
    records = list(generate(6000, seed=5, start=datetime(2025, 6, 1, 10, tzinfo=UTC), events_per_second=2))
    row = replay(kafka_bootstrap, records, tmp_path, partitions=4, rng=random.Random(7), chunk_size=(300, 600))
    assert row["input_counted"] == row["records"] == 6000
    assert row["chunks"] >= 10
    assert row["alerts_file"] > 20  # generated attacks: ssh brute force, bad user agents
    assert (row["pairs_only_stream"], row["pairs_only_file"], row["counts_differ"]) == (0, 0, 0), row
    assert row["identical"], row
    assert row["detector_late"].get("beyond_tolerance", 0) == 0, row
