"""Duplicates and losses after ``kill -9``, at-least-once against exactly-once (issue 11, item 4).

    python -m benchmarks.exactly_once [--records 60000] [--kills 3] [--port 29892] [--guarantees at_least_once,...]

On the project's own broker (started on ``--port`` and stopped after), for each processing guarantee: a backlog of
``--records`` generated records in a fresh 4-partition input topic, one worker (static membership, its own state
folder) started on it, and ``--kills`` times: ``kill -9`` once the worker has read a share of the backlog since it
started, a 2 s pause, a restart with the same state folder and instance id. Then the outputs are read from the
beginning by a ``read_committed`` consumer and counted by ``event_id``:

* ``duplicated``: records whose ``event_id`` was read before (analytics, abuse events, quarantine envelopes);
* ``lost``: ids the ingest writes for this input (computed in process: the same keyring, policy and source
  positions give the same ids) that no output holds; detector alerts are counted for duplicates only.

The k-anonymous release is switched off for the run (``[analytics.release]``, ``[analytics.aggregates]``), so each
input record's analytics record is written by the ingest and its id known in advance.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from benchmarks.recovery import _fresh_run, _kafka
from benchmarks.throughput.harness import RELEASE, switch_off
from config.settings import Settings
from pipeline.routing import Output, Source, route_record
from pipeline.runtime import build_runtime
from pipeline.traffic import generate
from tests.integration.helpers import ROOT, produce, running_worker, summary, worker_env

OUTPUTS = ("analytics", "abuse", "quarantine")


async def read_all(bootstrap: str, topic: str, *, isolation_level: str = "read_committed") -> list[Any]:
    """Every record of ``topic`` from its beginning to its end, as a consumer with ``isolation_level`` sees them."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level=isolation_level)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # a fresh topic: its partitions
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)  # read_committed: the last stable offsets
        out: list[Any] = []
        deadline = time.monotonic() + 60
        while any([await consumer.position(tp) < ends[tp] for tp in tps]) and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(messages)
        return out
    finally:
        await consumer.stop()


async def create_input(bootstrap: str, topic: str, *, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def caught_up(bootstrap: str, group: str, topic: str) -> bool:
    """Whether ``group`` has committed the end of every non-empty partition of ``topic``. (``tests.integration.
    helpers.consumed`` takes a topic whose partitions its fresh client has not loaded yet for one without any.)"""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not tps:
            return False
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group)
        return all(tp in committed and committed[tp].offset >= end for tp, end in ends.items() if end)
    finally:
        await consumer.stop()
        await admin.close()


def expected_ids(env: dict[str, str], inputs: list[Any]) -> dict[str, set[str]]:
    """The ``event_id`` of every output the ingest writes for ``inputs`` (consumer records of the input topic)."""
    runtime = build_runtime(Settings.from_env(env))
    names = {Output.ANALYTICS: "analytics", Output.ABUSE: "abuse", Output.QUARANTINE: "quarantine"}
    ids: dict[str, set[str]] = {name: set() for name in OUTPUTS}
    for message in inputs:
        # As the ingest builds a source (pipeline/ingest.py): the producer's timestamps are all set.
        source = Source(
            message.topic, message.partition, message.offset, datetime.fromtimestamp(message.timestamp / 1000, UTC)
        )
        routed = route_record(runtime.processor, message.value or b"", source, runtime.sealer, runtime.event_ids)
        for output, _key, value in routed.messages:
            if output in names:
                ids[names[output]].add(orjson.loads(value)["event_id"])
    return ids


def _wait_read(env: dict[str, str], records: int, timeout_s: float) -> bool:
    """Wait until the worker (since it started) has read ``records`` records; False if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = summary(env)
        if current is not None and current["input"] >= records:
            return True
        time.sleep(0.05)
    return False


def run_guarantee(bootstrap: str, guarantee: str, *, records: int, kills: int, workdir: Path) -> dict[str, Any]:
    """One worker killed ``kills`` times over a backlog of ``records``; duplicates and losses by ``event_id``."""
    tmp = workdir / guarantee
    tmp.mkdir(parents=True)
    keys, topics = _fresh_run(tmp, "eos" if guarantee == "exactly_once" else "alo")
    policy = tmp / "policy.toml"
    policy.write_text(switch_off((ROOT / "config" / "policy.toml").read_text(), RELEASE))
    env = worker_env(
        bootstrap,
        topics,
        keys,
        tmp / "data",
        PSEUDO_PARTITIONS="4",
        PSEUDO_POLICY=str(policy),
        PSEUDO_GROUP_INSTANCE_ID="worker-0",
        PSEUDO_PROCESSING_GUARANTEE=guarantee,
    )
    asyncio.run(create_input(bootstrap, topics["input"], partitions=4))
    start = datetime.now(UTC) - timedelta(seconds=records / 200)
    asyncio.run(produce(bootstrap, topics["input"], generate(records, seed=11, start=start, events_per_second=200)))
    # Kill once the worker has read this many records since its (re)start: spread over the backlog.
    share = max(1, records // (kills + 2))
    killed = 0
    with running_worker(env, tmp / "worker-0.log") as first:
        worker = first
        try:
            for kill in range(1, kills + 1):
                if not _wait_read(env, share, timeout_s=120):
                    break
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                killed += 1
                time.sleep(2.0)
                with open(tmp / f"worker-{kill}.log", "wb") as log:
                    worker = subprocess.Popen(
                        [sys.executable, "-m", "pipeline.cli", "worker"], env=env, cwd=ROOT, stdout=log, stderr=log
                    )
            group = f"{env['PSEUDO_APP_ID']}-ingest"
            deadline = time.monotonic() + 180
            while not asyncio.run(caught_up(bootstrap, group, topics["input"])) and time.monotonic() < deadline:
                time.sleep(0.5)
            # The detector trails the ingest behind the observation topic: done once the worker's counters (alerts
            # included) stay still. (Not faust's committed offset: on a transactional topic it crawls, see README.)
            still, last = 0, None
            while still < 6 and time.monotonic() < deadline:
                time.sleep(0.5)
                current = summary(env)
                still, last = (still + 1 if current == last else 0), current
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    inputs = asyncio.run(read_all(bootstrap, topics["input"], isolation_level="read_uncommitted"))
    expected = expected_ids(env, inputs)
    result: dict[str, Any] = {"guarantee": guarantee, "records": len(inputs), "kills": killed}
    for name in OUTPUTS:
        ids = [orjson.loads(m.value)["event_id"] for m in asyncio.run(read_all(bootstrap, topics[name]))]
        counts = Counter(ids)
        result[name] = {
            "read": len(ids),
            "distinct": len(counts),
            "duplicated": len(ids) - len(counts),
            "lost": len(expected[name] - set(counts)),
            "expected": len(expected[name]),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--port", type=int, default=29892)
    parser.add_argument("--guarantees", default="at_least_once,exactly_once")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    _kafka("start", args.port)
    results = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for guarantee in args.guarantees.split(","):
                row = run_guarantee(
                    f"127.0.0.1:{args.port}", guarantee, records=args.records, kills=args.kills, workdir=Path(folder)
                )
                print(orjson.dumps(row).decode(), flush=True)
                results.append(row)
    finally:
        _kafka("stop", args.port)
    if args.out:
        args.out.write_bytes(
            orjson.dumps({"command": " ".join(sys.argv), "results": results}, option=orjson.OPT_INDENT_2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
