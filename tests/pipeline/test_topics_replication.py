"""Replication of created topics: PSEUDO_REPLICATION_FACTOR and PSEUDO_MIN_INSYNC_REPLICAS, checked against the
brokers that are up, and the producers' delivery options for a cluster.

The 3-broker cluster itself is exercised by tests/integration/test_cluster.py.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from config.settings import Settings, TopicSpec
from pipeline import kafka_clients, topics
from pipeline.cli import main
from tests.pipeline.test_topics import FakeAdmin
from transforms.errors import ConfigError


class SizedCluster(FakeAdmin):
    """The stand-in admin of test_topics.py with a chosen number of live brokers."""

    brokers: ClassVar[int] = 3
    configs_read: ClassVar[int] = 0

    async def describe_cluster(self) -> dict[str, Any]:
        return {"controller_id": 1, "brokers": [{"node_id": node} for node in range(self.brokers, 0, -1)]}

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        type(self).configs_read += 1
        return await super().describe_configs(resources)


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> type[SizedCluster]:
    monkeypatch.setattr(FakeAdmin, "existing", {})
    monkeypatch.setattr(FakeAdmin, "refuse", {})
    monkeypatch.setattr(FakeAdmin, "requests", [])
    monkeypatch.setattr(SizedCluster, "configs_read", 0)
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", SizedCluster)
    return SizedCluster


def _specs(**env: str) -> list[TopicSpec]:
    return Settings.from_env({f"PSEUDO_{name.upper()}": value for name, value in env.items()}).topic_specs()


def _create(specs: list[TopicSpec]) -> list[str]:
    return asyncio.run(topics.ensure_topics("kafka-1.internal:9092", specs))


# --- settings ----------------------------------------------------------------------------------------------------


def test_every_topic_of_the_worker_carries_the_replication_settings() -> None:
    specs = _specs(replication_factor="3", min_insync_replicas="2")
    assert {(s.replication_factor, s.min_insync_replicas) for s in specs} == {(3, 2)}


def test_unset_replication_settings_leave_the_choice_to_the_cluster() -> None:
    assert {(s.replication_factor, s.min_insync_replicas) for s in _specs()} == {(None, None)}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"replication_factor": "0"}, "PSEUDO_REPLICATION_FACTOR"),  # no copy at all
        ({"replication_factor": "three"}, "PSEUDO_REPLICATION_FACTOR"),  # not a number
        ({"min_insync_replicas": "0"}, "PSEUDO_MIN_INSYNC_REPLICAS"),
        # more in-sync copies demanded than exist: every acks=all write would fail
        ({"replication_factor": "2", "min_insync_replicas": "3"}, "PSEUDO_MIN_INSYNC_REPLICAS: 3 is more than"),
    ],
)
def test_invalid_replication_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        _specs(**env)


# --- topic creation ----------------------------------------------------------------------------------------------


def test_topics_are_created_with_the_set_factor_and_min_insync_replicas(cluster: type[SizedCluster]) -> None:
    _create(_specs(replication_factor="3", min_insync_replicas="2"))
    created = cluster.existing.values()
    assert {topic.replication_factor for topic in created} == {3}
    assert {topic.topic_configs["min.insync.replicas"] for topic in created} == {"2"}
    assert cluster.configs_read == 0  # the setting is used as it is: the broker's default is not asked


def test_without_min_insync_replicas_the_topic_takes_the_brokers(cluster: type[SizedCluster]) -> None:
    _create(_specs(replication_factor="2"))
    assert not any("min.insync.replicas" in topic.topic_configs for topic in cluster.existing.values())


def test_a_factor_above_the_live_brokers_fails_naming_the_setting_and_creates_nothing(
    cluster: type[SizedCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SizedCluster, "brokers", 1)
    with pytest.raises(ConfigError, match=r"PSEUDO_REPLICATION_FACTOR is 3, more than the 1 broker\(s\) that are up"):
        _create(_specs(replication_factor="3"))
    assert cluster.requests == []


def test_a_cluster_default_above_the_live_brokers_fails_naming_both(
    cluster: type[SizedCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One broker of three down when the topics are created: say so instead of Kafka's bare error code."""
    monkeypatch.setattr(SizedCluster, "brokers", 2)
    monkeypatch.setattr(FakeAdmin, "default_replication", 3)
    with pytest.raises(ConfigError, match=r"default\.replication\.factor is 3.*set PSEUDO_REPLICATION_FACTOR"):
        _create(_specs())
    assert cluster.requests == []


def test_min_insync_replicas_above_the_clusters_default_factor_fails(
    cluster: type[SizedCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings cannot see this one (the factor is the cluster's): checked once the default is read."""
    monkeypatch.setattr(FakeAdmin, "default_replication", 1)
    with pytest.raises(ConfigError, match=r"PSEUDO_MIN_INSYNC_REPLICAS is 2, more than the replication factor 1"):
        _create(_specs(min_insync_replicas="2"))


def test_existing_topics_are_not_checked(cluster: type[SizedCluster], monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker restarted while a broker is down must not fail over topics it does not create."""
    specs = _specs(replication_factor="3")
    _create(specs)
    monkeypatch.setattr(SizedCluster, "brokers", 2)
    assert _create(specs) == []


def test_topics_create_command_uses_the_setting(
    cluster: type[SizedCluster], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PSEUDO_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("PSEUDO_MIN_INSYNC_REPLICAS", "2")
    assert main(["topics", "create", "--broker", "kafka://127.0.0.1:9092"]) == 0
    settings = Settings.from_env()
    for spec in settings.topic_specs():
        created = cluster.existing[spec.name]
        assert (created.replication_factor, created.topic_configs["min.insync.replicas"]) == (3, "2")


# --- producers ---------------------------------------------------------------------------------------------------


def test_the_batch_producer_waits_for_every_in_sync_copy_and_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ingest, detector and release write through it: a retry after a leader change must not duplicate a batch."""
    built: list[dict[str, Any]] = []
    monkeypatch.setattr(kafka_clients, "AIOKafkaProducer", lambda **options: built.append(options))
    kafka_clients.batch_producer(Settings.from_env({}), "app-ingest")
    (options,) = built
    assert (options["acks"], options["enable_idempotence"]) == ("all", True)
