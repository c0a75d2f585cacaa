"""The audit's topic copy on the real broker: reveal writes each entry there (acks=all) before the address, and
`audit verify --from-topic` catches a file whose tail was rewritten or cut, which its hash chain alone cannot."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from pipeline.cli import main
from transforms.escrow import IpEscrow, generate_escrow_keypair
from transforms.keyring import generate_keyring

pytestmark = pytest.mark.integration


@pytest.fixture
def escrowed(tmp_path: Path) -> tuple[Path, Path]:
    """An abuse file with three escrowed records, and the private key file that opens them."""
    from pipeline.escrow_keys import write_escrow_private_key

    private = generate_escrow_keypair()
    private_path = tmp_path / "escrow-private.json"
    write_escrow_private_key(private, private_path)
    escrow = IpEscrow(generate_keyring(escrow=private.public_part()).escrow_public_keys[-1])
    records = [
        {
            "subject": f"s-{i}",
            "time": f"2026-01-01T00:00:0{i}Z",
            "rule": "r",
            "escrow": escrow.seal(bytes([198, 51, 100, i])),
        }
        for i in range(3)
    ]
    abuse = tmp_path / "abuse.jsonl"
    abuse.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return abuse, private_path


def test_reveal_writes_the_topic_copy_and_verify_compares_it_with_the_file(
    kafka_bootstrap: str, tmp_path: Path, escrowed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    abuse, private = escrowed
    audit, topic = tmp_path / "audit.jsonl", f"t{uuid.uuid4().hex[:10]}.audit"
    broker = ["--broker", f"kafka://{kafka_bootstrap}", "--audit-topic", topic]
    reveal = ["reveal", "--escrow-private-key", str(private), "--operator", "alice", "--reason", "INC-9"]
    assert main([*reveal, "--audit", str(audit), *broker, str(abuse)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    verify = ["audit", "verify", str(audit), "--from-topic", *broker]
    assert main(verify) == 0
    assert "intact, 3 entries" in capsys.readouterr().out

    lines = audit.read_bytes().splitlines(keepends=True)
    # Cutting the last entry leaves a valid chain in the file; the topic still holds it.
    audit.write_bytes(b"".join(lines[:-1]))
    assert main(["audit", "verify", str(audit)]) == 0
    assert main(verify) == 1
    assert "line 4: the audit topic holds an entry here that the file lacks" in capsys.readouterr().err

    # Rewriting the last entry (the chain cannot see it: nothing follows it) is caught against the topic too.
    last = orjson.loads(lines[-1])
    last["reason"] = "routine"
    audit.write_bytes(b"".join(lines[:-1]) + orjson.dumps(last) + b"\n")
    assert main(["audit", "verify", str(audit)]) == 0
    assert main(verify) == 1
    assert "line 4: this file line has no copy on the audit topic" in capsys.readouterr().err


def _chain(path: Path) -> str:
    return str(orjson.loads(path.read_bytes().splitlines()[0])["chain"])


def test_the_topic_is_the_record_of_truth_a_replaced_audit_file_is_named(
    kafka_bootstrap: str, tmp_path: Path, escrowed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """An operator moves the audit file away (or deletes it) and a new chain starts: the old one is still on the
    topic, and verifying the new file alone against the topic fails, naming the old chain."""
    abuse, private = escrowed
    audit, moved, topic = tmp_path / "audit.jsonl", tmp_path / "gone.jsonl", f"t{uuid.uuid4().hex[:10]}.audit"
    broker = ["--broker", f"kafka://{kafka_bootstrap}", "--audit-topic", topic]
    reveal = ["reveal", "--escrow-private-key", str(private), "--operator", "alice", "--reason", "INC-9", *broker]
    assert main([*reveal, "--audit", str(audit), str(abuse)]) == 0
    audit.rename(moved)
    assert main([*reveal, "--audit", str(audit), "--record", "s-1/2026-01-01T00:00:01Z/r", str(abuse)]) == 0
    capsys.readouterr()

    assert main(["audit", "verify", str(audit), "--from-topic", *broker]) == 1
    out, err = capsys.readouterr()
    assert f"chain {_chain(moved)}: no audit file given continues this chain" in err
    assert f"chain {_chain(audit)} ({audit}): intact, 1 entries" in out

    assert main(["audit", "verify", "--from-topic", *broker]) == 0  # the auditor, without the files
    out = capsys.readouterr().out
    assert f"chain {_chain(moved)}: intact, 3 entries" in out
    assert f"chain {_chain(audit)}: intact, 1 entries" in out
    assert main(["audit", "verify", str(moved), str(audit), "--from-topic", *broker]) == 0


def test_a_tool_catches_the_file_up_with_the_topic_and_refuses_a_file_ahead_of_it(
    kafka_bootstrap: str,
    tmp_path: Path,
    escrowed: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    abuse, private = escrowed
    audit, topic = tmp_path / "audit.jsonl", f"t{uuid.uuid4().hex[:10]}.audit"
    broker = ["--broker", f"kafka://{kafka_bootstrap}", "--audit-topic", topic]
    reveal = ["reveal", "--escrow-private-key", str(private), "--operator", "alice", "--reason", "INC-9"]
    one = ["--record", "s-0/2026-01-01T00:00:00Z/r", str(abuse)]
    assert main([*reveal, *broker, "--audit", str(audit), str(abuse)]) == 0
    lines = audit.read_bytes().splitlines(keepends=True)
    # The state a failed file write leaves (the topic took the entry, the file did not get it).
    audit.write_bytes(b"".join(lines[:-1]))
    with caplog.at_level("WARNING", logger="pseudonymizer.audit"):
        assert main([*reveal, *broker, "--audit", str(audit), *one]) == 0
    assert "appended 1 entry" in caplog.text
    assert audit.read_bytes().startswith(b"".join(lines))  # the lost entry back in its place, then the new one
    capsys.readouterr()
    assert main(["audit", "verify", str(audit), "--from-topic", *broker]) == 0
    assert "intact, 4 entries" in capsys.readouterr().out

    # An entry the topic never saw (written with --audit-file-only): the next audited run refuses, releasing nothing.
    assert main([*reveal, "--audit-file-only", "--audit", str(audit), *one]) == 0
    capsys.readouterr()
    assert main([*reveal, *broker, "--audit", str(audit), *one]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "1 line(s) that the audit topic lacks" in err
