"""Escrow wired end to end without a broker: keyring (public half only), policy field, abuse records, the reveal
command with the private key file, legacy e1 tokens, and the rotation of escrow and quarantine keys."""

from __future__ import annotations

import base64
import stat
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from pydantic import SecretStr

from config import DEFAULT_POLICY
from pipeline.cli import main
from pipeline.escrow_keys import read_escrow_private_key
from pipeline.keystore import read_keyring_file, write_keyring
from transforms.errors import ConfigError, KeyringError
from transforms.escrow import DEFAULT_CONTEXT, EscrowKey, IpEscrow, generate_escrow_keypair, open_escrow
from transforms.keyring import dump_keyring, generate_keyring, parse_keyring
from transforms.policy import validate_policy
from transforms.process import RecordProcessor
from transforms.quarantine import QuarantineSealer, associated_data, unseal

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
    private = generate_escrow_keypair()
    kr = generate_keyring(escrow=private.public_part())
    assert [k.id for k in kr.escrow_public_keys] == [private.id]
    assert parse_keyring(dump_keyring(kr)) == kr
    assert kr.escrow_public_keys[0].tag_key.get_secret_value() not in repr(kr)
    assert private.private_key.get_secret_value() not in dump_keyring(kr).decode()
    old = orjson.loads(dump_keyring(generate_keyring()))
    for field in ("escrow_keys", "escrow_public_keys"):
        old.pop(field, None)
    assert parse_keyring(orjson.dumps(old)).escrow_public_keys == []


def test_abuse_records_carry_escrow_analytics_never() -> None:
    kr = generate_keyring(escrow=generate_escrow_keypair().public_part())
    proc = RecordProcessor.build(_policy(), kr)
    for line in (SSHD, SSHD6):
        out = proc(line, NOW)
        assert out.abuse, out
        for rec in out.abuse:
            assert rec["escrow"].startswith(f"e2.{kr.escrow_public_keys[0].id}.")
        assert all("escrow" not in a for a in out.analytics)
    out = proc(HOST, NOW)

    assert all("escrow" not in rec for rec in out.abuse)


def test_a_keyring_with_only_legacy_e1_keys_no_longer_seals() -> None:
    """Workers must not seal with a key they could open: such a keyring stops at start-up, naming the fix."""
    legacy = EscrowKey(id="eold", created=NOW, secret=SecretStr("A" * 86))
    kr = generate_keyring().model_copy(update={"escrow_keys": [legacy]})
    with pytest.raises(ConfigError, match="escrow-rotate"):
        RecordProcessor.build(_policy(), kr)


def test_escrow_in_policy_without_key_fails_at_startup() -> None:
    with pytest.raises(ConfigError, match="escrow key"):
        RecordProcessor.build(_policy(), generate_keyring())


def test_escrow_in_analytics_is_refused() -> None:
    with pytest.raises(ConfigError, match="abuse output only"):
        _policy(analytics_escrow=True)


def _reveal_args(audit: Path, *extra: str) -> list[str]:
    return ["reveal", "--operator", "alice", "--reason", "INC-1", "--audit", str(audit), "--audit-file-only", *extra]


def test_cli_generate_show_reveal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys, private = tmp_path / "k.json", tmp_path / "escrow-private.json"
    assert main(["keys", "generate", "--escrow", "--private-key-out", str(private), "--out", str(keys)]) == 0
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    kr = read_keyring_file(keys)
    proc = RecordProcessor.build(_policy(), kr)
    abuse = tmp_path / "abuse.jsonl"
    abuse.write_bytes(b"".join(orjson.dumps(r) + b"\n" for line in (SSHD, SSHD6, HOST) for r in proc(line, NOW).abuse))
    capsys.readouterr()
    audit = tmp_path / "audit.jsonl"
    # The workers' keyring alone opens nothing.
    assert main([*_reveal_args(audit, "--keys", str(keys)), str(abuse)]) == 2
    assert "escrow private key" in capsys.readouterr().err
    rc = main([*_reveal_args(audit, "--escrow-private-key", str(private)), str(abuse)])
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
    main([*_reveal_args(audit, "--escrow-private-key", str(private), "--record", rid), str(abuse)])
    out2, _ = capsys.readouterr()
    assert [orjson.loads(line)["ip"] for line in out2.splitlines()] == [first["ip"]] * len(out2.splitlines())
    assert main(["audit", "verify", str(audit)]) == 0
    # empty operator -> exit 2
    assert main(["reveal", "--escrow-private-key", str(private), "--operator", " ", "--reason", "x", str(abuse)]) == 2
    assert main(["keys", "show", "--keys", str(keys)]) == 0
    shown = capsys.readouterr().out
    assert kr.escrow_public_keys[0].id in shown
    assert kr.escrow_public_keys[0].tag_key.get_secret_value() not in shown
    assert orjson.loads(private.read_bytes())["private_key"] not in shown


def test_a_private_key_file_readable_by_others_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys, private = tmp_path / "k.json", tmp_path / "p.json"
    assert main(["keys", "generate", "--escrow", "--private-key-out", str(private), "--out", str(keys)]) == 0
    private.chmod(0o644)
    assert main([*_reveal_args(tmp_path / "a.jsonl", "--escrow-private-key", str(private)), "-"]) == 2
    assert "chmod 600" in capsys.readouterr().err


def test_escrow_keys_rotate_and_destroy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rotation adds a key pair that new tokens use; destroying it in the keyring stops sealing, not opening."""
    keys, first_private, second_private = tmp_path / "keyring.json", tmp_path / "p1.json", tmp_path / "p2.json"
    assert main(["keys", "generate", "--escrow", "--private-key-out", str(first_private), "--out", str(keys)]) == 0
    first = read_keyring_file(keys).escrow_public_keys[0]
    old_token = IpEscrow(first).seal(bytes([203, 0, 113, 9]))
    # A rotation never overwrites a private key file (it may hold the only copy of another key).
    assert main(["keys", "escrow-rotate", "--keys", str(keys), "--private-key-out", str(first_private)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["keys", "escrow-rotate", "--keys", str(keys), "--private-key-out", str(second_private)]) == 0
    rotated = read_keyring_file(keys)
    assert rotated.escrow_public_keys[0].id == first.id
    assert len(rotated.escrow_public_keys) == 2
    new_token = IpEscrow(rotated.escrow_public_keys[-1]).seal(bytes([203, 0, 113, 9]))
    assert new_token.split(".")[2] != old_token.split(".")[2]  # the tag key rotated too: no link across keys
    privates = [read_escrow_private_key(first_private), read_escrow_private_key(second_private)]
    for token in (old_token, new_token):
        assert open_escrow(privates, token) == bytes([203, 0, 113, 9])
    assert main(["keys", "escrow-destroy", "--keys", str(keys), "--id", first.id]) == 0
    assert "security team deletes every copy" in capsys.readouterr().err
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert [k.id for k in read_keyring_file(keys).escrow_public_keys] == [rotated.escrow_public_keys[1].id]
    assert open_escrow(privates, old_token) == bytes([203, 0, 113, 9])  # the private file still opens it
    assert main(["keys", "escrow-destroy", "--keys", str(keys), "--id", "nope"]) == 2
    assert first.tag_key.get_secret_value() not in capsys.readouterr().err


def test_legacy_e1_tokens_reveal_with_the_keyring_then_destroying_the_key_shreds_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Transition: an old keyring's e1 key opens e1 tokens (`reveal --keys`) until `escrow-destroy` removes it."""
    raw = bytes(range(64))
    legacy = EscrowKey(id="eold", created=NOW, secret=SecretStr(base64.urlsafe_b64encode(raw).decode().rstrip("=")))
    keys = tmp_path / "keyring.json"
    write_keyring(generate_keyring().model_copy(update={"escrow_keys": [legacy]}), keys)
    frame = b"\x04" + bytes([203, 0, 113, 9]) + bytes(12)
    token = "e1.eold." + base64.urlsafe_b64encode(
        AESSIV(raw).encrypt(frame, [DEFAULT_CONTEXT, b"eold"])
    ).decode().rstrip("=")
    abuse = tmp_path / "abuse.jsonl"
    abuse.write_bytes(orjson.dumps({"subject": "s-1", "time": "2026-01-01T00:00:00Z", "rule": "r", "escrow": token}))
    capsys.readouterr()
    assert main([*_reveal_args(tmp_path / "a.jsonl", "--keys", str(keys)), str(abuse)]) == 0
    assert orjson.loads(capsys.readouterr().out)["ip"] == "203.0.113.9"
    assert main(["keys", "escrow-destroy", "--keys", str(keys), "--id", "eold"]) == 0
    assert "can no longer be revealed by anyone" in capsys.readouterr().err
    with pytest.raises(KeyringError):
        open_escrow([], token, legacy_keys=read_keyring_file(keys).escrow_keys)


def test_quarantine_keys_rotate_and_destroy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A new quarantine key seals; older ones still open until destroyed; the sealing key cannot be destroyed."""
    keys = tmp_path / "keyring.json"
    assert main(["keys", "generate", "--out", str(keys)]) == 0
    first = read_keyring_file(keys).quarantine_key()
    aad = associated_data("logs.raw", 0, 1)
    old = QuarantineSealer(first).seal(b"old payload", aad)
    # The only key is also the sealing key.
    assert main(["keys", "quarantine-destroy", "--keys", str(keys), "--id", first.id]) == 2
    assert "quarantine-rotate" in capsys.readouterr().err
    assert main(["keys", "quarantine-rotate", "--keys", str(keys)]) == 0
    rotated = read_keyring_file(keys)
    newest = rotated.quarantine_key()
    assert newest.id != first.id
    assert [k.id for k in rotated.quarantine_keys] == [first.id, newest.id]
    new = QuarantineSealer(newest).seal(b"new payload", aad)
    assert (unseal(rotated, old, aad), unseal(rotated, new, aad)) == (b"old payload", b"new payload")
    assert main(["keys", "show", "--keys", str(keys)]) == 0
    shown = orjson.loads(capsys.readouterr().out)
    assert (shown["quarantine_keys"], shown["quarantine_sealing"]) == ([first.id, newest.id], newest.id)
    assert newest.secret.get_secret_value() not in str(shown)
    assert main(["keys", "quarantine-destroy", "--keys", str(keys), "--id", newest.id]) == 2
    assert main(["keys", "quarantine-destroy", "--keys", str(keys), "--id", first.id]) == 0
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    destroyed = read_keyring_file(keys)
    assert [k.id for k in destroyed.quarantine_keys] == [newest.id]
    assert unseal(destroyed, new, aad) == b"new payload"
    with pytest.raises(KeyringError):
        unseal(destroyed, old, aad)
    assert main(["keys", "quarantine-destroy", "--keys", str(keys), "--id", "nope"]) == 2
