"""CPU seconds per 1,000 events at 1, 2 and 4 worker processes on the same input (issue 11, item 7).

    python -m benchmarks.scaling [--events 100000] [--processes 1,2,4] [--partitions 8] [--repeat 3] [--cluster]

This machine's 2 cores bound what a throughput ratio can show (2 processes reached x1.05 of one), so scaling is
measured as cost instead: the CPU time (user + system, from psutil) the worker processes spend on the same input.
If adding processes only splits the work, the total per event stays flat; coordination (rebalances, more
consumer groups' heartbeats and fetches, more and smaller batches) would make it grow.

Per process count, on the project's own broker (``--port``, started and stopped here; ``--cluster``: a 3-broker
cluster from ``KAFKA_BROKERS=3 scripts/kafka.sh`` on ``--port``, +10, +20, topics replicated 3 with
``min.insync.replicas`` 2): fresh topics of ``--partitions`` partitions, N workers (``python -m pipeline.cli worker``,
each its own state folder), started and waited for until the ingest's and faust's consumer groups are stable with N
members; then the idle CPU rate over a few seconds, the CPU counters, the input (the same generated records each
time, written round-robin over the partitions as a shipper would), and the wait until the ingest's group has
committed the whole input and faust's group every observation (the detector has seen every record); the CPU
counters again. Start-up is outside the measured stretch: it costs the same per process whatever the input size.
The release stage (one partition by default, so one process does it whatever N) runs concurrently and is counted
as far as it got. ``busy`` figures take off what the processes spent at their idle rate over the same stretch
(heartbeats, empty polls: a cost per process and second, not per event). ``--repeat`` rounds interleave the counts;
medians are reported. Results go to ``benchmarks/results/scaling.json`` under the broker set-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psutil
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from benchmarks.throughput.kafka import produce_input
from config.settings import Settings
from pipeline.keystore import write_keyring
from pipeline.topics import ensure_topics
from pipeline.traffic import generate
from tests.integration.cluster import KafkaCluster
from tests.integration.helpers import ROOT, consumed, running_worker, summary, worker_env
from transforms.keyring import generate_keyring

RESULTS = ROOT / "benchmarks" / "results" / "scaling.json"
IDLE_S = 5.0  # idle stretch measured after the groups are stable, before the input


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes and their children so far."""
    total = 0.0
    for pid in pids:
        process = psutil.Process(pid)
        for member in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = member.cpu_times()
                total += times.user + times.system
    return total


async def stable_members(bootstrap: str, group: str) -> int:
    """Members of ``group`` once it is Stable (0 while it forms or rebalances)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for response in await admin.describe_consumer_groups([group]):
            for described in response.groups:
                # (error_code, group_id, state, protocol_type, protocol, members, ...)
                if described[1] == group and described[0] == 0 and described[2] == "Stable":
                    return len(described[5])
    except KafkaError:
        return 0
    finally:
        await admin.close()
    return 0


@contextlib.contextmanager
def workers(envs: list[dict[str, str]], folder: Path) -> Iterator[list[int]]:
    """``len(envs)`` running workers (each up once its /summary answers); their pids."""
    with contextlib.ExitStack() as stack:
        procs = [stack.enter_context(running_worker(env, folder / f"worker-{i}.log")) for i, env in enumerate(envs)]
        yield [proc.pid for proc in procs]


def measure(
    bootstrap: str, records: list[bytes], processes: int, partitions: int, extra: dict[str, str]
) -> dict[str, Any]:
    """One run: ``processes`` workers on fresh topics, the input, and the CPU they spent on it."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        keys = folder / "keyring.json"
        write_keyring(generate_keyring(), keys)
        base = f"scl{uuid.uuid4().hex[:6]}"
        topics = {n: f"{base}.{n}" for n in ("input", "analytics", "abuse", "quarantine", "aggregates")}
        common = {"PSEUDO_PARTITIONS": str(partitions), "PSEUDO_STATS_INTERVAL_S": "30", **extra}
        envs = [worker_env(bootstrap, topics, keys, folder / f"data-{i}", **common) for i in range(processes)]
        app = envs[0]["PSEUDO_APP_ID"]
        # Created before the workers, so that none of them races another to create them.
        asyncio.run(ensure_topics(bootstrap, Settings.from_env(envs[0]).topic_specs()))
        with workers(envs, folder) as pids:
            deadline = time.monotonic() + 180
            groups = [f"{app}-ingest", app]
            while [asyncio.run(stable_members(bootstrap, g)) for g in groups] != [processes] * len(groups):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"groups {groups} not stable with {processes} members after 180 s")
                time.sleep(0.5)
            load = os.getloadavg()[0]
            idle_from = cpu_seconds(pids)
            time.sleep(IDLE_S)
            began, cpu_before = time.monotonic(), cpu_seconds(pids)
            idle_rate = (cpu_before - idle_from) / IDLE_S
            asyncio.run(produce_input(bootstrap, topics["input"], records, partitions))
            deadline = time.monotonic() + 120 + len(records) / 200
            while not (
                sum(s["input"] for s in (summary(env) for env in envs) if s) >= len(records)
                and asyncio.run(consumed(bootstrap, f"{app}-ingest", topics["input"]))
                and asyncio.run(consumed(bootstrap, app, f"{app}-observations"))
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{processes} process(es): the input was not read within the deadline")
                time.sleep(0.25)
            ended, cpu_after = time.monotonic(), cpu_seconds(pids)
            per_process = [round(cpu_seconds([pid]), 2) for pid in pids]
            read = sum(s["input"] for s in (summary(env) for env in envs) if s)
    cpu = cpu_after - cpu_before
    wall = ended - began
    row = {
        "processes": processes,
        "events": len(records),
        "events_read": read,
        "cpu_s": round(cpu, 2),
        "cpu_s_per_1000_events": round(cpu / len(records) * 1000, 4),
        "wall_s": round(wall, 2),
        "events_per_s": round(len(records) / wall, 1),
        "idle_cpu_s_per_s": round(idle_rate, 3),  # all processes together, before the input
        # what the processes would have spent idle over the stretch (heartbeats, empty polls) taken off
        "busy_cpu_s_per_1000_events": round(max(cpu - idle_rate * wall, 0.0) / len(records) * 1000, 4),
        "load_average_1m_before": round(load, 2),  # other work on the machine (it is shared)
        "cpu_s_per_process_since_start": per_process,  # start-up included
    }
    print(orjson.dumps(row).decode(), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--processes", default="1,2,4", help="comma-separated worker process counts")
    parser.add_argument("--partitions", type=int, default=8, help="partitions of every topic (the unit of scale)")
    parser.add_argument("--cluster", action="store_true", help="on a 3-broker cluster instead of one broker")
    parser.add_argument("--port", type=int, default=29560, help="the broker's port (the cluster's first node's)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="rounds over the process counts (medians reported)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.processes.split(",")]
    if max(counts) > args.partitions:
        parser.error("more processes than partitions: the extra ones would idle")
    start = datetime(2026, 1, 5, tzinfo=UTC)
    records = list(generate(args.events, seed=args.seed, start=start, events_per_second=1000.0))
    nodes = 3 if args.cluster else 1
    cluster = KafkaCluster(ROOT / ".kafka", args.port, nodes=nodes, heap="-Xmx512m" if nodes > 1 else "-Xmx1g")
    extra = {"PSEUDO_REPLICATION_FACTOR": "3"} if args.cluster else {}
    cluster.start()
    try:
        # Rounds interleave the counts (1, 2, 4, 1, 2, 4, ...) so that a busy spell of the machine hits them alike.
        rows = [
            measure(cluster.bootstrap, records, n, args.partitions, extra) for _ in range(args.repeat) for n in counts
        ]
    finally:
        cluster.stop()
    medians = {
        n: {
            key: round(statistics.median(r[key] for r in rows if r["processes"] == n), 4)
            for key in ("cpu_s_per_1000_events", "busy_cpu_s_per_1000_events", "events_per_s", "idle_cpu_s_per_s")
        }
        for n in counts
    }
    base = medians[counts[0]]
    for median in medians.values():
        for key in ("cpu_s_per_1000_events", "busy_cpu_s_per_1000_events"):
            median[f"{key}_vs_{counts[0]}"] = round(median[key] / base[key], 3) if base[key] else None
    results: dict[str, Any] = orjson.loads(args.out.read_bytes()) if args.out.exists() else {}
    results["command"] = "python -m benchmarks.scaling [--cluster]"
    results["machine"] = {"cores": os.cpu_count(), "python": platform.python_version()}
    results["3 brokers" if args.cluster else "1 broker"] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "arguments": {
            "events": args.events,
            "partitions": args.partitions,
            "seed": args.seed,
            "brokers": nodes,
            "repeat": args.repeat,
        },
        "medians_by_processes": {str(n): m for n, m in medians.items()},
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    for n, median in medians.items():
        print(
            f"{n} process(es), median of {args.repeat}: {median['cpu_s_per_1000_events']:.3f} CPU s per 1,000 events "
            f"(x{median[f'cpu_s_per_1000_events_vs_{counts[0]}']}), without the idle rate "
            f"{median['busy_cpu_s_per_1000_events']:.3f} (x{median[f'busy_cpu_s_per_1000_events_vs_{counts[0]}']}), "
            f"{median['events_per_s']:,.0f} events/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
