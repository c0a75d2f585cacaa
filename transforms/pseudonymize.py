"""Keyed-hash pseudonyms: HMAC-SHA256 under the epoch key of one purpose, chosen by event time.

A pseudonym reads ``<p>-<keyring id>-<epoch start yyyymmdd>-<digest>``: ``p`` is ``a`` (analytics)
or ``s`` (security), the middle parts are the key id (which keyring, which epoch: enough to know
which key to shred or to look up with), the digest is the first 128 bits of the HMAC in lowercase hex
(32 characters: collisions are out of reach for any log volume; hex because it is encoded in C, where
base32 costs more than the HMAC itself).

Inputs are domain-separated (``ip:``, ``user:``, ``visitor:``) so that an IP and a username with
the same bytes never share a pseudonym, and analytics and security pseudonyms of the same value
differ because their chains are independent (HKDF with different ``info``): they cannot be joined.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime

from transforms.errors import PseudonymizerError
from transforms.keyring import EpochKeys, Keyring, Purpose

DIGEST_BYTES = 16
IP_CACHE_SIZE = 65_536
_PREFIX = {Purpose.ANALYTICS: "a", Purpose.SECURITY: "s"}


class BeyondRetention(PseudonymizerError):
    """The event's epoch key has been destroyed (or predates the keyring): it must not be output.

    Not a data error: the record is *filtered by policy* (retention), counted, and dropped, rather
    than quarantined, because keeping it would defeat the retention that shredded the key.
    """


class Pseudonymizer:
    """Pseudonyms of one purpose. Build once per keyring; call per value with the event's Unix time."""

    def __init__(self, keyring: Keyring, purpose: Purpose, *, lifetime_s: int | None = None) -> None:
        self.purpose = purpose
        self._epochs = EpochKeys(keyring.chains[purpose])
        # A pseudonym that lives shorter than the key epoch (the k-anonymous release's window): the window's
        # number is hashed with the value, so the same address gets an unrelated pseudonym in the next window.
        if lifetime_s is not None and (lifetime_s <= 0 or self._epochs.period_s % lifetime_s):
            raise ValueError("a pseudonym lifetime must divide the key epoch")
        self._lifetime = lifetime_s if lifetime_s != self._epochs.period_s else None
        self._kid_prefix = f"{_PREFIX[purpose]}-{keyring.id}-"
        # Pre-keyed HMAC objects per epoch: copying a keyed HMAC is ~3x cheaper than keying a new one.
        self._hmacs: dict[int, tuple[str, Callable[[], hmac.HMAC]]] = {}
        self._ip_cache: dict[tuple[int, bytes], str] = {}

    @property
    def period_s(self) -> int:
        return self._epochs.period_s

    @property
    def lifetime_s(self) -> int:
        """How long one value keeps its pseudonym: the key epoch, or the shorter lifetime given."""
        return self._lifetime or self._epochs.period_s

    def epoch_of(self, unix_seconds: float) -> int:
        return self._epochs.epoch_of(unix_seconds)

    def key_id(self, epoch: int) -> str:
        return f"{self._kid_prefix}{self._epochs.epoch_start(epoch):%Y%m%d}"

    def _keyed(self, unix_seconds: float) -> tuple[str, Callable[[], hmac.HMAC]]:
        epoch = int(unix_seconds // self._epochs.period_s)
        found = self._hmacs.get(epoch)
        if found is not None:
            return found
        key = self._epochs.key(epoch)
        if key is None:
            raise BeyondRetention(self.purpose.value)
        if len(self._hmacs) >= 1024:
            self._hmacs.clear()
        keyed = hmac.new(key, digestmod=hashlib.sha256)
        found = (self.key_id(epoch) + "-", keyed.copy)
        self._hmacs[epoch] = found
        return found

    def digest(self, tagged: bytes, unix_seconds: float) -> str:
        """The pseudonym of already domain-tagged bytes at a point in time."""
        kid, fresh = self._keyed(unix_seconds)
        mac = fresh()
        mac.update(tagged)
        if self._lifetime is not None:
            mac.update(b"\x00window:" + str(int(unix_seconds // self._lifetime)).encode())
        return kid + mac.digest()[:DIGEST_BYTES].hex()

    def ip(self, packed: bytes, unix_seconds: float) -> str:
        """Pseudonym of an address given as packed bytes (4 or 16: callers normalise ``::ffff:`` first)."""
        # Sources repeat (a visitor's page views, an attacker's attempts): cache per epoch. Bounded, and a
        # shredded epoch's entries go when the process restarts after a prune, like the keys themselves.
        epoch = int(unix_seconds // (self._lifetime or self._epochs.period_s))
        cached = self._ip_cache.get((epoch, packed))
        if cached is not None:
            return cached
        if len(self._ip_cache) >= IP_CACHE_SIZE:
            self._ip_cache.clear()
        pseudonym = self._ip_cache[(epoch, packed)] = self.digest(b"ip:" + packed, unix_seconds)
        return pseudonym

    def user(self, name: str, unix_seconds: float) -> str:
        """Pseudonym of a username, user id or e-mail address (case-folded, surrounding space removed)."""
        return self.digest(b"user:" + name.strip().casefold().encode("utf-8", "surrogatepass"), unix_seconds)

    def visitor(self, packed: bytes, user_agent: str | None, unix_seconds: float) -> str:
        """Daily unique-visitor id: address and user agent under the epoch key (Plausible's scheme)."""
        agent = (user_agent or "").encode("utf-8", "surrogatepass")
        return self.digest(b"visitor:" + packed + b"\x00" + agent, unix_seconds)

    def hostname(self, name: str, unix_seconds: float) -> str:
        """Pseudonym of a client given by host name (old pam_unix ``rhost=``), never joinable with an IP's."""
        return self.digest(b"host:" + name.strip().casefold().encode("utf-8", "surrogatepass"), unix_seconds)


def at(moment: datetime) -> float:
    """Unix seconds of an aware datetime (the unit every pseudonymizer call takes)."""
    return moment.timestamp()
