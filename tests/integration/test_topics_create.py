"""`pseudonymizer topics create` on the real broker (which does not auto-create topics), before any worker runs."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.integration.helpers import ROOT, worker_env

pytestmark = pytest.mark.integration


def _topics_create(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "topics", "create"],
        env=env,
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )


async def _layout(bootstrap: str, names: list[str]) -> dict[str, tuple[int, str]]:
    """Partition count and retention.ms of each topic, as the broker reports them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
        wanted = [ConfigResource(ConfigResourceType.TOPIC, name, {"retention.ms": None}) for name in names]
        retention = {}
        for response in await admin.describe_configs(wanted):
            for _code, _message, _type, name, entries in response.resources:
                retention[name] = next(value for key, value, *_ in entries if key == "retention.ms")
        return {name: (described[name], retention[name]) for name in names}
    finally:
        await admin.close()


async def _produce_one(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b'{"message": "shipped before any worker ran"}')
    finally:
        await producer.stop()


def test_topics_exist_with_their_settings_before_a_worker_starts_and_a_rerun_changes_nothing(
    kafka_bootstrap: str, unique_topics: dict[str, str], tmp_path: Path
) -> None:
    audit = f"{unique_topics['input']}.audit"
    env = worker_env(
        kafka_bootstrap, unique_topics, tmp_path / "no-keys-needed.json", tmp_path / "data", PSEUDO_AUDIT_TOPIC=audit
    )
    app = env["PSEUDO_APP_ID"]
    aggregates = env["PSEUDO_AGGREGATES_TOPIC"]
    names = [*unique_topics.values(), aggregates, f"{app}-observations"]
    # The k-anonymous release's own: held rows (one partition by default) and the compacted progress records.
    release, progress = f"{app}-release", f"{app}-release-progress"

    first = _topics_create(env)
    assert first.returncode == 0, first.stderr[-4000:]
    assert first.stdout.count(": created") == len(names) + 3
    layout = asyncio.run(_layout(kafka_bootstrap, [*names, release, progress, audit]))
    assert layout[audit] == (1, "-1")  # the audit chain: one partition, kept forever
    assert {layout[name][0] for name in names} == {2}  # PSEUDO_PARTITIONS
    assert (layout[release][0], layout[progress][0]) == (1, 1)  # PSEUDO_RELEASE_PARTITIONS; one progress log
    assert layout[unique_topics["input"]][1] == str(86_400_000)  # raw personal data: one day
    assert layout[unique_topics["abuse"]][1] == str(90 * 86_400_000)
    assert layout[aggregates][1] == str(30 * 86_400_000)  # as long as the analytics

    # A shipper started now finds its topic (auto-creation is off: it would otherwise drop the line).
    asyncio.run(_produce_one(kafka_bootstrap, unique_topics["input"]))

    again = _topics_create(env)
    assert again.returncode == 0, again.stderr[-4000:]
    assert again.stdout.count("exists, left as it is") == len(names) + 3
