"""Event ids: deterministic per input position, unrelated across outputs, keyed, and stable across key rotation."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from tests.transforms.keyfixtures import fixed_keyring
from transforms.errors import KeyringError
from transforms.event_id import EventIds
from transforms.keyring import Purpose, dump_keyring, generate_keyring, parse_keyring, prune_keyring

KEY = bytes(range(32))
IDS = EventIds(KEY)
HEX_128 = re.compile(r"^[0-9a-f]{32}$")


# Known answers under a fixed key: the module docstring shows the first two.
@pytest.mark.parametrize(
    ("call", "expected"),
    [
        # the analytics record of input logs.raw/1@7
        (lambda ids: ids.record("analytics", "logs.raw", 1, 7, 0), "6af94eceed8c9b67abd74a077f3b9096"),
        # the first abuse event of the same input: unrelated to its analytics id
        (lambda ids: ids.record("abuse", "logs.raw", 1, 7, 0), "36ac5f59c3ceb281842c47795e9af81c"),
    ],
)
def test_known_answers(call: Callable[[EventIds], str], expected: str) -> None:
    assert call(IDS) == expected


def test_an_id_is_the_documented_hmac_of_the_tagged_position() -> None:
    message = orjson.dumps(["pseudonymizer/v1/event-id", "record", "quarantine", "logs.raw", 3, 99, 0])
    expected = hmac.new(KEY, message, hashlib.sha256).digest()[:16].hex()
    assert IDS.record("quarantine", "logs.raw", 3, 99, 0) == expected


BASE = ("analytics", "logs.raw", 1, 7, 0)


@pytest.mark.parametrize(
    "other",
    [
        ("abuse", "logs.raw", 1, 7, 0),  # another output of the same input
        ("analytics", "logs.raw.eu", 1, 7, 0),  # another source topic
        ("analytics", "logs.raw", 2, 7, 0),  # another partition
        ("analytics", "logs.raw", 1, 8, 0),  # the next offset: a genuine twin of the record has another id
        ("analytics", "logs.raw", 1, 7, 1),  # the second record of its kind from one input (two abuse rules)
        ("analytics", "logs.raw", 17, 0, 0),  # no concatenation ambiguity between partition and offset
    ],
)
def test_every_part_of_the_position_changes_the_id(other: tuple[str, str, int, int, int]) -> None:
    assert IDS.record(*other) != IDS.record(*BASE)


def test_the_same_position_gives_the_same_id_under_the_same_key_only() -> None:
    assert EventIds(KEY).record(*BASE) == IDS.record(*BASE)  # a replay, another worker, the same keyring
    assert EventIds(bytes(32)).record(*BASE) != IDS.record(*BASE)  # without the key it cannot be recomputed


def test_records_aggregates_and_alerts_never_share_an_id_space() -> None:
    assert IDS.alert("analytics", "logs.raw", "1") != IDS.record("analytics", "logs.raw", 1, 7, 0)
    assert IDS.aggregate(0, "a", "b", {}) != IDS.alert("a", "b", "{}")


def test_an_aggregate_id_names_its_scope_window_and_cell_whatever_the_order_of_dimensions() -> None:
    start, end = "2015-05-17T10:00:00Z", "2015-05-17T11:00:00Z"
    base = IDS.aggregate(0, start, end, {"country": "DE", "device": "desktop"})
    assert IDS.aggregate(0, start, end, {"device": "desktop", "country": "DE"}) == base
    assert IDS.aggregate(1, start, end, {"country": "DE", "device": "desktop"}) != base
    assert IDS.aggregate(0, start, "2015-05-18T00:00:00Z", {"country": "DE", "device": "desktop"}) != base
    assert IDS.aggregate(0, start, end, {"country": "FR", "device": "desktop"}) != base
    assert IDS.aggregate(0, start, end, {}) != base


def test_an_alert_id_names_its_rule_subject_and_time() -> None:
    base = IDS.alert("ssh.bruteforce", "s-k-20251129-ab", "2025-12-10T06:56:01Z")
    assert IDS.alert("ssh.bruteforce", "s-k-20251129-ab", "2025-12-10T06:56:01Z") == base
    assert IDS.alert("ssh.user_enum", "s-k-20251129-ab", "2025-12-10T06:56:01Z") != base
    assert IDS.alert("ssh.bruteforce", "s-k-20251129-cd", "2025-12-10T06:56:01Z") != base
    assert IDS.alert("ssh.bruteforce", "s-k-20251129-ab", "2025-12-10T06:56:02Z") != base


@given(st.text(max_size=40), st.integers(0, 2**31 - 1), st.integers(0, 2**63 - 1), st.integers(0, 1000))
def test_an_id_is_128_bits_of_hex_and_carries_nothing_of_its_input(
    topic: str, partition: int, offset: int, i: int
) -> None:
    event_id = IDS.record("abuse", topic, partition, offset, i)
    assert HEX_128.match(event_id)
    assert str(offset) not in event_id or len(str(offset)) < 6  # a long number never shows through


def test_the_key_is_checked_once_and_never_printed() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        EventIds(b"short")
    assert KEY.hex() not in repr(IDS)
    assert "**" in repr(IDS)


# --- the key in the keyring (transforms/keyring.py) ------------------------------------------------------------------


def _without_event_id_key(text: bytes) -> bytes:
    """A keyring file as written before event ids existed."""
    payload = orjson.loads(text)
    del payload["event_id_key"]
    return orjson.dumps(payload)


def test_a_generated_keyring_has_its_own_event_id_key_that_survives_its_file() -> None:
    keyring = generate_keyring()
    assert len(keyring.event_id_key_material()) == 32
    assert parse_keyring(dump_keyring(keyring)).event_id_key_material() == keyring.event_id_key_material()
    assert generate_keyring().event_id_key_material() != keyring.event_id_key_material()
    # Not one of the keyring's other keys.
    others = {keyring.quarantine_keys[0].material()} | {
        chain.secret.get_secret_value().encode() for chain in keyring.chains.values()
    }
    assert keyring.event_id_key_material() not in others


def test_an_older_keyring_derives_the_same_key_wherever_it_is_read() -> None:
    old = _without_event_id_key(dump_keyring(generate_keyring()))
    first, second = parse_keyring(old), parse_keyring(old)  # two workers sharing one file
    assert first.event_id_key_material() == second.event_id_key_material()
    assert first.event_id_key_material() != first.chains[Purpose.SECURITY].secret.get_secret_value().encode()


def test_the_derived_key_is_pinned_by_the_next_write_so_a_prune_changes_no_id() -> None:
    old = parse_keyring(_without_event_id_key(dump_keyring(generate_keyring())))
    ids = EventIds(old.event_id_key_material()).record(*BASE)
    # keys prune: both chains advance (the security chain the key was derived from included), the file is rewritten.
    later = datetime(2030, 1, 1, tzinfo=UTC)
    pruned = parse_keyring(dump_keyring(prune_keyring(old, {Purpose.ANALYTICS: later, Purpose.SECURITY: later})))
    assert pruned.chains[Purpose.SECURITY] != old.chains[Purpose.SECURITY]
    assert EventIds(pruned.event_id_key_material()).record(*BASE) == ids


def test_ids_do_not_rotate_with_the_pseudonym_keys() -> None:
    keyring = generate_keyring()
    later = datetime(2030, 1, 1, tzinfo=UTC)
    pruned = prune_keyring(keyring, {Purpose.ANALYTICS: later, Purpose.SECURITY: later})
    assert pruned.event_id_key_material() == keyring.event_id_key_material()


def test_the_key_never_shows_in_a_repr_or_an_error() -> None:
    keyring = fixed_keyring()
    secret = keyring.event_id_key.get_secret_value()
    assert secret not in repr(keyring)
    assert secret not in str(keyring)
    payload = orjson.loads(dump_keyring(keyring))
    payload["event_id_key"] = secret[:-4]  # too short: refused, naming the field only
    with pytest.raises(KeyringError, match="event id key") as caught:
        parse_keyring(orjson.dumps(payload))
    assert secret[:-4] not in str(caught.value)


def test_a_keyring_built_in_code_without_the_key_derives_it_too() -> None:
    """The fixed test keyring (and any caller building a Keyring by hand) gets the same derived key as its file."""
    keyring = fixed_keyring()
    from_file = parse_keyring(_without_event_id_key(dump_keyring(keyring)))
    assert from_file.event_id_key_material() == keyring.event_id_key_material()
    explicit = keyring.model_copy(update={"event_id_key": SecretStr(keyring.event_id_key.get_secret_value())})
    assert explicit.event_id_key_material() == keyring.event_id_key_material()
