"""The project's own broker (scripts/kafka.sh) and how each principal connects to its secured listeners.

``KAFKA_SECURE=1 scripts/kafka.sh start`` writes a CA and every principal's credentials into
``<state>/tls-<port>`` (scripts/kafka_tls.py). :func:`connection_env` turns them into the ``PSEUDO_KAFKA_*`` settings
a real deployment would set, so the demo and the tests connect exactly as an operator's clients would.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".kafka"

# How a principal proves who it is: SASL (over TLS) with a password or a token, or a client certificate.
Mechanism = Literal["SCRAM-SHA-512", "PLAIN", "OAUTHBEARER", "mTLS"]
SASL_SSL_OFFSET = 2  # the script's listeners: SASL_SSL on port + 2, SSL with client certificates on port + 3
MTLS_OFFSET = 3


def tls_dir(port: int, state_dir: Path = STATE_DIR) -> Path:
    return state_dir / f"tls-{port}"


def start(port: int, controller_port: int, *, secure: bool, state_dir: Path = STATE_DIR) -> None:
    """Start (or find running) the project's broker; raises ``CalledProcessError`` when it cannot."""
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller_port),
        "KAFKA_STATE_DIR": str(state_dir),
        "KAFKA_SECURE": "1" if secure else "0",
    }
    subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "start"], env=env, check=True)  # noqa: S603 (our script)


def connection_env(
    port: int,
    principal: str,
    mechanism: Mechanism = "SCRAM-SHA-512",
    *,
    state_dir: Path = STATE_DIR,
    token_provider: str | None = None,
) -> dict[str, str]:
    """``PSEUDO_BROKER`` and ``PSEUDO_KAFKA_*`` for ``principal`` on the secured broker whose plain port is ``port``.

    OAUTHBEARER needs ``token_provider`` (``module:factory``): the project ships none, a deployment names its own.
    """
    tls = tls_dir(port, state_dir)
    if mechanism == "mTLS":
        return {
            "PSEUDO_BROKER": f"kafka://127.0.0.1:{port + MTLS_OFFSET}",
            "PSEUDO_KAFKA_SECURITY_PROTOCOL": "SSL",
            "PSEUDO_KAFKA_SSL_CA_FILE": str(tls / "ca.pem"),
            "PSEUDO_KAFKA_SSL_CERT_FILE": str(tls / f"{principal}.pem"),
            "PSEUDO_KAFKA_SSL_KEY_FILE": str(tls / f"{principal}.key"),
        }
    env = {
        "PSEUDO_BROKER": f"kafka://127.0.0.1:{port + SASL_SSL_OFFSET}",
        "PSEUDO_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "PSEUDO_KAFKA_SASL_MECHANISM": mechanism,
        "PSEUDO_KAFKA_SSL_CA_FILE": str(tls / "ca.pem"),
    }
    if mechanism == "OAUTHBEARER":
        if token_provider is None:
            raise ValueError("OAUTHBEARER needs a token provider (module:factory)")
        env["PSEUDO_KAFKA_SASL_OAUTH_TOKEN_PROVIDER"] = token_provider
    else:
        env["PSEUDO_KAFKA_SASL_USERNAME"] = principal
        env["PSEUDO_KAFKA_SASL_PASSWORD_FILE"] = str(tls / f"{principal}.password")
    return env
