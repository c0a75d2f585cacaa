"""Escrow private key files: written once by ``keys escrow-rotate`` (0600, never overwritten), read by ``reveal``.

The private half of an escrow key pair never enters a worker's keyring: it is written to a file of its own for
the security team to keep offline (a vault, an offline machine, a hardware-backed store), and deleting every copy
of it is what makes its tokens irreversible.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.keystore import read_private_file
from transforms.errors import KeyringError
from transforms.escrow import EscrowPrivateKey, dump_escrow_private_key, parse_escrow_private_key

__all__ = ["read_escrow_private_key", "write_escrow_private_key"]


def write_escrow_private_key(key: EscrowPrivateKey, path: Path) -> None:
    """Create ``path`` with mode 0600 (O_EXCL: an existing file, maybe an older private key, is never replaced)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise KeyringError(f"refusing to overwrite {path}: it may hold another escrow private key") from None
    except OSError as exc:
        raise KeyringError(f"cannot create the escrow private key file {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(dump_escrow_private_key(key))
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def read_escrow_private_key(path: Path) -> EscrowPrivateKey:
    """Read and validate one private key file; refuse one that group or others may read (as the keyring)."""
    return parse_escrow_private_key(read_private_file(path, "escrow private key"))
