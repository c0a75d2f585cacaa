"""The command line without a broker: keys, file mode contract, look-up, quarantine decryption, pruning."""

from __future__ import annotations

import stat
from pathlib import Path

import orjson
import pytest

from pipeline.cli import SUBCOMMANDS, build_parser, main

APACHE = (
    b'83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /.env?token=s3cr3tvalue1234 HTTP/1.1" 404 1 "-" "sqlmap/1.7"'
)
SSHD = b"Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for root from 173.234.31.186 port 38926 ssh2"
BAD = b'{"source": {"ip": "1.2.3.4"'


def _audited(audit: Path) -> list[str]:
    """The audit flags of the tools that reveal something: a file here, no broker in these tests."""
    return ["--reason", "INC-7", "--audit", str(audit), "--audit-file-only"]


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "keyring.json"
    assert main(["keys", "generate", "--out", str(path)]) == 0
    return path


def _process(keys: Path, tmp_path: Path, lines: list[bytes]) -> tuple[Path, dict[str, int]]:
    source = tmp_path / "input.log"
    source.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    args = ["process", "--keys", str(keys), "--out", str(out), "--ingest-time", "2026-11-27T00:00:00Z", str(source)]
    assert main(args) == 0
    return out, orjson.loads((out / "summary.json").read_bytes())


def test_every_subcommand_is_declared() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert set(SUBCOMMANDS) == set(subparsers.choices)  # type: ignore[arg-type]


def test_keys_generate_writes_an_owner_only_file_and_show_hides_secrets(
    keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    secrets = [c["secret"] for c in orjson.loads(keys.read_bytes())["chains"].values()]
    assert main(["keys", "show", "--keys", str(keys)]) == 0
    shown = capsys.readouterr()
    assert not any(s in shown.out + shown.err for s in secrets)


def test_file_mode_writes_the_contracted_outputs(keys: Path, tmp_path: Path) -> None:
    out, summary = _process(keys, tmp_path, [APACHE, SSHD, BAD])
    assert {k: summary[k] for k in ("input", "analytics", "quarantine", "filtered")} == {
        "input": 3,
        "analytics": 1,
        "quarantine": 1,
        "filtered": 1,
    }
    assert summary["input"] == summary["analytics"] + summary["quarantine"] + summary["filtered"]
    abuse = [orjson.loads(line) for line in (out / "abuse.jsonl").read_bytes().splitlines()]
    assert summary["abuse"] == len(abuse) >= 3  # sensitive file + scanner UA + failed password
    assert {r["kind"] for r in abuse} == {"event"}
    everything = b"".join((out / f).read_bytes() for f in ("analytics.jsonl", "abuse.jsonl", "quarantine.jsonl"))
    for secret in (b"83.149.9.216", b"173.234.31.186", b"s3cr3tvalue1234", b"1.2.3.4"):
        assert secret not in everything


def test_lookup_prints_the_pseudonym_records_carry(
    keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = _process(keys, tmp_path, [APACHE])
    record = orjson.loads((out / "abuse.jsonl").read_bytes().splitlines()[0])
    capsys.readouterr()
    audit = tmp_path / "audit.jsonl"
    lookup = ["lookup", "--keys", str(keys), "--purpose", "security", "--at", record["time"], "83.149.9.216"]
    assert main([*lookup, *_audited(audit)]) == 0
    assert capsys.readouterr().out == f"83.149.9.216\t{record['subject']}\n"
    # Audited before printing: the pseudonym (never the address) and who asked.
    entry = orjson.loads(audit.read_bytes().splitlines()[-1])
    assert (entry["tool"], entry["pseudonyms"], entry["reason"]) == ("lookup", [[record["subject"]]], "INC-7")
    assert b"83.149.9.216" not in audit.read_bytes()


def test_quarantine_decrypt_recovers_the_payload(
    keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = _process(keys, tmp_path, [BAD])
    capsys.readouterr()
    audit = tmp_path / "audit.jsonl"
    assert main(["quarantine", "decrypt", "--keys", str(keys), *_audited(audit), str(out / "quarantine.jsonl")]) == 0
    decrypted = orjson.loads(capsys.readouterr().out)
    assert decrypted["payload"] == BAD.decode()
    assert decrypted["reason"] == "invalid_json"
    entry = orjson.loads(audit.read_bytes().splitlines()[-1])
    assert (entry["tool"], entry["record"], entry["quarantine_reason"]) == (
        "quarantine decrypt",
        decrypted["source"],
        "invalid_json",
    )
    assert BAD not in audit.read_bytes()


def test_quarantine_decrypt_and_lookup_refuse_to_run_without_a_reason(keys: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["lookup", "--keys", str(keys), "--purpose", "security", "--at", "2015-05-17T10:00:00Z", "8.8.8.8"])
    with pytest.raises(SystemExit):
        main(["quarantine", "decrypt", "--keys", str(keys), str(tmp_path / "q.jsonl")])


def test_after_prune_nobody_can_look_up_the_old_epoch(
    keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "prune", "--keys", str(keys), "--analytics-days", "30", "--security-days", "30"]) == 0
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    capsys.readouterr()
    assert (
        main(
            [
                *("lookup", "--keys", str(keys), "--purpose", "analytics", "--at", "2015-05-17T10:00:00Z", "8.8.8.8"),
                *_audited(tmp_path / "audit.jsonl"),
            ]
        )
        == 1
    )
    assert "destroyed" in capsys.readouterr().err
    _, summary = _process(keys, tmp_path, [APACHE])
    assert summary["filtered"] == 1
    assert summary["reasons"] == {"filtered:beyond_retention": 1}


def test_missing_keyring_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["process", "--keys", str(tmp_path / "none.json"), "--out", str(tmp_path), "-"]) == 2
    assert "keyring file not found" in capsys.readouterr().err
