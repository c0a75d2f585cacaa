"""The parser over every line of the real logs in ../shared/data (skipped where the folder is absent).

Expected counts are derived here with grep-like string counting, independently of the parser, and
pinned to the numbers the data README states or that ``grep -c`` gives, so that a wrong count on
either side shows up.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from transforms.errors import RecordError
from transforms.model import Event, EventKind, SshOutcome
from transforms.parse import ERROR_LOG_KEY, ParseParams, build_parser
from transforms.signals import SSH_EVENT_KEY

pytestmark = pytest.mark.shared_data

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("PSEUDO_SHARED_DATA", ROOT.parent / "shared" / "data"))
PARSE = build_parser(ParseParams())


def _lines(*parts: str) -> list[bytes]:
    path = SHARED_DATA.joinpath("logs", *parts)
    if not path.is_file():
        pytest.skip(f"shared data not present: {path}")
    return path.read_bytes().splitlines()


def _parse_all(lines: list[bytes], ingest: datetime) -> tuple[list[list[Event]], Counter[str]]:
    """Events per line, and the count of each error reason."""
    per_line: list[list[Event]] = []
    errors: Counter[str] = Counter()
    for line in lines:
        try:
            per_line.append(PARSE(line, ingest))
        except RecordError as exc:
            errors[exc.reason.value] += 1
            per_line.append([])
    return per_line, errors


def test_elastic_apache_access_log() -> None:
    """4,525 combined lines: one event each, fields as in the text, no errors, no malformed requests."""
    lines = _lines("elastic-apache-access", "apache_logs_2015-05-17_18")
    per_line, errors = _parse_all(lines, datetime(2015, 5, 19, tzinfo=UTC))
    assert errors == Counter()
    events = [event for found in per_line for event in found]
    assert len(lines) == len(events) == 4525  # the README's line count
    # the 9th/10th blank-separated fields are status and size; the request starts with '"METHOD'
    text = [line.decode() for line in lines]
    fields = [line.split(" ") for line in text]
    assert Counter(e.status for e in events) == Counter(int(f[8]) for f in fields)
    assert Counter(e.method for e in events) == Counter(f[5].lstrip('"') for f in fields) == {"GET": 4507, "HEAD": 18}
    assert sum(e.bytes_sent is None for e in events) == sum(f[9] == "-" for f in fields) == 380
    assert [e.source_ip for e in events] == [f[0] for f in fields]
    assert all(e.kind is EventKind.HTTP and e.format == "apache_combined" for e in events)
    assert all(e.time_flag is None and e.extra == {} for e in events)
    # times agree with the slow, obvious reading (strptime) of the bracketed field
    stamps = [datetime.strptime(line.split("[", 1)[1][:26], "%d/%b/%Y:%H:%M:%S %z") for line in text]
    assert [e.time for e in events] == stamps
    assert (min(stamps), max(stamps)) == (
        datetime(2015, 5, 17, 10, 5, tzinfo=UTC),
        datetime(2015, 5, 18, 23, 5, 58, tzinfo=UTC),
    )


def test_loghub_openssh_log() -> None:
    """2,000 sshd lines: outcome counts match string counts; folded repeats expand; no errors."""
    lines = _lines("loghub-openssh", "OpenSSH_2k.log")
    text = [line.decode() for line in lines]
    per_line, errors = _parse_all(lines, datetime(2026, 11, 27, tzinfo=UTC))
    assert errors == Counter()
    events = [event for found in per_line for event in found]
    outcomes: Counter[SshOutcome | None] = Counter()
    for event in events:
        outcomes[event.ssh_outcome] += event.repeat  # a folded line is one event that counts its repeats

    def count(needle: str) -> int:
        return sum(needle in line for line in text)

    repeats = [re.search(r"message repeated (\d+) times: \[ Failed", line) for line in text]
    folded = [int(m[1]) for m in repeats if m]
    assert count("Failed password") == 520  # the README's number, folded lines included
    assert folded == [5, 5]
    failed = count(": Failed ") + sum(folded)  # "Failed password" and "Failed none", plus the folded attempts
    assert outcomes[SshOutcome.FAILED] == failed == 532
    assert outcomes[SshOutcome.ACCEPTED] == count(": Accepted ") == 1
    assert outcomes[SshOutcome.INVALID_USER] == count(": Invalid user ") == 113
    assert outcomes[SshOutcome.AUTH_FAILURE] == count("sshd:auth): authentication failure;") == 494
    disconnects = count("Connection closed by ") + count("Received disconnect from ")
    assert outcomes[SshOutcome.DISCONNECT] == disconnects == 502
    others = count("reverse mapping checking") + count("Did not receive identification") + count(" more authentication")
    assert outcomes[SshOutcome.OTHER] == others == 105
    # hints for the signal detector: port scans, and clients that gave up on authentication (disconnect
    # reason 14, "no more authentication methods", or JSch's "Auth fail")
    hints = Counter(e.extra[SSH_EVENT_KEY] for e in events if SSH_EVENT_KEY in e.extra)
    gave_up = sum("Received disconnect from " in line and (": 14: " in line or "Auth fail" in line) for line in text)
    assert hints == {"no_ident": count("Did not receive identification"), "auth_disconnect": gave_up}
    assert hints == {"no_ident": 10, "auth_disconnect": 47}
    # the README: 520 "Failed password" lines come from 23 addresses
    failed_sources = {e.source_ip for e in events if e.ssh_outcome is SshOutcome.FAILED and e.ssh_method == "password"}
    assert len(failed_sources) == 23
    # pam_unix logged 7 failures with a host name for rhost
    hostnames = [e for e in events if e.extra.get("source_kind") == "hostname"]
    assert len(hostnames) == sum(bool(re.search(r"rhost=\S*[a-z]", line)) for line in text) == 7
    # every line is from Dec 10: the year before the ingest month (November)
    assert {(e.time.year, e.time.month, e.time.day) for e in events} == {(2025, 12, 10)}
    assert all(e.time_flag is None and e.format == "sshd_syslog" for e in events)
    # lines with no client are recognized and give no event (filtered), e.g. "check pass; user unknown"
    no_client = re.compile(
        r"Disconnecting: Too many|fatal: Write failed|input_userauth_request|PAM service\(sshd\) ignoring"
        r"|check pass; user unknown|session (opened|closed)"
    )
    assert sum(not found for found in per_line) == sum(bool(no_client.search(line)) for line in text) == 261


def test_loghub_linux_log() -> None:
    """2,000 lines from many programs: only sshd(pam_unix) failures with an rhost become events; no errors."""
    lines = _lines("loghub-linux", "Linux_2k.log")
    text = [line.decode().rstrip() for line in lines]
    ingest = datetime(2026, 11, 27, tzinfo=UTC)
    per_line, errors = _parse_all(lines, ingest)
    assert errors == Counter()
    events = [event for found in per_line for event in found]
    expected = [
        line
        for line in text
        if " sshd(pam_unix)[" in line and "authentication failure;" in line and not line.endswith("rhost=")
    ]
    assert len(events) == len(expected) == 489
    assert all(len(found) <= 1 for found in per_line)
    assert {e.ssh_outcome for e in events} == {SshOutcome.AUTH_FAILURE}
    # some rhosts are host names: lower-cased and marked
    hostnames = [e for e in events if e.extra.get("source_kind") == "hostname"]
    expected_hostnames = [line for line in expected if re.search(r"rhost=\S*[A-Za-z]", line)]
    assert len(hostnames) == len(expected_hostnames) == 189
    assert all(e.source_ip == e.source_ip.lower() for e in hostnames)
    assert sum(e.user == "root" for e in events) == sum("user=root" in line for line in expected)
    # Jun/Jul stamps read in November: this year
    assert {(e.time.year, e.time.month) for e in events} == {(2026, 6), (2026, 7)}


def test_loghub_apache_error_log_gives_an_event_per_client_line() -> None:
    """2,000 Apache 2.0 error lines: one event for each "[client IP]" line, none for the rest, no errors."""
    lines = _lines("loghub-apache-error", "Apache_2k.log")
    text = [line.decode() for line in lines]
    per_line, errors = _parse_all(lines, datetime(2006, 1, 1, tzinfo=UTC))
    assert errors == Counter()
    assert len(text) == 2000
    with_client = [line for line in text if "[client " in line]
    assert [bool(found) for found in per_line] == ["[client " in line for line in text]
    assert len(with_client) == sum("Directory index forbidden by rule" in line for line in text) == 32
    events = [event for found in per_line for event in found]
    assert [e.source_ip for e in events] == [line.split("[client ", 1)[1].split("]", 1)[0] for line in with_client]
    assert {(e.kind, e.status, e.format, e.extra[ERROR_LOG_KEY]) for e in events} == {
        (EventKind.HTTP, None, "apache_error", "index_forbidden")
    }
    # the stamps are local time without a zone, read as UTC; agree with strptime of the bracketed field
    stamps = [datetime.strptime(line[1:25], "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC) for line in with_client]
    assert [(e.time, e.time_flag) for e in events] == [(stamp, None) for stamp in stamps]


def test_fail2ban_sshd_lines_that_must_match_give_an_event_for_their_host() -> None:
    """Every sshd line fail2ban must match and that names its host gives an event for that host.

    fail2ban takes the host of the other lines ("Disconnecting: Too many authentication failures",
    "kex_exchange_identification: ...") from an earlier line of the same sshd process; a per-record
    parser cannot, so those give none.
    """
    path = SHARED_DATA / "labelled" / "fail2ban-testlogs" / "labels.jsonl"
    if not path.is_file():
        pytest.skip(f"shared data not present: {path}")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    must_match = [row for row in rows if row["file"] == "sshd" and row["match"]]
    assert len(must_match) == 109  # the data README: sshd 109 must-match / 46 must-not-match
    named = [row for row in must_match if row["host"] is not None and row["host"] in row["log_line"]]
    assert len(must_match) - len(named) == 12
    wrong_host = []
    for row in named:
        events = PARSE(row["log_line"].encode(), datetime(2026, 11, 27, tzinfo=UTC))
        assert events, row["log_line"]
        if row["host"].lower() not in {event.source_ip.removeprefix("::ffff:") for event in events}:
            wrong_host.append(row["line_no"])
    # No disagreement, injection samples included (lines 135-147): sshd never logs a user name with a colon,
    # so the address is the first "from X port N" that ends the line or precedes ": " (see transforms.syslog).
    assert wrong_host == []


def _fail2ban_rows(*files: str) -> list[dict[str, Any]]:
    path = SHARED_DATA / "labelled" / "fail2ban-testlogs" / "labels.jsonl"
    if not path.is_file():
        pytest.skip(f"shared data not present: {path}")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [row for row in rows if row["file"].startswith(files)]


def test_fail2ban_web_lines_that_must_match_give_an_event_for_their_host() -> None:
    """Apache and nginx lines (access and error logs) that fail2ban must match give an event for their host.

    The exceptions, listed: a custom format with the time in the wrong place, lines with a program tag
    but no syslog time stamp ("host nginx[2833]: 2015/01/21 ..."), and one nginx line whose client text
    repeats ", client: X, server: " with another address (dropped on purpose, see parse._nginx_error).
    No line is ever attributed to another host.
    """
    rows = _fail2ban_rows("apache-", "nginx-")
    must_match = [row for row in rows if row["match"]]
    assert (len(must_match), len(rows) - len(must_match)) == (147, 8)  # detection.md: apache-* 97+7, nginx-* 50+1
    missed, wrong_host = [], []
    for row in must_match:
        try:
            events = PARSE(row["log_line"].encode(), datetime(2026, 11, 27, tzinfo=UTC))
        except RecordError as exc:
            missed.append((row["file"], row["line_no"], exc.reason.value))
            continue
        if not events:
            missed.append((row["file"], row["line_no"], "no event"))
        elif row["host"] not in {event.source_ip for event in events}:
            wrong_host.append((row["file"], row["line_no"]))
    assert wrong_host == []
    assert missed == [
        ("apache-fakegooglebot", 3, "unparseable_line"),  # "IP - - - [time ] host "GET ..."": no format of ours
        ("nginx-botsearch", 40, "unparseable_line"),  # "host nginx[2833]: 2015/01/21 ...": no syslog stamp
        ("nginx-botsearch", 43, "unparseable_line"),
        ("nginx-http-auth", 14, "no event"),  # the injected ", client: 127.0.0.1, server: ..."
        ("nginx-http-auth", 22, "unparseable_line"),  # no syslog stamp
        ("nginx-http-auth", 25, "unparseable_line"),  # no syslog stamp, and the tag twice
        ("nginx-limit-req", 29, "unparseable_line"),  # no syslog stamp
    ]
    # the stamp-less ones are exactly the lines that start with "host nginx" (a grep, not the parser)
    assert sum(row["log_line"].startswith("host nginx") for row in must_match) == 5


def test_crowdsec_fixture_web_lines_all_parse() -> None:
    """Every access-log and error-log line of the CrowdSec fixtures gives one event; the other lines are
    the known non-web ones (endlessh, Sympa, sshd lines without a client)."""
    root = SHARED_DATA / "labelled" / "crowdsec-hub-test-fixtures" / "logs"
    if not root.is_dir():
        pytest.skip(f"shared data not present: {root}")
    access = re.compile(r'\[\d\d/\w{3}/\d{4}:[\d:]+ [+-]\d{4}\] "')  # a combined/common time and request
    error_log = re.compile(r"^\[\w{3} \w{3} \d\d [\d:.]+ \d{4}\] \[|^\d{4}/\d\d/\d\d [\d:]+ \[\w+\] ")
    web_lines = other = 0
    for path in sorted(root.glob("*/*.log")):
        for raw in path.read_bytes().splitlines():
            line = raw.decode()
            if not line.strip():
                continue
            if access.search(line) or error_log.search(line):
                web_lines += 1
                events = PARSE(raw, datetime(2026, 11, 27, tzinfo=UTC))
                assert len(events) == 1, (path.name, line)
                assert events[0].kind is EventKind.HTTP
            else:
                other += 1
                assert re.search(r" (?:endlessh|wwsympa|sshd(?:-session)?)[\[ ]", line), (path.name, line)
    # the same two patterns with `grep -hcE ... */*.log` (per file: several files lack a final newline)
    assert (web_lines, other) == (780, 134)
