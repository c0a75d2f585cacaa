"""``pseudonymizer demo --secure`` on the session's secured broker: every part connects as its own principal."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import SecuredBroker
from tests.integration.helpers import ROOT, free_port

pytestmark = pytest.mark.integration


def test_the_demo_runs_on_the_secured_broker_each_part_as_its_own_principal(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    base = f"demo{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSEUDO_")}
    env.update(
        PSEUDO_DEMO_SECURE_PORT=str(secured_broker.port),
        PSEUDO_DEMO_DIR=str(tmp_path),
        PSEUDO_METRICS_PORT=str(free_port()),
        PSEUDO_APP_ID=f"app-{base}",
        PSEUDO_AUDIT_TOPIC=f"{base}.audit",
        **{f"PSEUDO_{name.upper()}_TOPIC": f"{base}.{name}" for name in ("input", "analytics", "abuse", "quarantine")},
        PSEUDO_AGGREGATES_TOPIC=f"{base}.aggregates",
    )
    demo = [sys.executable, "-m", "pipeline.cli", "demo", "--secure", "--count", "300", "--rate", "300"]
    # 30 s: abuse events and quarantined records show at once; the one-minute analytics windows would take longer.
    done = subprocess.run(
        [*demo, "--seconds", "30"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "every audience as its own principal" in done.stderr
    assert '"input":300' in done.stderr  # the shipper's records all reached the worker
    shown = done.stdout
    assert "[abuse" in shown  # read by the security principal
    assert "[quarantine" in shown  # read by the operator principal
    worker_log = (tmp_path / "worker.log").read_text()
    assert "Crashed" not in worker_log
    assert "AuthorizationFailed" not in worker_log
