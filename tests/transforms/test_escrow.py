"""transforms.escrow: deterministic AES-256-SIV escrow of addresses, pinned and checked against RFC 5297."""

from __future__ import annotations

import base64
import doctest
import ipaddress
import re
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

import transforms.escrow
from transforms.errors import ConfigError, KeyringError
from transforms.escrow import (
    DEFAULT_CONTEXT,
    ESCROW_KEY_BYTES,
    EscrowKey,
    EscrowOpener,
    EscrowTokenError,
    IpEscrow,
    UnknownEscrowKey,
    generate_escrow_key,
    open_escrow,
    packed_to_text,
    token_key_id,
)

T0 = datetime(2000, 1, 1, tzinfo=UTC)
TEST_KEY_BYTES = bytes(range(64))  # fixed test key: never use it anywhere else


def _secret(raw: bytes) -> SecretStr:
    return SecretStr(base64.urlsafe_b64encode(raw).decode().rstrip("="))


def _key(raw: bytes = TEST_KEY_BYTES, key_id: str = "etest") -> EscrowKey:
    return EscrowKey(id=key_id, created=T0, secret=_secret(raw))


def _packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


# --- an independent RFC 5297 implementation (S2V over AES-CMAC + AES-CTR), as an oracle ----------------


def _dbl(block: bytes) -> bytes:
    value = int.from_bytes(block, "big") << 1
    if value >> 128:
        value = (value & ((1 << 128) - 1)) ^ 0x87
    return value.to_bytes(16, "big")


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _cmac(key: bytes, data: bytes) -> bytes:
    mac = cmac.CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def _reference_siv(key: bytes, associated: list[bytes], plaintext: bytes) -> bytes:
    """RFC 5297 section 2.6, written from the RFC (deterministic mode: no nonce component)."""
    mac_key, ctr_key = key[: len(key) // 2], key[len(key) // 2 :]
    d = _cmac(mac_key, b"\x00" * 16)
    for part in associated:
        d = _xor(_dbl(d), _cmac(mac_key, part))
    if len(plaintext) >= 16:
        t = plaintext[:-16] + _xor(plaintext[-16:], d)
    else:
        t = _xor(_dbl(d), (plaintext + b"\x80").ljust(16, b"\x00"))
    v = _cmac(mac_key, t)
    q = bytearray(v)
    q[8] &= 0x7F  # clear bits 63 and 31 of the counter (RFC 5297 section 2.6)
    q[12] &= 0x7F
    encryptor = Cipher(algorithms.AES(ctr_key), modes.CTR(bytes(q))).encryptor()
    return v + encryptor.update(plaintext) + encryptor.finalize()


RFC5297_A1 = {
    "key": bytes.fromhex("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"),
    "ad": bytes.fromhex("101112131415161718191a1b1c1d1e1f2021222324252627"),
    "plaintext": bytes.fromhex("112233445566778899aabbccddee"),
    "output": bytes.fromhex("85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c"),
}


def test_the_library_and_the_reference_both_reproduce_rfc5297_a1() -> None:
    """The oracle and cryptography's AESSIV agree with the RFC's deterministic example."""
    v = RFC5297_A1
    assert AESSIV(v["key"]).encrypt(v["plaintext"], [v["ad"]]) == v["output"]
    assert _reference_siv(v["key"], [v["ad"]], v["plaintext"]) == v["output"]


# (address, pinned token under TEST_KEY_BYTES / "etest" / DEFAULT_CONTEXT)
KNOWN_ANSWERS = [
    ("203.0.113.9", "e1.etest.oJ4-GxmbnU_TUK6njDsQwihkZjzO2VzQWm7rDoLtOzQE"),  # IPv4 (documentation)
    ("::", "e1.etest.A_ssxzPgLPxgKlInl4UdpC6aL7Pn1Y7cqoMpLLryHE27"),  # IPv6 all zeros: still a full-size token
    ("2001:db8::1", "e1.etest.8CcxGbR2xLQnR_bDIq5_XBbHtiTcsUG6H9B1fiF9TwwK"),  # IPv6 (documentation)
]


@pytest.mark.parametrize(("address", "token"), KNOWN_ANSWERS)
def test_known_answer(address: str, token: str) -> None:
    """Tokens are pinned: a change of framing, associated data or encoding breaks this on purpose."""
    assert IpEscrow(_key()).seal(_packed(address)) == token


@pytest.mark.parametrize(("address", "token"), KNOWN_ANSWERS)
def test_known_answer_matches_the_independent_rfc5297_implementation(address: str, token: str) -> None:
    """The token is AES-SIV over (family byte + 16 address bytes) with AD [context, key id], base64url."""
    packed = _packed(address)
    frame = (b"\x04" + packed + b"\x00" * 12) if len(packed) == 4 else (b"\x06" + packed)
    expected = _reference_siv(TEST_KEY_BYTES, [DEFAULT_CONTEXT, b"etest"], frame)
    assert token == "e1.etest." + base64.urlsafe_b64encode(expected).decode().rstrip("=")


def test_module_examples_run() -> None:
    """The known answer in the module docstring is a doctest and stays true."""
    assert doctest.testmod(transforms.escrow).failed == 0


# --- determinism and round trips ----------------------------------------------------------------------

ADDRESSES = st.ip_addresses()


@given(ADDRESSES)
def test_same_address_same_token_across_instances(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """Deterministic: two workers with the same key produce the same token (the team can group)."""
    assert IpEscrow(_key()).seal(address.packed) == IpEscrow(_key()).seal(address.packed)


@given(ADDRESSES, ADDRESSES)
def test_different_addresses_give_different_tokens(
    a: ipaddress.IPv4Address | ipaddress.IPv6Address, b: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> None:
    """Distinct addresses never collide (a token decrypts to exactly one address)."""
    escrow = IpEscrow(_key())
    assert (escrow.seal(a.packed) == escrow.seal(b.packed)) == (a == b)


@given(st.ip_addresses(v=4))
def test_ipv4_round_trips_to_dotted_text(address: ipaddress.IPv4Address) -> None:
    token = IpEscrow(_key()).seal(address.packed)
    assert packed_to_text(open_escrow([_key()], token)) == str(address)


@given(st.ip_addresses(v=6))
def test_ipv6_round_trips_to_rfc5952_text(address: ipaddress.IPv6Address) -> None:
    token = IpEscrow(_key()).seal(address.packed)
    packed = open_escrow([_key()], token)
    assert packed == address.packed  # 16 bytes back, even for ::ffff:a.b.c.d and ::a.b.c.d
    assert packed_to_text(packed) == str(address)


@given(ADDRESSES)
def test_token_length_does_not_reveal_the_family_and_never_holds_the_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    token = IpEscrow(_key()).seal(address.packed)
    assert len(token) == len("e1.etest.") + 44
    assert str(address) not in token


def test_another_key_or_context_gives_another_token() -> None:
    """Equality holds within one key and one purpose only."""
    packed = _packed("203.0.113.9")
    base = IpEscrow(_key()).seal(packed)
    assert IpEscrow(_key(bytes(64))).seal(packed) != base
    assert IpEscrow(_key(), context=b"pseudonymizer/v1/escrow/other").seal(packed) != base


def test_opener_picks_the_key_named_by_the_token() -> None:
    """Rotation: old and new keys side by side, each token opens with its own."""
    old, new = _key(key_id="eold"), _key(bytes(range(64, 128)), key_id="enew")
    packed = _packed("198.51.100.7")
    opener = EscrowOpener([old, new])
    for key in (old, new):
        token = IpEscrow(key).seal(packed)
        assert token_key_id(token) == key.id
        assert opener.open(token) == packed


# --- failures: closed, typed, and without data --------------------------------------------------------

SECRET_IP = "203.0.113.9"
GOOD = IpEscrow(_key()).seal(_packed(SECRET_IP))
_, _, GOOD_CT = GOOD.split(".")


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


@pytest.mark.parametrize("index", range(44))  # 33 bytes = 44 base64 characters exactly: no spare bits
def test_any_altered_ciphertext_character_fails_authentication(index: int) -> None:
    with pytest.raises(EscrowTokenError, match="authentication failed") as caught:
        open_escrow([_key()], f"e1.etest.{_flip(GOOD_CT, index)}")
    assert SECRET_IP not in str(caught.value)


# (token, why it must be rejected)
MALFORMED = [
    ("", "empty"),
    ("e1.etest", "two parts"),
    (f"e2.etest.{GOOD_CT}", "unknown format version"),
    (f"e1.etest.{GOOD_CT}.x", "four parts"),
    (f"e1..{GOOD_CT}", "empty key id"),
    (f"e1.e:test.{GOOD_CT}", "key id outside the id alphabet"),
    (f"e1.etest.{GOOD_CT[:-1]}", "ciphertext one character short"),
    (f"e1.etest.{GOOD_CT}==", "padding is not part of the format"),
    (f"e1.etest.{GOOD_CT.replace('-', '+').replace('_', '/')}", "standard base64, not base64url"),
    ("e1.etest." + "A" * 100_000, "oversized"),
]


@pytest.mark.parametrize(("token", "why"), MALFORMED)
def test_malformed_tokens_are_rejected(token: str, why: str) -> None:
    with pytest.raises(EscrowTokenError, match="malformed") as caught:
        open_escrow([_key()], token)
    assert SECRET_IP not in str(caught.value)


def test_wrong_key_under_the_same_id_fails_authentication() -> None:
    with pytest.raises(KeyringError, match="authentication failed") as caught:
        open_escrow([_key(bytes(64))], GOOD)
    assert SECRET_IP not in str(caught.value)


def test_relabelled_key_id_fails_authentication() -> None:
    """The key id is associated data: moving a token to another id (same key bytes) is detected."""
    with pytest.raises(EscrowTokenError, match="authentication failed"):
        open_escrow([_key(key_id="eother")], GOOD.replace("e1.etest.", "e1.eother."))


def test_wrong_context_fails_authentication() -> None:
    with pytest.raises(EscrowTokenError, match="authentication failed"):
        open_escrow([_key()], GOOD, context=b"pseudonymizer/v1/escrow/user")


def test_unknown_key_id_is_reported_by_id_only() -> None:
    """A destroyed key: the token is irreversible, and the error says which key, nothing else."""
    with pytest.raises(UnknownEscrowKey, match="'etest'") as caught:
        open_escrow([_key(key_id="enew")], GOOD)
    assert isinstance(caught.value, KeyringError)
    assert SECRET_IP not in str(caught.value)


def test_duplicate_key_ids_are_refused() -> None:
    with pytest.raises(KeyringError, match="duplicate key id"):
        EscrowOpener([_key(), _key(bytes(64))])


def test_empty_context_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="context"):
        IpEscrow(_key(), context=b"")


def test_seal_refuses_anything_but_4_or_16_bytes() -> None:
    with pytest.raises(ValueError, match="4 or 16 bytes"):
        IpEscrow(_key()).seal(b"\x01\x02\x03\x04\x05")


# --- keys ---------------------------------------------------------------------------------------------


def test_key_repr_and_str_are_masked() -> None:
    key = _key()
    secret = key.secret.get_secret_value()
    for text in (repr(key), str(key), key.model_dump_json(), repr(IpEscrow(key)), repr(EscrowOpener([key]))):
        assert secret not in text
    assert "**********" in repr(key)


def test_generated_keys_are_random_64_byte_keys_with_distinct_ids() -> None:
    now = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    a, b = generate_escrow_key(now), generate_escrow_key(now)
    assert len(a.material()) == ESCROW_KEY_BYTES
    assert a.material() != b.material()
    assert a.id != b.id
    assert re.fullmatch(r"e20260304-[0-9a-f]{4}", a.id)
    assert a.created == now


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        (_secret(bytes(32)), "32 bytes is AES-128-SIV: refused, this module uses AES-256-SIV"),
        (SecretStr(base64.urlsafe_b64encode(bytes(64)).decode()), "padded base64url"),
        (SecretStr("A" * 85 + "B"), "non-canonical: the spare bits of the last character are set"),
        (SecretStr("not base64 at all!"), "not base64url"),
    ],
)
def test_invalid_key_material_is_refused_without_echoing_it(secret: SecretStr, why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        EscrowKey(id="etest", created=T0, secret=secret)
    assert secret.get_secret_value() not in str(caught.value)


def test_key_model_is_strict_and_frozen() -> None:
    with pytest.raises(ValidationError):
        EscrowKey(id="etest", created=T0, secret=_secret(TEST_KEY_BYTES), extra="x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        EscrowKey(id="e.test", created=T0, secret=_secret(TEST_KEY_BYTES))  # "." would break the token format
    with pytest.raises(ValidationError):
        _key().id = "eother"  # type: ignore[misc]


# --- text ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("packed", "text"),
    [
        (bytes([203, 0, 113, 9]), "203.0.113.9"),  # dotted quad
        (_packed("2001:0db8:0000:0000:0000:0000:0000:0001"), "2001:db8::1"),  # compressed, lower case
        (_packed("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1"),  # one zero group is not compressed
        (bytes(16), "::"),  # unspecified
    ],
)
def test_packed_to_text(packed: bytes, text: str) -> None:
    assert packed_to_text(packed) == text


def test_packed_to_text_refuses_other_lengths() -> None:
    with pytest.raises(ValueError, match="4 or 16 bytes"):
        packed_to_text(b"\x00" * 5)
