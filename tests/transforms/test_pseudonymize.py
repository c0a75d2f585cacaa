"""Keyed-hash pseudonyms: known answers, purpose separation, rotation by event time, crypto-shredding."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

import transforms.keyring as keyring_module
from tests.transforms.keyfixtures import fixed_keyring
from transforms.keyring import (
    CHECKPOINT_EPOCHS,
    EpochKeys,
    Purpose,
    dump_keyring,
    generate_keyring,
    parse_keyring,
    prune_keyring,
)
from transforms.pseudonymize import BeyondRetention, Pseudonymizer

MAY_17_2015 = datetime(2015, 5, 17, 10, 5, 3, tzinfo=UTC).timestamp()
IP_83 = bytes([83, 149, 9, 216])


def _reference(secret: bytes, first_epoch: int, epoch: int, tagged: bytes) -> str:
    """An independent re-implementation of the documented derivation (module docstring of keyring)."""
    state = secret
    for _ in range(epoch - first_epoch):
        state = hmac.new(state, b"pseudonymizer/v1/next", hashlib.sha256).digest()
    key = hmac.new(state, b"pseudonymizer/v1/hmac", hashlib.sha256).digest()
    digest = hmac.new(key, tagged, hashlib.sha256).digest()
    return digest[:16].hex()


# (purpose, value kind, input, expected pseudonym) pinned with the fixed test keyring: a change in the
# derivation breaks every stored pseudonym and every lookup, so it must break these first.
KNOWN_ANSWERS = [
    # analytics: daily epoch of 2015-05-17
    (Purpose.ANALYTICS, "ip", IP_83, "a-testkeys-20150517-"),
    # security: the 30-day epoch containing 2015-05-17 starts 2015-05-05
    (Purpose.SECURITY, "ip", IP_83, "s-testkeys-20150505-"),
]


@pytest.mark.parametrize(("purpose", "kind", "value", "key_id"), KNOWN_ANSWERS)
def test_pseudonym_matches_the_documented_derivation(purpose: Purpose, kind: str, value: bytes, key_id: str) -> None:
    keyring = fixed_keyring()
    chain = keyring.chains[purpose]
    secret = base64.urlsafe_b64decode(chain.secret.get_secret_value() + "=")
    epoch = int(MAY_17_2015 // chain.period_s)
    expected = key_id + _reference(secret, chain.epoch, epoch, b"ip:" + value)
    assert Pseudonymizer(keyring, purpose).ip(value, MAY_17_2015) == expected


def test_pinned_known_answer() -> None:
    """A literal vector, so that the reference above and the implementation cannot drift together."""
    assert Pseudonymizer(fixed_keyring(), Purpose.ANALYTICS).ip(IP_83, MAY_17_2015) == (
        "a-testkeys-20150517-" + PINNED_ANALYTICS_DIGEST
    )


PINNED_ANALYTICS_DIGEST = "e72a924adcc846fd5afa0becd2a96239"


def test_analytics_and_security_pseudonyms_of_one_ip_differ() -> None:
    keyring = fixed_keyring()
    a = Pseudonymizer(keyring, Purpose.ANALYTICS).ip(IP_83, MAY_17_2015)
    s = Pseudonymizer(keyring, Purpose.SECURITY).ip(IP_83, MAY_17_2015)
    assert a.split("-")[-1] != s.split("-")[-1]


def test_analytics_pseudonym_rotates_daily_and_security_pseudonym_is_stable_within_its_epoch() -> None:
    keyring = fixed_keyring()
    analytics = Pseudonymizer(keyring, Purpose.ANALYTICS)
    security = Pseudonymizer(keyring, Purpose.SECURITY)
    next_day = MAY_17_2015 + 86_400
    assert analytics.ip(IP_83, MAY_17_2015) != analytics.ip(IP_83, next_day)
    assert security.ip(IP_83, MAY_17_2015) == security.ip(IP_83, next_day)
    # same day, different time: same pseudonym (unique visitors per day can be counted)
    assert analytics.ip(IP_83, MAY_17_2015) == analytics.ip(IP_83, MAY_17_2015 + 3600)


def test_domains_are_separated() -> None:
    pz = Pseudonymizer(fixed_keyring(), Purpose.SECURITY)
    assert pz.ip(b"root", MAY_17_2015).split("-")[-1] != pz.user("root", MAY_17_2015).split("-")[-1]


def test_user_pseudonyms_ignore_case_and_surrounding_space() -> None:
    pz = Pseudonymizer(fixed_keyring(), Purpose.SECURITY)
    assert pz.user(" Alice@Example.com", MAY_17_2015) == pz.user("alice@example.com", MAY_17_2015)


def test_visitor_depends_on_user_agent() -> None:
    pz = Pseudonymizer(fixed_keyring(), Purpose.ANALYTICS)
    assert pz.visitor(IP_83, "Firefox", MAY_17_2015) != pz.visitor(IP_83, "Chrome", MAY_17_2015)


def test_pruned_epochs_cannot_be_derived_and_later_ones_are_unchanged() -> None:
    keyring = fixed_keyring()
    before = Pseudonymizer(keyring, Purpose.ANALYTICS)
    pruned = prune_keyring(keyring, {Purpose.ANALYTICS: datetime(2015, 5, 18, tzinfo=UTC)})
    after = Pseudonymizer(parse_keyring(dump_keyring(pruned)), Purpose.ANALYTICS)
    with pytest.raises(BeyondRetention):
        after.ip(IP_83, MAY_17_2015)
    later = MAY_17_2015 + 2 * 86_400
    assert after.ip(IP_83, later) == before.ip(IP_83, later)
    # security chain untouched
    assert pruned.chains[Purpose.SECURITY] == keyring.chains[Purpose.SECURITY]


def test_pruning_backwards_is_a_no_op() -> None:
    keyring = fixed_keyring()
    assert prune_keyring(keyring, {Purpose.ANALYTICS: datetime(1999, 1, 1, tzinfo=UTC)}) == keyring


def test_events_before_the_keyring_are_beyond_retention() -> None:
    keyring = generate_keyring(valid_from=datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(BeyondRetention):
        Pseudonymizer(keyring, Purpose.ANALYTICS).ip(IP_83, MAY_17_2015)


def test_two_generated_keyrings_give_unrelated_pseudonyms() -> None:
    a = Pseudonymizer(generate_keyring(), Purpose.ANALYTICS).ip(IP_83, MAY_17_2015)
    b = Pseudonymizer(generate_keyring(), Purpose.ANALYTICS).ip(IP_83, MAY_17_2015)
    assert a.split("-")[-1] != b.split("-")[-1]


@given(
    st.binary(min_size=4, max_size=4) | st.binary(min_size=16, max_size=16),
    st.floats(min_value=946_684_800, max_value=4_102_444_800),
)
def test_pseudonym_never_contains_the_input_and_has_a_fixed_shape(packed: bytes, when: float) -> None:
    pseudonym = Pseudonymizer(fixed_keyring(), Purpose.ANALYTICS).ip(packed, when)
    prefix, keyring_id, day, digest = pseudonym.split("-")
    assert (prefix, keyring_id, len(day), len(digest)) == ("a", "testkeys", 8, 32)
    assert packed.hex() not in pseudonym
    assert ".".join(str(b) for b in packed) not in pseudonym


def test_keyring_repr_and_json_errors_never_show_secrets() -> None:
    keyring = generate_keyring()
    secret = keyring.chains[Purpose.ANALYTICS].secret.get_secret_value()
    assert secret not in repr(keyring)
    assert secret not in str(keyring.model_dump())
    assert secret in dump_keyring(keyring).decode()  # only the file writer reveals it
    broken = dump_keyring(keyring).decode().replace('"format"', '"formt"')
    with pytest.raises(Exception, match="invalid at") as caught:
        parse_keyring(broken)
    assert secret not in str(caught.value)


def test_any_retained_epoch_costs_a_bounded_walk_whatever_the_order_of_event_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Records alternating between old and new days restarted the ratchet from its first epoch each time."""
    chain = fixed_keyring().chains[Purpose.ANALYTICS]
    fresh = EpochKeys(chain)
    expected = {epoch: fresh.key(epoch) for epoch in range(chain.epoch, chain.epoch + 3000, 7)}

    steps = 0
    real_step = keyring_module._next_chain

    def counted(state: bytes) -> bytes:
        nonlocal steps
        steps += 1
        return real_step(state)

    monkeypatch.setattr(keyring_module, "_next_chain", counted)
    keys = EpochKeys(chain)
    keys.key(chain.epoch + 3000)  # one walk to the newest day
    steps = 0
    for epoch in sorted(expected, reverse=True):  # then every older one, newest first: the worst order
        assert keys.key(epoch) == expected[epoch]
    assert steps <= len(expected) * CHECKPOINT_EPOCHS


# --- window-lived pseudonyms (the k-anonymous release) ----------------------------------------------------------


def test_a_window_lived_pseudonym_changes_every_window_and_only_then() -> None:
    """The same address keeps its pseudonym within an hour and gets an unrelated one the next hour."""
    hourly = Pseudonymizer(fixed_keyring(), Purpose.ANALYTICS, lifetime_s=3600)
    daily = Pseudonymizer(fixed_keyring(), Purpose.ANALYTICS)
    address = bytes([192, 0, 2, 7])
    ten, ten_59, eleven = (datetime(2026, 1, 1, h, m, tzinfo=UTC).timestamp() for h, m in ((10, 0), (10, 59), (11, 0)))
    assert hourly.ip(address, ten) == hourly.ip(address, ten_59)
    assert hourly.ip(address, ten) != hourly.ip(address, eleven)
    assert hourly.ip(address, ten) != daily.ip(address, ten)  # never joinable with the daily one
    assert hourly.ip(address, ten).rsplit("-", 1)[0] == daily.ip(address, ten).rsplit("-", 1)[0]  # same key id
    assert hourly.visitor(address, "UA", ten) != hourly.visitor(address, "UA", eleven)
    assert hourly.lifetime_s == 3600
    assert daily.lifetime_s == daily.period_s


def test_a_lifetime_of_a_whole_epoch_is_the_daily_pseudonym() -> None:
    daily = Pseudonymizer(fixed_keyring(), Purpose.ANALYTICS)
    same = Pseudonymizer(fixed_keyring(), Purpose.ANALYTICS, lifetime_s=daily.period_s)
    moment = datetime(2026, 1, 1, 10, tzinfo=UTC).timestamp()
    assert same.ip(b"\x0a\x00\x00\x01", moment) == daily.ip(b"\x0a\x00\x00\x01", moment)


@pytest.mark.parametrize("lifetime", [0, 7000, -3600])
def test_a_lifetime_must_divide_the_epoch(lifetime: int) -> None:
    with pytest.raises(ValueError, match="divide the key epoch"):
        Pseudonymizer(fixed_keyring(), Purpose.ANALYTICS, lifetime_s=lifetime)
