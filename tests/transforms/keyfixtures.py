"""A fixed test keyring: known-answer tests need keys that never change (never use these anywhere else)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from pydantic import SecretStr

from transforms.keyring import KEYRING_FORMAT, Keyring, Purpose, PurposeChain, SymmetricKey

T0 = datetime(2000, 1, 1, tzinfo=UTC)


def _key(byte: int) -> SecretStr:
    return SecretStr(base64.urlsafe_b64encode(bytes([byte]) * 32).decode().rstrip("="))


def fixed_keyring(*, analytics_epoch: int = 10957, security_epoch: int = 365) -> Keyring:
    """Chains start at 2000-01-01 (daily epoch 10957, 30-day epoch 365)."""
    return Keyring(
        format=KEYRING_FORMAT,
        id="testkeys",
        created=T0,
        chains={
            Purpose.ANALYTICS: PurposeChain(period_s=86_400, epoch=analytics_epoch, secret=_key(1)),
            Purpose.SECURITY: PurposeChain(period_s=30 * 86_400, epoch=security_epoch, secret=_key(2)),
        },
        quarantine_keys=[SymmetricKey(id="qtest", created=T0, secret=_key(3))],
    )
