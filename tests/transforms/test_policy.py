"""Policy validation: unknown keys and transform names stop start-up with a message that names them."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from config import DEFAULT_POLICY, load_policy
from transforms.errors import ConfigError
from transforms.policy import validate_policy


def _default() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_POLICY.read_text())


def test_shipped_policy_is_valid_and_frozen() -> None:
    policy = load_policy()
    with pytest.raises(Exception, match="frozen"):
        policy.version = 2  # type: ignore[assignment,misc]


def _mutate_unknown_top_key(doc: dict[str, Any]) -> None:
    doc["analytcs"] = {}


def _mutate_unknown_transform(doc: dict[str, Any]) -> None:
    doc["analytics"]["fields"][2]["transform"] = "hash_ipp"


def _mutate_bad_param(doc: dict[str, Any]) -> None:
    doc["analytics"]["fields"][4]["params"]["ipv4_prefix"] = 40


def _mutate_unknown_param(doc: dict[str, Any]) -> None:
    doc["analytics"]["fields"][4]["params"]["ipv4_bits"] = 24


def _mutate_copy_personal_field(doc: dict[str, Any]) -> None:
    doc["analytics"]["fields"].append({"name": "raw_ip", "transform": "copy_field", "params": {"field": "source_ip"}})


def _mutate_copy_method(doc: dict[str, Any]) -> None:
    doc["analytics"]["fields"].append({"name": "raw_method", "transform": "copy_field", "params": {"field": "method"}})


def _mutate_copy_version(doc: dict[str, Any]) -> None:
    doc["abuse"]["fields"].append(
        {"name": "raw_version", "transform": "copy_field", "params": {"field": "http_version"}}
    )


def _mutate_abuse_subject_purpose(doc: dict[str, Any]) -> None:
    doc["abuse"]["fields"][0]["params"]["purpose"] = "analytics"


def _mutate_unknown_kind(doc: dict[str, Any]) -> None:
    doc["analytics"]["kinds"] = ["smtp"]


def _mutate_unclassified_release_field(doc: dict[str, Any]) -> None:
    doc["analytics"]["fields"].append({"name": "http.version", "transform": "classify_version"})


def _mutate_unknown_hierarchy(doc: dict[str, Any]) -> None:
    doc["analytics"]["release"]["quasi_identifiers"]["geo"] = "geo_hash"


def _mutate_link_not_a_pseudonym(doc: dict[str, Any]) -> None:
    doc["analytics"]["release"]["links"].append("client.prefix")
    del doc["analytics"]["release"]["quasi_identifiers"]["client.prefix"]


def _mutate_pseudonym_kept_as_quasi_identifier(doc: dict[str, Any]) -> None:
    doc["analytics"]["release"]["quasi_identifiers"]["user"] = "domain"


def _mutate_release_names_a_missing_field(doc: dict[str, Any]) -> None:
    doc["analytics"]["release"]["not_quasi_identifiers"] = {"http.protocol": "the protocol names nobody"}


def _mutate_reasonless_non_identifier(doc: dict[str, Any]) -> None:
    del doc["analytics"]["release"]["quasi_identifiers"]["time_quality"]
    doc["analytics"]["release"]["not_quasi_identifiers"] = {"time_quality": "ok"}


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        # The release: every analytics field is classified, with a known hierarchy (issue 9).
        (_mutate_unclassified_release_field, "http.version not classified for the release"),
        (_mutate_unknown_hierarchy, "unknown hierarchy 'geo_hash'; valid: domain"),
        (_mutate_link_not_a_pseudonym, "release link 'client.prefix' must be a pseudonym"),
        (_mutate_pseudonym_kept_as_quasi_identifier, "pseudonym field 'user'"),
        (_mutate_release_names_a_missing_field, "does not have: http.protocol"),
        (_mutate_reasonless_non_identifier, "give the reason"),
        (_mutate_unknown_top_key, "analytcs: unknown key"),  # a typo in a section name
        (_mutate_unknown_transform, "unknown transform 'hash_ipp'; valid: classify_ip"),  # lists valid names
        (_mutate_bad_param, "ipv4_prefix"),  # out-of-range parameter
        (_mutate_unknown_param, "ipv4_bits: unknown key"),  # unknown parameter
        (_mutate_copy_personal_field, "analytics.fields.14.field"),  # copying a raw value is not allowed
        (_mutate_copy_method, "analytics.fields.14.field"),  # the method is client text: classify_method only
        (_mutate_copy_version, "abuse.fields.14.field"),  # so is the version: classify_version only
        (_mutate_abuse_subject_purpose, "purpose 'security'"),  # the subject must be the security pseudonym
        (_mutate_unknown_kind, "analytics.kinds.0"),  # not an event kind
    ],
)
def test_invalid_policy_names_the_problem(mutate: Any, named: str) -> None:
    doc = _default()
    mutate(doc)
    with pytest.raises(ConfigError) as caught:
        validate_policy(doc, "test.toml")
    assert named in str(caught.value)


def test_missing_policy_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_policy(tmp_path / "nope.toml")


def test_shipped_detection_thresholds_are_the_documented_defaults() -> None:
    """The policy file lists every threshold; it must say what the code would do without it."""
    from transforms.detect import DEFAULT_RULES, DetectionParams

    detection = load_policy().detection
    assert tuple(detection.rules) == tuple(DEFAULT_RULES)
    assert detection == DetectionParams()


def _mutate_unknown_detection_signal(doc: dict[str, Any]) -> None:
    doc["detection"]["rules"][0]["match"]["signals_any"] = ["ssh.nope"]


def test_unknown_signal_in_a_detection_rule_is_named() -> None:
    doc = _default()
    _mutate_unknown_detection_signal(doc)
    with pytest.raises(ConfigError, match=r"ssh\.nope"):
        validate_policy(doc, "test.toml")


def test_no_shipped_field_copies_client_text() -> None:
    """Every copy_field of the shipped policy reads a number, flag or parser-set value, never client text."""
    policy = load_policy()
    copied = {
        f.params["field"]
        for output in (policy.analytics, policy.abuse)
        for f in output.fields
        if f.transform == "copy_field"
    }
    assert copied <= {"kind", "status", "bytes_sent", "ssh_outcome", "invalid_user", "format"}
    methods = {f.transform for output in (policy.analytics, policy.abuse) for f in output.fields if "method" in f.name}
    assert methods == {"classify_method", "pseudonymize_method"}
