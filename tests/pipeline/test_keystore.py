"""Keyring files: written 0600, refused when readable by others, never echoed; a worker without keys refuses."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import orjson
import pytest

from config.settings import Settings
from pipeline.cli import main
from pipeline.keystore import load_keyring, read_keyring_file, write_keyring
from transforms.errors import KeyringError
from transforms.keyring import Purpose, dump_keyring, generate_keyring


def test_written_keyring_is_owner_only_and_reads_back(tmp_path: Path) -> None:
    keyring = generate_keyring()
    path = tmp_path / "keys" / "keyring.json"
    write_keyring(keyring, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_keyring_file(path) == keyring


def test_existing_keyring_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    write_keyring(generate_keyring(), path)
    with pytest.raises(KeyringError, match="refusing to overwrite"):
        write_keyring(generate_keyring(), path)


def test_group_readable_keyring_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    write_keyring(generate_keyring(), path)
    os.chmod(path, 0o640)
    with pytest.raises(KeyringError, match="chmod 600"):
        read_keyring_file(path)


def test_missing_keys_give_a_clear_message() -> None:
    with pytest.raises(KeyringError, match="refuses to run without keys"):
        load_keyring(Settings.from_env({}))


def test_keys_from_environment_content() -> None:
    keyring = generate_keyring()
    settings = Settings.from_env({"PSEUDO_KEYS": dump_keyring(keyring).decode()})
    assert load_keyring(settings) == keyring
    secret = keyring.chains[Purpose.SECURITY].secret.get_secret_value()
    assert secret not in repr(settings)
    assert secret not in str(settings)


def test_keys_from_environment_warn_and_name_the_file_setting(caplog: pytest.LogCaptureFixture) -> None:
    """PSEUDO_KEYS works but warns once, pointing at PSEUDO_KEYS_FILE, and the warning carries no key material."""
    keyring = generate_keyring()
    dumped = dump_keyring(keyring).decode()
    with caplog.at_level(logging.WARNING, logger="pseudonymizer"):
        assert load_keyring(Settings.from_env({"PSEUDO_KEYS": dumped})) == keyring
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "PSEUDO_KEYS_FILE" in message
    assert "permission check" in message
    secrets = [chain.secret.get_secret_value() for chain in keyring.chains.values()]
    for text in (message, caplog.text):
        assert dumped not in text
        assert not any(secret in text for secret in secrets)


def test_keys_from_a_file_do_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "keyring.json"
    write_keyring(generate_keyring(), path)
    with caplog.at_level(logging.WARNING, logger="pseudonymizer"):
        load_keyring(Settings.from_env({"PSEUDO_KEYS_FILE": str(path)}))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_keys_generate_writes_an_event_id_key(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    assert main(["keys", "generate", "--out", str(path)]) == 0
    stored = orjson.loads(path.read_bytes())["event_id_key"]
    assert read_keyring_file(path).event_id_key.get_secret_value() == stored


def test_an_older_keyring_file_keeps_its_event_ids_through_keys_prune(tmp_path: Path) -> None:
    """A keyring from before event ids: its derived key is written into the file by the next rewrite, before the
    prune advances the security chain it came from, so the ids of a replay stay as they were."""
    payload = orjson.loads(dump_keyring(generate_keyring()))
    del payload["event_id_key"]
    path = tmp_path / "keyring.json"
    path.write_bytes(orjson.dumps(payload))
    path.chmod(0o600)
    before = read_keyring_file(path).event_id_key_material()
    assert main(["keys", "prune", "--keys", str(path), "--analytics-days", "1", "--security-days", "1"]) == 0
    after = read_keyring_file(path)
    assert after.chains[Purpose.SECURITY].secret.get_secret_value() != payload["chains"]["security"]["secret"]
    assert "event_id_key" in orjson.loads(path.read_bytes())
    assert after.event_id_key_material() == before
