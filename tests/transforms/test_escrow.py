"""transforms.escrow: e2 tokens sealed to a public key (RFC 9180 HPKE, checked by an independent implementation
against the RFC's own vectors), a keyed tag for grouping, and legacy e1 (RFC 5297 AES-SIV) tokens that still open."""

from __future__ import annotations

import base64
import doctest
import hashlib
import hmac
import ipaddress
import re
from datetime import UTC, datetime

import orjson
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import cmac, hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
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
    EscrowPrivateKey,
    EscrowPublicKey,
    EscrowTokenError,
    IpEscrow,
    UnknownEscrowKey,
    dump_escrow_private_key,
    generate_escrow_keypair,
    open_escrow,
    packed_to_text,
    parse_escrow_private_key,
    token_key_id,
)
from transforms.keyring import dump_keyring, generate_keyring

T0 = datetime(2000, 1, 1, tzinfo=UTC)
# Fixed test keys: never use them anywhere else.
TEST_PRIVATE = bytes(range(32))
TEST_TAG_KEY = bytes(range(32, 64))
TEST_LEGACY = bytes(range(64))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _private(raw: bytes = TEST_PRIVATE, key_id: str = "etest", tag_key: bytes = TEST_TAG_KEY) -> EscrowPrivateKey:
    return EscrowPrivateKey(id=key_id, created=T0, private_key=SecretStr(_b64(raw)), tag_key=SecretStr(_b64(tag_key)))


def _escrow(key: EscrowPrivateKey | None = None, **kwargs: bytes) -> IpEscrow:
    return IpEscrow((key or _private()).public_part(), **kwargs)


def _legacy(raw: bytes = TEST_LEGACY, key_id: str = "etest") -> EscrowKey:
    return EscrowKey(id=key_id, created=T0, secret=SecretStr(_b64(raw)))


def _packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def _frame(packed: bytes) -> bytes:
    return (b"\x04" + packed + b"\x00" * 12) if len(packed) == 4 else (b"\x06" + packed)


# --- an independent RFC 9180 implementation (base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256), as an oracle ----


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or b"\x00" * 32, ikm, hashlib.sha256).digest()


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out, counter = out + block, counter + 1
    return out[:length]


def _labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite + label + ikm)


def _labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return _expand(prk, length.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info, length)


def _reference_hpke_open(sk_r: bytes, enc: bytes, ciphertext: bytes, info: bytes, aad: bytes, aead_id: int) -> bytes:
    """RFC 9180 sections 4.1, 5.1 and 5.2, written from the RFC: SetupBaseR then Open with sequence number 0."""
    kem_suite = b"KEM" + (0x0020).to_bytes(2, "big")
    private = X25519PrivateKey.from_private_bytes(sk_r)
    dh = private.exchange(X25519PublicKey.from_public_bytes(enc))
    kem_context = enc + private.public_key().public_bytes_raw()
    eae_prk = _labeled_extract(kem_suite, b"", b"eae_prk", dh)
    shared_secret = _labeled_expand(kem_suite, eae_prk, b"shared_secret", kem_context, 32)
    suite = b"HPKE" + (0x0020).to_bytes(2, "big") + (0x0001).to_bytes(2, "big") + aead_id.to_bytes(2, "big")
    key_schedule_context = (
        b"\x00"  # mode_base
        + _labeled_extract(suite, b"", b"psk_id_hash", b"")
        + _labeled_extract(suite, b"", b"info_hash", info)
    )
    secret = _labeled_extract(suite, shared_secret, b"secret", b"")
    key = _labeled_expand(suite, secret, b"key", key_schedule_context, {0x0001: 16, 0x0002: 32}[aead_id])
    base_nonce = _labeled_expand(suite, secret, b"base_nonce", key_schedule_context, 12)
    return AESGCM(key).decrypt(base_nonce, ciphertext, aad)


# RFC 9180 appendix A.1.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode, sequence number 0.
RFC9180_A11 = {
    "info": bytes.fromhex("4f6465206f6e2061204772656369616e2055726e"),
    "skRm": bytes.fromhex("4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8"),
    "pkRm": bytes.fromhex("3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d"),
    "enc": bytes.fromhex("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431"),
    "aad": bytes.fromhex("436f756e742d30"),
    "pt": bytes.fromhex("4265617574792069732074727574682c20747275746820626561757479"),
    "ct": bytes.fromhex("f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a"),
}


def test_the_reference_hpke_reproduces_rfc9180_a11() -> None:
    """The oracle is right: it opens the RFC's own example (and derives the RFC's public key)."""
    v = RFC9180_A11
    assert X25519PrivateKey.from_private_bytes(v["skRm"]).public_key().public_bytes_raw() == v["pkRm"]
    assert _reference_hpke_open(v["skRm"], v["enc"], v["ct"], v["info"], v["aad"], 0x0001) == v["pt"]


def _info(key_id: str, tag: bytes, context: bytes = DEFAULT_CONTEXT) -> bytes:
    return b"pseudonymizer/escrow/e2\x00" + context + b"\x00" + key_id.encode() + b"\x00" + tag


@given(st.ip_addresses())
def test_e2_tokens_are_rfc9180_hpke_with_aes256gcm_and_an_hmac_tag(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    """``e2.<id>.<tag>.<enc || ct>``: the oracle opens the sealed part; the tag is HMAC-SHA256/128 of the frame."""
    token = _escrow().seal(address.packed)
    version, key_id, tag_text, sealed_text = token.split(".")
    tag, sealed = _unb64(tag_text), _unb64(sealed_text)
    frame = _frame(address.packed)
    assert (version, key_id) == ("e2", "etest")
    assert tag == hmac.new(TEST_TAG_KEY, DEFAULT_CONTEXT + b"\x00etest\x00" + frame, hashlib.sha256).digest()[:16]
    assert _reference_hpke_open(TEST_PRIVATE, sealed[:32], sealed[32:], _info("etest", tag), b"", 0x0002) == frame


# (address, a token sealed once under the test keys and pinned: opening must keep working)
KNOWN_ANSWERS = [
    (
        "203.0.113.9",  # IPv4 (documentation)
        "e2.etest.46sbTjulWZmW7DA4kBhKwA."
        "7X8PvLJtqJPsgMhyAIeChTOi4VIWg0wjx91gKNVFoRYsVuo8jMNQkTD4STjKF2iYQ5vtMQAnS-rKbknotDjJybI",
    ),
    (
        "::",  # IPv6 all zeros: still a full-size token
        "e2.etest.gEHFoCwp4JFqfuC47iEvmA."
        "WpP_kHfeFR-tgcJgq_udXaF7F0VkdZ5KrGD3a_Zy5EnNuZLySXQ1V9XD9pZcQmBv0xc-UgaDSuEK1TpJsQN6WC8",
    ),
    (
        "2001:db8::1",  # IPv6 (documentation)
        "e2.etest.ki5BxlpBAtMG-29G5IV9pg."
        "hfupBaoC3KeC9XghL8slpniPkxSFNm5LHAoz6lrekBLdgB0sxzuGBC4IjvjYoCSDm9Yghz27XKizBy4Wfg1qrFE",
    ),
]


@pytest.mark.parametrize(("address", "token"), KNOWN_ANSWERS)
def test_known_answer_opens(address: str, token: str) -> None:
    """Pinned tokens: a change of framing, info, tag or encoding breaks this on purpose."""
    assert packed_to_text(open_escrow([_private()], token)) == address


@pytest.mark.parametrize(("address", "token"), KNOWN_ANSWERS)
def test_known_answer_tag(address: str, token: str) -> None:
    """The tag is deterministic: sealing the address again gives the pinned tag (and a fresh sealed part)."""
    again = _escrow().seal(_packed(address))
    assert again.split(".")[:3] == token.split(".")[:3]
    assert again != token


def test_known_public_key() -> None:
    assert _private().public_part().public_key == "j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8"


def test_module_examples_run() -> None:
    """The known answer in the module docstring is a doctest and stays true."""
    assert doctest.testmod(transforms.escrow).failed == 0


# --- what a worker holds cannot open ----------------------------------------------------------------------------


def test_a_workers_keyring_holds_nothing_that_opens_its_tokens() -> None:
    """Every 32-byte value in the keyring file, tried as the X25519 private key, fails to open a token."""
    private = generate_escrow_keypair()
    keyring = generate_keyring(escrow=private.public_part())
    token = IpEscrow(keyring.escrow_public_keys[-1]).seal(_packed("203.0.113.9"))
    dumped = dump_keyring(keyring).decode()
    candidates = {raw for text in re.findall(r"[A-Za-z0-9_-]{43}", dumped) if len(raw := _unb64(text)) == 32}
    assert len(candidates) >= 5  # chains, quarantine key, public key, tag key: the scan has something to try
    assert private.private_key.get_secret_value() not in dumped
    _, key_id, tag, sealed = token.split(".")
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    for raw in candidates:
        with pytest.raises(InvalidTag):
            suite.decrypt(_unb64(sealed), X25519PrivateKey.from_private_bytes(raw), info=_info(key_id, _unb64(tag)))
    assert packed_to_text(open_escrow([private], token)) == "203.0.113.9"


def test_the_sealer_holds_no_private_key() -> None:
    """The per-worker object keeps a public key and the tag key only."""
    held = vars(_escrow()).values()
    assert not any(isinstance(value, X25519PrivateKey) for value in held)
    assert any(isinstance(value, X25519PublicKey) for value in held)
    assert not hasattr(IpEscrow, "open")
    assert "private_key" not in EscrowPublicKey.model_fields


# --- tags, determinism and round trips ---------------------------------------------------------------------------

ADDRESSES = st.ip_addresses()


@given(ADDRESSES)
def test_same_address_same_tag_across_workers_but_a_fresh_sealed_part(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    """Two workers with the same key: equal tags (the team can group), different sealed parts (randomized)."""
    a, b = _escrow().seal(address.packed), _escrow().seal(address.packed)
    assert a.split(".")[2] == b.split(".")[2] == _escrow().tag(address.packed)
    assert a.split(".")[3] != b.split(".")[3]


@given(ADDRESSES, ADDRESSES)
def test_different_addresses_give_different_tags(
    a: ipaddress.IPv4Address | ipaddress.IPv6Address, b: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> None:
    escrow = _escrow()
    assert (escrow.tag(a.packed) == escrow.tag(b.packed)) == (a == b)


def test_the_tag_links_only_within_one_key_and_one_purpose() -> None:
    """The linkability horizon is the tag key's life: another key pair (another tag key) or context, another tag."""
    packed = _packed("203.0.113.9")
    base = _escrow().tag(packed)
    assert _escrow(_private(tag_key=bytes(32))).tag(packed) != base
    assert _escrow(_private(key_id="eother")).tag(packed) != base
    assert _escrow(context=b"pseudonymizer/v1/escrow/other").tag(packed) != base


@given(st.ip_addresses(v=4))
def test_ipv4_round_trips_to_dotted_text(address: ipaddress.IPv4Address) -> None:
    token = _escrow().seal(address.packed)
    assert packed_to_text(open_escrow([_private()], token)) == str(address)


@given(st.ip_addresses(v=6))
def test_ipv6_round_trips_to_rfc5952_text(address: ipaddress.IPv6Address) -> None:
    packed = open_escrow([_private()], _escrow().seal(address.packed))
    assert packed == address.packed  # 16 bytes back, even for ::ffff:a.b.c.d and ::a.b.c.d
    assert packed_to_text(packed) == str(address)


@given(ADDRESSES)
def test_token_length_does_not_reveal_the_family_and_never_holds_the_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    token = _escrow().seal(address.packed)
    assert len(token) == len("e2.etest.") + 22 + 1 + 87
    assert str(address) not in token


def test_opener_picks_the_key_named_by_the_token() -> None:
    """Rotation: old and new key pairs side by side, each token opens with its own."""
    old, new = _private(key_id="eold"), _private(bytes(range(100, 132)), key_id="enew")
    packed = _packed("198.51.100.7")
    opener = EscrowOpener([old, new])
    for key in (old, new):
        token = _escrow(key).seal(packed)
        assert token_key_id(token) == key.id
        assert opener.open(token) == packed


# --- legacy e1 tokens (AES-256-SIV, RFC 5297) still open --------------------------------------------------------


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


def test_the_siv_reference_reproduces_rfc5297_a1() -> None:
    v = RFC5297_A1
    assert AESSIV(v["key"]).encrypt(v["plaintext"], [v["ad"]]) == v["output"]
    assert _reference_siv(v["key"], [v["ad"]], v["plaintext"]) == v["output"]


# (address, e1 token pinned when the workers still sealed them, under TEST_LEGACY / "etest")
LEGACY_ANSWERS = [
    ("203.0.113.9", "e1.etest.oJ4-GxmbnU_TUK6njDsQwihkZjzO2VzQWm7rDoLtOzQE"),
    ("::", "e1.etest.A_ssxzPgLPxgKlInl4UdpC6aL7Pn1Y7cqoMpLLryHE27"),
    ("2001:db8::1", "e1.etest.8CcxGbR2xLQnR_bDIq5_XBbHtiTcsUG6H9B1fiF9TwwK"),
]


@pytest.mark.parametrize(("address", "token"), LEGACY_ANSWERS)
def test_legacy_e1_tokens_still_open_with_the_old_keyring_key(address: str, token: str) -> None:
    """Transition: tokens sealed before the switch open with the keyring's old symmetric key."""
    assert token == "e1.etest." + _b64(
        _reference_siv(TEST_LEGACY, [DEFAULT_CONTEXT, b"etest"], _frame(_packed(address)))
    )
    assert packed_to_text(open_escrow([], token, legacy_keys=[_legacy()])) == address
    assert packed_to_text(EscrowOpener([_private(key_id="enew")], legacy_keys=[_legacy()]).open(token)) == address


def test_legacy_token_with_a_wrong_key_or_relabelled_fails() -> None:
    _, token = LEGACY_ANSWERS[0]
    with pytest.raises(EscrowTokenError, match="authentication failed"):
        open_escrow([], token, legacy_keys=[_legacy(bytes(64))])
    with pytest.raises(EscrowTokenError, match="authentication failed"):
        open_escrow([], token.replace("e1.etest.", "e1.eother."), legacy_keys=[_legacy(key_id="eother")])


# --- failures: closed, typed, and without data ------------------------------------------------------------------

SECRET_IP = "203.0.113.9"
GOOD = _escrow().seal(_packed(SECRET_IP))
_, _, GOOD_TAG, GOOD_SEALED = GOOD.split(".")


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


@pytest.mark.parametrize("index", range(87))
def test_any_altered_sealed_character_is_refused(index: int) -> None:
    """Altered ciphertext or ephemeral key fails authentication (the last character's spare bits: malformed)."""
    with pytest.raises(EscrowTokenError, match=r"authentication failed|malformed") as caught:
        open_escrow([_private()], f"e2.etest.{GOOD_TAG}.{_flip(GOOD_SEALED, index)}")
    assert SECRET_IP not in str(caught.value)


@pytest.mark.parametrize("index", range(22))
def test_any_altered_tag_character_is_refused(index: int) -> None:
    """The tag is bound into the HPKE info: moving a token into another group is detected."""
    with pytest.raises(EscrowTokenError, match=r"authentication failed|malformed"):
        open_escrow([_private()], f"e2.etest.{_flip(GOOD_TAG, index)}.{GOOD_SEALED}")


def test_a_tag_taken_from_another_token_is_refused() -> None:
    other_tag = _escrow().tag(_packed("198.51.100.7"))
    with pytest.raises(EscrowTokenError, match="authentication failed"):
        open_escrow([_private()], f"e2.etest.{other_tag}.{GOOD_SEALED}")


def test_a_sealer_that_writes_a_wrong_tag_is_caught_on_opening() -> None:
    """A hostile sealer (it holds the public key) binds another address's tag: authentic, yet refused."""
    wrong_tag = _unb64(_escrow().tag(_packed("198.51.100.7")))
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    public = X25519PrivateKey.from_private_bytes(TEST_PRIVATE).public_key()
    sealed = suite.encrypt(_frame(_packed(SECRET_IP)), public, info=_info("etest", wrong_tag))
    with pytest.raises(EscrowTokenError, match="tag does not match") as caught:
        open_escrow([_private()], f"e2.etest.{_b64(wrong_tag)}.{_b64(sealed)}")
    assert SECRET_IP not in str(caught.value)


# (token, why it must be rejected)
MALFORMED = [
    ("", "empty"),
    ("e2.etest", "two parts"),
    (f"e2.etest.{GOOD_SEALED}", "three parts: no tag"),
    (f"e3.etest.{GOOD_TAG}.{GOOD_SEALED}", "unknown format version"),
    (f"e1.etest.{GOOD_TAG}.{GOOD_SEALED}", "e1 has three parts"),
    (f"e2.etest.{GOOD_TAG}.{GOOD_SEALED}.x", "five parts"),
    (f"e2..{GOOD_TAG}.{GOOD_SEALED}", "empty key id"),
    (f"e2.e:test.{GOOD_TAG}.{GOOD_SEALED}", "key id outside the id alphabet"),
    (f"e2.etest.{GOOD_TAG}.{GOOD_SEALED[:-1]}", "sealed part one character short"),
    (f"e2.etest.{GOOD_TAG[:-1]}.{GOOD_SEALED}", "tag one character short"),
    (f"e2.etest.{GOOD_TAG}.{GOOD_SEALED}=", "padding is not part of the format"),
    # A "+" for sure: the sealed part is random and need not hold a "-" or "_" to swap (it failed once so in CI).
    (f"e2.etest.{GOOD_TAG}.+{GOOD_SEALED[1:]}", "standard base64, not base64url"),
    ("e2.etest." + "A" * 100_000, "oversized"),
]


@pytest.mark.parametrize(("token", "why"), MALFORMED)
def test_malformed_tokens_are_rejected(token: str, why: str) -> None:
    with pytest.raises(EscrowTokenError, match="malformed") as caught:
        open_escrow([_private()], token)
    assert SECRET_IP not in str(caught.value)


def test_wrong_private_key_under_the_same_id_fails_authentication() -> None:
    with pytest.raises(KeyringError, match="authentication failed") as caught:
        open_escrow([_private(bytes(range(1, 33)))], GOOD)
    assert SECRET_IP not in str(caught.value)


def test_relabelled_key_id_fails_authentication() -> None:
    """The key id is in the HPKE info: moving a token to another id (same key pair) is detected."""
    with pytest.raises(EscrowTokenError, match="authentication failed"):
        open_escrow([_private(key_id="eother")], GOOD.replace("e2.etest.", "e2.eother."))


def test_wrong_context_fails_authentication() -> None:
    with pytest.raises(EscrowTokenError, match="authentication failed"):
        open_escrow([_private()], GOOD, context=b"pseudonymizer/v1/escrow/user")


def test_unknown_key_id_is_reported_by_id_only() -> None:
    """A key whose private file is not at hand: the error says which key, nothing else."""
    with pytest.raises(UnknownEscrowKey, match="'etest'") as caught:
        open_escrow([_private(key_id="enew")], GOOD)
    assert isinstance(caught.value, KeyringError)
    assert SECRET_IP not in str(caught.value)


def test_duplicate_key_ids_are_refused_across_kinds() -> None:
    with pytest.raises(KeyringError, match="duplicate key id"):
        EscrowOpener([_private(), _private(bytes(range(1, 33)))])
    with pytest.raises(KeyringError, match="duplicate key id"):
        EscrowOpener([_private()], legacy_keys=[_legacy()])


@pytest.mark.parametrize("context", [b"", b"with\x00nul"])
def test_bad_context_is_a_configuration_error(context: bytes) -> None:
    with pytest.raises(ConfigError, match="context"):
        _escrow(context=context)


def test_seal_refuses_anything_but_4_or_16_bytes() -> None:
    with pytest.raises(ValueError, match="4 or 16 bytes"):
        _escrow().seal(b"\x01\x02\x03\x04\x05")


# --- keys ---------------------------------------------------------------------------------------------------------


def test_secrets_never_appear_in_repr_str_or_model_dump() -> None:
    private, legacy = _private(), _legacy()
    public = private.public_part()
    secrets_ = [
        private.private_key.get_secret_value(),
        private.tag_key.get_secret_value(),
        legacy.secret.get_secret_value(),
    ]
    shown = [repr(private), str(private), private.model_dump_json(), repr(public), public.model_dump_json()]
    shown += [repr(legacy), repr(_escrow()), repr(EscrowOpener([private], legacy_keys=[_legacy(key_id="eold")]))]
    for text in shown:
        for secret in secrets_:
            assert secret not in text
    assert "**********" in repr(private)


def test_generated_key_pairs_are_random_with_distinct_ids() -> None:
    now = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    a, b = generate_escrow_keypair(now), generate_escrow_keypair(now)
    assert a.private_key.get_secret_value() != b.private_key.get_secret_value()
    assert a.tag_key.get_secret_value() != b.tag_key.get_secret_value()
    assert a.id != b.id
    assert re.fullmatch(r"e20260304-[0-9a-f]{4}", a.id)
    assert a.created == now
    public = a.public_part()
    assert (public.id, public.tag_key) == (a.id, a.tag_key)


def test_private_key_file_round_trips_and_its_errors_never_echo_a_value() -> None:
    key = generate_escrow_keypair()
    assert parse_escrow_private_key(dump_escrow_private_key(key)) == key
    bad = orjson.loads(dump_escrow_private_key(key))
    bad["private_key"] = bad["private_key"][:-2]
    with pytest.raises(KeyringError, match="private_key") as caught:
        parse_escrow_private_key(orjson.dumps(bad))
    assert bad["private_key"] not in str(caught.value)


@pytest.mark.parametrize(
    ("model", "field", "value", "why"),
    [
        (EscrowKey, "secret", _b64(bytes(32)), "32 bytes is AES-128-SIV: refused, e1 used AES-256-SIV"),
        (EscrowKey, "secret", base64.urlsafe_b64encode(bytes(64)).decode(), "padded base64url"),
        (EscrowKey, "secret", "A" * 85 + "B", "non-canonical: the spare bits of the last character are set"),
        (EscrowPrivateKey, "private_key", _b64(bytes(31)), "an X25519 key has 32 bytes"),
        (EscrowPrivateKey, "tag_key", "not base64 at all!", "not base64url"),
        (EscrowPublicKey, "public_key", _b64(bytes(33)), "an X25519 key has 32 bytes"),
    ],
)
def test_invalid_key_material_is_refused_without_echoing_it(model: type, field: str, value: str, why: str) -> None:
    fields = {
        EscrowKey: {"secret": _b64(TEST_LEGACY)},
        EscrowPrivateKey: {"private_key": _b64(TEST_PRIVATE), "tag_key": _b64(TEST_TAG_KEY)},
        EscrowPublicKey: {"public_key": _b64(bytes(32)), "tag_key": _b64(TEST_TAG_KEY)},
    }[model]
    with pytest.raises(ValidationError) as caught:
        model(id="etest", created=T0, **{**fields, field: value})
    assert value not in str(caught.value)


def test_key_models_are_strict_and_frozen() -> None:
    with pytest.raises(ValidationError):
        EscrowKey(id="etest", created=T0, secret=SecretStr(_b64(TEST_LEGACY)), extra="x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        _private(key_id="e.test")  # "." would break the token format
    with pytest.raises(ValidationError):
        _private().id = "eother"  # type: ignore[misc]
    assert ESCROW_KEY_BYTES == 64


# --- text ---------------------------------------------------------------------------------------------------------


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
