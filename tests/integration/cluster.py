"""A 3-node Kafka cluster of its own (``KAFKA_BROKERS=3 scripts/kafka.sh``) for fault tests and benchmarks."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.integration.helpers import ROOT

SCRIPT = ROOT / "scripts" / "kafka.sh"
SHARED_LIB = ROOT / ".kafka" / "lib"


class KafkaCluster:
    """``nodes`` combined broker + controller nodes on ``port``, ``port + 10``, ... with their data under ``state``.

    The jars come from .kafka/lib (fetched there once, as ``make test`` does), so that a fresh state folder
    does not fetch them again.
    """

    def __init__(self, state: Path, port: int, nodes: int = 3, heap: str = "-Xmx384m") -> None:
        self.state, self.port, self.nodes = state, port, nodes
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")},
            "KAFKA_BROKERS": str(nodes),
            "KAFKA_PORT": str(port),
            "KAFKA_CONTROLLER_PORT": str(port + 1),
            "KAFKA_STATE_DIR": str(state),
            "KAFKA_HEAP": heap,
        }

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.node_port(i)}" for i in range(1, self.nodes + 1))

    def node_port(self, node: int) -> int:
        return self.port + 10 * (node - 1)

    def run(self, *command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *command], env=self.env, text=True, capture_output=True, timeout=timeout, check=False
        )

    def _checked(self, *command: str) -> None:
        done = self.run(*command)
        if done.returncode != 0:
            raise RuntimeError(f"kafka.sh {' '.join(command)} failed:\n{done.stderr[-4000:]}")

    def start(self) -> None:
        if not (SHARED_LIB / ".complete").exists():
            fetched = subprocess.run([str(SCRIPT), "fetch"], text=True, capture_output=True, check=False)
            if fetched.returncode != 0:
                raise RuntimeError(fetched.stderr[-4000:])
        self.state.mkdir(parents=True, exist_ok=True)
        lib = self.state / "lib"
        if not lib.exists():
            lib.symlink_to(SHARED_LIB)
        self._checked("start")

    def stop(self) -> None:
        self.run("stop", timeout=120)

    def kill_node(self, node: int) -> None:
        self._checked("kill-node", str(node))

    def start_node(self, node: int) -> None:
        self._checked("start-node", str(node))


async def describe(bootstrap: str, topics: list[str]) -> dict[str, tuple[list[int], list[int], str]]:
    """Per topic: replicas per partition, the leader per partition, and its min.insync.replicas config."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
        wanted = [ConfigResource(ConfigResourceType.TOPIC, topic, {"min.insync.replicas": None}) for topic in topics]
        min_isr: dict[str, str] = {}
        for response in await admin.describe_configs(wanted):
            for _code, _message, _type, name, entries in response.resources:
                min_isr.update({str(name): str(value) for key, value, *_ in entries if key == "min.insync.replicas"})
        return {
            str(t["topic"]): (
                [len(p["replicas"]) for p in t["partitions"]],
                [int(p["leader"]) for p in sorted(t["partitions"], key=lambda p: p["partition"])],
                min_isr.get(str(t["topic"]), ""),
            )
            for t in described
        }
    finally:
        await admin.close()


def describe_sync(bootstrap: str, topics: list[str]) -> dict[str, tuple[list[int], list[int], str]]:
    return asyncio.run(describe(bootstrap, topics))
