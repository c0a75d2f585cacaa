"""``pseudonymizer demo`` (``make run``): the whole product on this machine, in one command.

Starts the local broker (scripts/kafka.sh), generates a demo keyring if none is configured (and says
so loudly: demo keys are not for production), starts the worker as a subprocess, replays sample
traffic from the project's generator, and prints what lands on each output topic as it arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from config.settings import Settings
from pipeline.keystore import write_keyring
from pipeline.topics import ensure_topics
from transforms.keyring import generate_keyring

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / ".demo"
SHARED = Path(os.environ.get("PSEUDO_SHARED_DATA", ROOT.parent / "shared" / "data"))
COLOURS = {"analytics": "\033[36m", "abuse": "\033[31m", "quarantine": "\033[33m"}
RESET = "\033[0m"


def _banner(text: str) -> None:
    line = "!" * 78
    print(f"\n{line}\n{text}\n{line}\n", file=sys.stderr, flush=True)


def _demo_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    if not (settings.keys_file or settings.keys):
        keyring_path = DEMO_DIR / "keyring.json"
        if not keyring_path.exists():
            write_keyring(generate_keyring(), keyring_path)
        _banner(
            f"DEMO KEYRING in use: {keyring_path}\n"
            "No PSEUDO_KEYS_FILE was given, so a throw-away keyring was generated for this demo.\n"
            "Never use demo keys in production: generate and protect your own with\n"
            "  pseudonymizer keys generate --out /secure/path/keyring.json"
        )
        env["PSEUDO_KEYS_FILE"] = str(keyring_path)
    if not (settings.geo_city_db or settings.geo_asn_db):
        country = SHARED / "geo" / "dbip-country" / "dbip-country.mmdb"
        asn = SHARED / "geo" / "ip-location-db-asn" / "ip-location-db-asn.mmdb"
        if country.exists():
            env["PSEUDO_GEO_CITY_DB"] = str(country)
        if asn.exists():
            env["PSEUDO_GEO_ASN_DB"] = str(asn)
    env.setdefault("PSEUDO_DATA_DIR", str(DEMO_DIR / "worker"))
    env.setdefault("PSEUDO_STATS_INTERVAL_S", "10")
    return env


def _show(topic_role: str, record: dict[str, Any]) -> str:
    colour = COLOURS[topic_role]
    if topic_role == "analytics":
        http = record.get("http", {})
        ua = record.get("user_agent", {})
        geo = record.get("geo", {})
        text = (
            f"{record.get('time', '')} {record['client']['pseudonym'][:28]} {record['client'].get('prefix', ''):18} "
            f"{geo.get('country', '--'):2} {http.get('method', '-'):6} {http.get('url', {}).get('path', '-')[:40]:40} "
            f"{http.get('status', '-')} {ua.get('browser', '-')}/{ua.get('os', '-')}{' [bot]' if ua.get('bot') else ''}"
        )
    elif topic_role == "abuse":
        text = (
            f"{record.get('time', '')} {record.get('kind')} {record.get('rule', ''):22} "
            f"subject={record.get('subject', '')[:30]} prefix={record.get('source', {}).get('prefix', '-')}"
        )
    else:
        text = f"reason={record.get('reason')} field={record.get('field')} source={record.get('source')} (sealed)"
    return f"{colour}[{topic_role:10}]{RESET} {text}"


async def _watch(settings: Settings, stop_at: float, expected_input: int, summary_url: str) -> None:
    roles = {
        settings.analytics_topic: "analytics",
        settings.abuse_topic: "abuse",
        settings.quarantine_topic: "quarantine",
    }
    consumer = AIOKafkaConsumer(
        *roles,
        bootstrap_servers=settings.bootstrap,
        group_id=f"demo-viewer-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    shown = dict.fromkeys(roles.values(), 0)
    try:
        while time.monotonic() < stop_at:
            batches = await consumer.getmany(timeout_ms=500, max_records=200)
            for tp, messages in batches.items():
                role = roles[tp.topic]
                for message in messages:
                    shown[role] += 1
                    # Show every abuse/quarantine record but only a sample of analytics, to stay readable.
                    if role != "analytics" or shown[role] % 10 == 1:
                        print(_show(role, orjson.loads(message.value)), flush=True)
            summary = _summary(summary_url)
            if summary and summary.get("input", 0) >= expected_input:
                await asyncio.sleep(1.0)
                break
    finally:
        await consumer.stop()


def _summary(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback URL we built)
            return dict(orjson.loads(response.read()))
    except OSError:
        return None


def run_demo(args: argparse.Namespace) -> int:
    DEMO_DIR.mkdir(exist_ok=True)
    subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "start"], check=True)  # noqa: S603 (our own script)
    settings = Settings.from_env()
    env = _demo_env(settings)
    asyncio.run(ensure_topics(settings.bootstrap, settings.topic_specs()))
    worker_log = DEMO_DIR / "worker.log"
    print(f"demo: starting the worker (log: {worker_log})", file=sys.stderr, flush=True)
    with open(worker_log, "ab") as log_handle:
        worker = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "worker"], env=env, stdout=log_handle, stderr=subprocess.STDOUT
        )
    summary_url = f"http://{settings.metrics_host}:{settings.metrics_port}/summary"
    try:
        for _ in range(120):
            if worker.poll() is not None:
                print(f"demo: the worker exited ({worker.returncode}); see {worker_log}", file=sys.stderr)
                return 1
            if _summary(summary_url) is not None:
                break
            time.sleep(0.5)
        time.sleep(3)  # let the consumer group settle before traffic starts
        print(f"demo: replaying {args.count} sample records at {args.rate:.0f}/s", file=sys.stderr, flush=True)
        generator = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "generate",
                "--mix",
                "demo",
                "--count",
                str(args.count),
                "--rate",
                str(args.rate),
                # A new seed each run: the same sources again within the detector's quiet period (its state
                # persists in .demo/worker) would rightly raise no alert, and a second demo would show none.
                "--seed",
                str(int(time.time())),
            ],
            env=env,
        )
        budget = args.seconds if args.seconds else args.count / max(args.rate, 1.0) + 60
        before = (_summary(summary_url) or {}).get("input", 0)
        asyncio.run(_watch(settings, time.monotonic() + budget, before + args.count, summary_url))
        generator.wait(timeout=60)
        summary = _summary(summary_url) or {}
        print("\ndemo: worker counters " + orjson.dumps(summary).decode(), file=sys.stderr)
        print(
            f"demo: metrics at {summary_url.replace('/summary', '/metrics')} while a worker runs; "
            "stop the broker with `scripts/kafka.sh stop`",
            file=sys.stderr,
        )
        return 0
    finally:
        worker.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(timeout=30)
        if worker.poll() is None:
            worker.kill()
