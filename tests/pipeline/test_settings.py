"""Settings: read once from PSEUDO_* variables into a frozen model; bad values name the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.settings import ENV_VARS, Settings
from transforms.errors import ConfigError


def test_defaults_and_topics() -> None:
    settings = Settings.from_env({})
    assert settings.bootstrap == "127.0.0.1:9092"
    names = [s.name for s in settings.topic_specs()]
    assert names == [
        "logs.raw",
        "logs.analytics",
        "logs.abuse",
        "logs.quarantine",
        "pseudonymizer-observations",
        "logs.analytics.aggregates",
        "pseudonymizer-release",
        "pseudonymizer-release-progress",
    ]
    compacted = [s.name for s in settings.topic_specs() if s.compacted]
    assert compacted == ["pseudonymizer-release-progress"]  # the latest progress per partition, kept forever
    retention = {s.name: s.retention_ms for s in settings.topic_specs()}
    assert retention["logs.raw"] < retention["logs.analytics"] < retention["logs.abuse"]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PSEUDO_PARTITIONS": "zero"}, "PSEUDO_PARTITIONS"),  # not a number
        ({"PSEUDO_METRICS_PORT": "70000"}, "PSEUDO_METRICS_PORT"),  # out of range
        ({"PSEUDO_LOG_LEVEL": "loud"}, "PSEUDO_LOG_LEVEL"),  # not a level
    ],
)
def test_invalid_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(ValidationError):
        settings.partitions = 9  # type: ignore[misc]


def test_env_vars_cover_every_field() -> None:
    assert "PSEUDO_KEYS_FILE" in ENV_VARS
    assert len(ENV_VARS) == len(Settings.model_fields)
