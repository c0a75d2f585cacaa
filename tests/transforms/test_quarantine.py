"""Quarantine sealing: the payload is recoverable with the key and only with the key, never in clear."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.transforms.keyfixtures import fixed_keyring
from transforms.errors import KeyringError
from transforms.keyring import generate_keyring
from transforms.quarantine import QuarantineSealer, associated_data, quarantine_record, unseal

PAYLOAD = b'{"source.ip": "203.0.113.9", "user.email": "alice@example.com"'


def _record(payload: bytes = PAYLOAD) -> dict[str, object]:
    keyring = fixed_keyring()
    return quarantine_record(
        reason="invalid_json",
        field=None,
        topic="logs.raw",
        partition=3,
        offset=41,
        ingest_time="2026-01-01T00:00:00.000000Z",
        payload=payload,
        sealer=QuarantineSealer(keyring.quarantine_key()),
    )


def test_quarantine_record_holds_no_plaintext() -> None:
    text = orjson.dumps(_record()).decode()
    assert "203.0.113.9" not in text
    assert "alice@example.com" not in text
    assert '"reason":"invalid_json"' in text


def test_sealed_payload_opens_with_the_key_and_its_source_coordinates() -> None:
    record = _record()
    envelope = record["payload"]
    assert isinstance(envelope, dict)
    assert unseal(fixed_keyring(), envelope, associated_data("logs.raw", 3, 41)) == PAYLOAD


@pytest.mark.parametrize(
    ("keyring_factory", "aad"),
    [
        (generate_keyring, associated_data("logs.raw", 3, 41)),  # another keyring's key: rejected
        (fixed_keyring, associated_data("logs.raw", 3, 42)),  # moved to another offset: rejected
    ],
)
def test_unseal_fails_closed(keyring_factory, aad) -> None:  # type: ignore[no-untyped-def]
    envelope = _record()["payload"]
    assert isinstance(envelope, dict)
    keyring = keyring_factory()
    if keyring_factory is generate_keyring:
        envelope = {**envelope, "kid": keyring.quarantine_key().id}
    with pytest.raises(KeyringError, match="authentication failed") as caught:
        unseal(keyring, envelope, aad)
    assert "203.0.113.9" not in str(caught.value)


@given(st.binary(max_size=2048))
def test_any_payload_round_trips(payload: bytes) -> None:
    sealer = QuarantineSealer(fixed_keyring().quarantine_key())
    aad = associated_data("t", 0, 1)
    assert unseal(fixed_keyring(), sealer.seal(payload, aad), aad) == payload
