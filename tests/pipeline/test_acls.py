"""pipeline/acls.py: the ACLs each audience needs, derived from the settings and the table of outputs."""

from __future__ import annotations

import pytest

from config.settings import Settings
from pipeline import acls as acls_module
from pipeline.acls import Acl, Audience, Operation, PatternType, ResourceType, format_table, required_acls
from pipeline.cli import main
from pipeline.routing import OUTPUTS, OutputSpec
from transforms.errors import ConfigError

SETTINGS = Settings.from_env({"PSEUDO_APP_ID": "app"})
EVERYONE = {audience: audience.value for audience in Audience}


def _granted(acls: list[Acl], principal: str) -> set[tuple[ResourceType, PatternType, str, Operation]]:
    return {(a.resource, a.pattern, a.name, a.operation) for a in acls if a.principal == f"User:{principal}"}


def _topic_ops(acls: list[Acl], principal: str, topic: str) -> set[Operation]:
    return {op for kind, pattern, name, op in _granted(acls, principal) if kind == ResourceType.TOPIC and name == topic}


def test_each_output_is_read_by_its_audience_only_and_written_by_the_worker_only() -> None:
    acls = required_acls(SETTINGS, EVERYONE)
    for spec in OUTPUTS.values():
        topic = spec.topic(SETTINGS)
        if spec.reader is None:
            assert topic.startswith("app-"), "an internal output must live under the worker's prefix"
            continue
        assert _topic_ops(acls, spec.reader, topic) == {Operation.READ, Operation.DESCRIBE}
        assert _topic_ops(acls, "worker", topic) == {Operation.WRITE, Operation.DESCRIBE}
        for other in Audience:
            if other.value not in (spec.reader, "worker"):
                assert not _topic_ops(acls, other.value, topic), (other, topic)


def test_the_audit_topic_is_written_by_the_audited_tools_users_and_read_by_the_auditor() -> None:
    acls = required_acls(SETTINGS, EVERYONE)
    for tool_user in ("security", "operator"):
        assert _topic_ops(acls, tool_user, "logs.audit") == {Operation.WRITE, Operation.DESCRIBE}
    assert _topic_ops(acls, "auditor", "logs.audit") == {Operation.READ, Operation.DESCRIBE}
    assert not _topic_ops(acls, "worker", "logs.audit")
    assert {a.name for a in acls if a.principal == "User:auditor"} == {"logs.audit", "auditor-"}


def test_the_shipper_may_only_write_the_input() -> None:
    shipper = _granted(required_acls(SETTINGS, EVERYONE), "shipper")
    assert shipper == {
        (ResourceType.TOPIC, PatternType.LITERAL, "logs.raw", Operation.WRITE),
        (ResourceType.TOPIC, PatternType.LITERAL, "logs.raw", Operation.DESCRIBE),
    }


def test_the_worker_reads_the_input_and_owns_its_internal_prefix_and_groups() -> None:
    worker = _granted(required_acls(SETTINGS, EVERYONE), "worker")
    assert (ResourceType.TOPIC, PatternType.LITERAL, "logs.raw", Operation.READ) in worker
    internal = {op for kind, pattern, name, op in worker if pattern == PatternType.PREFIXED and name == "app-"}
    assert internal >= {Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DESCRIBE}
    groups = {(pattern, name) for kind, pattern, name, _ in worker if kind == ResourceType.GROUP}
    assert groups == {(PatternType.LITERAL, "app"), (PatternType.PREFIXED, "app-")}
    assert not any(kind == ResourceType.CLUSTER for kind, *_ in worker)
    assert not any(op == Operation.CREATE and pattern == PatternType.LITERAL for _, pattern, _, op in worker)


def test_allow_create_adds_create_on_the_external_topics_and_reading_the_cluster_defaults() -> None:
    plain = set(required_acls(SETTINGS, {Audience.WORKER: "worker"}))
    more = set(required_acls(SETTINGS, {Audience.WORKER: "worker"}, allow_create=True)) - plain
    external = {SETTINGS.input_topic} | {s.topic(SETTINGS) for s in OUTPUTS.values() if s.reader is not None}
    assert {a.name for a in more if a.operation == Operation.CREATE} == external
    assert {(a.resource, a.operation) for a in more if a.resource == ResourceType.CLUSTER} == {
        (ResourceType.CLUSTER, Operation.DESCRIBE_CONFIGS)
    }


def test_a_new_output_gets_its_acls_from_its_row_in_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    extended = {**OUTPUTS, "reports": OutputSpec(lambda s: "logs.reports", "reports.jsonl", "analyst")}
    monkeypatch.setattr(acls_module, "OUTPUTS", extended)
    acls = required_acls(SETTINGS, EVERYONE)
    assert _topic_ops(acls, "analyst", "logs.reports") == {Operation.READ, Operation.DESCRIBE}
    assert _topic_ops(acls, "worker", "logs.reports") == {Operation.WRITE, Operation.DESCRIBE}


def test_a_topic_under_the_workers_internal_prefix_is_refused() -> None:
    """Else the worker's PREFIXED grant (read, write, create) would silently cover another audience's topic."""
    clashing = Settings.from_env({"PSEUDO_APP_ID": "app", "PSEUDO_ANALYTICS_TOPIC": "app-analytics"})
    with pytest.raises(ConfigError, match="app-analytics"):
        required_acls(clashing, EVERYONE)
    audit = Settings.from_env({"PSEUDO_APP_ID": "app", "PSEUDO_AUDIT_TOPIC": "app-audit"})
    with pytest.raises(ConfigError, match="app-audit"):
        required_acls(audit, {Audience.AUDITOR: "auditor"})


def test_only_the_named_principals_get_acls_and_names_get_the_user_prefix() -> None:
    acls = required_acls(SETTINGS, {Audience.ANALYST: "User:dashboards", Audience.SECURITY: "soc"})
    assert {a.principal for a in acls} == {"User:dashboards", "User:soc"}


def test_the_table_prints_one_row_per_acl_in_kafkas_words() -> None:
    acls = required_acls(SETTINGS, {Audience.SHIPPER: "shipper"})
    lines = format_table(acls).splitlines()
    assert lines[0].split() == ["PRINCIPAL", "PERMISSION", "OPERATION", "RESOURCE", "PATTERN", "NAME"]
    assert sorted(line.split() for line in lines[1:]) == [
        ["User:shipper", "ALLOW", "DESCRIBE", "TOPIC", "LITERAL", "logs.raw"],
        ["User:shipper", "ALLOW", "WRITE", "TOPIC", "LITERAL", "logs.raw"],
    ]


def test_the_command_wants_a_principal(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["acls"]) == 2
    assert "--principal-worker" in capsys.readouterr().err
