"""A tamper-evident audit trail for the tools that turn protected data back into personal data.

``reveal`` (escrowed addresses), ``quarantine decrypt`` (sealed raw payloads) and ``lookup`` (address to
pseudonym) each write one entry here *before* they release anything; if the entry cannot be written, nothing
is released (fail closed).

An audit file is JSON lines, one chain:

* line 1 is a header: ``{"seq": 0, "prev": GENESIS, "chain": <random id>, "format": "pseudonymizer-audit/1", ...}``;
* every later line carries ``seq`` (one more than the line before) and ``prev``, the SHA-256 (hex) of the
  previous line's bytes (without its newline). Editing, deleting, inserting or reordering a line breaks the chain
  at that line: ``pseudonymizer audit verify FILE`` names the first broken line;
* who: the OS account the tool runs as (effective uid and its name from the password database: not the
  ``USER`` variable, which anyone sets), the host, and the free-text ``--operator`` (a name or ticket handle).

A hash chain alone stops a careless edit, not a careful one: whoever can write the file can rewrite it from the
edit on with fresh hashes. The anchor is a second copy out of the operator's reach: every line is also produced,
with ``acks=all``, to a Kafka topic of its own (``PSEUDO_AUDIT_TOPIC``, keyed by the chain id) *before* it is
appended to the file and before anything is released. On a broker with ACLs the tool's principal may write the
topic but not delete from it, so ``audit verify FILE --from-topic`` detects a rewritten or truncated file (and a
topic copy that lost records). ``--audit-file-only`` (``PSEUDO_AUDIT_TO_KAFKA=false``) keeps the file alone, for
a machine without a broker, with a warning: the chain is then the only protection.

Appends from several tools at once stay one linear chain: each entry is built and written while holding an
exclusive ``flock`` on the file (the previous line is read under the lock), with one ``write`` on an ``O_APPEND``
descriptor and an ``fsync``. The topic copy is produced under the same lock, so its order per chain is the
file's. If the topic write fails nothing is written to the file and nothing is released; if the file write
fails after the topic took the entry, nothing is released and the topic holds an entry the file lacks. The next
run repairs that before it writes: at start (under the lock) it compares the file with its chain on the topic;
entries the topic holds beyond the file's last line, with valid links, are appended to the file (a warning
gives the count), so the chain continues instead of forking at a reused ``seq``. A file ahead of the topic, or
one that differs from it, stops the tool (fail closed). A principal that may not read the topic skips the
comparison with a warning; ``audit verify --from-topic`` still catches the difference.

The topic is the record of truth: ``audit verify [FILE ...] --from-topic`` reads every chain on it. Each
chain's links must hold, and each must be continued by exactly one of the files given, line for line; a chain
with no file (an audit file deleted and started afresh, say) fails the check, named. Without a file it checks
and lists the topic's chains alone.

Entries name records by pseudonymized coordinates, key ids and pseudonyms: never an address or a payload, so
the audit trail is not a second copy of what it guards.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import pwd
import secrets
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

from config.settings import Settings, TopicSpec
from pipeline import kafka_clients
from transforms.errors import ConfigError

__all__ = [
    "AUDIT_FORMAT",
    "GENESIS",
    "AuditChainError",
    "AuditLog",
    "AuditSink",
    "ChainReport",
    "ChainSummary",
    "KafkaAuditSink",
    "check_topic",
    "compare_with_topic",
    "lines_missing_from_file",
    "os_account",
    "read_topic_chain",
    "read_topic_chains",
    "verify_lines",
]

AUDIT_FORMAT = "pseudonymizer-audit/1"
# The "previous hash" of the header: a fixed value, so a file whose first lines were cut off does not verify.
GENESIS = hashlib.sha256(b"pseudonymizer/audit/v1/genesis").hexdigest()
_CHUNK = 4096

log = logging.getLogger("pseudonymizer.audit")


class AuditChainError(Exception):
    """The chain is broken at ``line`` (1-based; a topic record's position in its chain for the topic copy)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


def _hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def os_account() -> dict[str, Any]:
    """The account this process runs as: effective uid and its name in the password database (not ``$USER``)."""
    uid = os.geteuid()
    try:
        name: str | None = pwd.getpwuid(uid).pw_name
    except KeyError:  # a container uid without a passwd entry: the number still says who
        name = None
    return {"uid": uid, "user": name}


class AuditSink(Protocol):
    """Where the second copy of each entry goes. ``send`` returns once the copy is durable, or raises.

    ``read_chain`` returns the chain's entries as the copy holds them, in order; ``None`` when this principal may
    not read the copy (its ACLs grant write only).
    """

    def start(self) -> None: ...

    def send(self, key: bytes, value: bytes) -> None: ...

    def read_chain(self, chain: str) -> list[bytes] | None: ...

    def close(self) -> None: ...


def audit_topic_spec(topic: str) -> TopicSpec:
    # One partition: the whole trail in one order. Kept forever: an audit trail does not expire by itself, and
    # `verify --from-topic` compares the whole file with it.
    return TopicSpec(name=topic, partitions=1, retention_ms=-1)


class KafkaAuditSink:
    """Produces each entry with ``acks=all`` (idempotent producer) and waits for the broker's answer.

    The tools are synchronous, so this owns a private event loop. ``start`` creates the topic if it is missing
    (as ``topics create`` would) and connects; any failure is a ``ConfigError`` raised before anything is read.
    """

    def __init__(self, settings: Settings, topic: str | None = None) -> None:
        self._settings = settings
        self.topic = topic or settings.audit_topic
        self._timeout_s = settings.audit_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._producer: Any = None

    def _fail(self, what: str, exc: BaseException) -> ConfigError:
        # The exception's class and Kafka's text only: neither carries an entry (entries are not secret anyway).
        return ConfigError(
            f"audit: cannot {what} the audit topic {self.topic} on {self._settings.bootstrap} "
            f"({type(exc).__name__}: {exc}); nothing was released. Check PSEUDO_BROKER / PSEUDO_KAFKA_* and the "
            "principal's ACLs (write and describe on the audit topic), or pass --audit-file-only"
        )

    def start(self) -> None:
        from pipeline.topics import ensure_topics

        self._loop = asyncio.new_event_loop()
        settings = self._settings

        async def start() -> None:
            await ensure_topics(
                settings.bootstrap,
                [audit_topic_spec(self.topic)],
                client_id="pseudonymizer-audit",
                connection=settings.kafka,
            )
            self._producer = kafka_clients.producer(
                settings,
                client_id="pseudonymizer-audit",
                acks="all",
                enable_idempotence=True,  # a retried send must not duplicate an entry in the topic's chain
                request_timeout_ms=int(self._timeout_s * 1000),
            )
            try:
                await self._producer.start()
            except BaseException:
                await self._producer.stop()
                self._producer = None
                raise

        try:
            self._loop.run_until_complete(asyncio.wait_for(start(), self._timeout_s))
        except ConfigError as exc:  # from creating the topic: the broker unreachable, or creation refused
            self._close_loop()
            raise ConfigError(
                f"audit: the audit topic {self.topic}: {exc}; nothing was released (--audit-file-only keeps the "
                "audit in the file alone)"
            ) from None
        except (KafkaError, OSError, TimeoutError) as exc:
            self._close_loop()
            raise self._fail("reach", exc) from None

    def send(self, key: bytes, value: bytes) -> None:
        if self._loop is None or self._producer is None:
            raise ConfigError("audit: the topic copy was not started")
        send = self._producer.send_and_wait(self.topic, value, key=key)
        try:
            self._loop.run_until_complete(asyncio.wait_for(send, self._timeout_s))
        except (KafkaError, OSError, TimeoutError) as exc:
            raise self._fail("write", exc) from None

    def read_chain(self, chain: str) -> list[bytes] | None:
        if self._loop is None:
            raise ConfigError("audit: the topic copy was not started")
        read = _read_topic(self._settings, self.topic, client_id="pseudonymizer-audit")
        try:
            records = self._loop.run_until_complete(asyncio.wait_for(read, self._timeout_s))
        except TopicAuthorizationFailedError:
            return None
        except (KafkaError, OSError, TimeoutError) as exc:
            raise self._fail("read", exc) from None
        return [value for key, value in records if key == chain.encode()]

    def close(self) -> None:
        if self._loop is not None and self._producer is not None:
            self._loop.run_until_complete(self._producer.stop())
            self._producer = None
        self._close_loop()

    def _close_loop(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None


def _last_line(fd: int, path: Path) -> bytes | None:
    """The file's last line without its newline (None for an empty file), read backwards from the end."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    if os.pread(fd, 1, size - 1) != b"\n":
        raise ConfigError(
            f"audit: {path} ends with an incomplete line; nothing was released. Run `pseudonymizer audit verify {path}`"
        )
    data, position = b"", size - 1
    while True:
        start = max(0, position - _CHUNK)
        data = os.pread(fd, position - start, start) + data
        position = start
        newline = data.rfind(b"\n")
        if newline >= 0:
            return data[newline + 1 :]
        if position == 0:
            return data


class AuditLog:
    """One tool run's audit writer: ``with AuditLog(...) as audit: audit.record({...})`` before each release.

    Checked now: ``reason`` is non-empty (``ConfigError``). ``__enter__`` opens (creates 0600) the file and starts
    the sink (``None``: file only, with a warning), then catches the file up with the sink's copy of its chain
    (or refuses, see the module's text), before the tool reads any input.
    """

    def __init__(self, path: Path, sink: AuditSink | None, *, tool: str, operator: str, reason: str) -> None:
        self.path = path
        self.tool = tool
        self.operator = operator.strip()
        self.reason = reason.strip()
        if not self.reason:
            raise ConfigError(f"{tool}: --reason must say why (an incident or ticket id; it goes to the audit log)")
        self._sink = sink
        self._fd = -1
        self._who = {"account": os_account(), "host": socket.gethostname()}

    def __enter__(self) -> AuditLog:
        try:
            # O_RDWR: the previous line is read back (under the lock) to chain to it. O_APPEND: writes land at the end.
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(f"{self.tool}: cannot open the audit file {self.path}: {exc.strerror}") from None
        if self._sink is None:
            log.warning(
                "audit: %s writes its audit to %s only, not to Kafka: the file alone can be rewritten",
                self.tool,
                self.path,
            )
            return self
        try:
            self._sink.start()
            self._catch_up(self._sink)
        except BaseException:
            if self._sink is not None:
                self._sink.close()
            os.close(self._fd)
            raise
        return self

    def _catch_up(self, sink: AuditSink) -> None:
        """Append the entries the topic took but the file did not get (a failed file write); else fail closed."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # no other writer is between its topic send and its file write now
        try:
            size = os.fstat(self._fd).st_size
            if size == 0:
                return  # a new file starts a new chain
            lines = os.pread(self._fd, size, 0).splitlines(keepends=True)
            if not lines[-1].endswith(b"\n"):
                raise ConfigError(
                    f"audit: {self.path} ends with an incomplete line; nothing was released. "
                    f"Run `pseudonymizer audit verify {self.path} --from-topic`"
                )
            try:
                chain = str(orjson.loads(lines[0])["chain"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise ConfigError(
                    f"audit: the first line of {self.path} is not an audit header; nothing was released. "
                    f"Run `pseudonymizer audit verify {self.path} --from-topic`"
                ) from None
            on_topic = sink.read_chain(chain)
            if on_topic is None:
                log.warning(
                    "audit: %s may not read the audit topic, so %s was not compared with its topic copy "
                    "(`audit verify --from-topic` does)",
                    self.tool,
                    self.path,
                )
                return
            missing = lines_missing_from_file(lines, on_topic, self.path)
            if missing:
                data = memoryview(b"".join(line + b"\n" for line in missing))
                while data:
                    data = data[os.write(self._fd, data) :]
                os.fsync(self._fd)
                log.warning(
                    "audit: appended %d entr%s of chain %s from the audit topic to %s (a file write had failed "
                    "after the topic took them; nothing was released then)",
                    len(missing),
                    "y" if len(missing) == 1 else "ies",
                    chain,
                    self.path,
                )
        except OSError as exc:
            raise ConfigError(
                f"{self.tool}: cannot read or repair the audit file {self.path}: {exc.strerror}; nothing was released"
            ) from None
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self._sink is not None:
                self._sink.close()
        finally:
            os.close(self._fd)

    def record(self, event: Mapping[str, Any]) -> None:
        """Append one entry (after a header, in a new file), durably, to the file and the topic; else raise."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            lines = self._next_lines(event)
            if self._sink is not None:
                chain = orjson.loads(lines[-1])["chain"].encode()
                for line in lines:
                    self._sink.send(chain, line)
            data = memoryview(b"".join(line + b"\n" for line in lines))
            try:
                while data:  # a regular file takes it in one write; loop rather than assume
                    data = data[os.write(self._fd, data) :]
                os.fsync(self._fd)
            except OSError as exc:
                raise ConfigError(
                    f"{self.tool}: cannot write the audit file {self.path}: {exc.strerror}; nothing more was released"
                ) from None
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _next_lines(self, event: Mapping[str, Any]) -> list[bytes]:
        last = _last_line(self._fd, self.path)
        lines = []
        if last is None:
            header = {
                "seq": 0,
                "prev": GENESIS,
                "chain": secrets.token_hex(8),
                "format": AUDIT_FORMAT,
                "at": _now(),
                "file": os.path.abspath(self.path),  # where to find the file when an auditor lists the chains
            }
            lines.append(orjson.dumps({**header, **self._who}))
            last = lines[0]
        try:
            previous = orjson.loads(last)
            seq, chain = int(previous["seq"]) + 1, str(previous["chain"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ConfigError(
                f"audit: the last line of {self.path} is not an audit entry; nothing was released. "
                f"Run `pseudonymizer audit verify {self.path}`"
            ) from None
        entry = {
            "seq": seq,
            "prev": _hash(last),
            "chain": chain,
            "at": _now(),
            "tool": self.tool,
            **self._who,
            "operator": self.operator or None,
            "reason": self.reason,
            **event,
        }
        lines.append(orjson.dumps(entry))
        return lines


@dataclass(frozen=True, slots=True)
class ChainSummary:
    chain: str
    entries: int  # lines after the header
    last_hash: str  # SHA-256 of the last line: note it elsewhere, and a later rewrite of the file shows
    started: str | None = None  # the header's "at"
    ended: str | None = None  # the last line's "at"
    host: str | None = None  # the header's host and file: where the chain was written
    file: str | None = None


def verify_lines(lines: Iterable[bytes]) -> ChainSummary:
    """Check one chain (a file's lines, or its topic copy); raise :class:`AuditChainError` at the first break.

    Each line must end with a newline (a file's last line too), except that ``lines`` from a topic carry none.
    """
    chain = ""
    previous = b""
    count = 0
    header: dict[str, Any] = {}
    last: dict[str, Any] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if not line.strip():
            raise AuditChainError(number, "empty line")
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise AuditChainError(number, "not JSON (edited, or an incomplete write)") from None
        if not isinstance(entry, dict):
            raise AuditChainError(number, "not an audit entry")
        if number == 1:
            if entry.get("prev") != GENESIS or entry.get("seq") != 0 or entry.get("format") != AUDIT_FORMAT:
                raise AuditChainError(number, "not the header of a chain (lines removed from the start?)")
            if not isinstance(entry.get("chain"), str) or not entry["chain"]:
                raise AuditChainError(number, "the header names no chain")
            chain = entry["chain"]
            header = entry
        else:
            if entry.get("chain") != chain:
                raise AuditChainError(number, "belongs to another chain (lines from another audit file?)")
            if entry.get("seq") != number - 1:
                raise AuditChainError(
                    number,
                    f"sequence number {entry.get('seq')!r}, expected {number - 1} (a line removed, inserted or moved)",
                )
            if entry.get("prev") != _hash(previous):
                raise AuditChainError(
                    number, "prev does not match the hash of the line before (this line or the one before was edited)"
                )
            count += 1
        previous = line
        last = entry
    if not previous:
        raise AuditChainError(1, "empty audit trail")
    return ChainSummary(
        chain=chain,
        entries=count,
        last_hash=_hash(previous),
        started=_text(header.get("at")),
        ended=_text(last.get("at")),
        host=_text(header.get("host")),
        file=_text(header.get("file")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def read_file_lines(path: Path) -> list[bytes]:
    """The file's lines, each with its newline (a missing final newline is kept missing, for ``verify_lines``)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"audit: cannot read {path}: {exc.strerror}") from None
    lines = data.splitlines(keepends=True)
    if lines and not lines[-1].endswith(b"\n"):
        raise AuditChainError(len(lines), "incomplete last line (no newline: an interrupted or partial write)")
    return lines


def compare_with_topic(file_lines: list[bytes], topic_lines: list[bytes]) -> None:
    """The file and its topic copy must hold the same lines in the same order; raise at the first difference."""
    stripped = [line.rstrip(b"\n") for line in file_lines]
    on_topic, in_file = set(topic_lines), set(stripped)
    for index in range(max(len(stripped), len(topic_lines))):
        mine = stripped[index] if index < len(stripped) else None
        theirs = topic_lines[index] if index < len(topic_lines) else None
        if mine == theirs:
            continue
        if mine is not None and mine not in on_topic:
            raise AuditChainError(
                index + 1,
                "this file line has no copy on the audit topic (edited or added afterwards, written with "
                "--audit-file-only, or its topic record was lost)",
            )
        if theirs is not None and theirs not in in_file:
            raise AuditChainError(
                index + 1,
                "the audit topic holds an entry here that the file lacks (a line deleted or the file truncated, "
                "or the file write failed after the topic took the entry: then nothing was released)",
            )
        raise AuditChainError(index + 1, "the file and the audit topic hold the same entries in another order")


def lines_missing_from_file(file_lines: list[bytes], topic_lines: list[bytes], path: Path) -> list[bytes]:
    """The topic's entries beyond the file's last line (the file must be a prefix of the topic's chain, whose links
    must hold); raise ``ConfigError`` when the file is ahead of the topic or differs from it."""
    stripped = [line.rstrip(b"\n") for line in file_lines]
    if topic_lines[: len(stripped)] == stripped:
        missing = topic_lines[len(stripped) :]
        if missing:
            try:
                verify_lines(topic_lines)
            except AuditChainError as exc:
                raise ConfigError(
                    f"audit: the audit topic's copy of {path}'s chain is broken ({exc}); nothing was released. "
                    f"Run `pseudonymizer audit verify {path} --from-topic`"
                ) from None
        return missing
    if stripped[: len(topic_lines)] == topic_lines:
        problem = (
            f"the file holds {len(stripped) - len(topic_lines)} line(s) that the audit topic lacks (written with "
            "--audit-file-only, to another topic, or added by hand)"
        )
    else:
        at = next(i for i, (mine, theirs) in enumerate(zip(stripped, topic_lines, strict=False)) if mine != theirs)
        problem = f"line {at + 1} of the file differs from the audit topic's copy (the file was edited)"
    raise ConfigError(
        f"audit: {path}: {problem}; nothing was released. Run `pseudonymizer audit verify {path} --from-topic`; "
        "to go on, move the file aside (keep it: the auditor needs it) and a new chain starts"
    )


@dataclass(frozen=True, slots=True)
class ChainReport:
    """One chain on the audit topic: its summary (``None`` if its links are broken) and what is wrong, if anything."""

    chain: str
    summary: ChainSummary | None
    file: Path | None  # the file given that continues it
    problem: str | None


def check_topic(topic_chains: Mapping[str, list[bytes]], files: Mapping[Path, list[bytes]]) -> list[ChainReport]:
    """Check every chain on the topic, and with ``files`` (already verified alone) that each is continued by one.

    With no files, each chain's links only. With files, every chain on the topic needs exactly one file holding the
    same lines in the same order, and every file's chain must be on the topic.
    """
    by_chain: dict[str, Path] = {}
    reports: list[ChainReport] = []
    for path, lines in files.items():
        chain = verify_lines(lines).chain
        if chain in by_chain:
            reports.append(ChainReport(chain, None, path, f"the same chain as {by_chain[chain]}: one is a copy"))
        by_chain.setdefault(chain, path)
    for chain, lines in topic_chains.items():
        continued_by = by_chain.get(chain)
        try:
            summary: ChainSummary | None = verify_lines(lines)
        except AuditChainError as exc:
            reports.append(ChainReport(chain, None, continued_by, f"its copy on the topic is broken at {exc}"))
            continue
        problem = None
        if files and continued_by is None:
            problem = "no audit file given continues this chain (a deleted or replaced audit file?)"
        elif continued_by is not None:
            try:
                compare_with_topic(files[continued_by], lines)
            except AuditChainError as exc:
                problem = f"{continued_by} differs from the topic at {exc}"
        reports.append(ChainReport(chain, summary, continued_by, problem))
    for chain, path in by_chain.items():
        if chain not in topic_chains:
            reports.append(
                ChainReport(
                    chain,
                    None,
                    path,
                    f"{path}'s chain is not on the audit topic (written with --audit-file-only, or to another topic)",
                )
            )
    return reports


async def read_topic_chains(settings: Settings, topic: str) -> dict[str, list[bytes]]:
    """Every chain on the audit topic, by chain id, each in the topic's order (read up to the partitions' end now).

    A record without a key, or whose key is not text, is grouped under ``"<no chain key>"``: it cannot verify.
    """
    try:
        records = await _read_topic(settings, topic, client_id="pseudonymizer-audit-verify")
    except KafkaError as exc:
        raise ConfigError(f"audit: cannot read the audit topic {topic} ({type(exc).__name__}: {exc})") from None
    chains: dict[str, list[bytes]] = {}
    for key, value in records:
        try:
            chain = key.decode() if key else "<no chain key>"
        except UnicodeDecodeError:
            chain = "<no chain key>"
        chains.setdefault(chain, []).append(value)
    return chains


async def read_topic_chain(settings: Settings, topic: str, chain: str) -> list[bytes]:
    """Every record of ``chain`` on the audit topic, in the topic's order."""
    return (await read_topic_chains(settings, topic)).get(chain, [])


async def _read_topic(settings: Settings, topic: str, *, client_id: str) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of every record on the topic now, by partition and offset; raises ``KafkaError``."""
    admin = kafka_clients.admin(settings, client_id=client_id)
    try:
        await admin.start()
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [
        TopicPartition(topic, p["partition"])
        for t in described
        if t["topic"] == topic and not t["error_code"]
        for p in t["partitions"]
    ]
    if not partitions:
        raise ConfigError(f"audit: the audit topic {topic} does not exist on {settings.bootstrap} (or may not be read)")
    consumer = kafka_clients.consumer(
        settings, enable_auto_commit=False, auto_offset_reset="earliest", client_id=client_id
    )
    found: list[tuple[int, int, bytes | None, bytes]] = []
    try:
        await consumer.start()
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        # Explicit offsets: seek_to_beginning raced with the reset that assign() starts, and could land at the end.
        starts = await consumer.beginning_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for tp, messages in (await consumer.getmany(timeout_ms=1000)).items():
                for message in messages:
                    if message.offset < ends[tp] and message.value is not None:
                        found.append((tp.partition, message.offset, message.key, message.value))
    finally:
        await consumer.stop()
    # One key, one partition: within a chain the offsets give the order entries were written in.
    return [(key, value) for _, _, key, value in sorted(found, key=lambda r: (r[0], r[1]))]
