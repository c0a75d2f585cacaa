"""Detector state survives a worker restart: it is recovered from the table's changelog topic.

Four failed SSH logins from one source reach a worker, which is then stopped. A new worker process
with an empty data folder (its RocksDB store starts empty) gets four more. Only together do the eight exceed the
SSH brute-force bucket, so an alert after the restart proves the state came back from the changelog;
a control app that sees only the second four stays silent.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import orjson
import pytest

from pipeline.keystore import write_keyring
from tests.integration.helpers import drain_sync, produce, running_worker, wait_for_input_count, worker_env
from transforms.keyring import generate_keyring

pytestmark = pytest.mark.integration

SOURCE = "203.0.113.66"


def _failed_logins(first_second: int, count: int) -> list[bytes]:
    return [
        f"Mar  1 10:00:{first_second + i:02d} web1 sshd[{4000 + i}]: Failed password for root from {SOURCE} "
        f"port {50000 + i} ssh2".encode()
        for i in range(count)
    ]


def _alerts(bootstrap: str, topic: str) -> list[dict[str, object]]:
    return [r for r in (orjson.loads(v) for _, v in drain_sync(bootstrap, topic)) if r["kind"] == "alert"]


def _topics() -> dict[str, str]:
    base = f"rec{uuid.uuid4().hex[:8]}"
    return {n: f"{base}.{n}" for n in ("input", "analytics", "abuse", "quarantine")}


def test_state_is_recovered_after_restart(kafka_bootstrap: str, tmp_path: Path) -> None:
    keys = tmp_path / "keyring.json"
    write_keyring(generate_keyring(), keys)
    topics = _topics()
    env = worker_env(kafka_bootstrap, topics, keys, tmp_path / "data1")

    with running_worker(env, tmp_path / "worker1.log"):
        sent = asyncio.run(produce(kafka_bootstrap, topics["input"], _failed_logins(0, 4), partition=0))
        wait_for_input_count(env, sent)
    assert _alerts(kafka_bootstrap, topics["abuse"]) == []

    env["PSEUDO_DATA_DIR"] = str(tmp_path / "data2")  # nothing on disk: state must come from the changelog
    with running_worker(env, tmp_path / "worker2.log"):
        sent = asyncio.run(produce(kafka_bootstrap, topics["input"], _failed_logins(4, 4), partition=0))
        # counters restart with the process: it reads only the new records
        wait_for_input_count(env, sent)
    alerts = _alerts(kafka_bootstrap, topics["abuse"])
    for log in ("worker1.log", "worker2.log"):
        assert b"Crashed" not in (tmp_path / log).read_bytes(), log
    assert any(str(a["rule"]).startswith("ssh.") for a in alerts), alerts

    control = _topics()
    control_env = worker_env(kafka_bootstrap, control, keys, tmp_path / "control")
    with running_worker(control_env, tmp_path / "control.log"):
        sent = asyncio.run(produce(kafka_bootstrap, control["input"], _failed_logins(4, 4), partition=0))
        wait_for_input_count(control_env, sent)
    assert _alerts(kafka_bootstrap, control["abuse"]) == []


def test_a_returning_worker_replays_what_others_wrote_after_its_own(kafka_bootstrap: str, tmp_path: Path) -> None:
    """The detector writes its changelog in batches and records in its RocksDB store how far it is applied.

    Worker A (data folder A) sees 2 failures; worker B (empty folder B) 2 more, recovered onto A's; A comes
    back with its folder, which holds its own state and changelog position, and sees 1 more. Only 5 together
    reach the SSH bucket: the alert proves A replayed B's update from after its recorded position (a position
    set too far would skip it and leave A at 3).
    """
    keys = tmp_path / "keyring.json"
    write_keyring(generate_keyring(), keys)
    topics = _topics()
    env_a = worker_env(kafka_bootstrap, topics, keys, tmp_path / "a")
    env_b = worker_env(kafka_bootstrap, topics, keys, tmp_path / "b")
    steps = [(env_a, _failed_logins(0, 2)), (env_b, _failed_logins(2, 2)), (env_a, _failed_logins(4, 1))]
    for index, (env, lines) in enumerate(steps):
        with running_worker(env, tmp_path / f"worker{index}.log"):
            sent = asyncio.run(produce(kafka_bootstrap, topics["input"], lines, partition=0))
            wait_for_input_count(env, sent)
        alerts = _alerts(kafka_bootstrap, topics["abuse"])
        if index < 2:
            assert alerts == [], f"no alert before the fifth failure (step {index})"
    assert any(str(a["rule"]).startswith("ssh.") for a in alerts), alerts
