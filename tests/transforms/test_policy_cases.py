"""The shipped policy, tested as Vector tests its config: declarative cases through the composed processor."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from config import CONFIG_DIR, load_policy
from tests.transforms.keyfixtures import fixed_keyring
from transforms.process import RecordProcessor

CASES = tomllib.loads((CONFIG_DIR / "policy_cases.toml").read_text())["case"]
INGEST = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
PSEUDONYM = {
    "<a>": re.compile(r"^a-testkeys-\d{8}-[0-9a-f]{32}$"),
    "<s>": re.compile(r"^s-testkeys-\d{8}-[0-9a-f]{32}$"),
}


@pytest.fixture(scope="module")
def processor() -> RecordProcessor:
    return RecordProcessor.build(load_policy(), fixed_keyring())


def _matches(expected: Any, actual: Any, where: str = "") -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} missing from {sorted(actual)}"
            _matches(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, str) and expected in PSEUDONYM:
        assert PSEUDONYM[expected].match(actual), f"{where}: {actual!r} is not a {expected} pseudonym"
    else:
        assert expected == actual, f"{where}: {expected!r} != {actual!r}"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_policy_case(case: dict[str, Any], processor: RecordProcessor) -> None:
    outcome = processor(case["input"].encode(), INGEST)
    assert outcome.route.value == case["route"], (outcome.reason, outcome.field)
    if "reason" in case:
        assert outcome.reason == case["reason"]
    if "analytics" in case:
        assert len(outcome.analytics) == 1
        _matches(case["analytics"], outcome.analytics[0], "analytics")
    if "abuse_rules" in case:
        assert sorted(r["rule"] for r in outcome.abuse) == sorted(case["abuse_rules"])
    if "abuse" in case:
        for record in outcome.abuse:
            _matches(case["abuse"], record, "abuse")
    blob = orjson.dumps([outcome.analytics, outcome.abuse]).decode()
    for forbidden in case.get("absent", []):
        assert forbidden not in blob


def test_events_older_than_the_keyring_are_filtered_for_retention() -> None:
    """A shredded (or never-existing) epoch key means the record must not be kept in any form."""
    from transforms.keyring import generate_keyring

    processor = RecordProcessor.build(load_policy(), generate_keyring(valid_from=datetime(2020, 1, 1, tzinfo=UTC)))
    line = b'83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1 "-" "-"'
    outcome = processor(line, INGEST)
    assert (outcome.route.value, outcome.reason) == ("filtered", "beyond_retention")
    assert outcome.analytics == outcome.abuse == []
