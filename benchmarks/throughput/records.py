"""The benchmark input on disk: length-prefixed raw records (a record may be empty or hold any byte)."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

_LENGTH = struct.Struct(">I")


def write_records(path: Path, records: Iterable[bytes]) -> int:
    count = 0
    with open(path, "wb") as handle:
        for record in records:
            handle.write(_LENGTH.pack(len(record)))
            handle.write(record)
            count += 1
    return count


def read_records(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out: list[bytes] = []
    position, end = 0, len(data)
    while position < end:
        (size,) = _LENGTH.unpack_from(data, position)
        position += _LENGTH.size
        out.append(data[position : position + size])
        position += size
    return out
