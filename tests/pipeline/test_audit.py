"""pipeline.audit: a hash-chained audit file with a copy of each entry on a topic (a fake sink here; the real
topic in tests/integration/test_audit_topic.py). Edits, deletions, insertions and reorderings are detected."""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import socket
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.audit import (
    GENESIS,
    AuditChainError,
    AuditLog,
    check_topic,
    compare_with_topic,
    read_file_lines,
    verify_lines,
)
from pipeline.cli import main
from transforms.errors import ConfigError


class FakeSink:
    """Stands in for the audit topic: records what was sent, or refuses."""

    def __init__(self, *, fail_send: bool = False, fail_start: bool = False, readable: bool = True) -> None:
        self.sent: list[tuple[bytes, bytes]] = []
        self.fail_send, self.fail_start, self.readable = fail_send, fail_start, readable
        self.started = self.closed = False

    def start(self) -> None:
        if self.fail_start:
            raise ConfigError("audit: cannot reach the audit topic (fake)")
        self.started = True

    def send(self, key: bytes, value: bytes) -> None:
        if self.fail_send:
            raise ConfigError("audit: cannot write the audit topic (fake)")
        self.sent.append((key, value))

    def read_chain(self, chain: str) -> list[bytes] | None:
        if not self.readable:  # a principal with write-only ACLs on the topic
            return None
        return [value for key, value in self.sent if key == chain.encode()]

    def close(self) -> None:
        self.closed = True


def _log(path: Path, sink: FakeSink | None = None, **kwargs: Any) -> AuditLog:
    options: dict[str, Any] = {"tool": "reveal", "operator": "alice", "reason": "INC-1"}
    options.update(kwargs)
    return AuditLog(path, sink, **options)


def _write(path: Path, count: int, sink: FakeSink | None = None) -> list[bytes]:
    with _log(path, sink) as audit:
        for index in range(count):
            audit.record({"record": {"subject": f"s-{index}"}})
    return path.read_bytes().splitlines(keepends=True)


def _entries(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_a_new_file_starts_with_a_header_and_each_entry_chains_to_the_line_before(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    lines = _write(audit, 3)
    header, *entries = _entries(audit)
    assert (header["seq"], header["prev"], header["format"]) == (0, GENESIS, "pseudonymizer-audit/1")
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert {e["chain"] for e in entries} == {header["chain"]}
    assert [e["prev"] for e in entries] == [hashlib.sha256(line.rstrip(b"\n")).hexdigest() for line in lines[:-1]]
    summary = verify_lines(lines)
    assert (summary.chain, summary.entries) == (header["chain"], 3)
    assert stat.S_IMODE(audit.stat().st_mode) == 0o600


def test_who_is_the_os_account_not_only_the_free_text_operator(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    _write(audit, 1)
    entry = _entries(audit)[1]
    assert entry["account"]["uid"] == os.geteuid()
    assert entry["account"]["user"]  # from the password database, not $USER
    assert (entry["operator"], entry["reason"], entry["tool"]) == ("alice", "INC-1", "reveal")
    assert entry["host"]


def test_a_later_run_continues_the_same_chain(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    _write(audit, 2)
    with _log(audit, operator="bob", tool="lookup") as log:
        log.record({"pseudonyms": [["s-x"]]})
    assert verify_lines(read_file_lines(audit)).entries == 3
    assert [e.get("operator") for e in _entries(audit)] == [None, "alice", "alice", "bob"]


def test_every_line_goes_to_the_topic_copy_first_keyed_by_the_chain(tmp_path: Path) -> None:
    audit, sink = tmp_path / "audit.jsonl", FakeSink()
    lines = _write(audit, 3, sink)
    chain = _entries(audit)[0]["chain"].encode()
    assert sink.sent == [(chain, line.rstrip(b"\n")) for line in lines]
    assert sink.started
    assert sink.closed
    compare_with_topic(lines, [value for _, value in sink.sent])  # same entries, same order: no error


def test_if_the_topic_refuses_the_entry_nothing_is_written(tmp_path: Path) -> None:
    audit, sink = tmp_path / "audit.jsonl", FakeSink()
    _write(audit, 1, sink)
    before = audit.read_bytes()
    sink.fail_send = True
    with _log(audit, sink) as log, pytest.raises(ConfigError, match="audit topic"):
        log.record({"record": {"subject": "s-9"}})
    assert audit.read_bytes() == before


def test_an_unreachable_topic_stops_the_tool_before_it_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot reach"):
        _log(tmp_path / "audit.jsonl", FakeSink(fail_start=True)).__enter__()


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_reason_is_required(tmp_path: Path, reason: str) -> None:
    with pytest.raises(ConfigError, match="--reason"):
        _log(tmp_path / "audit.jsonl", reason=reason)


def test_a_file_ending_in_an_incomplete_line_is_not_appended_to(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    _write(audit, 1)
    with open(audit, "ab") as handle:
        handle.write(b'{"seq": 2, "pre')
    with _log(audit) as log, pytest.raises(ConfigError, match="incomplete line"):
        log.record({})
    with pytest.raises(AuditChainError, match="incomplete last line"):
        read_file_lines(audit)


# --- tampering -------------------------------------------------------------------------------------------------


def _edit(lines: list[bytes], index: int) -> list[bytes]:
    entry = orjson.loads(lines[index])
    entry["reason"] = "nothing to see"
    return [*lines[:index], orjson.dumps(entry) + b"\n", *lines[index + 1 :]]


# (how the file is changed, the first line verify must name)
TAMPERING = [
    (lambda lines: _edit(lines, 2), 4),  # a middle entry edited: the next line's prev no longer matches
    (lambda lines: [*lines[:2], *lines[3:]], 3),  # a middle entry deleted: the sequence jumps
    (lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], 2),  # two entries swapped
    (lambda lines: [*lines[:3], lines[2], *lines[3:]], 4),  # an entry duplicated (inserted)
    (lambda lines: lines[2:], 1),  # the start cut off: no header
    (lambda lines: [lines[0], b'{"seq": 1}\n', *lines[1:]], 2),  # a forged entry inserted
    (lambda lines: [*lines[:2], b"\n", *lines[2:]], 3),  # an empty line inserted
]


@pytest.mark.parametrize(("tamper", "broken_at"), TAMPERING)
def test_verify_names_the_first_broken_line(tmp_path: Path, tamper: Any, broken_at: int) -> None:
    lines = _write(tmp_path / "audit.jsonl", 5)
    with pytest.raises(AuditChainError) as caught:
        verify_lines(tamper(lines))
    assert caught.value.line == broken_at


def test_the_chain_alone_cannot_see_a_rewritten_tail_the_topic_copy_does(tmp_path: Path) -> None:
    """Editing the last line (or cutting the tail) leaves a valid chain; comparing with the topic catches it."""
    sink = FakeSink()
    lines = _write(tmp_path / "audit.jsonl", 4, sink)
    topic = [value for _, value in sink.sent]
    edited = _edit(lines, len(lines) - 1)
    verify_lines(edited)  # still a chain: this is why the topic copy exists
    with pytest.raises(AuditChainError, match="no copy on the audit topic") as caught:
        compare_with_topic(edited, topic)
    assert caught.value.line == len(lines)
    with pytest.raises(AuditChainError, match="the file lacks") as caught:
        compare_with_topic(lines[:-2], topic)
    assert caught.value.line == len(lines) - 1


def test_verify_command_exits_nonzero_naming_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audit = tmp_path / "audit.jsonl"
    lines = _write(audit, 3)
    assert main(["audit", "verify", str(audit)]) == 0
    assert "intact, 3 entries" in capsys.readouterr().out
    audit.write_bytes(b"".join(_edit(lines, 1)))
    assert main(["audit", "verify", str(audit)]) == 1
    assert "line 3:" in capsys.readouterr().err


# --- concurrency ------------------------------------------------------------------------------------------------


def _append_many(path: str, worker: int, count: int) -> None:
    with AuditLog(Path(path), None, tool="lookup", operator=f"w{worker}", reason="load") as audit:
        for index in range(count):
            audit.record({"n": index})


def test_concurrent_appends_from_several_processes_keep_one_linear_chain(tmp_path: Path) -> None:
    """Under the file lock each entry chains to the line really before it, whoever wrote that."""
    audit = tmp_path / "audit.jsonl"
    workers, each = 6, 40
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_append_many, args=(str(audit), w, each)) for w in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    summary = verify_lines(read_file_lines(audit))
    assert summary.entries == workers * each
    operators = {e["operator"] for e in _entries(audit)[1:]}
    assert operators == {f"w{w}" for w in range(workers)}


# --- the real Kafka sink, fail closed without a broker -----------------------------------------------------------


def test_reveal_with_an_unreachable_audit_broker_reveals_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The topic copy is on by default: no broker, no reveal (the error names the topic and the way out)."""
    from pipeline.escrow_keys import write_escrow_private_key
    from transforms.escrow import IpEscrow, generate_escrow_keypair

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PSEUDO_AUDIT_TIMEOUT_S", "5")
    private = generate_escrow_keypair()
    write_escrow_private_key(private, tmp_path / "p.json")
    token = IpEscrow(private.public_part()).seal(bytes([203, 0, 113, 9]))
    abuse = tmp_path / "abuse.jsonl"
    abuse.write_bytes(orjson.dumps({"subject": "s", "time": "t", "rule": "r", "escrow": token}) + b"\n")
    audit = tmp_path / "audit.jsonl"
    args = ["reveal", "--escrow-private-key", str(tmp_path / "p.json"), "--operator", "alice", "--reason", "INC-1"]
    assert main([*args, "--audit", str(audit), "--broker", f"kafka://127.0.0.1:{port}", str(abuse)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "203.0.113.9" not in err
    assert "--audit-file-only" in err
    assert not audit.exists() or audit.read_bytes() == b""


# --- the topic is the record of truth: every chain on it ---------------------------------------------------------


def _chains(sink: FakeSink) -> dict[str, list[bytes]]:
    chains: dict[str, list[bytes]] = {}
    for key, value in sink.sent:
        chains.setdefault(key.decode(), []).append(value)
    return chains


def _replaced_file(tmp_path: Path) -> tuple[FakeSink, Path, Path]:
    """An audit file with 3 entries moved away (or deleted), and a new file (a new chain) with 2, on one topic."""
    sink, old, new = FakeSink(), tmp_path / "old.jsonl", tmp_path / "audit.jsonl"
    _write(new, 3, sink)
    new.rename(old)
    _write(new, 2, sink)
    return sink, old, new


def test_check_topic_reports_every_chain_with_its_count_and_time_span(tmp_path: Path) -> None:
    sink, old, new = _replaced_file(tmp_path)
    reports = check_topic(_chains(sink), {})
    assert [(r.summary.entries if r.summary else None, r.problem) for r in reports] == [(3, None), (2, None)]
    for report, path in zip(reports, (old, new), strict=True):
        assert report.summary is not None
        entries = _entries(path)
        assert (report.summary.started, report.summary.ended) == (entries[0]["at"], entries[-1]["at"])
        assert report.summary.file == str(new)  # written there: the first file was renamed afterwards
        assert report.summary.host == socket.gethostname()


def test_a_chain_on_the_topic_that_no_given_file_continues_fails(tmp_path: Path) -> None:
    """Deleting the audit file and starting afresh leaves the old chain on the topic, with no file: named."""
    sink, old, new = _replaced_file(tmp_path)
    old_chain, new_chain = _entries(old)[0]["chain"], _entries(new)[0]["chain"]
    reports = check_topic(_chains(sink), {new: read_file_lines(new)})
    assert [(r.chain, r.problem is not None) for r in reports] == [(old_chain, True), (new_chain, False)]
    assert "no audit file given continues this chain" in str(reports[0].problem)
    both = {old: read_file_lines(old), new: read_file_lines(new)}
    assert all(r.problem is None for r in check_topic(_chains(sink), both))


# (how the file given is changed, what the report says)
FILE_VS_TOPIC = [
    (lambda lines: lines[:-1], "the file lacks"),  # the tail cut: still a valid chain alone
    (lambda lines: _edit(lines, len(lines) - 1), "no copy on the audit topic"),  # the last line rewritten
]


@pytest.mark.parametrize(("change", "says"), FILE_VS_TOPIC)
def test_a_file_that_is_a_cut_or_rewrite_of_its_topic_chain_fails(tmp_path: Path, change: Any, says: str) -> None:
    sink = FakeSink()
    lines = change(_write(tmp_path / "audit.jsonl", 3, sink))
    (report,) = check_topic(_chains(sink), {tmp_path / "audit.jsonl": lines})
    assert says in str(report.problem)


def test_a_file_whose_chain_is_not_on_the_topic_and_a_broken_topic_copy_fail(tmp_path: Path) -> None:
    sink, on_topic, alone = FakeSink(), tmp_path / "on-topic.jsonl", tmp_path / "file-only.jsonl"
    _write(on_topic, 2, sink)
    _write(alone, 1)
    reports = check_topic(_chains(sink), {on_topic: read_file_lines(on_topic), alone: read_file_lines(alone)})
    assert [r.file for r in reports] == [on_topic, alone]
    assert reports[0].problem is None
    assert "is not on the audit topic" in str(reports[1].problem)
    chain, lines = next(iter(_chains(sink).items()))
    (broken,) = check_topic({chain: [lines[0], lines[2]]}, {})
    assert broken.summary is None
    assert "broken at line 2" in str(broken.problem)


def test_verify_from_topic_reads_every_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command: a new file alone fails naming the old chain; with both files, or with none, it passes."""
    sink, old, new = _replaced_file(tmp_path)

    async def read_topic_chains(settings: object, topic: str) -> dict[str, list[bytes]]:
        return _chains(sink)

    monkeypatch.setattr("pipeline.audit.read_topic_chains", read_topic_chains)
    old_chain, new_chain = _entries(old)[0]["chain"], _entries(new)[0]["chain"]
    assert main(["audit", "verify", str(new), "--from-topic"]) == 1
    out, err = capsys.readouterr()
    assert f"chain {old_chain}: no audit file given continues this chain" in err
    assert f"chain {new_chain} ({new}): intact, 2 entries" in out
    assert main(["audit", "verify", "--from-topic"]) == 0  # the auditor without files: the topic's chains listed
    out = capsys.readouterr().out
    assert f"chain {old_chain}: intact, 3 entries" in out
    assert f"chain {new_chain}: intact, 2 entries" in out
    assert main(["audit", "verify", str(old), str(new), "--from-topic"]) == 0
    assert main(["audit", "verify"]) == 2  # neither a file nor the topic: nothing to check
    assert "--from-topic" in capsys.readouterr().err


# --- a failed file write after the topic took the entry: caught up at the next start ------------------------------


def test_a_failed_file_write_is_caught_up_from_the_topic_at_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    audit, sink = tmp_path / "audit.jsonl", FakeSink()
    _write(audit, 2, sink)
    before = audit.read_bytes()
    write = os.write
    with _log(audit, sink) as log:

        def full_disk(fd: int, data: Any) -> int:
            if fd == log._fd:
                raise OSError(errno.ENOSPC, "No space left on device")
            return write(fd, data)

        monkeypatch.setattr(os, "write", full_disk)
        with pytest.raises(ConfigError, match="cannot write the audit file"):
            log.record({"record": {"subject": "s-lost"}})
        monkeypatch.setattr(os, "write", write)
    assert audit.read_bytes() == before  # the topic holds one entry more than the file
    assert len(sink.sent) == 4
    with caplog.at_level("WARNING", logger="pseudonymizer.audit"), _log(audit, sink) as log:
        log.record({"record": {"subject": "s-next"}})
    assert "appended 1 entry" in caplog.text
    lines = read_file_lines(audit)
    assert verify_lines(lines).entries == 4  # one chain, no reused seq
    assert [e["record"]["subject"] for e in _entries(audit)[1:]] == ["s-0", "s-1", "s-lost", "s-next"]
    compare_with_topic(lines, [value for _, value in sink.sent])


def test_several_entries_the_topic_holds_beyond_the_file_are_appended(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audit, sink = tmp_path / "audit.jsonl", FakeSink()
    lines = _write(audit, 4, sink)
    audit.write_bytes(b"".join(lines[:-2]))
    with caplog.at_level("WARNING", logger="pseudonymizer.audit"), _log(audit, sink):
        pass
    assert "appended 2 entries" in caplog.text
    assert audit.read_bytes() == b"".join(lines)


def _ahead(audit: Path, sink: FakeSink) -> None:
    _write(audit, 1)  # an entry written with --audit-file-only: the topic never saw it


def _edited(audit: Path, sink: FakeSink) -> None:
    audit.write_bytes(b"".join(_edit(read_file_lines(audit), 1)))


def _broken_topic(audit: Path, sink: FakeSink) -> None:
    audit.write_bytes(b"".join(read_file_lines(audit)[:-2]))  # the file behind, and the topic's copy ...
    del sink.sent[-2]  # ... missing the entry between: its links do not hold


# (what happened to the file or the topic since the last run, what the tool says when it refuses)
OUT_OF_STEP = [
    (_ahead, "1 line\\(s\\) that the audit topic lacks"),
    (_edited, "line 2 of the file differs"),
    (_broken_topic, "topic's copy .* is broken"),
]


@pytest.mark.parametrize(("happened", "says"), OUT_OF_STEP)
def test_a_file_ahead_of_or_differing_from_the_topic_stops_the_tool(tmp_path: Path, happened: Any, says: str) -> None:
    """Fail closed: nothing is appended or released, and the sink is closed again."""
    audit, sink = tmp_path / "audit.jsonl", FakeSink()
    _write(audit, 3, sink)
    happened(audit, sink)
    before, sent = audit.read_bytes(), list(sink.sent)
    sink.closed = False
    with pytest.raises(ConfigError, match=says):
        _log(audit, sink).__enter__()
    assert (audit.read_bytes(), sink.sent, sink.closed) == (before, sent, True)


def test_a_principal_that_may_not_read_the_topic_skips_the_comparison_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audit, sink = tmp_path / "audit.jsonl", FakeSink()
    lines = _write(audit, 2, sink)
    audit.write_bytes(b"".join(lines[:-1]))
    sink.readable = False
    with caplog.at_level("WARNING", logger="pseudonymizer.audit"), _log(audit, sink):
        pass
    assert "may not read the audit topic" in caplog.text
    assert audit.read_bytes() == b"".join(lines[:-1])  # left for `audit verify --from-topic` to report


# --- lookup and quarantine decrypt print nothing when the audit cannot be written ---------------------------------


@pytest.fixture
def released(tmp_path: Path) -> dict[str, list[str]]:
    """The arguments of a lookup and of a quarantine decryption that would each print something, without audit flags."""
    from tests.pipeline.test_cli import APACHE, BAD, _process

    keys = tmp_path / "keyring.json"
    assert main(["keys", "generate", "--out", str(keys)]) == 0
    out, _ = _process(keys, tmp_path, [APACHE, BAD])
    record = orjson.loads((out / "abuse.jsonl").read_bytes().splitlines()[0])
    return {
        "lookup": ["lookup", "--keys", str(keys), "--purpose", "security", "--at", record["time"], "83.149.9.216"],
        "quarantine": ["quarantine", "decrypt", "--keys", str(keys), str(out / "quarantine.jsonl")],
    }


@pytest.mark.parametrize("tool", ["lookup", "quarantine"])
def test_lookup_and_quarantine_decrypt_print_nothing_when_the_audit_entry_cannot_be_written(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    released: dict[str, list[str]],
    tool: str,
) -> None:
    audit = tmp_path / "audit.jsonl"
    flags = ["--reason", "INC-7", "--audit", str(audit), "--audit-file-only"]
    assert main([*released[tool], *flags]) == 0  # the audit works: something is printed
    assert capsys.readouterr().out

    def refuse(self: AuditLog, event: Any) -> None:
        raise ConfigError("audit: cannot write the audit file (fake)")

    monkeypatch.setattr(AuditLog, "record", refuse)
    assert main([*released[tool], *flags]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "cannot write the audit file" in err


@pytest.mark.parametrize("tool", ["lookup", "quarantine"])
def test_lookup_and_quarantine_decrypt_with_an_unreachable_audit_broker_print_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    released: dict[str, list[str]],
    tool: str,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PSEUDO_AUDIT_TIMEOUT_S", "5")
    audit = tmp_path / "audit.jsonl"
    flags = ["--reason", "INC-7", "--audit", str(audit), "--broker", f"kafka://127.0.0.1:{port}"]
    capsys.readouterr()
    assert main([*released[tool], *flags]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "83.149.9.216" not in err
    assert "--audit-file-only" in err
    assert not audit.exists() or audit.read_bytes() == b""
