"""Session-wide fixtures: one real Kafka broker per test session (started by scripts/kafka.sh).

The test broker listens on its own ports (KAFKA_TEST_PORT, default 19092) and keeps its data under
.kafka/test, so it never collides with a demo broker on 9092. It is stopped at the end of the session
only if this session started it. Each test gets its own topics (see ``unique_topics``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from pipeline import kafka_clients, local_broker
from pipeline.local_broker import Mechanism

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("PSEUDO_SHARED_DATA", ROOT.parent / "shared" / "data"))
TEST_PORT = int(os.environ.get("KAFKA_TEST_PORT", "19092"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data; the calling test is skipped when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    return path


def _kafka(command: str, port: int, extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(port + 1),
        "KAFKA_STATE_DIR": str(ROOT / ".kafka"),
        **extra_env,
    }
    return subprocess.run(
        [str(ROOT / "scripts" / "kafka.sh"), command], env=env, text=True, capture_output=True, check=False
    )


@contextmanager
def project_broker(port: int, **extra_env: str) -> Iterator[str]:
    """A broker started by scripts/kafka.sh on ``port`` (reused when one answers there, else stopped after)."""
    already = _kafka("status", port, extra_env).returncode == 0
    if not already:
        started = _kafka("start", port, extra_env)
        if started.returncode != 0:
            pytest.fail(f"could not start the test broker on {port}:\n{started.stderr[-4000:]}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        if not already:
            _kafka("stop", port, extra_env)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """host:port of the session's real broker."""
    with project_broker(TEST_PORT) as bootstrap:
        yield bootstrap


SECURE_TEST_PORT = int(os.environ.get("KAFKA_SECURE_TEST_PORT", "19290"))


@dataclass(frozen=True)
class SecuredBroker:
    """The session's secured broker (``KAFKA_SECURE=1``): TLS, SASL, mutual TLS, an authorizer denying by default."""

    port: int

    @property
    def plaintext(self) -> str:
        """Its plaintext listener: answers ApiVersions, grants its ANONYMOUS principal nothing."""
        return f"127.0.0.1:{self.port}"

    def env(self, principal: str = "admin", mechanism: Mechanism = "SCRAM-SHA-512") -> dict[str, str]:
        """PSEUDO_BROKER and PSEUDO_KAFKA_* for ``principal`` (admin is a super user)."""
        provider = f"tests.integration.oauth_token:{principal}" if mechanism == "OAUTHBEARER" else None
        return local_broker.connection_env(self.port, principal, mechanism, token_provider=provider)

    def settings(self, principal: str = "admin", mechanism: Mechanism = "SCRAM-SHA-512", **env: str) -> Settings:
        return Settings.from_env({**self.env(principal, mechanism), **env})

    def options(self, principal: str = "admin", mechanism: Mechanism = "SCRAM-SHA-512") -> dict[str, Any]:
        """aiokafka keyword arguments (bootstrap_servers included) for a test's own clients."""
        settings = self.settings(principal, mechanism)
        return {"bootstrap_servers": settings.bootstrap, **kafka_clients.client_options(settings.kafka)}


@pytest.fixture(scope="session")
def secured_broker() -> Iterator[SecuredBroker]:
    """One secured broker per session, started by the project's script (its state under .kafka/tls-<port>)."""
    # KAFKA_TEST_OAUTH: OAUTHBEARER with Kafka's unsecured validator (tests/integration/oauth_token.py signs nothing).
    with project_broker(SECURE_TEST_PORT, KAFKA_SECURE="1", KAFKA_TEST_OAUTH="1", KAFKA_PYTHON=sys.executable):
        yield SecuredBroker(SECURE_TEST_PORT)


@pytest.fixture
def unique_topics(request: pytest.FixtureRequest) -> dict[str, str]:
    """Topic names no other test uses: input/analytics/abuse/quarantine."""
    base = f"t{uuid.uuid4().hex[:10]}"
    return {name: f"{base}.{name}" for name in ("input", "analytics", "abuse", "quarantine")}
