"""Escrow wired end to end without a broker: keyring, policy field, abuse records, the reveal command."""

from __future__ import annotations

import stat
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from config import DEFAULT_POLICY
from pipeline.cli import main
from pipeline.keystore import read_keyring_file
from transforms.errors import ConfigError
from transforms.keyring import dump_keyring, generate_keyring, parse_keyring
from transforms.policy import validate_policy
from transforms.process import RecordProcessor

SSHD = b"Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for root from 173.234.31.186 port 38926 ssh2"
SSHD6 = b"Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for root from 2a00:1450:4001:82a::200e port 38926 ssh2"
HOST = (
    b"Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 "
    b"tty=ssh ruser= rhost=evil.example.com  user=root"
)
NOW = datetime(2026, 11, 27, tzinfo=UTC)


def _policy(*, abuse_escrow: bool = True, analytics_escrow: bool = False):
    data = tomllib.loads(DEFAULT_POLICY.read_text())
    if abuse_escrow:
        data["abuse"]["fields"].append({"name": "escrow", "transform": "escrow_ip"})
    if analytics_escrow:
        data["analytics"]["fields"].append({"name": "escrow", "transform": "escrow_ip"})
    return validate_policy(data, "test")


def test_keyring_round_trip_and_old_files_parse() -> None:
    kr = generate_keyring(escrow=True)
    assert len(kr.escrow_keys) == 1
    assert parse_keyring(dump_keyring(kr)) == kr
    assert kr.escrow_keys[0].secret.get_secret_value() not in repr(kr)
    old = orjson.loads(dump_keyring(generate_keyring()))
    old.pop("escrow_keys", None)
    assert parse_keyring(orjson.dumps(old)).escrow_keys == []


def test_abuse_records_carry_escrow_analytics_never() -> None:
    kr = generate_keyring(escrow=True)
    proc = RecordProcessor.build(_policy(), kr)
    for line in (SSHD, SSHD6):
        out = proc(line, NOW)
        assert out.abuse, out
        for rec in out.abuse:
            assert rec["escrow"].startswith(f"e1.{kr.escrow_keys[0].id}.")
        assert all("escrow" not in a for a in out.analytics)
    out = proc(HOST, NOW)

    assert all("escrow" not in rec for rec in out.abuse)


def test_escrow_in_policy_without_key_fails_at_startup() -> None:
    with pytest.raises(ConfigError, match="escrow key"):
        RecordProcessor.build(_policy(), generate_keyring())


def test_escrow_in_analytics_is_refused() -> None:
    with pytest.raises(ConfigError, match="abuse output only"):
        _policy(analytics_escrow=True)


def test_cli_generate_show_reveal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "k.json"
    assert main(["keys", "generate", "--escrow", "--out", str(keys)]) == 0
    kr = read_keyring_file(keys)
    proc = RecordProcessor.build(_policy(), kr)
    abuse = tmp_path / "abuse.jsonl"
    abuse.write_bytes(b"".join(orjson.dumps(r) + b"\n" for line in (SSHD, SSHD6, HOST) for r in proc(line, NOW).abuse))
    capsys.readouterr()
    audit = tmp_path / "audit.jsonl"
    rc = main(
        ["reveal", "--keys", str(keys), "--operator", "alice", "--reason", "INC-1", "--audit", str(audit), str(abuse)]
    )
    out, err = capsys.readouterr()

    assert rc == 0
    ips = {orjson.loads(line)["ip"] for line in out.splitlines()}
    assert ips == {"173.234.31.186", "2a00:1450:4001:82a::200e"}
    assert "173.234.31.186" not in audit.read_text()
    assert stat.S_IMODE(audit.stat().st_mode) == 0o600
    assert '"no_escrow"' in err
    # --record selection
    first = orjson.loads(out.splitlines()[0])
    rid = f"{first['subject']}/{first['time']}/{first['rule']}"
    main(
        [
            "reveal",
            "--keys",
            str(keys),
            "--operator",
            "bob",
            "--reason",
            "INC-2",
            "--audit",
            str(audit),
            "--record",
            rid,
            str(abuse),
        ]
    )
    out2, _ = capsys.readouterr()
    assert [orjson.loads(line)["ip"] for line in out2.splitlines()] == [first["ip"]] * len(out2.splitlines())
    # empty operator -> exit 2
    assert main(["reveal", "--keys", str(keys), "--operator", " ", "--reason", "x", str(abuse)]) == 2
    assert main(["keys", "show", "--keys", str(keys)]) == 0
    shown = capsys.readouterr().out
    assert kr.escrow_keys[0].id in shown
    assert kr.escrow_keys[0].secret.get_secret_value() not in shown


def test_escrow_keys_rotate_and_destroy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rotation adds a key that new tokens use; destroying the old key makes its tokens irreversible."""
    from transforms.errors import KeyringError
    from transforms.escrow import IpEscrow, open_escrow

    keys = tmp_path / "keyring.json"
    assert main(["keys", "generate", "--escrow", "--out", str(keys)]) == 0
    first = read_keyring_file(keys).escrow_keys[0]
    old_token = IpEscrow(first).seal(bytes([203, 0, 113, 9]))
    assert main(["keys", "escrow-rotate", "--keys", str(keys)]) == 0
    rotated = read_keyring_file(keys)
    assert rotated.escrow_keys[0].id == first.id
    assert len(rotated.escrow_keys) == 2
    assert open_escrow(rotated.escrow_keys, old_token) == bytes([203, 0, 113, 9])
    assert main(["keys", "escrow-destroy", "--keys", str(keys), "--id", first.id]) == 0
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    remaining = read_keyring_file(keys).escrow_keys
    assert [k.id for k in remaining] == [rotated.escrow_keys[1].id]
    with pytest.raises(KeyringError):
        open_escrow(remaining, old_token)
    assert main(["keys", "escrow-destroy", "--keys", str(keys), "--id", "nope"]) == 2
    assert first.secret.get_secret_value() not in capsys.readouterr().err
