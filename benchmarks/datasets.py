"""Readers for the labelled and real data sets in ``../shared/data`` (never copied into the project).

Each reader returns plain records; nothing here runs a detector. The folder is ``$PSEUDO_SHARED_DATA``,
by default ``<repo>/../shared/data``; :func:`shared_dir` returns ``None`` where it is absent so that the
benchmark and its tests can skip cleanly. See ``../shared/data/README.md`` for origins and licences
(several sets are research/test-only: reference them by path, do not redistribute).

:func:`combined_line` writes an Apache ``combined`` access-log line the way ``mod_log_config`` does,
including its escaping of the request line and headers (``ap_escape_logitem``), so that the benchmark
feeds the real parser exactly what a server would have written.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent

CSIC_NORMAL = "labelled/csic2010/normalTrafficTraining.txt.gz"
CSIC_ANOMALOUS = "labelled/csic2010/anomalousTrafficTest.txt.gz"
HTTPPARAMS = "labelled/httpparams/payload_full.csv"
CRS_TESTS = "labelled/crs-regression-tests/crs_regression_requests.jsonl"
FAIL2BAN_LABELS = "labelled/fail2ban-testlogs/labels.jsonl"
CROWDSEC_DIR = "labelled/crowdsec-hub-test-fixtures"
OPENSSH_LOG = "logs/loghub-openssh/OpenSSH_2k.log"
LINUX_LOG = "logs/loghub-linux/Linux_2k.log"
ELASTIC_LOG = "logs/elastic-apache-access/apache_logs_2015-05-17_18"
BASELINE_LISTS = (
    "patterns/crowdsec-sec-lists-web/sqli_probe_patterns.txt",
    "patterns/crowdsec-sec-lists-web/xss_probe_patterns.txt",
    "patterns/crowdsec-sec-lists-web/path_traversal.txt",
)

T = TypeVar("T")


def shared_dir() -> Path | None:
    """The shared data folder, or ``None`` when it is not there (a user's clone)."""
    path = Path(os.environ.get("PSEUDO_SHARED_DATA", ROOT.parent / "shared" / "data"))
    return path if path.is_dir() else None


def sample(items: Sequence[T], limit: int | None, seed: int) -> list[T]:
    """At most ``limit`` items drawn with a fixed seed, in their original order (all of them if None)."""
    if limit is None or len(items) <= limit:
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in chosen]


# --------------------------------------------------------------------------------------------- log lines

# mod_log_config escapes '"', '\' and every byte that is not printable ASCII (ap_escape_logitem): the
# usual C escapes for five control characters, \xhh for the rest, including bytes >= 0x7f.
_C_ESCAPES = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0B: "\\v", 0x0D: "\\r", 0x22: '\\"', 0x5C: "\\\\"}
_ESCAPED = [_C_ESCAPES.get(b, f"\\x{b:02x}" if b < 0x20 or b >= 0x7F else chr(b)) for b in range(256)]


def apache_escape(raw: bytes) -> str:
    """A request line or header value as Apache writes it into a quoted log field."""
    return "".join(_ESCAPED[b] for b in raw)


def combined_line(
    *,
    ip: str,
    time: datetime,
    request: bytes,
    status: int | None,
    user_agent: bytes | None,
    referer: bytes | None = None,
) -> bytes:
    """An Apache ``combined`` line: ``%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"``."""
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
    agent = apache_escape(user_agent) if user_agent else "-"
    ref = apache_escape(referer) if referer else "-"
    code = "-" if status is None else str(status)
    return f'{ip} - - [{stamp}] "{apache_escape(request)}" {code} - "{ref}" "{agent}"'.encode("ascii")


# --------------------------------------------------------------------------------------------- CSIC 2010

_CSIC_REQUEST_LINE = re.compile(rb"^([A-Z]+) (.+) (HTTP/\d\.\d)$")
_ABSOLUTE = re.compile(rb"^https?://[^/]*")


@dataclass(frozen=True, slots=True)
class CsicRequest:
    """One CSIC request. ``target`` is in origin form: CSIC wrote absolute-URIs (a proxy's view)."""

    method: bytes
    target: bytes
    version: bytes
    user_agent: bytes | None
    body: bytes

    @property
    def request_line(self) -> bytes:
        return b" ".join((self.method, self.target, self.version))


def read_csic(path: Path) -> list[CsicRequest]:
    """Requests of one CSIC file: request line, headers, and the body line when Content-Length > 0."""
    lines = gzip.decompress(path.read_bytes()).split(b"\r\n")
    requests = []
    i, count = 0, len(lines)
    while i < count:
        match = _CSIC_REQUEST_LINE.match(lines[i])
        i += 1
        if match is None:
            continue
        headers: dict[bytes, bytes] = {}
        while i < count and lines[i]:
            name, _, value = lines[i].partition(b": ")
            headers[name.lower()] = value
            i += 1
        i += 1  # the blank line after the headers
        body = b""
        if int(headers.get(b"content-length", b"0") or 0) > 0 and i < count:
            body = lines[i]
            i += 1
        target = _ABSOLUTE.sub(b"", match[2]) or b"/"
        requests.append(CsicRequest(match[1], target, match[3], headers.get(b"user-agent"), body))
    return requests


# --------------------------------------------------------------------------------------------- other sets


def read_httpparams(path: Path) -> list[dict[str, str]]:
    """Rows ``payload, length, attack_type, label`` (attack_type: norm, sqli, xss, cmdi, path-traversal)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_lines(path: Path) -> list[bytes]:
    """Non-empty lines of a log file, as bytes (the processor's input), without line ends."""
    return [line.rstrip(b"\r") for line in path.read_bytes().split(b"\n") if line.strip()]


def read_crowdsec_expected(folder: Path) -> list[dict[str, str]]:
    with (folder / "expected_alerts.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def crowdsec_fixture_lines(folder: Path, test: str) -> Iterator[bytes]:
    for path in sorted((folder / "logs" / test).iterdir()):
        yield from read_lines(path)


def read_pattern_list(path: Path) -> list[str]:
    """Lines of a literal pattern list, exactly as written (only line ends removed; blank lines skipped)."""
    lines = (line.rstrip("\r") for line in path.read_text(encoding="utf-8").split("\n"))
    return [line for line in lines if line]
