"""Creates missing topics with their partition counts, replication factor and per-purpose retention.

The broker runs with ``auto.create.topics.enable=false`` (as production brokers should): a typo in a
topic name must fail loudly, not create a stray topic that silently collects personal data. The flip side:
a shipper that publishes before the input topic exists gets ``Unknown topic or partition`` and drops its
lines. So the worker creates the topics at start, and ``pseudonymizer topics create`` does the same for an
operator before any shipper or worker runs. Both may run at once, or repeatedly: existing topics are left
as they are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    for_code,
)

from config.settings import KafkaConnection, TopicSpec
from pipeline.kafka_clients import client_options
from transforms.errors import ConfigError

log = logging.getLogger("pseudonymizer.topics")

PLAINTEXT = KafkaConnection()


def _options(connection: KafkaConnection) -> dict[str, Any]:
    # Not kafka_clients.admin(): the tests replace this module's client classes with fakes.
    return client_options(connection)


# How long a created topic may take to show in the broker's metadata before creation counts as failed.
VISIBLE_WITHIN_S = 30.0


async def ensure_topics(
    bootstrap: str,
    specs: list[TopicSpec],
    *,
    client_id: str = "pseudonymizer-admin",
    connection: KafkaConnection = PLAINTEXT,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names this call created.

    Returns once every topic is in the broker's metadata, so that a producer started afterwards finds it.
    Raises :class:`ConfigError` naming the topic and Kafka's error when the broker refuses one (no permission,
    a replication factor the cluster cannot meet, a topic policy); one that another process created meanwhile
    is not an error.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id, **_options(connection))
    try:
        await admin.start()
    except KafkaConnectionError:
        raise ConfigError(
            f"cannot reach a Kafka broker at {bootstrap} (PSEUDO_BROKER or --broker), or it refused the connection "
            "settings (PSEUDO_KAFKA_*: the broker's answer is logged above)"
        ) from None
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return []
        replication = await _replication_factors(admin, bootstrap, missing)
        new = [
            NewTopic(
                name=s.name,
                num_partitions=s.partitions,
                replication_factor=replication[s.name],
                topic_configs=topic_configs(s),
            )
            for s in missing
        ]
        # aiokafka returns the broker's answer per topic instead of raising: read it, or a refused topic
        # would be reported as created and the worker would fail later on an unknown topic.
        response = await admin.create_topics(new)
        created = _created_or_raise(response.topic_errors, {s.name for s in missing})
        await _wait_until_listed(admin, [s.name for s in missing])
        for s in missing:
            if s.name in created:
                log.info(
                    "topic %s created: %d partitions, replication factor %d, retention %d ms",
                    s.name,
                    s.partitions,
                    replication[s.name],
                    s.retention_ms,
                )
        return [s.name for s in missing if s.name in created]
    finally:
        await admin.close()


def topic_configs(spec: TopicSpec) -> dict[str, str]:
    """The topic configs a created topic gets: retention, cleanup policy, and min.insync.replicas when set."""
    configs = {"retention.ms": str(spec.retention_ms), "cleanup.policy": "compact" if spec.compacted else "delete"}
    if spec.min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(spec.min_insync_replicas)
    return configs


def replication_problem(spec: TopicSpec, factor: int, brokers: int, *, default: bool) -> str | None:
    """Why ``spec`` cannot be created with ``factor`` copies on a cluster of ``brokers`` live brokers, or None.

    ``default``: the factor is the cluster's default.replication.factor, not PSEUDO_REPLICATION_FACTOR. Kafka
    would refuse the first case itself (INVALID_REPLICATION_FACTOR), without saying which setting to change; it
    accepts the second, and every acks=all write to the topic would then fail with NOT_ENOUGH_REPLICAS.
    """
    source = "the cluster's default.replication.factor" if default else "PSEUDO_REPLICATION_FACTOR"
    if factor > brokers:
        return (
            f"{source} is {factor}, more than the {brokers} broker(s) that are up: set PSEUDO_REPLICATION_FACTOR "
            f"to at most {brokers}, or start the missing brokers"
        )
    if spec.min_insync_replicas is not None and spec.min_insync_replicas > factor:
        return (
            f"PSEUDO_MIN_INSYNC_REPLICAS is {spec.min_insync_replicas}, more than the replication factor {factor} "
            f"({source}): no write with acks=all could succeed"
        )
    return None


async def _replication_factors(admin: AIOKafkaAdminClient, bootstrap: str, specs: list[TopicSpec]) -> dict[str, int]:
    """Each topic's replication factor: its spec's (PSEUDO_REPLICATION_FACTOR), else the cluster's default."""
    cluster = await admin.describe_cluster()
    brokers = sorted(int(b["node_id"]) for b in cluster["brokers"])
    default = None
    if any(s.replication_factor is None for s in specs):
        default = await _default_replication_factor(admin, brokers[0])
    factors = {}
    problems = []
    for spec in specs:
        factor = spec.replication_factor if spec.replication_factor is not None else default
        assert factor is not None  # read above whenever a spec has none
        problem = replication_problem(spec, factor, len(brokers), default=spec.replication_factor is None)
        if problem is not None and problem not in problems:
            problems.append(problem)
        factors[spec.name] = factor
    if problems:
        raise ConfigError(f"cannot create topics on {bootstrap}: {'; '.join(problems)}")
    return factors


async def _default_replication_factor(admin: AIOKafkaAdminClient, node_id: int) -> int:
    """The cluster's ``default.replication.factor``, as a topic created by the broker itself would get.

    CreateTopics can ask for "the broker's default" (-1) only from protocol version 4, which aiokafka lacks
    (its ``NewTopic`` refuses -1), so the value is read from a broker's configuration instead.
    """
    broker = str(node_id)
    wanted = ConfigResource(ConfigResourceType.BROKER, broker, {"default.replication.factor": None})
    for response in await admin.describe_configs([wanted]):
        for code, message, _type, _name, entries in response.resources:
            if code:
                raise ConfigError(
                    f"cannot read the broker's default.replication.factor to create topics "
                    f"({for_code(code).__name__}: {message}); create them with the broker's own tools instead"
                )
            for name, value, *_ in entries:
                if name == "default.replication.factor":
                    return int(value)
    raise ConfigError("the broker did not report its default.replication.factor; create the topics by hand")


def _created_or_raise(topic_errors: list[tuple[Any, ...]], asked: set[str]) -> set[str]:
    """The names the broker created, from CreateTopics' ``(topic, error_code[, error_message])`` rows."""
    created = set()
    refused = []
    for topic, code, *message in topic_errors:
        name = str(topic)
        if code == 0:
            created.add(name)
        elif code != TopicAlreadyExistsError.errno:  # another worker process won the race: fine
            detail = f": {message[0]}" if message and message[0] else ""
            refused.append(f"{name} ({for_code(code).__name__}{detail})")
    if refused:
        raise ConfigError(f"the broker refused to create topic(s): {'; '.join(refused)}")
    unanswered = asked - created - {str(row[0]) for row in topic_errors}
    if unanswered:
        raise ConfigError(f"the broker did not answer for topic(s): {', '.join(sorted(unanswered))}")
    return created


async def _wait_until_listed(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    deadline = time.monotonic() + VISIBLE_WITHIN_S
    while True:
        absent = set(names) - set(await admin.list_topics())
        if not absent:
            return
        if time.monotonic() > deadline:
            listed = ", ".join(sorted(absent))
            raise ConfigError(f"topic(s) created but not listed by the broker after {VISIBLE_WITHIN_S:.0f} s: {listed}")
        await asyncio.sleep(0.2)


async def read_time_range(
    bootstrap: str,
    topics: tuple[str, ...],
    start: datetime,
    end: datetime,
    *,
    connection: KafkaConnection = PLAINTEXT,
) -> tuple[list[dict[str, Any]], ...]:
    """The records of each topic whose own time (``time``, or an aggregate's window start) is in [start, end).

    Reads from the first message produced at or after ``start`` (a record is produced after the time it
    describes) to each partition's end as of the call; a record that is not a JSON object is skipped.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **_options(connection))
    try:
        await consumer.start()
    except KafkaConnectionError:
        raise ConfigError(f"cannot reach a Kafka broker at {bootstrap} (PSEUDO_BROKER or --broker)") from None
    low, high = start.timestamp(), end.timestamp()
    found: dict[str, list[dict[str, Any]]] = {topic: [] for topic in topics}
    try:
        counts = await _partition_counts(bootstrap, topics, connection)
        partitions = [TopicPartition(topic, p) for topic, count in counts.items() for p in range(count)]
        if not partitions:
            return tuple(found[t] for t in topics)
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.offsets_for_times({tp: int(low * 1000) for tp in partitions})
        for tp in partitions:
            at = starts.get(tp)
            consumer.seek(tp, at.offset if at is not None else ends[tp])
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            try:
                batches = await consumer.getmany(timeout_ms=1000)
            except (TopicAuthorizationFailedError, GroupAuthorizationFailedError) as exc:
                raise ConfigError(f"not authorized to read {_named(exc, topics)}: {_GRANT_READ}") from None
            for tp, messages in batches.items():
                for message in messages:
                    if message.offset >= ends[tp]:
                        continue
                    try:
                        record = orjson.loads(message.value or b"")
                    except orjson.JSONDecodeError:
                        continue
                    when = _record_time(record)
                    if when is not None and low <= when < high:
                        found[tp.topic].append(record)
    finally:
        await consumer.stop()
    return tuple(found[t] for t in topics)


async def _partition_counts(bootstrap: str, topics: tuple[str, ...], connection: KafkaConnection) -> dict[str, int]:
    """Partitions per existing topic, from the broker (a consumer's metadata lists only what it subscribed to)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **_options(connection))
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    refused = [str(t["topic"]) for t in described if t["error_code"] == TopicAuthorizationFailedError.errno]
    if refused:
        # Without this, a topic the principal may not describe would read as absent: an empty, wrong report.
        raise ConfigError(f"not authorized to describe topic(s) {', '.join(refused)}: {_GRANT_READ}")
    return {str(t["topic"]): len(t["partitions"]) for t in described if not t["error_code"] and t["partitions"]}


_GRANT_READ = "the principal of PSEUDO_KAFKA_* needs READ and DESCRIBE on them (see `pseudonymizer acls`)"


def _named(exc: Exception, topics: tuple[str, ...]) -> str:
    # aiokafka's authorization errors carry the refused topics as their argument when it knows them.
    named = [t for t in topics if t in str(exc.args)]
    return ", ".join(named or topics)


def _record_time(record: Any) -> float | None:
    if not isinstance(record, dict):
        return None
    text = record.get("time")
    if not isinstance(text, str):
        window = record.get("window")
        text = window.get("start") if isinstance(window, dict) else None
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
