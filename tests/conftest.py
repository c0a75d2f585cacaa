"""Session-wide fixtures: one real Kafka broker per test session (started by scripts/kafka.sh).

The test broker listens on its own ports (KAFKA_TEST_PORT, default 19092) and keeps its data under
.kafka/test, so it never collides with a demo broker on 9092. It is stopped at the end of the session
only if this session started it. Each test gets its own topics (see ``unique_topics``).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("PSEUDO_SHARED_DATA", ROOT.parent / "shared" / "data"))
TEST_PORT = int(os.environ.get("KAFKA_TEST_PORT", "19092"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data; the calling test is skipped when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    return path


def _kafka(command: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KAFKA_PORT": str(TEST_PORT),
        "KAFKA_CONTROLLER_PORT": str(TEST_PORT + 1),
        "KAFKA_STATE_DIR": str(ROOT / ".kafka"),
    }
    return subprocess.run(
        [str(ROOT / "scripts" / "kafka.sh"), command], env=env, text=True, capture_output=True, check=False
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """host:port of the session's real broker."""
    already = _kafka("status").returncode == 0
    if not already:
        started = _kafka("start")
        if started.returncode != 0:
            pytest.fail(f"could not start the test broker:\n{started.stderr[-4000:]}")
    yield f"127.0.0.1:{TEST_PORT}"
    if not already:
        _kafka("stop")


@pytest.fixture
def unique_topics(request: pytest.FixtureRequest) -> dict[str, str]:
    """Topic names no other test uses: input/analytics/abuse/quarantine."""
    base = f"t{uuid.uuid4().hex[:10]}"
    return {name: f"{base}.{name}" for name in ("input", "analytics", "abuse", "quarantine")}
