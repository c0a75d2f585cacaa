"""Stream against file mode on a topic filled the way kcat fills it (issue 11, item 1).

    python -m benchmarks.chunked_replay [--runs 6] [--partitions 4] [--port 29792] [--disorder 5]

kcat (librdkafka's sticky partitioner) writes a file to a topic in chunks, one partition after another, and a
consumer reads one partition's fetch before the next: one source's records reach the detector far out of order.
Each run, on the project's own broker (started on ``--port``, stopped after): fresh topics with ``--partitions``
input partitions; the input is produced at full speed in chunks of 500 to 2,000 records, each chunk to a random
partition, before the worker starts (the worst case: a backlog on every partition). Once the worker has read it
all, its alerts are compared with the file mode's over the same file and keyring:

* ``pairs``: (rule, subject) pairs only one mode raised; ``counts``: pairs both raised with another ``count``;
* ``identical``: whether the alert records are byte for byte the same (their ``event_id`` included);
  ``--worker-root DIR`` runs the worker and the file mode of another checkout (a "before" measurement);
* the detector's lateness counters (``detector_late``) and the observations it skipped as replayed.

The input is real logs from ``../shared/data`` (the Elastic Apache log, the loghub OpenSSH and Linux logs, one after
the other as a shipper tailing three files would send them), or generated traffic where they are absent.
Results: ``benchmarks/results/chunked_replay.json`` (``chunked_replay_disorder<D>.json`` with ``--disorder D``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline.keystore import write_keyring
from pipeline.traffic import generate
from tests.integration.helpers import ROOT, drain_sync, running_worker, wait_for_input_count, worker_env
from transforms.keyring import generate_keyring

SHARED_LOGS = Path(os.environ.get("PSEUDO_SHARED_DATA", ROOT.parent / "shared" / "data")) / "logs"
REAL_LOGS = (
    SHARED_LOGS / "elastic-apache-access" / "apache_logs_2015-05-17_18",
    SHARED_LOGS / "loghub-openssh" / "OpenSSH_2k.log",
    SHARED_LOGS / "loghub-linux" / "Linux_2k.log",
)
RESULTS = ROOT / "benchmarks" / "results" / "chunked_replay.json"

AlertKey = tuple[str, str]


def input_records() -> tuple[str, list[bytes]]:
    """(what it is, the records): the real logs where present, else generated traffic spread over 50 minutes."""
    if all(path.exists() for path in REAL_LOGS):
        lines = [line for path in REAL_LOGS for line in path.read_bytes().splitlines() if line]
        return "real logs (" + ", ".join(path.name for path in REAL_LOGS) + ")", lines
    start = datetime(2025, 6, 1, 10, tzinfo=UTC)
    return "generated traffic", list(generate(6000, seed=5, start=start, events_per_second=2))


def chunks(count: int, partitions: int, rng: random.Random, size: tuple[int, int]) -> list[tuple[int, int, int]]:
    """(partition, first, end) of each chunk, in the order a sticky partitioner writes them."""
    out, first = [], 0
    while first < count:
        end = min(count, first + rng.randint(*size))
        out.append((rng.randrange(partitions), first, end))
        first = end
    return out


async def _produce_chunked(bootstrap: str, topic: str, records: list[bytes], plan: list[tuple[int, int, int]]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_request_size=2_000_000)
    await producer.start()
    try:
        for partition, first, end in plan:
            for record in records[first:end]:
                await producer.send(topic, record, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()
    return len(records)


async def _create(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


def _alerts(values: list[bytes]) -> list[dict[str, Any]]:
    return [record for record in map(orjson.loads, values) if record.get("kind") == "alert"]


def compare(stream: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, Any]:
    """How the stream's alerts differ from the file mode's."""
    mine = Counter((a["rule"], a["subject"]) for a in stream)
    theirs = Counter((a["rule"], a["subject"]) for a in reference)
    counts_mine = {(a["rule"], a["subject"]): a["count"] for a in stream}
    counts_theirs = {(a["rule"], a["subject"]): a["count"] for a in reference}
    return {
        "alerts_stream": len(stream),
        "alerts_file": len(reference),
        "pairs_only_stream": sum((mine - theirs).values()),
        "pairs_only_file": sum((theirs - mine).values()),
        "counts_differ": sum(
            1 for key in counts_mine.keys() & counts_theirs.keys() if counts_mine[key] != counts_theirs[key]
        ),
        "identical": Counter(orjson.dumps(a) for a in stream) == Counter(orjson.dumps(a) for a in reference),
        "records_differ": sum(
            (Counter(orjson.dumps(a) for a in stream) - Counter(orjson.dumps(a) for a in reference)).values()
        ),
    }


def replay(
    bootstrap: str,
    records: list[bytes],
    workdir: Path,
    *,
    partitions: int,
    rng: random.Random,
    chunk_size: tuple[int, int] = (500, 2000),
    extra_env: dict[str, str] | None = None,
    worker_root: Path = ROOT,
) -> dict[str, Any]:
    """One run: chunked backlog, worker, file mode; the comparison and the worker's detector counters."""
    workdir.mkdir(parents=True, exist_ok=True)
    keys = workdir / "keyring.json"
    write_keyring(generate_keyring(), keys)
    base = f"cr{uuid.uuid4().hex[:8]}"
    topics = {name: f"{base}.{name}" for name in ("input", "analytics", "abuse", "quarantine", "aggregates")}
    env = worker_env(bootstrap, topics, keys, workdir / "data", PSEUDO_PARTITIONS=str(partitions), **(extra_env or {}))
    asyncio.run(_create(bootstrap, topics["input"], partitions))
    plan = chunks(len(records), partitions, rng, chunk_size)
    sent = asyncio.run(_produce_chunked(bootstrap, topics["input"], records, plan))
    started = time.monotonic()
    with running_worker(env, workdir / "worker.log", worker_root):
        counts = wait_for_input_count(env, sent, timeout_s=600)
    elapsed = time.monotonic() - started
    stream = _alerts([value for _, value in drain_sync(bootstrap, topics["abuse"])])
    (workdir / "input.log").write_bytes(b"\n".join(records) + b"\n")
    out = workdir / "filemode"
    file_env = {k: v for k, v in env.items() if k.startswith("PSEUDO_EVENT_TIME") or not k.startswith("PSEUDO_")}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "process",
            "--keys",
            str(keys),
            "--out",
            str(out),
            str(workdir / "input.log"),
        ],
        cwd=worker_root,  # the file mode of the same checkout as the worker
        env=file_env,
        check=True,
        capture_output=True,
    )
    reference = _alerts((out / "abuse.jsonl").read_bytes().splitlines())
    return {
        "records": sent,
        "chunks": len(plan),
        "seconds": round(elapsed, 1),
        **compare(stream, reference),
        "detector_late": counts.get("detector_late", {}),
        "input_counted": counts["input"],
    }


def _kafka(command: str, port: int) -> None:
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(port + 1)}
    subprocess.run([str(ROOT / "scripts" / "kafka.sh"), command], env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--port", type=int, default=29792)
    parser.add_argument(
        "--disorder", type=float, default=None, help="PSEUDO_EVENT_TIME_DISORDER_S (default: the product's)"
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--worker-root", type=Path, default=ROOT, help="run the worker of another checkout (a 'before' measurement)"
    )
    args = parser.parse_args(argv)
    what, records = input_records()
    extra = {} if args.disorder is None else {"PSEUDO_EVENT_TIME_DISORDER_S": str(args.disorder)}
    rng = random.Random(args.seed)
    rows = []
    _kafka("start", args.port)
    try:
        with tempfile.TemporaryDirectory(prefix="chunked-replay-") as tmp:
            for run in range(args.runs):
                row = replay(
                    f"127.0.0.1:{args.port}",
                    records,
                    Path(tmp) / str(run),
                    partitions=args.partitions,
                    rng=rng,
                    extra_env=extra,
                    worker_root=args.worker_root,
                )
                rows.append(row)
                print(f"[chunked] run {run + 1}: {row}", file=sys.stderr)
    finally:
        _kafka("stop", args.port)
    result = {
        "input": what,
        "worker": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=args.worker_root, capture_output=True, text=True, check=False
        ).stdout.strip(),
        "runs_same_pairs_and_counts": sum(
            1 for row in rows if not (row["pairs_only_stream"] or row["pairs_only_file"] or row["counts_differ"])
        ),
        "partitions": args.partitions,
        "disorder_s": args.disorder,
        "runs": rows,
        "runs_identical": sum(1 for row in rows if row["identical"]),
        "runs_with_other_pairs": sum(1 for row in rows if row["pairs_only_stream"] or row["pairs_only_file"]),
    }
    name = RESULTS.stem + ("" if args.disorder is None else f"_disorder{args.disorder:g}")
    name += "" if args.worker_root == ROOT else "_before"
    results = RESULTS.with_name(name + ".json")
    results.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(orjson.dumps({k: v for k, v in result.items() if k != "runs"}).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
