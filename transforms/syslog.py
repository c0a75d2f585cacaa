"""Syslog framing (RFC 3164, RFC 5424, ISO-stamped) and sshd message classification.

Both halves are pure string work: :func:`split_syslog` finds the stamp, program and message of a
line; :func:`read_sshd` maps one sshd message to an outcome and the client address it names. The
parser in :mod:`transforms.parse` turns their results into events.

Known answers:

>>> line = split_syslog("Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186")
>>> line.stamp, line.program
((12, 10, 6, 55, 46), 'sshd')
>>> read_sshd(line.message)
(SshHit(outcome=<SshOutcome.INVALID_USER: 'invalid_user'>, source='173.234.31.186', user='webmaster', \
method=None, invalid_user=True), 1)
>>> read_sshd("Received signal 15; terminating.") is None  # no client: not an event
True
"""

from __future__ import annotations

import re
from typing import NamedTuple

from transforms.model import SshOutcome
from transforms.timestamps import parse_bsd_stamp

# OpenSSH 9.8 moved per-connection logging to "sshd-session", and 10.0 split out "sshd-auth".
SSHD_PROGRAMS = frozenset({"sshd", "sshd-session", "sshd-auth"})


class SyslogLine(NamedTuple):
    """A syslog line split into its parts; the message is still raw text."""

    # (month, day, hour, minute, second) for a year-less RFC 3164 stamp, the text of an ISO stamp,
    # or None when the line says it has none (RFC 5424 "-")
    stamp: tuple[int, int, int, int, int] | str | None
    program: str  # "sshd" for the tags "sshd[42]" and "sshd(pam_unix)[42]"; "" when there is no tag
    message: str


class SshHit(NamedTuple):
    """What one sshd message says about one client."""

    outcome: SshOutcome
    source: str  # the client address or host name exactly as logged
    user: str | None
    method: str | None  # "password", "publickey", "none", ...
    invalid_user: bool


def split_syslog(line: str) -> SyslogLine | None:
    """Split a syslog line, or return ``None`` when it does not start like one.

    Accepts an optional ``<PRI>``, then RFC 5424 (``1 STAMP HOST APP PROCID MSGID SD MSG``), an
    RFC 3164 stamp (``Dec 10 06:55:46``) or an ISO 8601 stamp, then ``HOST TAG: MSG`` (the host may
    be missing, as in lines written through ``/dev/log``).
    """
    if line.startswith("<"):
        end = line.find(">", 1, 5)
        if end < 0 or not line[1:end].isdigit():
            return None
        line = line[end + 1 :]
        if line.startswith("1 "):
            return _split_rfc5424(line[2:])
    if len(line) > 16 and line[0].isdigit() and line[4] == "-":
        space = line.find(" ")
        if space < 0:
            return None
        return _split_tagged(line[:space], line[space + 1 :])
    stamp = parse_bsd_stamp(line)
    if stamp is None or len(line) < 16 or line[15] != " ":
        return None
    return _split_tagged(stamp, line[16:])


def program_name(tag: str) -> str:
    """``sshd`` from ``sshd[42]``, ``sshd(pam_unix)[42]`` or ``sshd:``."""
    for stop in "[(:":
        cut = tag.find(stop)
        if cut >= 0:
            tag = tag[:cut]
    return tag.strip()


def _split_tagged(stamp: tuple[int, int, int, int, int] | str, rest: str) -> SyslogLine:
    """Split ``HOST TAG: MSG`` (or ``TAG: MSG``) after the stamp."""
    space = rest.find(" ")
    first = rest if space < 0 else rest[:space]
    if first.endswith(":"):  # no host: the first word is already the tag
        return SyslogLine(stamp, program_name(first), "" if space < 0 else rest[space + 1 :])
    after = "" if space < 0 else rest[space + 1 :]
    colon = after.find(": ")
    if colon >= 0:
        return SyslogLine(stamp, program_name(after[:colon]), after[colon + 2 :])
    if after.endswith(":"):
        return SyslogLine(stamp, program_name(after), "")
    # a header with no "tag:" ("last message repeated 3 times", "syslogd 1.4.1 restart"): no program
    return SyslogLine(stamp, "", after)


def _split_rfc5424(rest: str) -> SyslogLine | None:
    """Split ``STAMP HOST APP PROCID MSGID SD [MSG]`` (the part after ``<PRI>1 ``)."""
    fields = rest.split(" ", 5)
    if len(fields) < 6:
        return None
    stamp_text, _host, app, _procid, _msgid, tail = fields
    message = _skip_structured_data(tail)
    if message is None:
        return None
    if message.startswith("\ufeff"):  # RFC 5424 marks a UTF-8 MSG with a BOM
        message = message[1:]
    return SyslogLine(None if stamp_text == "-" else stamp_text, "" if app == "-" else app, message)


def _skip_structured_data(tail: str) -> str | None:
    """Return the MSG after STRUCTURED-DATA (``-`` or ``[id k="v" ...]...``), or ``None`` if malformed."""
    if tail.startswith("-"):
        return tail[2:]
    index, size = 0, len(tail)
    while index < size and tail[index] == "[":
        index += 1
        in_quotes = False
        while index < size:
            char = tail[index]
            if in_quotes and char == "\\":
                index += 2  # an escaped '"', '\' or ']' inside a value
                continue
            if char == '"':
                in_quotes = not in_quotes
            elif char == "]" and not in_quotes:
                break
            index += 1
        else:
            return None
        index += 1
    if index == 0:
        return None
    return tail[index + 1 :]


# --- sshd messages ----------------------------------------------------------------------------------------
# User names are attacker-chosen and may contain spaces or even " from 1.2.3.4": the greedy (.*)
# makes the address the one in the *last* " from X port N", which sshd itself appended.
_FAILED = re.compile(r"Failed (\S+) for (invalid user )?(.*) from (\S+) port \d+")
_ACCEPTED = re.compile(r"Accepted (\S+) for (.*) from (\S+) port \d+")
_INVALID_USER = re.compile(r"(?:Invalid|Illegal) user (.*) from (\S+?)(?: port \d+)?$")
_RHOST = re.compile(r"rhost=(\S*)(?:\s+user=(\S+))?")
_PAM_DIRECT = re.compile(r"PAM: Authentication failure for (illegal user )?(.*) from (\S+)$")
_CLOSED = re.compile(r"Connection (?:closed|reset) by (?:(authenticating |invalid )?user (.*) )?(\S+) port \d+")
_CLOSED_OLD = re.compile(r"Connection (?:closed|reset) by (\S+?)(?: \[preauth\])?$")
_DISCONNECTED = re.compile(r"Disconnect(?:ed from|ing) (?:(authenticating |invalid )?user (.*) )?(\S+) port \d+")
# "from IP: 11: Bye" (old) or "from IP port 22:11: Bye" (new); ": " keeps IPv6 colons in the address
_RECEIVED_DISCONNECT = re.compile(r"Received disconnect from (\S+?)(?: port \d+:|: )\d+:")
_TIMEOUT = re.compile(r"Timeout before authentication for (?:connection from )?([^\s,]+)")
_REVERSE_MAPPING = re.compile(r"reverse mapping checking getaddrinfo for \S+ \[([^\]]+)\]")
_ADDRESS_MAPS = re.compile(r"Address (\S+) maps to ")
_MAX_ATTEMPTS = re.compile(r"maximum authentication attempts exceeded for (invalid user )?(.*) from (\S+) port \d+")
# Any other line: an address after "from " / "by " or in brackets, confirmed by _looks_like_ip below
_ANY_ADDRESS = re.compile(r"(?:\b(?:from|by) \[?|\[)([0-9A-Fa-f.:]*[0-9A-Fa-f])(?=[\s\]:,;]|$)")
_REPEATED = re.compile(r"message repeated (\d+) times: \[ ?(.*?) ?\]$")

_LEVEL_PREFIXES = ("error: ", "fatal: ")
_DISCONNECT_PREFIXES = ("Connection closed by ", "Connection reset by ", "Disconnect", "Received disconnect from ")


def read_sshd(message: str) -> tuple[SshHit, int] | None:
    """Classify one sshd message: the hit and how many times it happened, or ``None`` without a client.

    rsyslog folds repeats into ``message repeated N times: [ MSG ]``: that returns the hit for MSG
    and N.
    """
    if message.startswith("message repeated "):
        match = _REPEATED.match(message)
        if match is None:
            return None
        hit = _classify(match[2])
        return None if hit is None else (hit, int(match[1]))
    hit = _classify(message)
    return None if hit is None else (hit, 1)


def _classify(message: str) -> SshHit | None:
    """The outcome and client address of one (unfolded) sshd message, or ``None`` without a client."""
    if message.startswith(_LEVEL_PREFIXES):
        message = message[7:]
    if message.startswith("Failed "):
        match = _FAILED.match(message)
        if match:
            return SshHit(SshOutcome.FAILED, match[4], match[3] or None, match[1], match[2] is not None)
    elif message.startswith("Accepted "):
        match = _ACCEPTED.match(message)
        if match:
            return SshHit(SshOutcome.ACCEPTED, match[3], match[2] or None, match[1], False)
    elif message.startswith(("Invalid user ", "Illegal user ")):
        match = _INVALID_USER.match(message)
        if match:
            return SshHit(SshOutcome.INVALID_USER, match[2], match[1] or None, None, True)
    elif "rhost=" in message:  # pam_unix: "authentication failure; ... rhost=H user=U"
        return _pam_failure(message)
    elif message.startswith("PAM: Authentication failure"):  # OpenSSH's own PAM glue (FreeBSD, Solaris)
        match = _PAM_DIRECT.match(message)
        if match:
            return SshHit(SshOutcome.AUTH_FAILURE, match[3], match[2] or None, None, match[1] is not None)
    elif message.startswith(_DISCONNECT_PREFIXES):
        hit = _disconnect(message)
        if hit is not None:
            return hit
    elif message.startswith("reverse mapping checking"):
        match = _REVERSE_MAPPING.match(message)
        if match:
            return SshHit(SshOutcome.OTHER, match[1], None, None, False)
    elif message.startswith("Address "):
        match = _ADDRESS_MAPS.match(message)
        if match:
            return SshHit(SshOutcome.OTHER, match[1], None, None, False)
    elif message.startswith("maximum authentication attempts"):
        match = _MAX_ATTEMPTS.match(message)
        if match:
            return SshHit(SshOutcome.OTHER, match[3], match[2] or None, None, match[1] is not None)
    elif message.startswith("Timeout before authentication"):
        match = _TIMEOUT.match(message)
        if match:
            return SshHit(SshOutcome.DISCONNECT, match[1], None, None, False)
    return _any_address(message)


def _pam_failure(message: str) -> SshHit | None:
    """pam_unix ``authentication failure; ... rhost=H user=U`` (and its ``PAM N more ...`` summary)."""
    match = _RHOST.search(message)
    if match is None or not match[1]:  # "rhost=" empty: a local login, no remote client
        return None
    if " more authentication failure" in message:
        # "PAM 2 more authentication failures; ..." sums up attempts already logged one by one
        return SshHit(SshOutcome.OTHER, match[1], match[2], None, False)
    return SshHit(SshOutcome.AUTH_FAILURE, match[1], match[2], None, False)


def _disconnect(message: str) -> SshHit | None:
    """The several spellings of a disconnect across OpenSSH versions."""
    if message.startswith("Received"):
        match = _RECEIVED_DISCONNECT.match(message)
        return None if match is None else SshHit(SshOutcome.DISCONNECT, match[1], None, None, False)
    if message.startswith("Connection"):
        match = _CLOSED.match(message)
        if match is None:
            old = _CLOSED_OLD.match(message)
            return None if old is None else SshHit(SshOutcome.DISCONNECT, old[1], None, None, False)
    else:
        match = _DISCONNECTED.match(message)
        if match is None:
            return None
    return SshHit(SshOutcome.DISCONNECT, match[3], match[2] or None, None, match[1] == "invalid ")


def _any_address(message: str) -> SshHit | None:
    """Any other sshd line that names a client IP ("Did not receive identification string from IP")."""
    for match in _ANY_ADDRESS.finditer(message):
        if looks_like_ip(match[1]):
            return SshHit(SshOutcome.OTHER, match[1], None, None, False)
    return None


def looks_like_ip(token: str) -> bool:
    """A cheap shape test, not validation: a dotted quad (with an optional ``:port``) or anything with two colons.

    It only tells an address from a host name (``rhost=host.example.com``); the pipeline validates
    addresses with its own parser.
    """
    if token.startswith("[") or token.count(":") >= 2:
        return True
    parts = token.partition(":")[0].split(".")
    return len(parts) == 4 and all(part.isascii() and part.isdigit() for part in parts)
