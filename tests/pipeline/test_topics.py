"""Topic creation (pipeline/topics.py and `pseudonymizer topics create`) against a stand-in admin client.

The real broker's behaviour is covered by tests/integration/test_topics_create.py.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError, TopicAuthorizationFailedError

from config.settings import Settings, TopicSpec
from pipeline import topics
from pipeline.cli import main
from transforms.errors import ConfigError


class FakeAdmin:
    """Keeps topics in a class-level dict, answers CreateTopics per topic as a broker does (it never raises)."""

    existing: ClassVar[dict[str, NewTopic]] = {}
    refuse: ClassVar[dict[str, int]] = {}  # topic name -> error code the broker answers with
    listing_lag: ClassVar[int] = 0  # list_topics calls after a creation before the new topic shows
    unreachable: ClassVar[bool] = False
    hidden_at_first: ClassVar[set[str]] = set()  # topics the first list_topics call does not show yet
    default_replication: ClassVar[int] = 1  # the brokers' default.replication.factor
    configs_refused: ClassVar[bool] = False
    requests: ClassVar[list[list[NewTopic]]] = []

    def __init__(self, bootstrap_servers: str, client_id: str) -> None:
        self._pending: dict[str, int] = {}
        self._looked = False

    async def start(self) -> None:
        if self.unreachable:
            raise KafkaConnectionError("Unable to bootstrap")

    async def close(self) -> None:
        return None

    async def list_topics(self) -> list[str]:
        for name in list(self._pending):
            self._pending[name] -= 1
            if self._pending[name] < 0:
                del self._pending[name]
        hidden = set() if self._looked else self.hidden_at_first
        self._looked = True
        return [name for name in self.existing if name not in self._pending and name not in hidden]

    async def describe_cluster(self) -> dict[str, Any]:
        return {"controller_id": 2, "brokers": [{"node_id": 2}, {"node_id": 1}, {"node_id": 3}]}

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        (resource,) = resources
        assert (resource.resource_type.name, resource.name) == ("BROKER", "1")
        if self.configs_refused:
            rows = [(31, "Cluster authorization failed.", 4, "1", [])]
        else:
            entries = [("default.replication.factor", str(self.default_replication), False, True, False)]
            rows = [(0, None, 4, "1", entries)]
        return [type("DescribeConfigsResponse", (), {"resources": rows})()]

    async def create_topics(self, new_topics: list[NewTopic]) -> Any:
        self.requests.append(new_topics)
        rows = []
        for topic in new_topics:
            code = self.refuse.get(topic.name, TopicAlreadyExistsError.errno if topic.name in self.existing else 0)
            if code == 0:
                self.existing[topic.name] = topic
                self._pending[topic.name] = self.listing_lag
            rows.append((topic.name, code, None if code == 0 else "refused by the stand-in"))
        return type("CreateTopicsResponse", (), {"topic_errors": rows})()


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeAdmin]:
    monkeypatch.setattr(FakeAdmin, "existing", {})
    monkeypatch.setattr(FakeAdmin, "refuse", {})
    monkeypatch.setattr(FakeAdmin, "requests", [])
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", FakeAdmin)
    return FakeAdmin


SPECS = [
    TopicSpec(name="logs.raw", partitions=4, retention_ms=86_400_000),
    TopicSpec(name="logs.analytics", partitions=4, retention_ms=30 * 86_400_000),
]


def test_creates_missing_topics_with_their_partitions_and_retention(admin: type[FakeAdmin]) -> None:
    """Each missing topic is asked for with its spec's partition count and retention, deletion as cleanup."""
    created = asyncio.run(topics.ensure_topics("127.0.0.1:9092", SPECS))
    assert created == ["logs.raw", "logs.analytics"]
    raw = admin.existing["logs.raw"]
    assert (raw.num_partitions, raw.replication_factor) == (4, 1)
    assert raw.topic_configs == {"retention.ms": "86400000", "cleanup.policy": "delete"}


def test_a_second_run_creates_nothing_and_sends_no_request(admin: type[FakeAdmin]) -> None:
    """Idempotent: operators and workers may run it as often as they like."""
    asyncio.run(topics.ensure_topics("127.0.0.1:9092", SPECS))
    assert asyncio.run(topics.ensure_topics("127.0.0.1:9092", SPECS)) == []
    assert len(admin.requests) == 1


def test_only_the_missing_topic_is_created(admin: type[FakeAdmin]) -> None:
    """An existing topic is left as it is (its partitions and retention are the operator's)."""
    admin.existing["logs.raw"] = NewTopic("logs.raw", 1, 1)
    assert asyncio.run(topics.ensure_topics("127.0.0.1:9092", SPECS)) == ["logs.analytics"]
    assert admin.existing["logs.raw"].num_partitions == 1


def test_a_topic_another_process_created_meanwhile_is_not_an_error(
    admin: type[FakeAdmin], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker and `topics create` racing: TOPIC_ALREADY_EXISTS is fine, and not reported as created here."""
    admin.existing["logs.raw"] = NewTopic("logs.raw", 4, 1)
    monkeypatch.setattr(FakeAdmin, "hidden_at_first", {"logs.raw"})  # created just after our first look
    assert asyncio.run(topics.ensure_topics("127.0.0.1:9092", SPECS)) == ["logs.analytics"]
    assert [topic.name for topic in admin.requests[0]] == ["logs.raw", "logs.analytics"]


def test_a_refused_topic_is_a_config_error_naming_it_and_kafkas_error(
    admin: type[FakeAdmin], monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiokafka does not raise on a per-topic error: a refusal must not pass for a creation."""
    monkeypatch.setattr(FakeAdmin, "refuse", {"logs.analytics": TopicAuthorizationFailedError.errno})
    with pytest.raises(ConfigError, match=r"logs\.analytics \(TopicAuthorizationFailedError: refused by the stand-in"):
        asyncio.run(topics.ensure_topics("127.0.0.1:9092", SPECS))


def test_returns_only_once_the_broker_lists_the_new_topics(
    admin: type[FakeAdmin], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shipper started right after must find the topic: creation waits until it shows in the metadata."""
    monkeypatch.setattr(FakeAdmin, "listing_lag", 3)
    listed: list[list[str]] = []
    original = FakeAdmin.list_topics

    async def recording(self: FakeAdmin) -> list[str]:
        names = await original(self)
        listed.append(names)
        return names

    monkeypatch.setattr(FakeAdmin, "list_topics", recording)
    asyncio.run(topics.ensure_topics("127.0.0.1:9092", SPECS))
    assert set(listed[-1]) == {"logs.raw", "logs.analytics"}
    assert len(listed) == 1 + 4  # the first look, then until the lag has passed


def test_a_topic_that_never_shows_is_an_error(admin: type[FakeAdmin], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeAdmin, "listing_lag", 10**9)
    monkeypatch.setattr(topics, "VISIBLE_WITHIN_S", 0.3)
    with pytest.raises(ConfigError, match="not listed by the broker"):
        asyncio.run(topics.ensure_topics("127.0.0.1:9092", SPECS))


def test_an_unreachable_broker_is_a_config_error_naming_the_setting(
    admin: type[FakeAdmin], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeAdmin, "unreachable", True)
    with pytest.raises(ConfigError, match="PSEUDO_BROKER"):
        asyncio.run(topics.ensure_topics("10.0.0.1:9092", SPECS))


def test_topics_get_the_clusters_default_replication_factor(
    admin: type[FakeAdmin], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any broker, not only a local one: aiokafka cannot ask for "the broker's default", so it is read first."""
    monkeypatch.setattr(FakeAdmin, "default_replication", 3)
    asyncio.run(topics.ensure_topics("kafka-1.internal:9092", SPECS))
    assert {topic.replication_factor for topic in admin.existing.values()} == {3}


def test_an_unreadable_replication_default_is_a_config_error(
    admin: type[FakeAdmin], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeAdmin, "configs_refused", True)
    with pytest.raises(ConfigError, match=r"default\.replication\.factor.*ClusterAuthorizationFailedError"):
        asyncio.run(topics.ensure_topics("kafka-1.internal:9092", SPECS))
    assert admin.existing == {}


def test_topics_create_command_creates_every_topic_the_worker_uses(
    admin: type[FakeAdmin], capsys: pytest.CaptureFixture[str]
) -> None:
    """`pseudonymizer topics create` covers the input, the outputs, the internal topics and the audit topic."""
    assert main(["topics", "create", "--broker", "kafka://127.0.0.1:9092"]) == 0
    settings = Settings.from_env(broker="kafka://127.0.0.1:9092")
    expected = {spec.name for spec in settings.topic_specs()} | {settings.audit_topic}
    assert set(admin.existing) == expected
    first = capsys.readouterr().out
    assert first.count(": created") == len(expected)

    assert main(["topics", "create", "--broker", "kafka://127.0.0.1:9092"]) == 0
    assert capsys.readouterr().out.count("exists, left as it is") == len(expected)


def test_topics_create_command_exits_2_when_the_broker_refuses(
    admin: type[FakeAdmin], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(FakeAdmin, "refuse", {"logs.raw": TopicAuthorizationFailedError.errno})
    assert main(["topics", "create", "--broker", "kafka://127.0.0.1:9092"]) == 2
    assert "logs.raw" in capsys.readouterr().err
