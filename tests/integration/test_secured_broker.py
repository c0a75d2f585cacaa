"""The product on a secured broker (issue 10): TLS, SASL, mutual TLS, and an authorizer that denies by default.

One secured broker per session (``secured_broker``), started by the project's script with ``KAFKA_SECURE=1``: a
SASL_SSL listener (SCRAM-SHA-512, PLAIN, OAUTHBEARER), a listener that requires client certificates,
``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false``. Every client is built from the PSEUDO_KAFKA_*
model (pipeline/kafka_clients.py). Topics are created and ACLs granted by ``pseudonymizer topics create`` and
``pseudonymizer acls --apply`` as the ``admin`` super user; everything else runs as the principal it would in a
deployment. The end-to-end test (tests/integration/test_worker_end_to_end.py) runs over SASL_SSL with ACLs as well.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pipeline import local_broker
from pipeline.keystore import write_keyring
from pipeline.local_broker import Mechanism
from pipeline.traffic import generate
from tests.conftest import SecuredBroker
from tests.integration.helpers import ROOT, drain_sync, produce, running_worker, wait_for_input_count, worker_env
from transforms.keyring import generate_keyring

pytestmark = pytest.mark.integration

MECHANISMS: list[Mechanism] = ["SCRAM-SHA-512", "PLAIN", "mTLS", "OAUTHBEARER"]
AUDIENCES = ("worker", "shipper", "analyst", "security", "operator", "auditor")


def _cli(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *arguments], env=env, cwd=ROOT, capture_output=True, text=True
    )


def _topic_env(connection: dict[str, str], base: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSEUDO_")}
    names = {"INPUT": "input", "ANALYTICS": "analytics", "ABUSE": "abuse", "QUARANTINE": "quarantine"}
    env.update({f"PSEUDO_{key}_TOPIC": f"{base}.{name}" for key, name in names.items()})
    env.update(PSEUDO_AGGREGATES_TOPIC=f"{base}.aggregates", PSEUDO_AUDIT_TOPIC=f"{base}.audit")
    env.update(PSEUDO_APP_ID=f"app-{base}", **connection)
    return env


def _grant(secured: SecuredBroker, env: dict[str, str]) -> str:
    """As admin: create the topics of ``env``'s settings and grant every audience its ACLs; returns the ACL table."""
    admin_env = {**env, **secured.env("admin")}
    created = _cli(admin_env, "topics", "create")
    assert created.returncode == 0, created.stderr[-3000:]
    granted = _cli(admin_env, "acls", *(f"--principal-{name}={name}" for name in AUDIENCES), "--apply")
    assert granted.returncode == 0, granted.stderr[-3000:]
    return granted.stdout


async def _round_trip(options: dict[str, Any], topic: str) -> list[bytes]:
    producer = AIOKafkaProducer(**options)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"over an encrypted, authenticated connection")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", enable_auto_commit=False, **options)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000)
    finally:
        await consumer.stop()
    return [message.value for messages in batches.values() for message in messages]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_the_cli_and_every_client_connect_with_each_mechanism(secured_broker: SecuredBroker, mechanism: str) -> None:
    base = f"sec{mechanism[:4].lower()}{uuid.uuid4().hex[:6]}"
    env = _topic_env(secured_broker.env("admin", mechanism), base)  # type: ignore[arg-type]
    created = _cli(env, "topics", "create")
    assert created.returncode == 0, created.stderr[-3000:]
    assert created.stdout.count(": created") == 9  # the worker's eight and the audit topic
    options = secured_broker.options("admin", mechanism)  # type: ignore[arg-type]
    assert asyncio.run(_round_trip(options, f"{base}.input")) == [b"over an encrypted, authenticated connection"]


def _fails_fast_naming_the_settings(env: dict[str, str], secret: str | None = None) -> str:
    started = time.monotonic()
    refused = _cli(env, "topics", "create")
    assert refused.returncode != 0
    assert time.monotonic() - started < 30  # no retry loop
    assert "PSEUDO_KAFKA_" in refused.stderr or "PSEUDO_BROKER" in refused.stderr
    if secret is not None:
        assert secret not in refused.stderr + refused.stdout
    return refused.stderr


def test_a_wrong_password_stops_the_cli_at_once_naming_the_settings(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    wrong = tmp_path / "password"
    wrong.write_text("not-the-password")
    env = _topic_env({**secured_broker.env("worker"), "PSEUDO_KAFKA_SASL_PASSWORD_FILE": str(wrong)}, "secwrong")
    _fails_fast_naming_the_settings(env, "not-the-password")


def test_an_untrusted_broker_certificate_stops_the_cli_at_once(secured_broker: SecuredBroker, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "some other CA")])
    now = datetime.now(UTC)
    other_ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "ca.pem").write_bytes(other_ca.public_bytes(serialization.Encoding.PEM))
    env = _topic_env({**secured_broker.env("worker"), "PSEUDO_KAFKA_SSL_CA_FILE": str(tmp_path / "ca.pem")}, "secca")
    _fails_fast_naming_the_settings(env)


def test_a_plaintext_client_on_a_tls_port_stops_at_once(secured_broker: SecuredBroker) -> None:
    tls_port = secured_broker.env("worker")["PSEUDO_BROKER"]
    _fails_fast_naming_the_settings(_topic_env({"PSEUDO_BROKER": tls_port}, "secplain"))


@pytest.mark.parametrize("mechanism", ["PLAIN", "mTLS", "OAUTHBEARER"])  # SCRAM-SHA-512: the end-to-end test
def test_the_worker_runs_with_least_privilege_over_each_mechanism(
    secured_broker: SecuredBroker, tmp_path: Path, mechanism: Mechanism
) -> None:
    """Worker, shipper and each reader connect with ``mechanism`` as themselves, with only the ACLs granted them."""
    keys = tmp_path / "keyring.json"
    write_keyring(generate_keyring(), keys)
    base = f"secw{uuid.uuid4().hex[:6]}"
    topics = {n: f"{base}.{n}" for n in ("input", "analytics", "abuse", "quarantine", "aggregates")}
    env = worker_env(
        secured_broker.plaintext, topics, keys, tmp_path / "data", **secured_broker.env("worker", mechanism)
    )
    _grant(secured_broker, env)
    records = [*generate(300, seed=3, start=datetime(2025, 6, 1, 10, tzinfo=UTC)), b"not a log line"]
    log = tmp_path / "worker.log"
    with running_worker(env, log):
        shipper = secured_broker.options("shipper", mechanism)
        sent = asyncio.run(produce(secured_broker.plaintext, topics["input"], records, partition=0, connection=shipper))
        counts = wait_for_input_count(env, sent)
    assert counts["input"] == sent
    assert counts["analytics_records"] + counts["analytics_suppressed"] == counts["analytics_held"] > 0
    for audience, output in (("analyst", "analytics"), ("security", "abuse"), ("operator", "quarantine")):
        reader = secured_broker.options(audience, mechanism)
        assert (
            len(drain_sync(secured_broker.plaintext, topics[output], reader))
            == counts["analytics_records" if output == "analytics" else output]
            > 0
        ), output
    worker_log = log.read_bytes()
    assert b"Crashed" not in worker_log
    assert (local_broker.tls_dir(secured_broker.port) / "worker.password").read_bytes().strip() not in worker_log


# --- who may do what ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Granted:
    env: dict[str, str]
    topics: dict[str, str]  # role -> topic name, every one holding records
    acl_table: str


@pytest.fixture(scope="module")
def granted(secured_broker: SecuredBroker) -> Granted:
    """Topics and ACLs as ``pseudonymizer acls --apply`` grants them, and a record in every topic (written by admin)."""
    base = f"secacl{uuid.uuid4().hex[:6]}"
    env = _topic_env({}, base)
    table = _grant(secured_broker, env)
    app = env["PSEUDO_APP_ID"]
    topics = {
        "raw": env["PSEUDO_INPUT_TOPIC"],
        "analytics": env["PSEUDO_ANALYTICS_TOPIC"],
        "aggregates": env["PSEUDO_AGGREGATES_TOPIC"],
        "abuse": env["PSEUDO_ABUSE_TOPIC"],
        "quarantine": env["PSEUDO_QUARANTINE_TOPIC"],
        "observations": f"{app}-observations",
        "release": f"{app}-release",
        "changelog": f"{app}-detector-state-changelog",  # faust creates it on the worker's first start
        "audit": f"{base}.audit",
    }

    async def fill() -> None:
        admin_options = secured_broker.options("admin")
        admin = AIOKafkaAdminClient(**admin_options)
        await admin.start()
        try:
            compacted = {"cleanup.policy": "compact"}
            await admin.create_topics([NewTopic(topics["changelog"], 1, 1, topic_configs=compacted)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(**admin_options)
        await producer.start()
        try:
            for topic in topics.values():
                await producer.send_and_wait(topic, b"a record", key=b"k", partition=0)
        finally:
            await producer.stop()

    asyncio.run(fill())
    return Granted(env, topics, table)


# What each principal may do (read, write) to each topic; every other combination must be refused.
ALLOWED = {
    ("shipper", "write", "raw"),
    ("worker", "read", "raw"),
    *(("worker", "write", t) for t in ("analytics", "aggregates", "abuse", "quarantine")),
    *(("worker", op, t) for op in ("read", "write") for t in ("observations", "release", "changelog")),
    ("analyst", "read", "analytics"),
    ("analyst", "read", "aggregates"),
    ("security", "read", "abuse"),
    ("operator", "read", "quarantine"),
    ("security", "write", "audit"),
    ("operator", "write", "audit"),
    ("auditor", "read", "audit"),
}
ROLES = ("raw", "analytics", "aggregates", "abuse", "quarantine", "observations", "release", "changelog", "audit")


async def _can_read(options: dict[str, Any], topic: str, group: str | None = None) -> bool:
    """Whether the principal gets the topic's records (each topic of ``granted`` holds at least one)."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", group_id=group, **options)
    await consumer.start()
    try:
        if group is None:
            partition = TopicPartition(topic, 0)
            consumer.assign([partition])
            await asyncio.wait_for(consumer.seek_to_beginning(partition), 10)
        else:
            consumer.subscribe([topic])
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            if any((await consumer.getmany(timeout_ms=1000)).values()):
                return True
        return False  # a topic the principal may not describe looks empty to it: aiokafka only logs the refusal
    except (KafkaError, TimeoutError):
        return False
    finally:
        await consumer.stop()


async def _can_write(options: dict[str, Any], topic: str) -> bool:
    producer = AIOKafkaProducer(request_timeout_ms=8000, **options)
    await producer.start()
    try:
        # With a key: compacted topics (the changelog) refuse records without one.
        await asyncio.wait_for(producer.send_and_wait(topic, b"probe", key=b"probe", partition=0), 10)
        return True
    except (KafkaError, TimeoutError):
        return False
    finally:
        await producer.stop()


def test_each_principal_can_do_exactly_what_its_acls_grant(secured_broker: SecuredBroker, granted: Granted) -> None:
    """Every (principal, read/write, topic) of six principals over nine topics: allowed ones work, the rest fail."""

    async def matrix() -> dict[tuple[str, str, str], bool]:
        limit = asyncio.Semaphore(12)  # TLS handshakes on two cores

        async def check(who: str, op: str, role: str) -> tuple[tuple[str, str, str], bool]:
            options = secured_broker.options(who)
            async with limit:
                probe = _can_read if op == "read" else _can_write
                return (who, op, role), await probe(options, granted.topics[role])

        cases = itertools.product(AUDIENCES, ("read", "write"), ROLES)
        return dict(await asyncio.gather(*(check(*case) for case in cases)))

    outcome = asyncio.run(matrix())
    assert len(outcome) == len(AUDIENCES) * 2 * len(ROLES)
    wrong = {case: allowed for case, allowed in outcome.items() if allowed != (case in ALLOWED)}
    assert not wrong, f"(principal, op, topic) -> could, against the ACL table:\n{granted.acl_table}\n{wrong}"


def test_readers_use_only_their_own_consumer_groups(secured_broker: SecuredBroker, granted: Granted) -> None:
    analyst = secured_broker.options("analyst")
    app = granted.env["PSEUDO_APP_ID"]
    assert asyncio.run(_can_read(analyst, granted.topics["analytics"], group=f"analyst-{uuid.uuid4().hex[:6]}"))
    assert not asyncio.run(_can_read(analyst, granted.topics["analytics"], group=f"{app}-ingest"))
    assert not asyncio.run(_can_read(analyst, granted.topics["analytics"], group="security-dashboard"))


def test_the_worker_creates_only_its_internal_topics_unless_allowed_more(
    secured_broker: SecuredBroker, granted: Granted
) -> None:
    async def create(who: str, name: str) -> int:
        admin = AIOKafkaAdminClient(**secured_broker.options(who))
        await admin.start()
        try:
            response = await admin.create_topics([NewTopic(name, 1, 1)])
        finally:
            await admin.close()
        return int(response.topic_errors[0][1])

    app = granted.env["PSEUDO_APP_ID"]
    assert asyncio.run(create("worker", f"{app}-scratch{uuid.uuid4().hex[:4]}")) == 0
    assert asyncio.run(create("worker", f"other{uuid.uuid4().hex[:6]}")) == 29  # TOPIC_AUTHORIZATION_FAILED
    assert asyncio.run(create("worker", granted.topics["analytics"])) == 29  # not even "exists": no CREATE at all
    assert asyncio.run(create("shipper", f"other{uuid.uuid4().hex[:6]}")) == 29


def test_an_unauthenticated_client_gets_nothing(secured_broker: SecuredBroker, granted: Granted) -> None:
    """The plaintext listener exists for the readiness probe: its ANONYMOUS principal can neither read nor write."""
    anonymous = {"bootstrap_servers": secured_broker.plaintext}
    assert not asyncio.run(_can_read(anonymous, granted.topics["raw"]))
    assert not asyncio.run(_can_write(anonymous, granted.topics["raw"]))


def test_a_tool_refused_a_topic_says_so_instead_of_reporting_nothing(
    secured_broker: SecuredBroker, granted: Granted
) -> None:
    """The privacy report reads analytics and abuse: as the analyst (no abuse) it stops, naming the grant it lacks."""
    env = {**granted.env, **secured_broker.env("analyst")}
    span = ["--from", "2000-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z"]
    refused = _cli(env, "privacy-report", "--json", *span)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "not authorized" in refused.stderr
    assert granted.topics["abuse"] in refused.stderr
    assert "Traceback" not in refused.stderr
