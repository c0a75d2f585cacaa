"""pipeline.reveal: escrowed addresses come back only after an audit entry (without the address) is on the audit
topic and on disk; an unwritable audit reveals nothing."""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.audit import AuditLog, read_file_lines, verify_lines
from pipeline.reveal import RevealStats, record_id, reveal_records
from tests.pipeline.test_audit import FakeSink
from transforms.errors import ConfigError, KeyringError
from transforms.escrow import EscrowOpener, EscrowPrivateKey, IpEscrow, generate_escrow_keypair

KEY = generate_escrow_keypair()
OTHER_KEY = generate_escrow_keypair(datetime(2001, 1, 1, tzinfo=UTC))
ADDRESSES = ["203.0.113.9", "198.51.100.7", "2001:db8::1", "2001:db8:0:1:1:1:1:1"]


def _abuse(address: str, index: int, *, key: EscrowPrivateKey = KEY, **extra: Any) -> bytes:
    """An abuse/1 record as the worker writes it, with an escrow token."""
    record: dict[str, Any] = {
        "schema": "abuse/1",
        "kind": "event",
        "rule": "ssh.failed_password",
        "subject": f"s-testkeys-20260101-{index:026d}",
        "time": f"2026-01-01T00:00:{index:02d}Z",
        "source": {"prefix": "203.0.113.0/24"},
        "escrow": IpEscrow(key.public_part()).seal(ipaddress.ip_address(address).packed),
    }
    record.update(extra)
    return orjson.dumps(record)


def _audit_lines(path: Path) -> list[dict[str, Any]]:
    """The audit entries, without the header line that starts a chain."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines()][1:] if path.exists() else []


def _reveal(
    path: Path,
    lines: list[bytes],
    *,
    operator: str = "alice",
    reason: str = "INC-1234 credential stuffing",
    sink: FakeSink | None = None,
    **kwargs: Any,
) -> Iterator[dict[str, str]]:
    audit = AuditLog(path, sink, tool="reveal", operator=operator, reason=reason)
    return reveal_records(EscrowOpener([KEY]), lines, audit=audit, **kwargs)


def test_each_address_is_yielded_only_after_its_audit_entry_is_on_the_topic_and_on_disk(tmp_path: Path) -> None:
    """The consumer reads the audit file and topic as each item arrives: the matching entry is already there."""
    audit, sink = tmp_path / "audit.jsonl", FakeSink()
    lines = [_abuse(address, i) for i, address in enumerate(ADDRESSES)]
    received = []
    for item in _reveal(audit, lines, sink=sink):
        received.append(item)
        logged = _audit_lines(audit)
        assert len(logged) == len(received)
        assert logged[-1]["record"] == {k: item[k] for k in ("subject", "time", "rule")}
        assert orjson.loads(sink.sent[-1][1]) == logged[-1]
    assert [item["ip"] for item in received] == ADDRESSES
    assert verify_lines(read_file_lines(audit)).entries == len(ADDRESSES)


def test_an_unwritable_audit_topic_reveals_nothing(tmp_path: Path) -> None:
    """Fail closed: the topic copy refused the entry, so the address is not yielded and the file gets no entry."""
    audit = tmp_path / "audit.jsonl"
    with pytest.raises(ConfigError, match="audit topic"):
        next(_reveal(audit, [_abuse("203.0.113.9", 1)], sink=FakeSink(fail_send=True)))
    assert _audit_lines(audit) == []


def test_an_unreachable_audit_topic_reads_no_input(tmp_path: Path) -> None:
    def lines() -> Iterator[bytes]:
        pytest.fail("input was read although the audit topic was unreachable")
        yield b""

    with pytest.raises(ConfigError, match="cannot reach"):
        next(
            reveal_records(
                EscrowOpener([KEY]),
                lines(),
                audit=AuditLog(
                    tmp_path / "a.jsonl", FakeSink(fail_start=True), tool="reveal", operator="alice", reason="INC-1"
                ),
            )
        )


def test_audit_line_says_who_when_why_which_record_and_key(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    before = datetime.now(UTC)
    list(_reveal(audit, [_abuse("203.0.113.9", 1)]))
    (entry,) = _audit_lines(audit)
    assert set(entry) == {
        "seq",
        "prev",
        "chain",
        "at",
        "tool",
        "account",
        "host",
        "operator",
        "reason",
        "record",
        "key_id",
    }
    assert (entry["tool"], entry["operator"]) == ("reveal", "alice")
    assert entry["account"]["uid"] == os.geteuid()
    assert entry["reason"] == "INC-1234 credential stuffing"
    assert entry["key_id"] == KEY.id
    assert entry["record"] == {
        "subject": "s-testkeys-20260101-00000000000000000000000001",
        "time": "2026-01-01T00:00:01Z",
        "rule": "ssh.failed_password",
    }
    assert datetime.fromisoformat(entry["at"].replace("Z", "+00:00")) >= before.replace(microsecond=0)


def test_audit_never_contains_an_address(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    revealed = list(_reveal(audit, [_abuse(address, i) for i, address in enumerate(ADDRESSES)]))
    assert len(revealed) == len(ADDRESSES)
    text = audit.read_text()
    for address in ADDRESSES:
        assert address not in text
        assert ipaddress.ip_address(address).exploded not in text


def test_audit_file_is_created_owner_only_and_appended_to(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    list(_reveal(audit, [_abuse("203.0.113.9", 1)]))
    assert stat.S_IMODE(audit.stat().st_mode) == 0o600
    list(_reveal(audit, [_abuse("198.51.100.7", 2)], operator="bob"))
    assert [entry["operator"] for entry in _audit_lines(audit)] == ["alice", "bob"]


@pytest.mark.parametrize(
    ("operator", "reason", "message"),
    [
        ("", "INC-1", "--operator"),  # nobody named
        ("   ", "INC-1", "--operator"),  # blank is empty
        ("alice", "", "--reason"),  # no reason given
        ("alice", "\t\n", "--reason"),  # blank is empty
    ],
)
def test_reveal_without_operator_or_reason_is_refused_before_anything_happens(
    tmp_path: Path, operator: str, reason: str, message: str
) -> None:
    audit = tmp_path / "audit.jsonl"
    with pytest.raises(ConfigError, match=message):
        _reveal(audit, [_abuse("203.0.113.9", 1)], operator=operator, reason=reason)
    assert not audit.exists()


def test_reveal_without_escrow_keys_is_refused(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "a.jsonl", None, tool="reveal", operator="alice", reason="INC-1")
    with pytest.raises(KeyringError, match="no escrow keys"):
        reveal_records(EscrowOpener([]), [], audit=audit)


def test_skipped_records_are_counted_and_never_audited(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    no_escrow = orjson.loads(_abuse("203.0.113.9", 1))
    del no_escrow["escrow"]
    lines = [
        _abuse("203.0.113.9", 1),  # revealed
        orjson.dumps(no_escrow),  # escrow off, or a host-name source
        _abuse("198.51.100.7", 2, key=OTHER_KEY),  # sealed under a key not at hand (destroyed)
        b"{not json",  # malformed
        b"[1, 2]",  # not an object
        _abuse("198.51.100.7", 3, rule=7),  # rule is not a string
        _abuse("198.51.100.7", 4, escrow=12),  # token is not a string
        b"",  # blank lines are ignored, not counted
    ]
    stats = RevealStats()
    revealed = list(_reveal(audit, lines, stats=stats))
    assert [item["ip"] for item in revealed] == ["203.0.113.9"]
    assert stats.as_dict() == {"revealed": 1, "no_escrow": 1, "not_selected": 0, "unknown_key": 1, "malformed": 4}
    assert len(_audit_lines(audit)) == 1


def test_record_ids_select_which_records_are_revealed(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    lines = [_abuse(address, i) for i, address in enumerate(ADDRESSES)]
    wanted = record_id(orjson.loads(lines[2]))
    assert wanted == "s-testkeys-20260101-00000000000000000000000002/2026-01-01T00:00:02Z/ssh.failed_password"
    stats = RevealStats()
    revealed = list(_reveal(audit, lines, record_ids={wanted}, stats=stats))
    assert [item["ip"] for item in revealed] == ["2001:db8::1"]
    assert stats.not_selected == 3
    assert [entry["record"]["subject"] for entry in _audit_lines(audit)] == [revealed[0]["subject"]]


def test_an_altered_token_stops_the_reveal_naming_the_line_only(tmp_path: Path) -> None:
    """An altered abuse record is an integrity problem: stop, say where, never what."""
    audit = tmp_path / "audit.jsonl"
    record = orjson.loads(_abuse("198.51.100.7", 2))
    token = record["escrow"]
    record["escrow"] = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    lines = [_abuse("203.0.113.9", 1), orjson.dumps(record), _abuse("2001:db8::1", 3)]
    revealing = _reveal(audit, lines)
    assert next(revealing)["ip"] == "203.0.113.9"
    with pytest.raises(KeyringError, match=r"line 2: .*authentication failed") as caught:
        next(revealing)
    assert "198.51.100.7" not in str(caught.value)
    assert len(_audit_lines(audit)) == 1


def test_an_unwritable_audit_file_reveals_nothing(tmp_path: Path) -> None:
    """The audit file is opened before any record is read."""
    with pytest.raises(ConfigError, match="cannot open the audit file"):
        next(_reveal(tmp_path, [_abuse("203.0.113.9", 1)]))  # a directory cannot be opened for writing


def test_a_failing_audit_write_reveals_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the audit line cannot be made durable, the address is not yielded."""

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(ConfigError, match="cannot write the audit file"):
        next(_reveal(tmp_path / "audit.jsonl", [_abuse("203.0.113.9", 1)]))
