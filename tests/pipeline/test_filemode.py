"""The file mode's event ids: every output record has one, and a replay of the same input repeats them all."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from pipeline.cli import main
from pipeline.traffic import generate

START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
OUTPUTS = ("analytics", "abuse", "quarantine", "aggregates")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The same input through the file mode twice, with one keyring: the bytes of each output file, per run."""
    tmp = tmp_path_factory.mktemp("filemode")
    keys = tmp / "keyring.json"
    assert main(["keys", "generate", "--out", str(keys)]) == 0
    source = tmp / "input.log"
    source.write_bytes(b"\n".join(generate(3000, seed=3, start=START)) + b"\n")

    def run(name: str) -> dict[str, bytes]:
        out = tmp / name
        args = ["process", "--keys", str(keys), "--out", str(out), "--ingest-time", "2026-11-27T12:00:00Z", str(source)]
        assert main(args) == 0
        return {output: (out / f"{output}.jsonl").read_bytes() for output in OUTPUTS}

    return run("first"), run("replay")


def _records(files: dict[str, bytes], output: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in files[output].splitlines()]


def test_a_replay_of_the_same_input_writes_the_same_records_with_the_same_ids(
    runs: tuple[dict[str, bytes], dict[str, bytes]],
) -> None:
    first, replay = runs
    for output in OUTPUTS:
        assert _records(first, output), f"the input gave no {output} record: the test would prove nothing"
        if output == "quarantine":  # sealed with a fresh nonce each time: all but the ciphertext is the same
            assert [_unsealed(r) for r in _records(replay, output)] == [_unsealed(r) for r in _records(first, output)]
        else:
            assert replay[output] == first[output], output


def _unsealed(envelope: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in envelope.items() if key != "payload"}


def test_every_record_of_every_output_has_its_own_id(runs: tuple[dict[str, bytes], dict[str, bytes]]) -> None:
    first, _ = runs
    seen: Counter[str] = Counter()
    for output in OUTPUTS:
        # Detector alerts get theirs from the detector (pipeline.routing.alert_with_id): checked below.
        records = [r for r in _records(first, output) if r.get("kind") != "alert"]
        ids = [record.get("event_id") for record in records]
        assert all(isinstance(i, str) and len(i) == 32 for i in ids), output
        seen.update(ids)
    assert max(seen.values()) == 1  # unique within each output and across them


def test_every_alert_has_an_id(runs: tuple[dict[str, bytes], dict[str, bytes]]) -> None:
    first, _ = runs
    alerts = [r for r in _records(first, "abuse") if r.get("kind") == "alert"]
    assert alerts
    assert all(isinstance(alert.get("event_id"), str) for alert in alerts)
