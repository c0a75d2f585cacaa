"""The metrics endpoint: loopback as before; beyond it only with TLS or a bearer token; secrets never logged."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from config.settings import Settings
from pipeline.metrics import MIN_TOKEN_CHARS, MetricsEndpoint, RouteCounters, is_loopback
from transforms.errors import ConfigError
from transforms.process import Outcome, Route

EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 (what the tests check is refused)
TOKEN = "metrics-token-" + "0123456789abcdef" * 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def settings(**values: Any) -> Settings:
    return Settings.model_validate(values)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "metrics-token"
    path.write_text(TOKEN + "\n")  # a trailing newline, as `echo` and most secret stores write it
    return path


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """A throwaway self-signed certificate for 127.0.0.1: (cert file, key file, cert PEM to trust)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "metrics test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = tmp_path / "metrics.pem", tmp_path / "metrics.key"
    cert_file.write_bytes(pem)
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file, pem


def serve(endpoint: MetricsEndpoint, client: Callable[[], Awaitable[Any]]) -> Any:
    """Start the endpoint, run the client against it, stop the endpoint."""

    async def run() -> Any:
        runner = await endpoint.start()
        try:
            return await client()
        finally:
            await runner.cleanup()

    return asyncio.run(run())


async def get(url: str, *, headers: dict[str, str] | None = None, tls: ssl.SSLContext | None = None) -> int:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers, ssl=tls or False) as response:
        await response.read()
        return response.status


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),  # all of 127/8 is loopback
        (EVERY_INTERFACE, False),  # every interface
        ("::", False),
        ("", False),  # aiohttp binds every interface for an empty host
        ("10.0.0.5", False),
        ("worker.internal", False),  # a name may resolve to any interface
    ],
)
def test_loopback_is_only_what_no_other_machine_reaches(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", [EVERY_INTERFACE, "::", "10.0.0.5", "worker.internal"])
def test_binding_beyond_loopback_without_tls_or_token_is_refused(host: str) -> None:
    with pytest.raises(ConfigError) as refused:
        MetricsEndpoint.build(settings(metrics_host=host), RouteCounters())
    message = str(refused.value)
    for setting in (
        "PSEUDO_METRICS_HOST",
        "PSEUDO_METRICS_TLS_CERT_FILE",
        "PSEUDO_METRICS_TLS_KEY_FILE",
        "PSEUDO_METRICS_TOKEN_FILE",
    ):
        assert setting in message


def test_loopback_serves_plain_http_without_a_token_as_before() -> None:
    counters = RouteCounters()
    counters.count(Outcome(Route.QUARANTINE, "invalid_json"))
    endpoint = MetricsEndpoint.build(settings(metrics_port=free_port()), counters)
    assert endpoint is not None
    assert endpoint.url.startswith("http://127.0.0.1:")
    base = endpoint.url.removesuffix("/metrics")
    assert serve(endpoint, lambda: get(f"{base}/metrics")) == 200
    assert serve(endpoint, lambda: get(f"{base}/summary")) == 200


def test_port_zero_turns_the_endpoint_off_wherever_it_would_bind() -> None:
    assert MetricsEndpoint.build(settings(metrics_host=EVERY_INTERFACE, metrics_port=0), RouteCounters()) is None


def test_beyond_loopback_with_a_token_or_tls_or_both_is_accepted(
    token_file: Path, certificate: tuple[Path, Path, bytes]
) -> None:
    cert_file, key_file, _ = certificate
    tls = {"metrics_tls_cert_file": cert_file, "metrics_tls_key_file": key_file}
    for extra in ({"metrics_token_file": token_file}, tls, {**tls, "metrics_token_file": token_file}):
        endpoint = MetricsEndpoint.build(settings(metrics_host=EVERY_INTERFACE, **extra), RouteCounters())
        assert endpoint is not None


def test_a_token_is_required_once_configured(token_file: Path) -> None:
    """401 without a token, with a wrong one or another scheme; 200 with the right bearer token."""
    endpoint = MetricsEndpoint.build(settings(metrics_port=free_port(), metrics_token_file=token_file), RouteCounters())
    assert endpoint is not None

    async def statuses() -> list[int]:
        return [
            await get(endpoint.url),
            await get(endpoint.url, headers={"Authorization": f"Bearer {TOKEN[:-1]}x"}),
            await get(endpoint.url, headers={"Authorization": f"Basic {TOKEN}"}),
            await get(endpoint.url.replace("/metrics", "/summary"), headers={"Authorization": "Bearer"}),
            await get(endpoint.url, headers={"Authorization": f"Bearer {TOKEN}"}),
            await get(endpoint.url.replace("/metrics", "/summary"), headers={"Authorization": f"bearer {TOKEN}"}),
        ]

    assert serve(endpoint, statuses) == [401, 401, 401, 401, 200, 200]


def test_tls_serves_over_https_only(certificate: tuple[Path, Path, bytes]) -> None:
    cert_file, key_file, pem = certificate
    port = free_port()
    endpoint = MetricsEndpoint.build(
        settings(metrics_port=port, metrics_tls_cert_file=cert_file, metrics_tls_key_file=key_file), RouteCounters()
    )
    assert endpoint is not None
    assert endpoint.url == f"https://127.0.0.1:{port}/metrics"
    trusted = ssl.create_default_context(cadata=pem.decode())

    async def over_https_then_plain() -> tuple[int, bool]:
        status = await get(endpoint.url, tls=trusted)
        try:
            await get(f"http://127.0.0.1:{port}/metrics")
        except aiohttp.ClientError:
            return status, False
        return status, True

    assert serve(endpoint, over_https_then_plain) == (200, False)


def test_half_a_tls_configuration_is_refused(certificate: tuple[Path, Path, bytes]) -> None:
    cert_file, _, _ = certificate
    with pytest.raises(ConfigError, match="PSEUDO_METRICS_TLS_CERT_FILE and PSEUDO_METRICS_TLS_KEY_FILE"):
        MetricsEndpoint.build(settings(metrics_tls_cert_file=cert_file), RouteCounters())


def test_broken_tls_files_name_the_setting(tmp_path: Path, certificate: tuple[Path, Path, bytes]) -> None:
    cert_file, key_file, _ = certificate
    missing = tmp_path / "missing.key"
    with pytest.raises(ConfigError, match="PSEUDO_METRICS_TLS_KEY_FILE: no such file"):
        MetricsEndpoint.build(settings(metrics_tls_cert_file=cert_file, metrics_tls_key_file=missing), RouteCounters())
    with pytest.raises(ConfigError, match="cannot load the certificate and key"):
        MetricsEndpoint.build(settings(metrics_tls_cert_file=key_file, metrics_tls_key_file=key_file), RouteCounters())


def test_an_encrypted_key_is_refused_instead_of_prompting(
    tmp_path: Path, certificate: tuple[Path, Path, bytes]
) -> None:
    cert_file, key_file, _ = certificate
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"a key password"),
        )
    )
    with pytest.raises(ConfigError, match="PSEUDO_METRICS_TLS_KEY_FILE: the key is encrypted"):
        MetricsEndpoint.build(
            settings(metrics_tls_cert_file=cert_file, metrics_tls_key_file=encrypted), RouteCounters()
        )


def test_a_missing_or_short_token_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PSEUDO_METRICS_TOKEN_FILE: no such file"):
        MetricsEndpoint.build(settings(metrics_token_file=tmp_path / "absent"), RouteCounters())
    short = "s" * (MIN_TOKEN_CHARS - 1)
    path = tmp_path / "short-token"
    path.write_text(short)
    with pytest.raises(ConfigError, match="PSEUDO_METRICS_TOKEN_FILE") as refused:
        MetricsEndpoint.build(settings(metrics_token_file=path), RouteCounters())
    assert short not in str(refused.value)


def test_the_token_is_never_logged_nor_in_repr(token_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    endpoint = MetricsEndpoint.build(settings(metrics_port=free_port(), metrics_token_file=token_file), RouteCounters())
    assert endpoint is not None
    assert TOKEN not in repr(endpoint)
    with caplog.at_level(logging.DEBUG):
        status = serve(endpoint, lambda: get(endpoint.url, headers={"Authorization": f"Bearer {TOKEN}"}))
    assert status == 200
    assert "bearer token required" in caplog.text
    assert TOKEN not in caplog.text
