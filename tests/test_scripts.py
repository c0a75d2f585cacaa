"""scripts/kafka.sh as a newcomer uses it: `make run` twice, or after a broker was left running.

The broker here is the test's own (its own state folder and ports), so that stopping it cannot disturb the
session broker of tests/conftest.py. Set KAFKA_SCRIPT_TEST_PORT to pin its port (the controller uses the next).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "kafka.sh"
SHARED_LIB = ROOT / ".kafka" / "lib"
# A second start finds a running broker: one probe, well under a second. The bound only has to tell
# "returned" from "waits forever" on a noisy machine.
PROMPTLY_S = 120

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def _free_port_pair() -> int:
    """A port whose successor is free too (broker and controller listeners)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port < 65535:
            with socket.socket() as other:
                try:
                    other.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    pytest.fail("no free pair of adjacent ports")


class Broker:
    """Runs scripts/kafka.sh against one state folder and port pair."""

    def __init__(self, state: Path, port: int) -> None:
        self.state = state
        self.port = port
        self.env = {
            **os.environ,
            "KAFKA_PORT": str(port),
            "KAFKA_CONTROLLER_PORT": str(port + 1),
            "KAFKA_STATE_DIR": str(state),
            "KAFKA_HEAP": "-Xmx256m",
        }

    @property
    def lock(self) -> Path:
        return self.state / f"start-{self.port}.lock"

    def pid(self) -> int:
        return int((self.state / f"broker-{self.port}.pid").read_text())

    def run(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), command], env=self.env, text=True, capture_output=True, timeout=timeout, check=False
        )


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker started once by `kafka.sh start`, its jars from .kafka/lib (fetched once, as `make test` does)."""
    if not (SHARED_LIB / ".complete").exists():
        fetched = subprocess.run([str(SCRIPT), "fetch"], text=True, capture_output=True, check=False)
        assert fetched.returncode == 0, fetched.stderr[-4000:]
    state = tmp_path_factory.mktemp("kafka")
    (state / "lib").symlink_to(SHARED_LIB)
    subject = Broker(state, int(os.environ.get("KAFKA_SCRIPT_TEST_PORT") or _free_port_pair()))
    try:
        started = subject.run("start", timeout=300)
        assert started.returncode == 0, started.stderr[-4000:]
        yield subject
    finally:
        subject.run("stop", timeout=120)


def _open_files(pid: int) -> set[Path]:
    opened = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            opened.add(Path(os.readlink(fd)))
        except OSError:  # closed between listing and reading
            continue
    return opened


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads open files from /proc")
def test_the_broker_does_not_inherit_the_start_lock(broker: Broker) -> None:
    """The broker outlives the script: a lock it inherited would make every later start wait for it to exit."""
    assert broker.lock.exists()
    assert broker.lock not in _open_files(broker.pid())


def test_a_second_start_returns_promptly(broker: Broker) -> None:
    """`make run` twice in a row: the second start finds the broker and returns."""
    began = time.monotonic()
    again = broker.run("start", timeout=PROMPTLY_S)
    assert again.returncode == 0, again.stderr[-4000:]
    assert "already running" in again.stderr
    assert time.monotonic() - began < PROMPTLY_S


def test_start_returns_while_a_left_over_process_holds_the_start_lock(broker: Broker) -> None:
    """A broker launched by an older kafka.sh still holds the lock it inherited; starting again must not wait."""
    # Stands in for such a broker: a process that keeps an exclusive flock on the lock file.
    holder = subprocess.Popen(["flock", str(broker.lock), "sleep", "600"])
    try:
        for _ in range(200):  # until the stand-in has taken the lock
            if subprocess.run(["flock", "-n", str(broker.lock), "true"], check=False).returncode != 0:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the stand-in never took the lock")
        again = broker.run("start", timeout=PROMPTLY_S)
        assert again.returncode == 0, again.stderr[-4000:]
        assert "already running" in again.stderr
    finally:
        holder.kill()
        holder.wait()


def _script(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """kafka.sh without a broker behind it: commands that must refuse before they start anything."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    return subprocess.run(
        [str(SCRIPT), *command], env={**clean, **env}, text=True, capture_output=True, timeout=60, check=False
    )


def test_node_commands_need_a_cluster() -> None:
    """The single node (the default) has no node to kill: say so rather than kill the broker."""
    refused = _script(["kill-node", "1"], KAFKA_PORT="29590")
    assert refused.returncode == 2
    assert "needs a cluster (KAFKA_BROKERS=3)" in refused.stderr


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["kill-node", "4"], "no node 4 (KAFKA_BROKERS=3)"),
        (["stop-node"], "name a node, 1..3"),
        (["start-node", "x"], "name a node, 1..3"),
    ],
)
def test_cluster_node_commands_check_the_node(command: list[str], said: str) -> None:
    refused = _script(command, KAFKA_BROKERS="3", KAFKA_PORT="29590")
    assert refused.returncode == 2
    assert said in refused.stderr


def test_a_secured_cluster_is_refused() -> None:
    """KAFKA_SECURE covers the single node only: a cluster must not come up silently unsecured."""
    refused = _script(["start"], KAFKA_BROKERS="3", KAFKA_SECURE="1", KAFKA_PORT="29590")
    assert refused.returncode == 2
    assert "single node only" in refused.stderr


def test_cluster_nodes_listen_ten_ports_apart() -> None:
    listed = _script(["bootstrap"], KAFKA_BROKERS="3", KAFKA_PORT="29590")
    assert listed.stdout.strip() == "127.0.0.1:29590,127.0.0.1:29600,127.0.0.1:29610"
