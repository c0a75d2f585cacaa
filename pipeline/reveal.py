"""``pseudonymizer reveal``: recover escrowed source addresses from abuse records, auditing every one.

Reveal is the one sanctioned path from an abuse record back to an address (see ``transforms.escrow``
for the threat model). It opens ``e2`` tokens with the security team's escrow private key files (never held
by workers) and legacy ``e1`` tokens with the old symmetric keys of a keyring. Its contract is that no address
leaves this module before an audit entry saying who revealed which record, when and why is durable in the
audit file and on the audit topic (``pipeline.audit``):

* the audit file and the topic copy are opened before any input is read (an unwritable audit reveals nothing);
* per record, the token is opened, the audit entry is written (topic with ``acks=all``, then file with
  ``fsync``), and only then is the address yielded. If the audit write fails, the exception propagates and the
  address is never yielded;
* the audit entry names the record by its pseudonymized coordinates (``subject``, ``time``, ``rule``) and the
  escrow key id: never the address, so the audit trail is not a second copy of what it guards.

The audit is kept by this tool, not by cryptography: whoever holds a private key file can decrypt without it.
That is why the private key files stay offline with the security team.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.audit import AuditLog
from transforms.errors import ConfigError, KeyringError
from transforms.escrow import EscrowOpener, EscrowTokenError, UnknownEscrowKey, packed_to_text, token_key_id

__all__ = ["RevealStats", "record_id", "reveal_records"]

_RECORD_FIELDS = ("subject", "time", "rule")


@dataclass(slots=True)
class RevealStats:
    """What one reveal run did, by bounded outcome (counts only, never values)."""

    revealed: int = 0
    no_escrow: int = 0  # no "escrow" field: escrow was off, or the source was a host name
    not_selected: int = 0  # has a token, but its record id was not asked for
    unknown_key: int = 0  # sealed under a key not in the keyring: destroyed (irreversible by design)
    malformed: int = 0  # not a JSON object, or no string subject/time/rule, or a non-string token

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


def record_id(record: Mapping[str, Any]) -> str:
    """``<subject>/<time>/<rule>``: how an operator names an abuse record (no part contains ``/``)."""
    return "/".join(str(record[name]) for name in _RECORD_FIELDS)


def reveal_records(
    opener: EscrowOpener,
    lines: Iterable[bytes],
    *,
    audit: AuditLog,
    record_ids: set[str] | None = None,
    stats: RevealStats | None = None,
) -> Iterator[dict[str, str]]:
    """Yield ``{"subject", "time", "rule", "ip"}`` for each escrowed abuse record in ``lines`` (JSON lines).

    ``record_ids`` (see :func:`record_id`) limits the reveal to those records; ``None`` reveals every
    escrowed record. ``audit`` (not yet entered) records one entry *before* each address is yielded; it is
    entered (file opened, topic copy connected) on the first ``next()``, before any line is read. Skipped
    records are counted in ``stats``.

    Checked now, before anything is read: the audit's operator must be non-empty (``ConfigError``; its reason
    is checked by :class:`AuditLog`), and ``opener`` must hold at least one key (``KeyringError``). While
    iterating, a token that is malformed or fails authentication raises ``KeyringError`` naming the line
    number only: an altered abuse record is an integrity problem to look into, not a record to skip.
    """
    if not audit.operator:
        raise ConfigError("reveal: --operator must name the person revealing addresses (it goes to the audit log)")
    if not opener.key_ids:
        raise KeyringError(
            "reveal: no escrow keys at hand: give the security team's --escrow-private-key file(s) "
            "(and --keys for legacy e1 tokens)"
        )
    # The checks above run at call time; the generator below only starts on the first next().
    return _reveal(opener, lines, audit, record_ids, stats if stats is not None else RevealStats())


def _reveal(
    opener: EscrowOpener,
    lines: Iterable[bytes],
    audit_log: AuditLog,
    record_ids: set[str] | None,
    stats: RevealStats,
) -> Iterator[dict[str, str]]:
    with audit_log as audit:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                stats.malformed += 1
                continue
            if not isinstance(record, dict):
                stats.malformed += 1
                continue
            token = record.get("escrow")
            if token is None:
                stats.no_escrow += 1
                continue
            if not isinstance(token, str) or not all(isinstance(record.get(n), str) for n in _RECORD_FIELDS):
                stats.malformed += 1
                continue
            if record_ids is not None and record_id(record) not in record_ids:
                stats.not_selected += 1
                continue
            try:
                packed = opener.open(token)
            except UnknownEscrowKey:
                stats.unknown_key += 1
                continue
            except EscrowTokenError as exc:
                raise KeyringError(f"reveal: line {number}: {exc}") from None
            coordinates = {name: record[name] for name in _RECORD_FIELDS}
            audit.record({"record": coordinates, "key_id": token_key_id(token)})
            stats.revealed += 1
            yield {**coordinates, "ip": packed_to_text(packed)}
