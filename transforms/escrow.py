"""Escrow of the source address for the abuse topic, sealed to a public key: workers can seal, not open.

By default the security team sees only pseudonyms, which nobody can turn back into an address except by
guessing. Escrow is the opt-in exception: the abuse record carries the source address sealed to the
security team's *escrow public key*, and only the holder of the matching private key, kept offline by the
security team and never in a worker's keyring, can recover it with ``pseudonymizer reveal``, which writes an
audit entry for every record it reveals (see ``pipeline.reveal`` and ``pipeline.audit``).

Token format ``e2.<key id>.<tag>.<sealed>`` (base64url, unpadded):

* ``sealed`` is RFC 9180 HPKE in base mode, single-shot, with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
  AES-256-GCM (``cryptography.hazmat.primitives.hpke``): the ephemeral public key (32 bytes) followed by the
  AES-GCM ciphertext of the framed address (17 + 16 bytes). A fresh ephemeral key per token: two tokens of one
  address have different ``sealed`` parts.
* ``tag`` is the first 128 bits of HMAC-SHA256 under the key's *tag key* over ``[context, key id, frame]``. It is
  the one deterministic, linkable part: the security team groups tokens of one address by ``(key id, tag)``
  without opening them, as it did with the deterministic tokens of ``e1``.
* The HPKE ``info`` binds the purpose (``context``), the key id and the tag: a token cannot be opened as another
  kind of escrowed value, relabelled with another key's id, or given another token's tag (and so moved into
  another group) without failing authentication. The opener also recomputes the tag from the address (the
  private key file carries a copy of the tag key) and refuses a token whose tag does not match its address.
* Fixed length: the address is framed as a family byte (4 or 6) plus 16 bytes (IPv4 zero-padded), so every
  token of one key has the same length and does not even say IPv4 or IPv6.
* Each key pair has its own id and its own random tag key (not derived from the pseudonym chains or the
  quarantine keys), so rotating the escrow key rotates the tag key with it.

Threat model:

* **A compromised worker** (its keyring, its memory) holds the public key and the tag key. It can seal new
  tokens, and it can *confirm a guess*: compute the tag of a candidate address and compare, which for IPv4 means
  enumerating the whole space, exactly as it already can with the security pseudonym keys. It cannot open a
  token, so for IPv6 and for addresses it has not seen it learns nothing from the abuse topic. (It sees the
  addresses it processes while it is compromised anyway.)
* **The security team's private key file** opens every token sealed to its public key. It is written once,
  0600, by ``keys escrow-rotate --private-key-out`` and belongs offline (a hardware token, an offline
  machine, a secrets vault): whoever holds it can reveal without an audit entry, since the audit is kept by the
  ``reveal`` tool, not by the cryptography.
* **Linkability horizon** is the tag key's lifetime, i.e. the escrow key's: within one key, equal tags mean
  equal addresses; across keys nothing links. Rotate the escrow key at least as often as the security epoch
  (30 days), or the tag becomes a longer-lived identifier than the pseudonym it accompanies.
* Never put escrow tokens in the analytics output, nor use them for analytics or joins.
* **Destroying** an escrow key in the keyring (``keys escrow-destroy``) stops sealing under it and deletes its
  tag key; its tokens stay openable by whoever holds the private key file. Crypto-shredding them means deleting
  every copy of that file: the security team's to do.

Legacy ``e1`` tokens (deterministic AES-256-SIV under a symmetric key held by the workers) still *open*, for a
transition, with the old keys left in the keyring (``reveal --keys``); this module no longer seals them. Once
the old tokens have expired from the abuse topic, destroy the ``e1`` keys: while they stay in a worker's
keyring, a compromised worker can open every ``e1`` token.

Known answer (fixed test keys, never to be used for anything else). Sealing is randomized, so the pinned
example opens a token rather than sealing one:

>>> private = EscrowPrivateKey(id="etest", created=datetime(2000, 1, 1, tzinfo=UTC),
...     private_key=SecretStr(_b64(bytes(range(32)))), tag_key=SecretStr(_b64(bytes(range(32, 64)))))
>>> escrow = IpEscrow(private.public_part())
>>> escrow.tag(bytes([203, 0, 113, 9]))
'46sbTjulWZmW7DA4kBhKwA'
>>> token = escrow.seal(bytes([203, 0, 113, 9]))
>>> token.startswith("e2.etest.46sbTjulWZmW7DA4kBhKwA.") and len(token) == len("e2.etest.") + 22 + 1 + 87
True
>>> packed_to_text(EscrowOpener([private]).open(token))
'203.0.113.9'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from transforms.errors import ConfigError, KeyringError

__all__ = [
    "DEFAULT_CONTEXT",
    "ESCROW_FORMAT",
    "ESCROW_KEY_BYTES",
    "LEGACY_FORMAT",
    "PRIVATE_KEY_FORMAT",
    "EscrowKey",
    "EscrowOpener",
    "EscrowPrivateKey",
    "EscrowPublicKey",
    "EscrowTokenError",
    "IpEscrow",
    "UnknownEscrowKey",
    "dump_escrow_private_key",
    "generate_escrow_keypair",
    "open_escrow",
    "packed_to_text",
    "parse_escrow_private_key",
    "token_key_id",
]

ESCROW_FORMAT = "e2"
LEGACY_FORMAT = "e1"
PRIVATE_KEY_FORMAT: Literal["pseudonymizer-escrow-private-key/1"] = "pseudonymizer-escrow-private-key/1"
DEFAULT_CONTEXT = b"pseudonymizer/v1/escrow/ip"
ESCROW_KEY_BYTES = 64  # e1 (legacy) AES-256-SIV: a 256-bit MAC key and a 256-bit CTR key
X25519_BYTES = 32
TAG_KEY_BYTES = 32

# RFC 9180: DHKEM(X25519, HKDF-SHA256) = 0x0020, HKDF-SHA256 = 0x0001, AES-256-GCM = 0x0002.
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_INFO_LABEL = b"pseudonymizer/escrow/e2"

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_FRAME_BYTES = 17  # family byte + 16 address bytes
_TAG_BYTES = 16  # 128 bits: no collision among the addresses of a key's lifetime
_TAG_CHARS = 22  # base64url, unpadded, of 16 bytes
_SEALED_CHARS = 87  # base64url, unpadded, of 32 (ephemeral key) + 17 (frame) + 16 (GCM tag) bytes
_LEGACY_CIPHERTEXT_CHARS = 44  # base64url, unpadded, of 16 + 17 bytes
_MAX_TOKEN_CHARS = len(ESCROW_FORMAT) + 1 + 32 + 1 + _TAG_CHARS + 1 + _SEALED_CHARS


class EscrowTokenError(KeyringError):
    """A token is malformed or fails authentication (wrong key, wrong context, altered). Carries no data."""


class UnknownEscrowKey(KeyringError):
    """A token names an escrow key that is not at hand: destroyed (shredded), or from another keyring."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes | None:
    """Strict base64url (no padding, canonical): None otherwise, so one value has exactly one spelling."""
    if not _B64URL.fullmatch(text):
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _b64(raw) == text else None


def _checked(value: str, size: int, what: str) -> str:
    raw = _unb64(value)
    if raw is None or len(raw) != size:
        raise ValueError(f"{what} must be {size} bytes, base64url without padding")
    return value


def _material(secret: SecretStr | str) -> bytes:
    raw = _unb64(secret.get_secret_value() if isinstance(secret, SecretStr) else secret)
    if raw is None:  # unreachable after validation; kept so that a bad key can never be used
        raise KeyringError("escrow key: invalid key material")
    return raw


# hide_input_in_errors: a validation error must not echo what was passed for a secret.
_KEY_CONFIG = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)
_KeyId = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")


class EscrowPublicKey(BaseModel):
    """What a worker holds to seal: the recipient's X25519 public key and the tag key, under one id.

    The public key is not secret; the tag key is (with it, a guessed address can be confirmed), and prints masked.
    """

    model_config = _KEY_CONFIG

    id: str = _KeyId
    created: datetime
    public_key: str
    tag_key: SecretStr

    @field_validator("public_key")
    @classmethod
    def _is_public_key(cls, value: str) -> str:
        return _checked(value, X25519_BYTES, "escrow public key")

    @field_validator("tag_key")
    @classmethod
    def _is_tag_key(cls, value: SecretStr) -> SecretStr:
        _checked(value.get_secret_value(), TAG_KEY_BYTES, "escrow tag key")
        return value


class EscrowPrivateKey(BaseModel):
    """The security team's half: the X25519 private key (and a copy of the tag key, to check tags on opening).

    Lives in its own file (0600, kept offline), never in a worker's keyring. ``repr``/``str`` print it masked.
    """

    model_config = _KEY_CONFIG

    format: Literal["pseudonymizer-escrow-private-key/1"] = PRIVATE_KEY_FORMAT
    id: str = _KeyId
    created: datetime
    private_key: SecretStr
    tag_key: SecretStr

    @field_validator("private_key")
    @classmethod
    def _is_private_key(cls, value: SecretStr) -> SecretStr:
        _checked(value.get_secret_value(), X25519_BYTES, "escrow private key")
        return value

    @field_validator("tag_key")
    @classmethod
    def _is_tag_key(cls, value: SecretStr) -> SecretStr:
        _checked(value.get_secret_value(), TAG_KEY_BYTES, "escrow tag key")
        return value

    def public_part(self) -> EscrowPublicKey:
        """The public key and tag key that go into the workers' keyring."""
        private = X25519PrivateKey.from_private_bytes(_material(self.private_key))
        return EscrowPublicKey(
            id=self.id,
            created=self.created,
            public_key=_b64(private.public_key().public_bytes_raw()),
            tag_key=self.tag_key,
        )


class EscrowKey(BaseModel):
    """A legacy (``e1``) AES-256-SIV key (64 bytes, base64url): opens old tokens, seals nothing any more."""

    model_config = _KEY_CONFIG

    id: str = _KeyId
    created: datetime
    secret: SecretStr

    @field_validator("secret")
    @classmethod
    def _is_key(cls, value: SecretStr) -> SecretStr:
        _checked(value.get_secret_value(), ESCROW_KEY_BYTES, "escrow key")
        return value

    def material(self) -> bytes:
        """The raw key bytes (validated at construction)."""
        return _material(self.secret)


def generate_escrow_keypair(now: datetime | None = None) -> EscrowPrivateKey:
    """Draw a fresh key pair and tag key; ``.public_part()`` is what the keyring gets.

    The id is the creation date plus a random suffix (two rotations a day differ).
    """
    now = now or datetime.now(UTC)
    return EscrowPrivateKey(
        id=f"e{now:%Y%m%d}-{secrets.token_hex(2)}",
        created=now,
        private_key=SecretStr(_b64(X25519PrivateKey.generate().private_bytes_raw())),
        tag_key=SecretStr(_b64(secrets.token_bytes(TAG_KEY_BYTES))),
    )


def parse_escrow_private_key(data: bytes | str) -> EscrowPrivateKey:
    """Validate a private key file's JSON. Errors name the field, never echo a value."""
    try:
        return EscrowPrivateKey.model_validate_json(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) or "(root)" for err in exc.errors()})
        raise KeyringError(f"escrow private key file is invalid at: {', '.join(fields)}") from None


def dump_escrow_private_key(key: EscrowPrivateKey) -> bytes:
    """Serialize with the secrets revealed: only for writing the 0600 private key file."""
    payload = key.model_dump(mode="json")
    payload["private_key"] = key.private_key.get_secret_value()
    payload["tag_key"] = key.tag_key.get_secret_value()
    return orjson.dumps(payload, option=orjson.OPT_INDENT_2) + b"\n"


def _frame(packed: bytes) -> bytes:
    if len(packed) == 4:
        return b"\x04" + packed + b"\x00" * 12
    if len(packed) == 16:
        return b"\x06" + packed
    raise ValueError("escrow: a packed address has 4 or 16 bytes")


def _unframe(frame: bytes) -> bytes | None:
    if len(frame) != _FRAME_BYTES:
        return None
    if frame[0] == 4 and frame[5:] == b"\x00" * 12:
        return frame[1:5]
    if frame[0] == 6:
        return frame[1:]
    return None


def _check_context(context: bytes) -> None:
    if not context or b"\x00" in context:
        raise ConfigError("escrow: context must be non-empty, without NUL bytes (it binds tokens to their purpose)")


def _tag(tag_key: bytes, context: bytes, key_id: str, frame: bytes) -> bytes:
    # NUL-separated: neither the context nor a key id can hold a NUL, so the encoding is unambiguous.
    message = context + b"\x00" + key_id.encode("ascii") + b"\x00" + frame
    return hmac.new(tag_key, message, hashlib.sha256).digest()[:_TAG_BYTES]


def _info(context: bytes, key_id: str, tag: bytes) -> bytes:
    return _INFO_LABEL + b"\x00" + context + b"\x00" + key_id.encode("ascii") + b"\x00" + tag


class IpEscrow:
    """Seals packed addresses to one escrow public key. Build once per worker; ``seal`` per event.

    Holds no private key: nothing built from a worker's keyring can open what it seals.
    """

    def __init__(self, key: EscrowPublicKey, *, context: bytes = DEFAULT_CONTEXT) -> None:
        _check_context(context)
        self.key_id = key.id
        self._context = context
        self._prefix = f"{ESCROW_FORMAT}.{key.id}."
        self._recipient = X25519PublicKey.from_public_bytes(_material(key.public_key))
        self._tag_key = _material(key.tag_key)

    def __repr__(self) -> str:
        return f"IpEscrow(key_id={self.key_id!r})"

    def tag(self, packed: bytes) -> str:
        """The linkable part of a token: equal addresses, equal tags, under one key."""
        return _b64(_tag(self._tag_key, self._context, self.key_id, _frame(packed)))

    def seal(self, packed: bytes) -> str:
        """``e2.<key id>.<tag>.<sealed>``; ``packed`` is 4 or 16 bytes (``ParsedIP.packed``).

        About 80 us (one X25519 key generation and agreement): abuse events only, never analytics.
        """
        frame = _frame(packed)
        tag = _tag(self._tag_key, self._context, self.key_id, frame)
        sealed = _SUITE.encrypt(frame, self._recipient, info=_info(self._context, self.key_id, tag))
        return f"{self._prefix}{_b64(tag)}.{_b64(sealed)}"


def token_key_id(token: str) -> str:
    """The key id a token names (public information), or ``EscrowTokenError`` if the token is malformed."""
    return _split(token)[1]


def _split(token: str) -> tuple[str, str, bytes, bytes]:
    """``(format, key id, tag, sealed)``; for ``e1`` the tag is empty and ``sealed`` is the SIV ciphertext."""
    # Length first: a hostile multi-megabyte "token" is rejected before any splitting or decoding.
    if len(token) > _MAX_TOKEN_CHARS:
        raise EscrowTokenError("escrow token: malformed")
    parts = token.split(".")
    if len(parts) == 4 and parts[0] == ESCROW_FORMAT and _KEY_ID.fullmatch(parts[1]):
        tag = _unb64(parts[2]) if len(parts[2]) == _TAG_CHARS else None
        sealed = _unb64(parts[3]) if len(parts[3]) == _SEALED_CHARS else None
        if tag is not None and sealed is not None:
            return ESCROW_FORMAT, parts[1], tag, sealed
    elif len(parts) == 3 and parts[0] == LEGACY_FORMAT and _KEY_ID.fullmatch(parts[1]):
        ciphertext = _unb64(parts[2]) if len(parts[2]) == _LEGACY_CIPHERTEXT_CHARS else None
        if ciphertext is not None:
            return LEGACY_FORMAT, parts[1], b"", ciphertext
    raise EscrowTokenError("escrow token: malformed")


_AUTH_FAILED = "escrow token: authentication failed (wrong key or context, or altered token)"


class EscrowOpener:
    """Opens tokens with whichever key each names. Build once (checks the keys), then ``open`` per token.

    ``private_keys`` open ``e2`` tokens; ``legacy_keys`` (the keyring's old symmetric keys) open ``e1`` tokens.
    """

    def __init__(
        self,
        private_keys: Sequence[EscrowPrivateKey] = (),
        *,
        legacy_keys: Sequence[EscrowKey] = (),
        context: bytes = DEFAULT_CONTEXT,
    ) -> None:
        _check_context(context)
        self._context = context
        self._private: dict[str, tuple[X25519PrivateKey, bytes]] = {}
        self._legacy: dict[str, AESSIV] = {}
        for key in private_keys:
            self._refuse_duplicate(key.id)
            self._private[key.id] = (
                X25519PrivateKey.from_private_bytes(_material(key.private_key)),
                _material(key.tag_key),
            )
        for legacy in legacy_keys:
            self._refuse_duplicate(legacy.id)
            self._legacy[legacy.id] = AESSIV(legacy.material())

    def _refuse_duplicate(self, key_id: str) -> None:
        if key_id in self._private or key_id in self._legacy:
            # Two keys under one id would make "which key sealed this?" ambiguous.
            raise KeyringError(f"escrow keys: duplicate key id {key_id!r}")

    def __repr__(self) -> str:
        return f"EscrowOpener(key_ids={sorted(self.key_ids)!r})"

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._private) | frozenset(self._legacy)

    def open(self, token: str) -> bytes:
        """The packed address (4 or 16 bytes). Raises a ``KeyringError`` subclass, never echoing the token."""
        version, key_id, tag, sealed = _split(token)
        if version == LEGACY_FORMAT:
            frame = self._open_legacy(key_id, sealed)
        else:
            keys = self._private.get(key_id)
            if keys is None:
                raise _unknown(key_id)
            private, tag_key = keys
            try:
                frame = _SUITE.decrypt(sealed, private, info=_info(self._context, key_id, tag))
            except (InvalidTag, ValueError):
                raise EscrowTokenError(_AUTH_FAILED) from None
            if len(frame) == _FRAME_BYTES and not hmac.compare_digest(_tag(tag_key, self._context, key_id, frame), tag):
                # Authentic, so sealed by a holder of the public key, but its tag groups it with another address.
                raise EscrowTokenError("escrow token: its tag does not match its address (a faulty or hostile sealer)")
        packed = _unframe(frame)
        if packed is None:  # authentic but not a frame this module writes: another tool's value
            raise EscrowTokenError("escrow token: authentication failed (not an escrowed address)")
        return packed

    def _open_legacy(self, key_id: str, ciphertext: bytes) -> bytes:
        siv = self._legacy.get(key_id)
        if siv is None:
            raise _unknown(key_id)
        try:
            return siv.decrypt(ciphertext, [self._context, key_id.encode("ascii")])
        except (InvalidTag, ValueError):
            raise EscrowTokenError(_AUTH_FAILED) from None


def _unknown(key_id: str) -> UnknownEscrowKey:
    # The id matched the key-id pattern (no dots or colons), so quoting it cannot quote an address.
    return UnknownEscrowKey(f"escrow token: no escrow key with id {key_id!r} at hand (destroyed, or another key file)")


def open_escrow(
    private_keys: Sequence[EscrowPrivateKey],
    token: str,
    *,
    legacy_keys: Sequence[EscrowKey] = (),
    context: bytes = DEFAULT_CONTEXT,
) -> bytes:
    """Open one token with the key it names. For many tokens, build an :class:`EscrowOpener` once.

    Raises :class:`UnknownEscrowKey` or :class:`EscrowTokenError` (both ``KeyringError``), without data.
    """
    return EscrowOpener(private_keys, legacy_keys=legacy_keys, context=context).open(token)


def packed_to_text(packed: bytes) -> str:
    """Dotted quad for 4 bytes, RFC 5952 text for 16 (as ``ipaddress`` and ``ParsedIP.text`` write it)."""
    if len(packed) == 4:
        return str(ipaddress.IPv4Address(packed))
    if len(packed) == 16:
        return str(ipaddress.IPv6Address(packed))
    raise ValueError("escrow: a packed address has 4 or 16 bytes")
