"""Sealing quarantined payloads: AES-256-GCM under a quarantine key from the keyring.

Bad input must never be silently lost, yet the quarantine topic must not become a plaintext copy of
the personal data the pipeline exists to remove. The original payload is therefore sealed; the
envelope names the key id, and the record's source coordinates are bound in as associated data so
a sealed payload cannot be moved onto another record's metadata unnoticed.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from transforms.errors import KeyringError
from transforms.keyring import Keyring, SymmetricKey

ALGORITHM = "A256GCM"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def associated_data(topic: str, partition: int, offset: int) -> bytes:
    return f"{topic}/{partition}/{offset}".encode()


class QuarantineSealer:
    """Seals payloads under one key. Random 96-bit nonces: rotate the key well before 2**32 records."""

    def __init__(self, key: SymmetricKey) -> None:
        self.key_id = key.id
        self._aead = AESGCM(key.material())

    def seal(self, payload: bytes, aad: bytes) -> dict[str, str]:
        nonce = os.urandom(12)
        return {
            "alg": ALGORITHM,
            "kid": self.key_id,
            "nonce": _b64(nonce),
            "ct": _b64(self._aead.encrypt(nonce, payload, aad)),
        }


def unseal(keyring: Keyring, envelope: dict[str, str], aad: bytes) -> bytes:
    """Decrypt a sealed payload. Raises ``KeyringError`` (without data) when the key or tag is wrong."""
    if envelope.get("alg") != ALGORITHM:
        raise KeyringError("quarantine envelope: unsupported algorithm")
    key = keyring.quarantine_key(envelope.get("kid"))
    try:
        return AESGCM(key.material()).decrypt(
            base64.b64decode(envelope["nonce"]), base64.b64decode(envelope["ct"]), aad
        )
    except (InvalidTag, KeyError, ValueError):
        raise KeyringError("quarantine envelope: authentication failed (wrong key or altered record)") from None


def quarantine_record(
    *,
    reason: str,
    field: str | None,
    topic: str,
    partition: int,
    offset: int,
    ingest_time: str,
    payload: bytes,
    sealer: QuarantineSealer,
) -> dict[str, object]:
    """The quarantine topic's record: reason code, source coordinates, sealed original payload."""
    return {
        "schema": "quarantine/1",
        "reason": reason,
        "field": field,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "ingest_time": ingest_time,
        "size": len(payload),
        "payload": sealer.seal(payload, associated_data(topic, partition, offset)),
    }
