"""The keyring: per-purpose rotating HMAC keys with crypto-shredding, and the quarantine key.

Design (why it looks like this):

* A random 256-bit master secret is drawn once at generation and expanded with HKDF-SHA256 into one
  independent *chain root* per purpose (``analytics``, ``security``). The master is then discarded:
  keeping it would let anyone re-derive every epoch, which would make retention by key destruction
  impossible.
* Each purpose has a rotation period (daily for analytics, 30 days for security by default). Epoch
  ``n`` covers ``[n * period, (n + 1) * period)`` seconds since the Unix epoch, so epochs are chosen
  by *event* time and a replay of the same logs yields the same pseudonyms.
* The chain is a one-way ratchet: ``chain[n + 1] = HMAC(chain[n], "next")``. The keyring stores the
  chain state of the oldest retained epoch only. Every later epoch can be derived from it; no earlier
  one can. ``prune`` advances the stored state and thereby destroys (crypto-shreds) older epochs:
  after that nobody, the operator included, can recompute or look up their pseudonyms.
* The HMAC key of an epoch is ``HMAC(chain[n], "hmac")``, not the chain state itself, so a leaked
  per-epoch key does not reveal later epochs.
* Quarantined payloads are sealed with AES-256-GCM under separate random keys (not derived from the
  chains), so a quarantine key holder learns nothing about pseudonyms and vice versa. The newest quarantine
  key seals; older ones only open, until destroyed (``keys quarantine-rotate`` / ``quarantine-destroy``).
* Event ids (``transforms.event_id``) have a key of their own, ``event_id_key``, that never rotates: a replay
  after the pseudonym keys moved on must write the same ids. ``keys generate`` derives it from the master with
  HKDF like the chains. A keyring written before event ids existed has none: it is derived, when the keyring is
  read, from the security chain's stored state with HKDF (its own ``info``, so it reveals nothing about the
  chain), which every worker sharing the file derives alike. The next write of the file (``keys prune``, any
  ``*-rotate`` or ``*-destroy``) stores that derived key, so a prune that advances the security chain afterwards
  changes no id.
* Escrow: the keyring holds only the *public* half of each escrow key pair (and its tag key), so a worker
  can seal escrow tokens but not open them (``transforms.escrow``). Legacy ``e1`` escrow keys (symmetric) may
  remain in ``escrow_keys`` to open old tokens during a transition; nothing seals with them any more.

Secret material is held in ``SecretStr`` fields: ``repr``/``str`` of every model here print it masked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from transforms.errors import KeyringError
from transforms.escrow import EscrowKey, EscrowPublicKey

KEYRING_FORMAT: Literal["pseudonymizer-keyring/1"] = "pseudonymizer-keyring/1"
KEY_BYTES = 32
DAY_S = 86_400


class Purpose(StrEnum):
    """Why a pseudonym exists; each purpose has its own unlinkable key chain."""

    ANALYTICS = "analytics"
    SECURITY = "security"


DEFAULT_PERIODS_S: dict[Purpose, int] = {Purpose.ANALYTICS: DAY_S, Purpose.SECURITY: 30 * DAY_S}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str, what: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise KeyringError(f"keyring: {what} is not base64url") from None
    if len(raw) != KEY_BYTES:
        raise KeyringError(f"keyring: {what} must be {KEY_BYTES} bytes")
    return raw


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PurposeChain(_Frozen):
    """The ratchet state of one purpose: the chain key of ``epoch``, the oldest epoch still derivable."""

    period_s: int = Field(gt=0)
    epoch: int = Field(ge=0)
    secret: SecretStr

    @field_validator("secret")
    @classmethod
    def _is_key(cls, value: SecretStr) -> SecretStr:
        _unb64(value.get_secret_value(), "chain secret")
        return value


class SymmetricKey(_Frozen):
    """A random AES-256 key with an id (quarantine sealing)."""

    id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    created: datetime
    secret: SecretStr

    @field_validator("secret")
    @classmethod
    def _is_key(cls, value: SecretStr) -> SecretStr:
        _unb64(value.get_secret_value(), "symmetric key")
        return value

    def material(self) -> bytes:
        return _unb64(self.secret.get_secret_value(), "symmetric key")


class Keyring(_Frozen):
    """The keyring file's content. Validate with :func:`parse_keyring`; serialize with :func:`dump_keyring`."""

    format: Literal["pseudonymizer-keyring/1"]
    id: str = Field(min_length=4, max_length=16, pattern=r"^[a-z0-9]+$")
    created: datetime
    chains: dict[Purpose, PurposeChain]
    # Newest last: it seals; the older ones only open what they sealed, until destroyed.
    quarantine_keys: list[SymmetricKey] = Field(min_length=1)
    # Legacy e1 escrow keys (symmetric: whoever holds them opens e1 tokens). Kept only to open old tokens.
    escrow_keys: list[EscrowKey] = Field(default_factory=list)
    # Optional: escrow is off without them. Newest last; it seals (public half + tag key only).
    escrow_public_keys: list[EscrowPublicKey] = Field(default_factory=list)
    # Keys event ids (transforms.event_id); never rotates. Filled from the security chain when absent (see above).
    event_id_key: SecretStr

    @model_validator(mode="before")
    @classmethod
    def _event_id_key_of_older_keyrings(cls, data: Any) -> Any:
        # A keyring from before event ids: derive its key, as every reader of the same file will. When the
        # keyring is malformed, leave it: validation then names what is wrong.
        if not isinstance(data, dict) or data.get("event_id_key") is not None:
            return data
        derived = _event_id_key_from_security_chain(data)
        return data if derived is None else {**data, "event_id_key": derived}

    @field_validator("event_id_key")
    @classmethod
    def _is_event_id_key(cls, value: SecretStr) -> SecretStr:
        _unb64(value.get_secret_value(), "event id key")
        return value

    @field_validator("quarantine_keys")
    @classmethod
    def _unique_quarantine_ids(cls, value: list[SymmetricKey]) -> list[SymmetricKey]:
        # The envelope names its key by id: two keys under one id would open with the wrong one.
        ids = [k.id for k in value]
        if len(set(ids)) != len(ids):
            raise ValueError("quarantine key ids must be unique")
        return value

    @model_validator(mode="after")
    def _unique_escrow_ids(self) -> Keyring:
        # One namespace for both kinds: `keys escrow-destroy --id` must name exactly one key.
        ids = [k.id for k in self.escrow_keys] + [k.id for k in self.escrow_public_keys]
        if len(set(ids)) != len(ids):
            raise ValueError("escrow key ids must be unique")
        return self

    @field_validator("chains")
    @classmethod
    def _all_purposes(cls, value: dict[Purpose, PurposeChain]) -> dict[Purpose, PurposeChain]:
        missing = [p.value for p in Purpose if p not in value]
        if missing:
            raise ValueError(f"missing key chain for purpose(s): {', '.join(missing)}")
        return value

    def event_id_key_material(self) -> bytes:
        """The key of ``transforms.event_id.EventIds``."""
        return _unb64(self.event_id_key.get_secret_value(), "event id key")

    def quarantine_key(self, key_id: str | None = None) -> SymmetricKey:
        """The newest quarantine key, or the one named ``key_id``."""
        if key_id is None:
            return self.quarantine_keys[-1]
        for key in self.quarantine_keys:
            if key.id == key_id:
                return key
        raise KeyringError(f"keyring: no quarantine key with id {key_id!r}")


def _hkdf(secret: bytes, salt: str, info: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt.encode(), info=info.encode()).derive(secret)


def _event_id_key_from_security_chain(data: dict[str, Any]) -> str | None:
    """The event-id key (base64url) of a keyring written without one, from its security chain's stored state.

    None when the keyring is too malformed to derive it. A plain string, as the field is read from JSON.
    """
    keyring_id, chains = data.get("id"), data.get("chains")
    security = chains.get(Purpose.SECURITY.value) if isinstance(chains, dict) else None
    secret = security.get("secret") if isinstance(security, dict) else getattr(security, "secret", None)
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    if not isinstance(keyring_id, str) or not isinstance(secret, str):
        return None
    try:
        state = _unb64(secret, "chain secret")
    except KeyringError:
        return None
    return _b64(_hkdf(state, keyring_id, "pseudonymizer/v1/event-id/from-security-chain"))


def generate_quarantine_key(now: datetime | None = None) -> SymmetricKey:
    """A fresh random quarantine key; the id is the date plus a random suffix (two rotations a day differ)."""
    now = now or datetime.now(UTC)
    return SymmetricKey(
        id=f"q{now:%Y%m%d}-{secrets.token_hex(2)}", created=now, secret=SecretStr(_b64(os.urandom(KEY_BYTES)))
    )


def generate_keyring(
    *,
    now: datetime | None = None,
    valid_from: datetime = datetime(2000, 1, 1, tzinfo=UTC),
    periods_s: dict[Purpose, int] | None = None,
    escrow: EscrowPublicKey | None = None,
) -> Keyring:
    """Draw a fresh keyring. Epochs from ``valid_from`` on are derivable (older logs cannot be pseudonymized).

    ``escrow``: the public half of an escrow key pair (``transforms.escrow.generate_escrow_keypair``), whose
    private half the caller writes elsewhere; never the private half.
    """
    now = now or datetime.now(UTC)
    periods = {**DEFAULT_PERIODS_S, **(periods_s or {})}
    keyring_id = secrets.token_hex(4)
    master = os.urandom(KEY_BYTES)
    chains = {}
    for purpose, period in periods.items():
        root = _hkdf(master, keyring_id, f"pseudonymizer/v1/chain/{purpose.value}")
        first_epoch = int(valid_from.timestamp()) // period
        chains[purpose] = PurposeChain(period_s=period, epoch=first_epoch, secret=SecretStr(_b64(root)))
    event_id_key = SecretStr(_b64(_hkdf(master, keyring_id, "pseudonymizer/v1/event-id")))
    del master  # deliberately never stored: see the module docstring
    return Keyring(
        format=KEYRING_FORMAT,
        id=keyring_id,
        created=now,
        chains=chains,
        quarantine_keys=[generate_quarantine_key(now)],
        escrow_public_keys=[escrow] if escrow is not None else [],
        event_id_key=event_id_key,
    )


def parse_keyring(data: bytes | str) -> Keyring:
    """Validate keyring JSON. Errors name the field, never echo a value (it may be secret)."""
    try:
        return Keyring.model_validate_json(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) or "(root)" for err in exc.errors()})
        raise KeyringError(f"keyring is invalid at: {', '.join(fields)}") from None


def dump_keyring(keyring: Keyring) -> bytes:
    """Serialize with the secrets revealed: only for writing the 0600 keyring file."""
    payload = keyring.model_dump(mode="json")
    for name, chain in keyring.chains.items():
        payload["chains"][name.value]["secret"] = chain.secret.get_secret_value()
    for index, key in enumerate(keyring.quarantine_keys):
        payload["quarantine_keys"][index]["secret"] = key.secret.get_secret_value()
    for index, escrow_key in enumerate(keyring.escrow_keys):
        payload["escrow_keys"][index]["secret"] = escrow_key.secret.get_secret_value()
    for index, public_key in enumerate(keyring.escrow_public_keys):
        payload["escrow_public_keys"][index]["tag_key"] = public_key.tag_key.get_secret_value()
    payload["event_id_key"] = keyring.event_id_key.get_secret_value()
    return orjson.dumps(payload, option=orjson.OPT_INDENT_2) + b"\n"


# Any retained epoch's key costs at most this many ratchet steps once the walk has passed it (EpochKeys).
CHECKPOINT_EPOCHS: Final = 64


def _next_chain(state: bytes) -> bytes:
    return hmac.new(state, b"pseudonymizer/v1/next", hashlib.sha256).digest()


def _epoch_hmac_key(state: bytes) -> bytes:
    return hmac.new(state, b"pseudonymizer/v1/hmac", hashlib.sha256).digest()


class EpochKeys:
    """Derives the HMAC key of any retained epoch of one purpose, caching what it derived."""

    def __init__(self, chain: PurposeChain) -> None:
        self.period_s = chain.period_s
        self.first_epoch = chain.epoch
        self._root = _unb64(chain.secret.get_secret_value(), "chain secret")
        self._state_epoch = chain.epoch
        self._state = self._root
        self._keys: dict[int, bytes] = {}
        # Ratchet states every CHECKPOINT_EPOCHS epochs from the first, recorded as the walk passes them. Event
        # times are the sender's choice: without them, records alternating between old and new days restarted
        # the walk from the first epoch each time (thousands of HMACs a record, quadratic over a replay).
        # They are derivable from the root this object already holds, so they expose nothing more.
        self._checkpoints: dict[int, bytes] = {chain.epoch: self._root}

    def epoch_of(self, unix_seconds: float) -> int:
        return int(unix_seconds // self.period_s)

    def epoch_start(self, epoch: int) -> datetime:
        return datetime.fromtimestamp(epoch * self.period_s, UTC)

    def key(self, epoch: int) -> bytes | None:
        """The epoch's HMAC key, or ``None`` when the epoch has been shredded (or predates the keyring)."""
        cached = self._keys.get(epoch)
        if cached is not None:
            return cached
        if epoch < self.first_epoch:
            return None
        if epoch < self._state_epoch:
            # Asked for an older epoch than the newest derived so far: restart the ratchet from the nearest
            # checkpoint at or below it (every one up to _state_epoch has been recorded on the way).
            base = epoch - (epoch - self.first_epoch) % CHECKPOINT_EPOCHS
            self._state_epoch, self._state = base, self._checkpoints[base]
        while self._state_epoch < epoch:
            self._state = _next_chain(self._state)
            self._state_epoch += 1
            if (self._state_epoch - self.first_epoch) % CHECKPOINT_EPOCHS == 0:
                self._checkpoints[self._state_epoch] = self._state
        derived = _epoch_hmac_key(self._state)
        if len(self._keys) >= 4096:  # bounded: a replay over decades must not grow without limit
            self._keys.clear()
        self._keys[epoch] = derived
        return derived


def prune_keyring(keyring: Keyring, keep_from: dict[Purpose, datetime]) -> Keyring:
    """Advance each named purpose's ratchet to the epoch containing ``keep_from[purpose]``.

    Every older epoch of that purpose is destroyed: the returned keyring cannot derive it, and neither
    can anything else once the old file is gone. Moving backwards is impossible and is a no-op.
    """
    chains = dict(keyring.chains)
    for purpose, when in keep_from.items():
        chain = chains[purpose]
        target = int(when.timestamp()) // chain.period_s
        if target <= chain.epoch:
            continue
        state = _unb64(chain.secret.get_secret_value(), "chain secret")
        for _ in range(target - chain.epoch):
            state = _next_chain(state)
        chains[purpose] = PurposeChain(period_s=chain.period_s, epoch=target, secret=SecretStr(_b64(state)))
    return keyring.model_copy(update={"chains": chains})
