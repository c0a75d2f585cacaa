"""Reading and writing keyring files. The only place that touches key material on disk."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from config.settings import Settings
from transforms.errors import KeyringError
from transforms.keyring import Keyring, dump_keyring, parse_keyring

NO_KEYS_MESSAGE = (
    "no keyring: set PSEUDO_KEYS_FILE to a keyring file (or PSEUDO_KEYS to its JSON) or pass --keys. "
    "Create one with `pseudonymizer keys generate --out keyring.json`. "
    "The worker refuses to run without keys rather than output unprotected data."
)
# Names the variable only: the value is the whole keyring.
KEYS_IN_ENVIRONMENT_WARNING = (
    "keys: the keyring comes from the PSEUDO_KEYS environment variable, which skips the file permission check "
    "and is readable by anything that can read this process's environment (child processes, /proc, crash "
    "reports, `docker inspect`). Mount it as a secret file instead (for example /run/secrets/pseudonymizer-keyring, "
    'mode 0400 or 0600) and point PSEUDO_KEYS_FILE at it; see README "Keys in a secrets directory".'
)

log = logging.getLogger("pseudonymizer")


def write_keyring(keyring: Keyring, path: Path, *, overwrite: bool = False) -> None:
    """Write atomically with mode 0600: the file never exists with wider permissions, even briefly."""
    if path.exists() and not overwrite:
        raise KeyringError(f"refusing to overwrite existing keyring {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(dump_keyring(keyring))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_private_file(path: Path, what: str) -> bytes:
    """The bytes of a key file (``what`` names it in errors), refused when group or others may access it."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyringError(f"{what} file not found: {path}") from None
    except PermissionError:
        raise KeyringError(f"{what} file not readable: {path}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyringError(f"{what} file {path} is accessible by group/others; run: chmod 600 {path}")
    return data


def read_keyring_file(path: Path) -> Keyring:
    return parse_keyring(read_private_file(path, "keyring"))


def load_keyring(settings: Settings, path: Path | None = None) -> Keyring:
    """The keyring from an explicit path, PSEUDO_KEYS_FILE, or PSEUDO_KEYS (in that order)."""
    if path is not None:
        return read_keyring_file(path)
    if settings.keys_file is not None:
        return read_keyring_file(settings.keys_file)
    if settings.keys is not None:
        log.warning(KEYS_IN_ENVIRONMENT_WARNING)
        return parse_keyring(settings.keys.get_secret_value())
    raise KeyringError(NO_KEYS_MESSAGE)
