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

import pytest

from transforms.errors import Reason, RecordError
from transforms.model import Event, EventKind, SshOutcome
from transforms.parse import ParseParams, build_parser
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
    outcomes = Counter(e.ssh_outcome for e in events)

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


def test_loghub_apache_error_log_is_rejected_line_by_line() -> None:
    """The Apache *error* log is no access log: every line is UNPARSEABLE_LINE, nothing else happens."""
    lines = _lines("loghub-apache-error", "Apache_2k.log")
    per_line, errors = _parse_all(lines, datetime(2026, 11, 27, tzinfo=UTC))
    assert errors == Counter({Reason.UNPARSEABLE_LINE.value: len(lines)})
    assert not any(per_line)


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
    # One disagreement, on purpose: "Failed password for invalid user test from 127.0.0.1 port 58946 ssh2:
    # from 10.10.1.2 port 55555 ssh2". The parser takes the last "from X port N" (a user name can hold the
    # others); fail2ban reads ": ..." after "ssh2" as auth info that the client can fill.
    assert wrong_host == [147]
