"""The release's open windows survive a worker restart: rebuilt from the release topic, nothing released twice.

A worker reads the first half of a day of real access logs, releases the windows that event time has closed,
and is stopped with later windows still open (its idle close is pushed far out). A new worker process picks up
the release group where the first committed (the first row of the oldest open window), reads the second half,
and closes everything. Together their analytics and aggregates must equal the file mode's over the whole input,
record for record: a window lost, released twice, or released from half its rows would show.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.keystore import write_keyring
from pipeline.traffic import generate
from tests.conftest import SHARED_DATA
from tests.integration.helpers import (
    ROOT,
    consumed,
    drain_sync,
    produce,
    running_worker,
    summary,
    wait_for_input_count,
    without_event_id,
    worker_env,
)
from transforms.keyring import generate_keyring

pytestmark = pytest.mark.integration


def _lines() -> list[bytes]:
    apache = SHARED_DATA / "logs" / "elastic-apache-access" / "apache_logs_2015-05-17_18"
    if apache.exists():
        return [line for line in apache.read_bytes().splitlines()[:1600] if line]
    # About two hours of traffic, in the past: windows of "now" would wait for wall-clock time to end them.
    start = datetime(2025, 6, 1, 10, tzinfo=UTC)
    return [line for line in generate(1600, seed=5, events_per_second=0.2, start=start) if line]


def test_open_windows_are_rebuilt_after_a_restart_and_released_once(kafka_bootstrap: str, tmp_path: Path) -> None:
    keys = tmp_path / "keyring.json"
    write_keyring(generate_keyring(), keys)
    base = f"rel{uuid.uuid4().hex[:8]}"
    topics = {n: f"{base}.{n}" for n in ("input", "analytics", "abuse", "quarantine", "aggregates")}
    lines = _lines()
    half = len(lines) // 2
    env = worker_env(kafka_bootstrap, topics, keys, tmp_path / "data1", PSEUDO_RELEASE_IDLE_CLOSE_S="3600")
    with running_worker(env, tmp_path / "worker1.log"):
        sent = asyncio.run(produce(kafka_bootstrap, topics["input"], lines[:half], partition=0))
        wait_for_input_count(env, sent, released=False)
        first = summary(env)
    assert first is not None
    assert first["release_windows"] > 0, "event time should have closed the first windows"
    assert first["analytics_records"] + first["analytics_suppressed"] < first["analytics_held"], "some must be open"

    env.update(PSEUDO_DATA_DIR=str(tmp_path / "data2"), PSEUDO_RELEASE_IDLE_CLOSE_S="2")
    release_group, release_topic = f"{env['PSEUDO_APP_ID']}-release", f"{env['PSEUDO_APP_ID']}-release"
    with running_worker(env, tmp_path / "worker2.log"):
        sent = asyncio.run(produce(kafka_bootstrap, topics["input"], lines[half:], partition=0))
        wait_for_input_count(env, sent, released=False)
        deadline = time.monotonic() + 60
        # The release group commits past a row only once every window holding it is out: all out = at the end.
        while not asyncio.run(consumed(kafka_bootstrap, release_group, release_topic)):
            assert time.monotonic() < deadline, "the second worker did not release every window"
            time.sleep(0.5)
        second = summary(env)
    assert second is not None
    assert second["release_rows_read"] > second["analytics_held"], "the open windows' rows must have been read again"

    inputs = tmp_path / "input.log"
    inputs.write_bytes(b"\n".join(lines) + b"\n")
    out_dir = tmp_path / "filemode"
    subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "process", "--keys", str(keys), "--out", str(out_dir), str(inputs)],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    for name in ("analytics", "aggregates"):
        # Ids hash the source position: a topic offset in the stream, a file line here.
        stream = Counter(without_event_id(value) for _, value in drain_sync(kafka_bootstrap, topics[name]))
        files = Counter(without_event_id(line) for line in (out_dir / f"{name}.jsonl").read_bytes().splitlines())
        assert stream == files, name
    for log in ("worker1.log", "worker2.log"):
        assert b"Crashed" not in (tmp_path / log).read_bytes(), log
