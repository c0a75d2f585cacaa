"""The one place Kafka clients are built: every consumer, producer, admin client and the faust app get their
connection (TLS, SASL) from :class:`~config.settings.KafkaConnection`, so a new client never copies security options.

Secrets are read from their files here, when a client is built, and handed to the client library only: they never
pass through a log line, an exception message or a ``repr`` of the settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from config.settings import KafkaConnection, Settings
from transforms.errors import ConfigError

log = logging.getLogger("pseudonymizer.kafka")


def _secret(path: Any) -> str:
    # A mounted secret usually ends with a newline that is not part of it.
    return str(path.read_text(encoding="utf-8")).rstrip("\r\n")


def ssl_context(connection: KafkaConnection) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL connections (None otherwise): the CA, and a client certificate if any."""
    if connection.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    password = _secret(connection.ssl_key_password_file) if connection.ssl_key_password_file else None
    try:
        context = create_ssl_context(
            cafile=connection.ssl_ca_file,
            certfile=connection.ssl_cert_file,
            keyfile=connection.ssl_key_file,
            password=password,
        )
    except (ssl.SSLError, OSError) as exc:
        # The library's reason (a wrong key password, a file that is no PEM), never the password itself.
        raise ConfigError(f"PSEUDO_KAFKA_SSL_*: cannot build the TLS context ({type(exc).__name__}: {exc})") from None
    context.check_hostname = connection.ssl_check_hostname
    return context


def _token_provider(reference: str) -> Any:
    module_name, _, attribute = reference.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        raise ConfigError(f"PSEUDO_KAFKA_SASL_OAUTH_TOKEN_PROVIDER: cannot import {reference}") from None
    return factory()


def client_options(connection: KafkaConnection) -> dict[str, Any]:
    """aiokafka's keyword arguments for this connection (consumers, producers and admin clients alike)."""
    if connection.security_protocol == "PLAINTEXT":
        return {}  # aiokafka's default: nothing to pass
    options: dict[str, Any] = {"security_protocol": connection.security_protocol}
    context = ssl_context(connection)
    if context is not None:
        options["ssl_context"] = context
    mechanism = connection.sasl_mechanism
    if mechanism is not None:
        options["sasl_mechanism"] = mechanism
        if mechanism == "OAUTHBEARER":
            assert connection.sasl_oauth_token_provider is not None  # the settings require it
            options["sasl_oauth_token_provider"] = _token_provider(connection.sasl_oauth_token_provider)
        else:
            options["sasl_plain_username"] = connection.sasl_username
            options["sasl_plain_password"] = (
                _secret(connection.sasl_password_file)
                if connection.sasl_password_file
                else connection.sasl_password.get_secret_value()
                if connection.sasl_password
                else None
            )
    return options


def exactly_once(settings: Settings) -> bool:
    """Whether the worker runs with ``PSEUDO_PROCESSING_GUARANTEE=exactly_once`` (pipeline/transactions.py)."""
    return settings.processing_guarantee == "exactly_once"


def read_options(settings: Settings) -> dict[str, Any]:
    """How a consumer reads: with exactly_once, only committed transactions (an aborted poll's outputs never show)."""
    return {"isolation_level": "read_committed"} if exactly_once(settings) else {}


def consumer(settings: Settings, *topics: str, **options: Any) -> AIOKafkaConsumer:
    options = {**read_options(settings), **options}
    return AIOKafkaConsumer(*topics, bootstrap_servers=settings.bootstrap, **client_options(settings.kafka), **options)


def group_member(settings: Settings, group_id: str) -> dict[str, Any]:
    """How a worker's consumer joins ``group_id``: session timeout, heartbeats, static membership (PSEUDO_*)."""
    session_ms = int(settings.session_timeout_s * 1000)
    options: dict[str, Any] = {
        "group_id": group_id,
        "session_timeout_ms": session_ms,
        "heartbeat_interval_ms": session_ms // 3,  # Kafka's advice: a third of the session
    }
    if settings.group_instance_id is not None:
        # One instance id per group: the three groups of one worker are three members.
        options["group_instance_id"] = f"{settings.group_instance_id}.{group_id}"
    return options


def producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=settings.bootstrap, **client_options(settings.kafka), **options)


def batch_producer(settings: Settings, client_id: str, *, transactional_id: str | None = None) -> AIOKafkaProducer:
    """The producer that takes a poll's outputs as whole record batches (``PollOutputs``): ingest, detector, release.

    ``transactional_id`` (exactly_once; pipeline/transactions.py names it): a transactional producer. Its
    transactions last one poll, so they time out after the session timeout: a worker killed mid-transaction and
    replaced by another one (another id, which cannot fence it) holds read_committed readers back that long at most.
    """
    transactional: dict[str, Any] = {}
    if transactional_id is not None:
        transactional = {
            "transactional_id": transactional_id,
            "transaction_timeout_ms": int(settings.session_timeout_s * 1000),
        }
    return producer(
        settings,
        client_id=client_id,
        **transactional,
        acks="all",
        # A send retried after a leader change (a broker of the cluster lost) must not write its batch twice.
        enable_idempotence=True,
        compression_type=settings.compression_type,
        # Outputs arrive as whole record batches (send_batch): lingering would only hold them back.
        linger_ms=0,
        max_batch_size=settings.producer_batch_bytes,
    )


def faust_guarantee(settings: Settings) -> dict[str, Any]:
    """``faust.App`` keyword arguments for the guarantee: with exactly_once, faust's own processing guarantee, which is
    what makes its consumer read_committed (faust has no separate isolation setting) and commits the detector's input
    offsets in faust's per-partition transactions. Nothing for at_least_once (faust's default)."""
    return {"processing_guarantee": "exactly_once"} if exactly_once(settings) else {}


def admin(settings: Settings, **options: Any) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, **client_options(settings.kafka), **options)


def faust_options(connection: KafkaConnection) -> dict[str, Any]:
    """``faust.App`` keyword arguments for this connection: ``broker_credentials`` (none for PLAINTEXT)."""
    import faust

    protocol, mechanism = connection.security_protocol, connection.sasl_mechanism
    if protocol == "PLAINTEXT":
        return {}
    context = ssl_context(connection)
    if mechanism is None:
        return {"broker_credentials": faust.SSLCredentials(context)}
    if mechanism == "OAUTHBEARER":
        assert connection.sasl_oauth_token_provider is not None
        provider = _token_provider(connection.sasl_oauth_token_provider)
        return {"broker_credentials": faust.OAuthCredentials(oauth_cb=provider, ssl_context=context)}
    password = client_options(connection)["sasl_plain_password"]
    credentials = faust.SASLCredentials(
        username=connection.sasl_username, password=password, ssl_context=context, mechanism=mechanism
    )
    return {"broker_credentials": credentials}


async def replace_producer(old: AIOKafkaProducer | None, make: Callable[[], AIOKafkaProducer]) -> AIOKafkaProducer:
    """A started producer in place of one whose sends failed (the old one is stopped, whatever it says).

    An idempotent producer whose batches failed during a broker outage can be left with sequence numbers the broker
    refuses (OutOfOrderSequenceNumber) on every retry: a new producer gets a new producer id. Raises if the new one
    cannot start (the broker still away); the caller retries.
    """
    if old is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(old.stop(), timeout=5)
    producer = make()
    try:
        await producer.start()
    except BaseException:
        with contextlib.suppress(Exception):
            await producer.stop()
        raise
    return producer


async def seek_to_committed(consumer: AIOKafkaConsumer) -> list[Any]:
    """Every assigned partition back to its committed offset (to its beginning without one, as
    auto_offset_reset="earliest" would); the partitions."""
    assigned = list(consumer.assignment())
    for tp in assigned:
        committed = await consumer.committed(tp)
        if committed is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, committed)
    return assigned


async def until_done(step: Callable[[], Awaitable[None]], *, stopping: Callable[[], bool], what: str) -> None:
    """Run ``step`` until it succeeds or the service stops, backing off from 0.5 to 10 s while the broker is away."""
    delay = 0.5
    while not stopping():
        try:
            await step()
            return
        except Exception as exc:
            log.warning("%s: not yet (%s); retrying", what, type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
