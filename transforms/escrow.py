"""Reversible escrow of the source address for the abuse topic: deterministic AES-256-SIV (RFC 5297).

By default the security team sees only pseudonyms, which nobody can turn back into an address except by
guessing. Escrow is the opt-in exception: the abuse record carries the source address encrypted under a
separate *escrow key*, and an operator who holds that key can recover it with ``pseudonymizer reveal``,
which writes an audit line for every record it reveals (see ``pipeline.reveal``).

Design (why it looks like this):

* **Deterministic on purpose.** AES-SIV without a nonce maps equal plaintexts to equal ciphertexts
  under one key, so the security team can still group escrow tokens without decrypting them. That is
  the *only* thing it leaks: SIV is a deterministic AEAD, so two tokens reveal whether their addresses
  are equal and nothing else, and any change to a token fails authentication.
* **Fixed length.** The address is framed as a family byte (4 or 6) plus 16 bytes (IPv4 zero-padded),
  so every token has the same length and the token by itself does not even say IPv4 or IPv6.
* **Associated data binds purpose and key id:** ``[context, key id]``. A token cannot be opened as
  another kind of escrowed value (another ``context``), nor relabelled with another key's id.
* **Separate, random keys.** Escrow keys are drawn at random (64 bytes: AES-256-SIV uses two 256-bit
  keys), not derived from the pseudonym chains or the quarantine keys: holding one kind of key tells
  nothing about the others.
* **Each token names its key id** (``e1.<key id>.<ciphertext>``), so escrow keys can rotate: keep old
  keys to reveal old tokens, seal with the newest.

Threat model and rules:

* Equality leaks by design, within one key. The *linkability horizon* of a token is therefore the
  lifetime of its key: a security pseudonym links one source only within its 30-day epoch, but an
  escrow token links it for as long as the key seals. Rotate the escrow key at least as often as the
  security epoch, or the token becomes a longer-lived identifier than the pseudonym it accompanies.
* Never put escrow tokens in the analytics output, and never use them for analytics or joins: they are
  a controlled path back to the address, not an identifier.
* The key is symmetric: whoever can seal can open. The workers hold the escrow key, so a compromised
  worker with access to the abuse topic can reveal every token sealed under the keys it holds. (With the
  pseudonym keys alone it could already confirm guesses and enumerate IPv4; escrow adds direct
  decryption, which matters most for IPv6.) The audit trail is kept by the ``reveal`` tool, not by the
  cryptography: anyone with the key can decrypt silently. Guard escrow keys like the keyring.
* Destroying an escrow key makes all of its tokens irreversible, for the operator too: crypto-shredding,
  as with the pseudonym chains. The tokens still show equality among themselves, like pseudonyms do.

Known answer (a fixed test key, never to be used for anything else; also checked against an independent
RFC 5297 implementation in the tests):

>>> key = EscrowKey(id="etest", created=datetime(2000, 1, 1, tzinfo=UTC), secret=SecretStr(_b64(bytes(range(64)))))
>>> token = IpEscrow(key).seal(bytes([203, 0, 113, 9]))
>>> token
'e1.etest.oJ4-GxmbnU_TUK6njDsQwihkZjzO2VzQWm7rDoLtOzQE'
>>> packed_to_text(open_escrow([key], token))
'203.0.113.9'
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from transforms.errors import ConfigError, KeyringError

__all__ = [
    "DEFAULT_CONTEXT",
    "ESCROW_FORMAT",
    "ESCROW_KEY_BYTES",
    "EscrowKey",
    "EscrowOpener",
    "EscrowTokenError",
    "IpEscrow",
    "UnknownEscrowKey",
    "generate_escrow_key",
    "open_escrow",
    "packed_to_text",
    "token_key_id",
]

ESCROW_KEY_BYTES = 64  # AES-256-SIV: a 256-bit MAC key and a 256-bit CTR key
ESCROW_FORMAT = "e1"
DEFAULT_CONTEXT = b"pseudonymizer/v1/escrow/ip"

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_FRAME_BYTES = 17  # family byte + 16 address bytes
_SIV_TAG_BYTES = 16
_CIPHERTEXT_CHARS = 44  # base64url, unpadded, of 16 + 17 bytes
_MAX_TOKEN_CHARS = len(ESCROW_FORMAT) + 1 + 32 + 1 + _CIPHERTEXT_CHARS


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


class EscrowKey(BaseModel):
    """A random AES-256-SIV key (64 bytes, base64url) with an id. ``repr``/``str`` print the secret masked.

    Not :class:`transforms.keyring.SymmetricKey`: that model insists on 32 bytes (AES-256-GCM), and
    AES-256-SIV needs 64.
    """

    # hide_input_in_errors: a validation error must not echo what was passed for the secret
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    created: datetime
    secret: SecretStr

    @field_validator("secret")
    @classmethod
    def _is_key(cls, value: SecretStr) -> SecretStr:
        raw = _unb64(value.get_secret_value())
        if raw is None or len(raw) != ESCROW_KEY_BYTES:
            raise ValueError(f"escrow key must be {ESCROW_KEY_BYTES} bytes, base64url without padding")
        return value

    def material(self) -> bytes:
        """The raw key bytes (validated at construction)."""
        raw = _unb64(self.secret.get_secret_value())
        if raw is None:  # unreachable after validation; kept so that a bad key can never be used
            raise KeyringError("escrow key: invalid secret")
        return raw


def generate_escrow_key(now: datetime | None = None) -> EscrowKey:
    """Draw a fresh escrow key. The id is the creation date plus a random suffix (two rotations a day differ)."""
    now = now or datetime.now(UTC)
    key_id = f"e{now:%Y%m%d}-{secrets.token_hex(2)}"
    return EscrowKey(id=key_id, created=now, secret=SecretStr(_b64(secrets.token_bytes(ESCROW_KEY_BYTES))))


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


def _associated_data(context: bytes, key_id: str) -> list[bytes]:
    return [context, key_id.encode("ascii")]


def _check_context(context: bytes) -> None:
    if not context:
        raise ConfigError("escrow: context must be non-empty (it binds tokens to their purpose)")


class IpEscrow:
    """Seals packed addresses under one escrow key. Build once per worker; ``seal`` per event."""

    def __init__(self, key: EscrowKey, *, context: bytes = DEFAULT_CONTEXT) -> None:
        _check_context(context)
        self.key_id = key.id
        self._prefix = f"{ESCROW_FORMAT}.{key.id}."
        self._siv = AESSIV(key.material())
        self._ad = _associated_data(context, key.id)

    def __repr__(self) -> str:
        return f"IpEscrow(key_id={self.key_id!r})"

    def seal(self, packed: bytes) -> str:
        """``e1.<key id>.<base64url ciphertext>``: equal addresses give equal tokens under one key.

        ``packed`` is 4 or 16 bytes (``ParsedIP.packed``, where ``::ffff:a.b.c.d`` is already IPv4).
        """
        return self._prefix + _b64(self._siv.encrypt(_frame(packed), self._ad))


def token_key_id(token: str) -> str:
    """The key id a token names (public information), or ``EscrowTokenError`` if the token is malformed."""
    return _split(token)[0]


def _split(token: str) -> tuple[str, bytes]:
    # Length first: a hostile multi-megabyte "token" is rejected before any splitting or decoding.
    if len(token) > _MAX_TOKEN_CHARS:
        raise EscrowTokenError("escrow token: malformed")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != ESCROW_FORMAT or not _KEY_ID.fullmatch(parts[1]):
        raise EscrowTokenError("escrow token: malformed")
    ciphertext = _unb64(parts[2]) if len(parts[2]) == _CIPHERTEXT_CHARS else None
    if ciphertext is None:
        raise EscrowTokenError("escrow token: malformed")
    return parts[1], ciphertext


class EscrowOpener:
    """Opens tokens with whichever of ``keys`` each names. Build once (checks the keys), then ``open`` per token."""

    def __init__(self, keys: Sequence[EscrowKey], *, context: bytes = DEFAULT_CONTEXT) -> None:
        _check_context(context)
        self._context = context
        self._sivs: dict[str, AESSIV] = {}
        for key in keys:
            if key.id in self._sivs:
                # Two keys under one id would make "which key sealed this?" ambiguous.
                raise KeyringError(f"escrow keys: duplicate key id {key.id!r}")
            self._sivs[key.id] = AESSIV(key.material())

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._sivs)

    def open(self, token: str) -> bytes:
        """The packed address (4 or 16 bytes). Raises a ``KeyringError`` subclass, never echoing the token."""
        key_id, ciphertext = _split(token)
        siv = self._sivs.get(key_id)
        if siv is None:
            # The id matched the key-id pattern (no dots or colons), so quoting it cannot quote an address.
            raise UnknownEscrowKey(f"escrow token: no escrow key with id {key_id!r} (destroyed, or another keyring)")
        try:
            frame = siv.decrypt(ciphertext, _associated_data(self._context, key_id))
        except (InvalidTag, ValueError):
            raise EscrowTokenError(
                "escrow token: authentication failed (wrong key or context, or altered token)"
            ) from None
        packed = _unframe(frame)
        if packed is None:  # authentic but not a frame this module writes: another tool's value
            raise EscrowTokenError("escrow token: authentication failed (not an escrowed address)")
        return packed


def open_escrow(keys: Sequence[EscrowKey], token: str, *, context: bytes = DEFAULT_CONTEXT) -> bytes:
    """Decrypt one token with the key it names. For many tokens, build an :class:`EscrowOpener` once.

    Raises :class:`UnknownEscrowKey` or :class:`EscrowTokenError` (both ``KeyringError``), without data.
    """
    return EscrowOpener(keys, context=context).open(token)


def packed_to_text(packed: bytes) -> str:
    """Dotted quad for 4 bytes, RFC 5952 text for 16 (as ``ipaddress`` and ``ParsedIP.text`` write it)."""
    if len(packed) == 4:
        return str(ipaddress.IPv4Address(packed))
    if len(packed) == 16:
        return str(ipaddress.IPv6Address(packed))
    raise ValueError("escrow: a packed address has 4 or 16 bytes")
