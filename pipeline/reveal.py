"""``pseudonymizer reveal``: recover escrowed source addresses from abuse records, auditing every one.

Reveal is the one sanctioned path from an abuse record back to an address (see ``transforms.escrow``
for the threat model). Its contract is that no address leaves this module before an audit line saying
who revealed which record, when and why is durably on disk:

* the audit file is opened before any input is read (an unwritable audit file reveals nothing);
* per record, the token is opened, the audit line is written with a single ``write`` on an ``O_APPEND``
  descriptor (so concurrent reveals do not interleave lines) and ``fsync``-ed, and only then is the
  address yielded. If the audit write fails, the exception propagates and the address is never yielded;
* the audit line names the record by its pseudonymized coordinates (``subject``, ``time``, ``rule``)
  and the escrow key id: never the address, so the audit trail is not a second copy of what it guards.

The audit is kept by this tool, not by cryptography: anyone holding the escrow key can decrypt without
it. That is why escrow keys are guarded like the keyring.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from transforms.errors import ConfigError, KeyringError
from transforms.escrow import EscrowKey, EscrowOpener, EscrowTokenError, UnknownEscrowKey, packed_to_text, token_key_id

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
    keys: Sequence[EscrowKey],
    lines: Iterable[bytes],
    *,
    operator: str,
    reason: str,
    audit_path: Path,
    record_ids: set[str] | None = None,
    stats: RevealStats | None = None,
) -> Iterator[dict[str, str]]:
    """Yield ``{"subject", "time", "rule", "ip"}`` for each escrowed abuse record in ``lines`` (JSON lines).

    ``record_ids`` (see :func:`record_id`) limits the reveal to those records; ``None`` reveals every
    escrowed record. One audit line is appended and fsync-ed to ``audit_path`` (created 0600) *before*
    each address is yielded. Skipped records are counted in ``stats``.

    Checked now, before anything is read: ``operator`` and ``reason`` must be non-empty
    (``ConfigError``), ``keys`` must be non-empty with unique ids (``KeyringError``). While iterating, a
    token that is malformed or fails authentication raises ``KeyringError`` naming the line number
    only: an altered abuse record is an integrity problem to look into, not a record to skip.
    """
    operator, reason = operator.strip(), reason.strip()
    if not operator:
        raise ConfigError("reveal: --operator must name the person revealing addresses (it goes to the audit log)")
    if not reason:
        raise ConfigError("reveal: --reason must say why the addresses are revealed (it goes to the audit log)")
    if not keys:
        raise KeyringError("reveal: the keyring holds no escrow keys (create them with `keys generate --escrow`)")
    opener = EscrowOpener(keys)
    # The checks above run at call time; the generator below only starts on the first next().
    return _reveal(
        opener, lines, operator, reason, audit_path, record_ids, stats if stats is not None else RevealStats()
    )


def _reveal(
    opener: EscrowOpener,
    lines: Iterable[bytes],
    operator: str,
    reason: str,
    audit_path: Path,
    record_ids: set[str] | None,
    stats: RevealStats,
) -> Iterator[dict[str, str]]:
    with _AuditLog(audit_path) as audit:
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
            audit.write(
                {
                    "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "operator": operator,
                    "reason": reason,
                    "record": coordinates,
                    "key_id": token_key_id(token),
                }
            )
            stats.revealed += 1
            yield {**coordinates, "ip": packed_to_text(packed)}


class _AuditLog:
    """Append-only JSON-lines audit file: created 0600, one write + fsync per line."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd = -1

    def __enter__(self) -> _AuditLog:
        try:
            # O_APPEND: every write lands at the end, even with another reveal appending concurrently.
            self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(f"reveal: cannot open the audit file {self._path}: {exc.strerror}") from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.close(self._fd)

    def write(self, entry: dict[str, Any]) -> None:
        data = memoryview(orjson.dumps(entry) + b"\n")
        try:
            while data:  # a regular file takes it in one write; loop rather than assume
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)
        except OSError as exc:
            raise ConfigError(
                f"reveal: cannot write the audit file {self._path}: {exc.strerror}; nothing more was revealed"
            ) from None
