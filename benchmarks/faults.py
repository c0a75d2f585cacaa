"""A fault campaign anyone can run (issue 11, item 6): crashes, a broker outage, a rebalance, garbage, a lost node.

    .venv/bin/python -m benchmarks.faults                       # every phase, about 10 minutes
    .venv/bin/python -m benchmarks.faults --phases kills --kills 3 --backlog 5000   # a shorter run

On the project's own broker (``scripts/kafka.sh`` on ``--port``, 29686 by default; stopped at the end through its pid
file), each phase runs a worker on fresh topics (4 partitions, static group membership) over generated traffic with
attacks (``pipeline.traffic``, the demo's mix, sorted by event time) and breaks something on purpose:

* ``kills``: a backlog, then a stream at ``--rate`` records/s; ``kill -9`` of the worker ``--kills`` times, each at a
  random point after the restarted worker reads again, restarted ``--pause`` seconds later with its state folder;
* ``outage``: the broker stopped for ``--outage-s`` seconds mid-stream, then started again;
* ``rebalance``: a second worker joins mid-stream and leaves again with SIGTERM;
* ``garbage``: one garbage record (random bytes, cut JSON, cut log lines) for every good one, backlog and stream;
* ``cluster``: on a 3-broker cluster of its own (``KAFKA_BROKERS=3 scripts/kafka.sh``, ``--cluster-port``), the
  broker leading an input partition killed with ``kill -9`` mid-stream.

Reported per phase (``benchmarks/results/faults.json`` and a table):

* ``produced``: input records the broker acknowledged (``in_topic``: records in the input topic, which may hold a
  few whose acknowledgement was lost in a fault; every acknowledged record must be among them);
* ``accounted`` / ``lost``: every record of the input topic is processed again here, at its own (partition, offset)
  and with its own timestamp as ingest time, by the same routing, keyring and policy (``pipeline.routing``), which
  gives the ``event_id`` of every output it must produce: release rows (analytics), abuse events, its quarantine
  envelope. A record is accounted when each of those ids is on its topic (a filtered record has none: it is accounted
  once the ingest committed past it, which the phase waits for), lost otherwise. An acknowledged record missing from
  the input topic is lost too;
* ``duplicates``: per output topic, records beyond the first with the same ``event_id`` (a consumer drops them by
  id); ``unexpected_ids``: records whose id no input position gives, that is duplicates nobody could detect;
* ``output gap``: the longest time between two consecutive records the ingest wrote (its output timestamps), from
  its first to its last, and per fault the time from the fault to the next output record;
* ``alerts``: the detector's alerts (de-duplicated by ``event_id``) against the file mode (``pipeline.cli
  process``) over the same input records in the same order with the same keyring, by (rule, subject, count):
  ``false`` are in the stream and not in the reference, ``missing`` the reverse.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import logging
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord

from benchmarks.throughput.kafka import Broker
from config.settings import Settings
from pipeline.keystore import write_keyring
from pipeline.routing import Output, Source, route_record
from pipeline.runtime import build_runtime
from pipeline.traffic import DEMO_MIX, generate_records
from tests.integration.helpers import ROOT, consumed, drain_messages, summary, wait_for_input_count, worker_env
from transforms.keyring import generate_keyring
from transforms.release import ReleaseRow

RESULTS = ROOT / "benchmarks" / "results" / "faults.json"


def traffic_start(now: datetime) -> datetime:
    """The first event time: 10:00 two days ago, so that the release's hourly and daily windows have ended by the
    wall clock once the input is read (it holds windows that are still open). In the current year: sshd's syslog
    lines carry no year and take the ingest time's, and HTTP records of another year would jump event time by a
    year and back, which no stream orders like a file."""
    start = (now - timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    return start if start.year == now.year else now - timedelta(hours=1)


PHASES = ("kills", "outage", "rebalance", "garbage", "cluster")
TOPIC_NAMES = ("input", "analytics", "abuse", "quarantine", "aggregates")


# --- input --------------------------------------------------------------------------------------------


def traffic(count: int, *, seed: int, start: datetime, rate: float, garbage: bool) -> list[tuple[bytes | None, bytes]]:
    """``count`` generated records with attacks (the demo's mix) in event-time order; with ``garbage``, each good
    record followed by one garbage record. No record holds a line break: the file mode reads the same records as
    lines (it skips blank lines too, where the stream quarantines an empty message: alerts are unaffected).
    Each record comes with its client address as a key, for a producer that keys by it (garbage has none)."""
    generated = sorted(
        generate_records(count, seed=seed, start=start, events_per_second=rate, mix=DEMO_MIX),
        key=lambda record: record.time,
    )
    good = [
        (record.source_ip.encode() if record.source_ip else None, record.value)
        for record in generated
        if b"\n" not in record.value
    ]
    if not garbage:
        return good
    rng = random.Random(seed)
    return [pair for key, value in good for pair in ((key, value), (None, garbage_record(rng, value)))]


def garbage_record(rng: random.Random, good: bytes) -> bytes:
    """One garbage record: random bytes, a good record cut short or with bytes flipped, or JSON of the wrong shape."""
    kind = rng.randrange(4) if good else 0  # the generator's own malformed records include empty ones
    if kind == 0:
        value = rng.randbytes(rng.randint(1, 600))
    elif kind == 1:
        value = good[: rng.randint(1, max(1, len(good) - 1))]
    elif kind == 2:
        flipped = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        value = bytes(flipped)
    else:
        value = orjson.dumps(rng.choice([[1, 2], {"source": {"ip": rng.random()}}, {"message": "x" * 50}, "text"]))
    value = value.replace(b"\n", b" ").replace(b"\r", b" ")  # one record, one line in the file mode's input
    return value or b"?"


class Traffic(threading.Thread):
    """Produces ``records`` through an idempotent acks=all producer: ``backlog`` at once, the rest at ``rate``/s once
    ``go`` is set, until they run out or ``stop`` is set. Keeps each acknowledged record's (partition, offset).

    ``keyed``: each record under its client address as key (one source's records in one partition, in order);
    otherwise without a key, as most shippers send (the default partitioner spreads them)."""

    def __init__(
        self, bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]], backlog: int, rate: float
    ) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.records, self.backlog, self.rate = bootstrap, topic, records, backlog, rate
        self.keyed = False
        self.go, self.stop, self.backlog_done = threading.Event(), threading.Event(), threading.Event()
        self.acknowledged: dict[tuple[int, int], int] = {}  # (partition, offset) -> index into records
        self.failed = 0
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._produce())
        except BaseException as exc:  # reported by the phase, not lost in a thread
            self.error = exc

    async def _produce(self) -> None:
        # A shipper's producer: it waits out a broker outage (a long request timeout) instead of dropping records.
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap.split(","),
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=120_000,
            max_request_size=2_000_000,
        )
        await producer.start()
        pending: list[asyncio.Future[Any]] = []

        def settled(index: int, future: asyncio.Future[Any]) -> None:
            if future.cancelled() or future.exception() is not None:
                self.failed += 1
            else:
                meta = future.result()
                self.acknowledged[(meta.partition, meta.offset)] = index

        async def send(index: int) -> None:
            key, value = self.records[index]
            future = await producer.send(self.topic, value, key=key if self.keyed else None)
            future.add_done_callback(functools.partial(settled, index))
            pending.append(future)
            self.sent += 1

        try:
            for index in range(min(self.backlog, len(self.records))):
                await send(index)
            await producer.flush()
            self.backlog_done.set()
            while not self.go.is_set() and not self.stop.is_set():
                await asyncio.sleep(0.05)
            started = time.monotonic()
            for n, index in enumerate(range(self.backlog, len(self.records))):
                if self.stop.is_set():
                    break
                await send(index)
                delay = started + (n + 1) / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            await producer.stop()


# --- workers ------------------------------------------------------------------------------------------


class Workers:
    """Worker processes of one phase: started (waiting until they serve /summary), killed, stopped, restarted."""

    def __init__(self, envs: list[dict[str, str]], logs: Path) -> None:
        self.envs, self.logs = envs, logs
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.starts = 0
        # Exits nobody asked for (worker, return code, epoch seconds): a supervisor (Kubernetes, systemd) would
        # start the worker again, and so does supervise(), so that the phase can still be measured.
        self.exits: list[tuple[int, int | None, float]] = []
        self._lock = threading.Lock()
        self._watching = threading.Event()

    def supervise(self) -> None:
        """Start a watcher thread that restarts any worker that exits by itself (until stop_all)."""
        self._watching.set()

        def watch() -> None:
            while self._watching.is_set():
                with self._lock:
                    exited = [(i, p) for i, p in self.procs.items() if p.poll() is not None]
                    for i, proc in exited:
                        del self.procs[i]
                        self.exits.append((i, proc.returncode, time.time()))
                        print(f"  worker {i} exited by itself ({proc.returncode}): started again", flush=True)
                for i, _ in exited:
                    self.start(i)
                time.sleep(0.5)

        threading.Thread(target=watch, daemon=True).start()

    def start(self, i: int, timeout_s: float = 120) -> subprocess.Popen[bytes]:
        self.starts += 1
        log_path = self.logs / f"worker-{i}-{self.starts}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli", "worker"],
                env=self.envs[i],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        with self._lock:
            self.procs[i] = proc
        deadline = time.monotonic() + timeout_s
        while summary(self.envs[i]) is None:
            if proc.poll() is not None:
                raise RuntimeError(f"worker {i} exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {i} did not come up:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        return proc

    def reading(self, i: int, timeout_s: float = 120) -> bool:
        """Wait until worker ``i`` (since its last start) has read input."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            current = summary(self.envs[i])
            if current and current["input"] > 0:
                return True
            time.sleep(0.1)
        return False

    def kill(self, i: int) -> None:
        with self._lock:
            proc = self.procs.pop(i)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def terminate(self, i: int, timeout_s: float = 60) -> int | None:
        with self._lock:
            proc = self.procs.pop(i)
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None

    def stop_all(self) -> None:
        self._watching.clear()
        for i in list(self.procs):
            self.terminate(i)

    def crashed_agents(self) -> int:
        """faust's "Crashed" lines over every log of the phase (an agent that raised and was restarted)."""
        return sum(path.read_bytes().count(b"Crashed") for path in self.logs.glob("worker-*.log"))


# --- one phase ----------------------------------------------------------------------------------------


@dataclass
class Context:
    """What a phase's fault script may use while the stream runs."""

    bootstrap: str
    workers: Workers
    rng: random.Random
    faults: list[tuple[str, float]] = field(default_factory=list)  # (what, epoch seconds) of each fault
    broker: Broker | None = None
    cluster: Any = None  # tests.integration.cluster.KafkaCluster for the cluster phase
    input_topic: str = ""

    def fault(self, what: str) -> None:
        self.faults.append((what, time.time()))
        print(f"  fault: {what}", flush=True)


@dataclass(frozen=True)
class Scenario:
    name: str
    backlog: int  # records produced before the first worker starts
    script: Callable[[Context], None]  # the faults, run while the stream flows
    tail_s: float  # seconds of stream after the script
    garbage: bool = False
    workers: int = 1
    keyed: bool = False  # records keyed by their client address (Traffic)
    env: dict[str, str] = field(default_factory=dict)


def run_scenario(
    bootstrap: str, scenario: Scenario, *, rate: float, seed: int, work: Path, broker: Broker | None = None
) -> dict[str, Any]:
    """Run one phase on fresh topics; measure it against its own file-mode reference."""
    tmp = work / scenario.name
    tmp.mkdir(parents=True, exist_ok=True)
    keys = tmp / "keyring.json"
    write_keyring(generate_keyring(), keys)
    base = f"flt{scenario.name[:4]}{uuid.uuid4().hex[:6]}"
    topics = {name: f"{base}.{name}" for name in TOPIC_NAMES}
    envs = []
    for i in range(scenario.workers):
        env = worker_env(bootstrap, topics, keys, tmp / f"data-{i}", PSEUDO_PARTITIONS="4", **scenario.env)
        env["PSEUDO_GROUP_INSTANCE_ID"] = f"worker-{i}"  # static membership: a restart gets its partitions back
        envs.append(env)
    _create_topics(envs[0])

    # Enough records for the longest stream the script can make; the producer stops when told.
    streamed = int(rate * 600)
    total = scenario.backlog + streamed
    per_good = 2 if scenario.garbage else 1
    start = traffic_start(datetime.now(UTC))
    records = traffic(total // per_good, seed=seed, start=start, rate=rate / per_good, garbage=scenario.garbage)
    producer = Traffic(bootstrap, topics["input"], records, scenario.backlog, rate)
    producer.keyed = scenario.keyed
    producer.start()
    producer.backlog_done.wait(timeout=300)

    workers = Workers(envs, tmp)
    ctx = Context(bootstrap, workers, random.Random(seed), broker=broker, input_topic=topics["input"])
    started, phase_started = time.monotonic(), time.time()
    try:
        workers.start(0)
        workers.supervise()
        producer.go.set()
        scenario.script(ctx)
        time.sleep(scenario.tail_s)
        producer.stop.set()
        producer.join(timeout=180)
        if producer.error is not None:
            raise RuntimeError(f"the producer failed: {producer.error!r}")
        live = next(iter(workers.procs))
        read_all = _wait_until_read(envs[live], bootstrap, topics["input"])
        wait_for_input_count(envs[live], 0, timeout_s=120)
        alive = all(proc.poll() is None for proc in workers.procs.values())
        app = envs[0]["PSEUDO_APP_ID"]
        drained = {name: _drain(bootstrap, topic) for name, topic in topics.items()}
        drained["release"] = _drain(bootstrap, f"{app}-release")
    finally:
        producer.stop.set()
        workers.stop_all()
    duration = time.monotonic() - started

    runtime = build_runtime(Settings.from_env(envs[0]))
    result: dict[str, Any] = {
        "phase": scenario.name,
        "duration_s": round(duration, 1),
        "faults": [what for what, _ in ctx.faults],
        "worker_alive_at_end": alive,
        # exits nobody asked for: [worker, return code, seconds into the phase]; the worker was started again
        "worker_exits": [[i, code, round(moment - phase_started, 1)] for i, code, moment in workers.exits],
        "ingest_read_all": read_all,
        "crashed_agent_lines": workers.crashed_agents(),
        "produced": len(producer.acknowledged),
        "not_acknowledged": producer.failed,
        "in_topic": len(drained["input"]),
    }
    result.update(account(runtime, producer.acknowledged, drained))
    result.update(output_gaps(drained, ctx.faults))
    values = [value for _, value in records]
    reference = file_mode_alerts(envs[0], keys, values, drained["input"], producer.acknowledged, tmp)
    # The evidence beside the reference's abuse.jsonl: the stream's alerts, every copy, in the order read.
    (tmp / "stream-alerts.jsonl").write_bytes(
        b"".join(m.value + b"\n" for m in drained["abuse"] if b'"kind":"alert"' in m.value)
    )
    result.update(compare_alerts(drained["abuse"], reference))
    result["logs"] = str(tmp)
    return result


def _create_topics(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "topics", "create"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"topics create failed:\n{done.stderr[-3000:]}")


def _wait_until_read(env: dict[str, str], bootstrap: str, topic: str, timeout_s: float = 300) -> bool:
    group = f"{env['PSEUDO_APP_ID']}-ingest"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if asyncio.run(consumed(bootstrap, group, topic)):
            return True
        time.sleep(0.5)
    return False


def _drain(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    return asyncio.run(drain_messages(bootstrap, topic, timeout_s=120))


# --- measures -----------------------------------------------------------------------------------------


def _event_id(output: Output, value: bytes) -> str | None:
    if output is Output.RELEASE:
        return ReleaseRow.from_bytes(value).event_id
    event_id = orjson.loads(value).get("event_id")
    return str(event_id) if event_id is not None else None


def _ids(messages: list[ConsumerRecord[bytes, bytes]], output: Output) -> Counter[str]:
    ids: Counter[str] = Counter()
    for message in messages:
        if output is Output.ABUSE and orjson.loads(message.value).get("kind") == "alert":
            continue  # alerts have no input position: compared with the file mode instead
        event_id = _event_id(output, message.value)
        if event_id is not None:
            ids[event_id] += 1
    return ids


# Where the ingest writes each kind of output an input record makes (analytics go through the release topic).
INGEST_OUTPUTS = {Output.RELEASE: "release", Output.ANALYTICS: "analytics", Output.ABUSE: "abuse"}
INGEST_OUTPUTS[Output.QUARANTINE] = "quarantine"


def expected_outputs(runtime: Any, message: ConsumerRecord[bytes, bytes]) -> list[tuple[str, str]]:
    """(topic name, event_id) of every output the input ``message`` must produce, recomputed at its position."""
    ingest = datetime.fromtimestamp(message.timestamp / 1000, UTC) if message.timestamp > 0 else datetime.now(UTC)
    source = Source(message.topic, message.partition, message.offset, ingest)
    routed = route_record(runtime.processor, message.value, source, runtime.sealer, runtime.event_ids)
    out = []
    for output, _, value in routed.messages:
        event_id = _event_id(output, value)
        if event_id is not None:
            out.append((INGEST_OUTPUTS[output], event_id))
    return out


def account(
    runtime: Any, acknowledged: dict[tuple[int, int], int], drained: dict[str, list[ConsumerRecord[bytes, bytes]]]
) -> dict[str, Any]:
    """Accounted and lost input records, duplicates and ids no input gives, per output topic (see the module doc)."""
    found = {name: _ids(drained[name], output) for output, name in INGEST_OUTPUTS.items()}
    expected: dict[str, set[str]] = {name: set() for name in found}
    accounted = lost = 0
    lost_examples: list[dict[str, Any]] = []
    positions = set()
    for message in drained["input"]:
        positions.add((message.partition, message.offset))
        outputs = expected_outputs(runtime, message)
        missing = [(name, event_id) for name, event_id in outputs if not found[name][event_id]]
        for name, event_id in outputs:
            expected[name].add(event_id)
        if missing:
            lost += 1
            if len(lost_examples) < 5:
                outputs_missing = sorted({name for name, _ in missing})
                lost_examples.append(
                    {"partition": message.partition, "offset": message.offset, "missing": outputs_missing}
                )
        else:
            accounted += 1
    lost_at_broker = sum(1 for position in acknowledged if position not in positions)
    released = _ids(drained["analytics"], Output.ANALYTICS)
    aggregates = _ids(drained["aggregates"], Output.AGGREGATES)
    duplicates = {name: sum(found[name].values()) - len(found[name]) for name in found if name != "analytics"}
    duplicates["analytics (released)"] = sum(released.values()) - len(released)
    duplicates["aggregates"] = sum(aggregates.values()) - len(aggregates)
    unexpected = {name: len(set(found[name]) - expected[name]) for name in found if name != "analytics"}
    unexpected["analytics (released)"] = len(set(released) - expected["release"])
    return {
        "accounted": accounted,
        "lost": lost + lost_at_broker,
        "lost_at_broker": lost_at_broker,
        "lost_examples": lost_examples,
        "output_records": {name: sum(ids.values()) for name, ids in {**found, "aggregates": aggregates}.items()},
        "duplicates": duplicates,
        "duplicates_total": sum(duplicates.values()),
        "unexpected_ids": unexpected,
        "unexpected_ids_total": sum(unexpected.values()),
    }


def output_gaps(
    drained: dict[str, list[ConsumerRecord[bytes, bytes]]], faults: list[tuple[str, float]]
) -> dict[str, Any]:
    """The longest pause between records the ingest wrote (from its first to its last), and per fault the time to
    the next one. Output timestamps are the worker's clock when it appended the record (no timestamp is copied)."""
    times = sorted(
        m.timestamp / 1000
        for name in ("release", "quarantine", "abuse")
        for m in drained[name]
        if name != "abuse" or b'"kind":"alert"' not in m.value
    )
    longest = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
    after = []
    for what, moment in faults:
        later = [t for t in times if t > moment]
        after.append({"fault": what, "next_output_s": round(min(later) - moment, 2) if later else None})
    return {"output_gap_s": round(longest, 2), "after_fault": after}


def file_mode_alerts(
    env: dict[str, str],
    keys: Path,
    records: list[bytes],
    input_messages: list[ConsumerRecord[bytes, bytes]],
    acknowledged: dict[tuple[int, int], int],
    tmp: Path,
) -> list[dict[str, Any]]:
    """The clean run: the file mode over the records the input topic holds, in the order they were produced."""
    indexes = sorted(acknowledged.values())
    extra = Counter(m.value for m in input_messages) - Counter(records[i] for i in indexes)
    if extra:
        # In the topic without an acknowledgement (a fault ate it): in production order, as the producer sent them.
        chosen = set(indexes)
        for i, value in enumerate(records):
            if i not in chosen and extra[value] > 0:
                extra[value] -= 1
                indexes.append(i)
        indexes.sort()
    source = tmp / "reference-input.log"
    source.write_bytes(b"".join(records[i] + b"\n" for i in indexes))
    out = tmp / "reference"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "process", "--keys", str(keys), "--out", str(out), str(source)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the file mode failed:\n{done.stderr[-3000:]}")
    lines = (out / "abuse.jsonl").read_bytes().splitlines()
    return [record for record in map(orjson.loads, lines) if record.get("kind") == "alert"]


def _alert_key(alert: dict[str, Any]) -> tuple[str, str, int]:
    return str(alert["rule"]), str(alert["subject"]), int(alert["count"])


def compare_alerts(abuse: list[ConsumerRecord[bytes, bytes]], reference: list[dict[str, Any]]) -> dict[str, Any]:
    """The stream's alerts (one per event_id) against the reference's, as multisets of (rule, subject, count)."""
    alerts = [record for record in (orjson.loads(m.value) for m in abuse) if record.get("kind") == "alert"]
    by_id = {str(alert["event_id"]): alert for alert in alerts}
    stream = Counter(_alert_key(alert) for alert in by_id.values())
    clean = Counter(_alert_key(alert) for alert in reference)
    false, missing = stream - clean, clean - stream
    # The same alert (its id hashes rule, subject and time) with another count: one event more or less in the
    # bucket when it overflowed, e.g. events of one second applied in another order.
    reference_by_id = {str(alert["event_id"]): alert for alert in reference}
    recounted = [
        [alert["rule"], alert["subject"], alert["time"], int(alert["count"]), int(reference_by_id[event_id]["count"])]
        for event_id, alert in sorted(by_id.items())
        if event_id in reference_by_id and int(alert["count"]) != int(reference_by_id[event_id]["count"])
    ]

    def listed(keys: Counter[tuple[str, str, int]]) -> list[list[Any]]:
        return [[rule, subject, count, n] for (rule, subject, count), n in sorted(keys.items())]

    return {
        "alerts_stream": sum(stream.values()),
        "alerts_reference": sum(clean.values()),
        "alert_duplicates": len(alerts) - len(by_id),
        "alerts_false": sum(false.values()),
        "alerts_missing": sum(missing.values()),
        # [rule, subject (a security pseudonym), count, how many]
        "alerts_false_list": listed(false),
        "alerts_missing_list": listed(missing),
        # [rule, subject, time, count in the stream, count in the reference]: alerts both raised, counted otherwise
        "alerts_recounted": recounted,
    }


# --- the phases' fault scripts ------------------------------------------------------------------------


def kill_and_restart(ctx: Context, *, kills: int, pause_s: float, most_s: float) -> None:
    """``kills`` times: once the worker reads, wait a random time, ``kill -9``, wait ``pause_s``, start it again."""
    for n in range(1, kills + 1):
        ctx.workers.reading(0)
        time.sleep(ctx.rng.uniform(0.2, most_s))
        ctx.fault(f"kill -9 #{n}")
        ctx.workers.kill(0)
        time.sleep(pause_s)
        ctx.workers.start(0)
    ctx.workers.reading(0)


def rebalance(ctx: Context, *, before_s: float, joined_s: float) -> None:
    """A second worker joins after ``before_s`` and leaves (SIGTERM) ``joined_s`` after it came up."""
    time.sleep(before_s)
    ctx.fault("worker 1 joins")
    ctx.workers.start(1)
    time.sleep(joined_s)
    ctx.fault("worker 1 leaves (SIGTERM)")
    ctx.workers.terminate(1)


def broker_outage(ctx: Context, *, before_s: float, outage_s: float) -> None:
    assert ctx.broker is not None
    time.sleep(before_s)
    ctx.fault(f"broker stopped for {outage_s:g} s")
    stopped = time.monotonic()
    ctx.broker.stop()
    time.sleep(max(0.0, outage_s - (time.monotonic() - stopped)))
    port = int(ctx.broker.bootstrap.rsplit(":", 1)[1])
    restarted = Broker.start(port, port + 1, Path(ctx.broker.env["KAFKA_STATE_DIR"]))
    ctx.broker.pid = restarted.pid
    ctx.fault("broker answers again")


def node_kill(ctx: Context, *, before_s: float, after_s: float) -> None:
    from tests.integration.cluster import describe_sync

    time.sleep(before_s)
    _, leaders, _ = describe_sync(ctx.bootstrap, [ctx.input_topic])[ctx.input_topic]
    victim = leaders[0]
    ctx.fault(f"kill -9 of broker node {victim}")
    ctx.cluster.kill_node(victim)
    time.sleep(after_s)
    ctx.cluster.start_node(victim)
    ctx.fault(f"broker node {victim} started again")


def steady(seconds: float) -> Callable[[Context], None]:
    return lambda ctx: time.sleep(seconds)


# --- the campaign -------------------------------------------------------------------------------------


def scenarios(args: argparse.Namespace) -> dict[str, Scenario]:
    return {
        "kills": Scenario(
            "kills",
            args.backlog,
            functools.partial(kill_and_restart, kills=args.kills, pause_s=args.pause, most_s=4.0),
            tail_s=10,
        ),
        "outage": Scenario(
            "outage", 0, functools.partial(broker_outage, before_s=15, outage_s=args.outage_s), tail_s=20
        ),
        "rebalance": Scenario(
            "rebalance", 0, functools.partial(rebalance, before_s=15, joined_s=20), tail_s=20, workers=2
        ),
        "garbage": Scenario("garbage", args.backlog // 2, steady(30), tail_s=0, garbage=True),
        "cluster": Scenario(
            "cluster",
            0,
            functools.partial(node_kill, before_s=10, after_s=25),
            tail_s=10,
            env={
                "PSEUDO_REPLICATION_FACTOR": "3",
                "PSEUDO_MIN_INSYNC_REPLICAS": "2",
                # faust's own topics (the detector table's changelog) take its topic_replication_factor, 1 unless set
                "TOPIC_REPLICATION_FACTOR": "3",
            },
        ),
    }


COLUMNS = (
    ("phase", "phase"),
    ("produced", "produced"),
    ("accounted", "accounted"),
    ("lost", "lost"),
    ("duplicates_total", "dup (by id)"),
    ("unexpected_ids_total", "undetectable"),
    ("output_gap_s", "gap s"),
    ("worker_exits", "exits"),
    ("alerts_reference", "alerts ref"),
    ("alerts_false", "false"),
    ("alerts_missing", "missing"),
)


def table(results: list[dict[str, Any]]) -> str:
    rows = [[str(len(v) if isinstance(v := r.get(key), list) else v) for key, _ in COLUMNS] for r in results]
    widths = [max(len(title), *(len(row[i]) for row in rows)) for i, (_, title) in enumerate(COLUMNS)]
    lines = ["  ".join(title.rjust(w) for (_, title), w in zip(COLUMNS, widths, strict=True))]
    lines += ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def run_cluster_phase(scenario: Scenario, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from tests.integration.cluster import KafkaCluster

    cluster = KafkaCluster(work / "cluster-state", args.cluster_port)
    try:
        cluster.start()
        bootstrap = cluster.bootstrap
        original = scenario.script

        def script(ctx: Context) -> None:
            ctx.cluster = cluster
            original(ctx)

        return run_scenario(
            bootstrap,
            Scenario(scenario.name, scenario.backlog, script, scenario.tail_s, env=scenario.env),
            rate=args.rate,
            seed=args.seed,
            work=work,
        )
    finally:
        cluster.stop()


def save(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES))
    parser.add_argument("--port", type=int, default=29686, help="the broker's port (controller: port + 1)")
    parser.add_argument("--cluster-port", type=int, default=29603, help="the cluster's first node (+10, +20)")
    parser.add_argument("--state-dir", default=str(ROOT / ".kafka"), help="the broker's state folder")
    parser.add_argument("--rate", type=float, default=100.0, help="records per second in the stream")
    parser.add_argument("--backlog", type=int, default=20_000, help="records waiting when the kills begin")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between a kill and the restart")
    parser.add_argument("--outage-s", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the results")
    args = parser.parse_args(argv)
    # The campaign's own producer and readers would print every failed connection of an outage: the workers' logs
    # are the evidence, this process's output the table.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    plans = scenarios(args)
    document: dict[str, Any] = {
        "command": "python -m benchmarks.faults " + " ".join(argv if argv is not None else sys.argv[1:]),
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rate": args.rate,
        "phases": [],
    }
    results: list[dict[str, Any]] = document["phases"]
    work = Path(tempfile.mkdtemp(prefix="faults-"))  # kept: the worker logs are the evidence
    wanted = [name for name in PHASES if name in args.phases]
    single = [name for name in wanted if name != "cluster"]
    if single:
        broker = Broker.start(args.port, args.port + 1, Path(args.state_dir).resolve())
        try:
            for name in single:
                print(f"phase {name} ...", flush=True)
                result = run_scenario(
                    broker.bootstrap, plans[name], rate=args.rate, seed=args.seed, work=work, broker=broker
                )
                results.append(result)
                save(args.json, document)  # phase by phase: a later failure keeps what was measured
                print(json.dumps(result, indent=1), flush=True)
        finally:
            broker.stop()
    if "cluster" in wanted:
        print("phase cluster ...", flush=True)
        results.append(run_cluster_phase(plans["cluster"], args, work))
        print(json.dumps(results[-1], indent=1), flush=True)
    save(args.json, document)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
