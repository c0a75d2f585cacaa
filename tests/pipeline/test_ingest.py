"""The batch ingest's pure parts: partitioning, and the observation batches the detector agent reads.

The service itself (poll, produce, commit) runs against the real broker in tests/integration.
"""

from __future__ import annotations

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from pipeline.ingest import (
    default_partitioner,
    key_partition,
    observation_batches,
    positioned_row,
    read_observation_batch,
)
from transforms.model import OBSERVATION_ROW_LENGTH, Observation

_TEXT = st.text(max_size=12)
_MAYBE_TEXT = st.none() | _TEXT

observations = st.builds(
    Observation,
    subject=st.sampled_from([f"s-key-{n:02d}" for n in range(12)]),
    time=st.floats(1e9, 2e9, allow_nan=False),
    kind=st.sampled_from(["http", "ssh"]),
    signals=st.lists(st.sampled_from(["http.sqli", "http.xss", "ssh.auth_failed"]), max_size=3).map(tuple),
    method=st.sampled_from([None, "GET", "POST"]),
    status=st.none() | st.integers(100, 599),
    path=_MAYBE_TEXT,
    user=_MAYBE_TEXT,
    ssh_outcome=st.sampled_from([None, "failed", "invalid_user"]),
    bot=st.booleans(),
    prefix=_MAYBE_TEXT,
    scope=st.sampled_from([None, "public", "private"]),
    country=st.sampled_from([None, "DE", "US"]),
    asn=st.none() | st.integers(0, 2**32 - 1),
    as_org=_MAYBE_TEXT,
    repeat=st.integers(1, 1000),
)


@given(observations)
def test_an_observation_row_survives_the_json_round_trip(observation: Observation) -> None:
    row = orjson.loads(orjson.dumps(observation.to_row()))
    assert len(row) == OBSERVATION_ROW_LENGTH
    assert Observation.from_row(observation.subject, row) == observation


@given(st.lists(observations, max_size=60), st.integers(1, 8))
def test_observation_batches_route_each_subject_to_its_partition_in_order(
    batch: list[Observation], partitions: int
) -> None:
    rows = [
        (observation.subject, positioned_row(3, offset, orjson.dumps(observation.to_row())))
        for offset, observation in enumerate(batch)
    ]
    messages = list(observation_batches(rows, partitions, "writer-1", 1.5e9))
    # One message per partition, every partition: each carries the writer's watermark.
    assert sorted(partition for partition, _ in messages) == list(range(partitions))
    decoded: dict[str, list[tuple[int, Observation]]] = {}
    for partition, value in messages:
        message = read_observation_batch(value)
        assert (message.writer, message.watermark) == ("writer-1", 1.5e9)
        for subject, entries in message.groups:
            assert key_partition(subject.encode(), partitions) == partition
            assert subject not in decoded
            assert {input_partition for input_partition, _, _ in entries} == {3}
            decoded[subject] = [(offset, Observation.from_row(subject, row)) for _, offset, row in entries]
    expected: dict[str, list[tuple[int, Observation]]] = {}
    for offset, observation in enumerate(batch):
        expected.setdefault(observation.subject, []).append((offset, observation))
    assert decoded == expected  # nothing lost, per-subject arrival order and input positions kept


def test_a_batch_from_before_watermarks_reads_without_writer_or_positions() -> None:
    row = orjson.loads(orjson.dumps(Observation("s-a", 1.7e9, "http").to_row()))
    message = read_observation_batch(orjson.dumps({"s-a": [row]}))
    assert (message.writer, message.watermark) == (None, None)
    assert message.groups == [("s-a", [(None, None, row)])]


@given(st.binary(min_size=1, max_size=64), st.integers(1, 64))
def test_key_partition_agrees_with_kafkas_default_partitioner(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    assert key_partition(key, partitions) == DefaultPartitioner()(key, every, every)
    assert default_partitioner(key, every, every) == DefaultPartitioner()(key, every, every)


def test_unkeyed_records_go_to_an_available_partition() -> None:
    assert all(default_partitioner(None, [0, 1, 2, 3], [2]) == 2 for _ in range(20))
    assert default_partitioner(None, [0, 1], []) in (0, 1)


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b"[1, 2]",
        b'{"s-a": 1}',
        b'{"s-a": [1]}',
        b'{"w": "x", "wm": null, "s": {"s-a": [[1.0, "http"]]}}',  # a row without its position
        b'{"w": 1, "wm": null, "s": {}}',  # a writer that is not a name
        b'{"w": "x", "wm": "soon", "s": {}}',
        b'{"w": "x", "wm": null, "s": []}',
    ],
)
def test_a_malformed_observation_batch_is_a_value_error(value: bytes) -> None:
    with pytest.raises(ValueError, match="observation"):
        read_observation_batch(value)
