"""The one connection model: PSEUDO_KAFKA_* settings -> the options every Kafka client is built with (issue 10)."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from config.settings import Settings
from pipeline import kafka_clients
from pipeline.kafka_clients import client_options, faust_options
from transforms.errors import ConfigError

PASSWORD = "s3cret-Pa55word"


class StaticToken:
    """An OAUTHBEARER token provider as aiokafka expects one (a test double: no identity provider here)."""

    async def token(self) -> str:
        return "header.payload.signature"


def _settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


def _write_client_certificate(folder: Path, key_password: str | None = None) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pseudonymizer-worker")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(key_password.encode()) if key_password else serialization.NoEncryption()
    )
    cert_path, key_path = folder / "client.pem", folder / "client.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    return cert_path, key_path


def test_plaintext_passes_nothing() -> None:
    """The default: aiokafka's and faust's own defaults, no options at all."""
    settings = _settings({})
    assert settings.kafka.security_protocol == "PLAINTEXT"
    assert client_options(settings.kafka) == {}
    assert faust_options(settings.kafka) == {}


def test_sasl_ssl_scram_reads_the_password_file_and_builds_a_tls_context(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")  # a mounted secret's trailing newline is not part of it
    env = {
        "PSEUDO_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "PSEUDO_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "PSEUDO_KAFKA_SASL_USERNAME": "worker",
        "PSEUDO_KAFKA_SASL_PASSWORD_FILE": str(secret),
    }
    settings = _settings(env)
    options = client_options(settings.kafka)
    assert options["security_protocol"] == "SASL_SSL"
    assert (options["sasl_mechanism"], options["sasl_plain_username"]) == ("SCRAM-SHA-512", "worker")
    assert options["sasl_plain_password"] == PASSWORD
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].check_hostname
    credentials = faust_options(settings.kafka)["broker_credentials"]
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert PASSWORD not in repr(settings)


def test_a_password_given_as_a_variable_prints_masked() -> None:
    env = {
        "PSEUDO_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "PSEUDO_KAFKA_SASL_MECHANISM": "PLAIN",
        "PSEUDO_KAFKA_SASL_USERNAME": "worker",
        "PSEUDO_KAFKA_SASL_PASSWORD": PASSWORD,
    }
    settings = _settings(env)
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings.model_dump())
    assert client_options(settings.kafka)["sasl_plain_password"] == PASSWORD


def test_mutual_tls_loads_the_client_certificate(tmp_path: Path) -> None:
    cert, key = _write_client_certificate(tmp_path, key_password="key-pass")
    (tmp_path / "key-password").write_text("key-pass\n")
    env = {
        "PSEUDO_KAFKA_SECURITY_PROTOCOL": "SSL",
        "PSEUDO_KAFKA_SSL_CERT_FILE": str(cert),
        "PSEUDO_KAFKA_SSL_KEY_FILE": str(key),
        "PSEUDO_KAFKA_SSL_KEY_PASSWORD_FILE": str(tmp_path / "key-password"),
        "PSEUDO_KAFKA_SSL_CHECK_HOSTNAME": "false",
    }
    options = client_options(_settings(env).kafka)
    assert options["security_protocol"] == "SSL"
    assert not options["ssl_context"].check_hostname
    assert "broker_credentials" in faust_options(_settings(env).kafka)


def test_a_wrong_key_password_stops_start_up_without_showing_it(tmp_path: Path) -> None:
    cert, key = _write_client_certificate(tmp_path, key_password="key-pass")
    (tmp_path / "key-password").write_text("not-the-pass")
    env = {
        "PSEUDO_KAFKA_SECURITY_PROTOCOL": "SSL",
        "PSEUDO_KAFKA_SSL_CERT_FILE": str(cert),
        "PSEUDO_KAFKA_SSL_KEY_FILE": str(key),
        "PSEUDO_KAFKA_SSL_KEY_PASSWORD_FILE": str(tmp_path / "key-password"),
    }
    with pytest.raises(ConfigError, match="PSEUDO_KAFKA_SSL_") as caught:
        client_options(_settings(env).kafka)
    assert "not-the-pass" not in str(caught.value)


def test_oauthbearer_builds_the_named_token_provider() -> None:
    env = {
        "PSEUDO_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "PSEUDO_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        "PSEUDO_KAFKA_SASL_OAUTH_TOKEN_PROVIDER": "tests.pipeline.test_kafka_clients:StaticToken",
    }
    options = client_options(_settings(env).kafka)
    assert isinstance(options["sasl_oauth_token_provider"], StaticToken)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        # (settings, the variable the message must name)
        ({"PSEUDO_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "PSEUDO_KAFKA_SASL_MECHANISM"),  # SASL without mechanism
        (
            {"PSEUDO_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "PSEUDO_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"},
            "PSEUDO_KAFKA_SASL_USERNAME",
        ),
        (
            {
                "PSEUDO_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "PSEUDO_KAFKA_SASL_MECHANISM": "PLAIN",
                "PSEUDO_KAFKA_SASL_USERNAME": "w",
                "PSEUDO_KAFKA_SASL_PASSWORD_FILE": "/nonexistent/password",
            },
            "PSEUDO_KAFKA_SASL_PASSWORD_FILE",
        ),
        (
            {"PSEUDO_KAFKA_SECURITY_PROTOCOL": "SSL", "PSEUDO_KAFKA_SSL_CERT_FILE": "/x.pem"},
            "PSEUDO_KAFKA_SSL_KEY_FILE",
        ),
        ({"PSEUDO_KAFKA_SSL_CA_FILE": "/ca.pem"}, "PSEUDO_KAFKA_SSL_"),  # TLS files on a plaintext connection
        ({"PSEUDO_KAFKA_SECURITY_PROTOCOL": "TLS"}, "PSEUDO_KAFKA_SECURITY_PROTOCOL"),  # not a protocol name
        (
            {"PSEUDO_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "PSEUDO_KAFKA_SASL_MECHANISM": "OAUTHBEARER"},
            "PSEUDO_KAFKA_SASL_OAUTH_TOKEN_PROVIDER",
        ),
    ],
)
def test_a_misconfiguration_names_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        _settings(env)


def _call(text: str, opened: int) -> str:
    """The arguments of a call whose "(" ends just before ``opened``, up to its matching ")"."""
    depth = 1
    for index in range(opened, len(text)):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        if depth == 0:
            return text[opened:index]
    return text[opened:]


def test_every_client_of_the_pipeline_is_built_from_the_connection_model() -> None:
    """No module of pipeline/ constructs an aiokafka client without the model's options (one place to add them)."""
    root = Path(__file__).resolve().parents[2] / "pipeline"
    offenders: list[Any] = []
    for path in sorted(root.glob("*.py")):
        if path.name == "kafka_clients.py":
            continue
        text = path.read_text()
        for client in ("AIOKafkaConsumer(", "AIOKafkaProducer(", "AIOKafkaAdminClient(", "faust.App("):
            start = 0
            while (found := text.find(client, start)) >= 0:
                call = _call(text, found + len(client))
                if "_options(" not in call and "client_options(" not in call and "faust_options(" not in call:
                    offenders.append((path.name, client))
                start = found + 1
    assert offenders == []


def test_every_group_of_a_worker_joins_with_the_session_timeout_and_its_own_static_instance_id() -> None:
    dynamic = kafka_clients.group_member(Settings.from_env({}), "app-ingest")
    assert dynamic == {"group_id": "app-ingest", "session_timeout_ms": 10_000, "heartbeat_interval_ms": 3_333}
    static = Settings.from_env({"PSEUDO_GROUP_INSTANCE_ID": "worker-3", "PSEUDO_SESSION_TIMEOUT_S": "30"})
    ingest, release = (kafka_clients.group_member(static, group) for group in ("app-ingest", "app-release"))
    assert ingest["session_timeout_ms"] == 30_000
    assert ingest["group_instance_id"] == "worker-3.app-ingest"
    assert release["group_instance_id"] == "worker-3.app-release"  # one member per group, never shared


def test_the_faust_app_joins_its_group_like_the_others(tmp_path: Path) -> None:
    from pipeline.app import create_app
    from pipeline.keystore import write_keyring
    from pipeline.runtime import build_runtime
    from transforms.keyring import generate_keyring

    write_keyring(generate_keyring(), tmp_path / "keys.json")
    env = {"PSEUDO_GROUP_INSTANCE_ID": "worker-3", "PSEUDO_SESSION_TIMEOUT_S": "12", "PSEUDO_APP_ID": "app"}
    settings = Settings.from_env(
        {**env, "PSEUDO_KEYS_FILE": str(tmp_path / "keys.json"), "PSEUDO_DATA_DIR": str(tmp_path)}
    )
    conf = create_app(build_runtime(settings)).conf
    assert conf.broker_session_timeout == 12
    assert conf.broker_heartbeat_interval == 4
    assert conf.consumer_group_instance_id == "worker-3.app"
