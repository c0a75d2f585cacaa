"""Syslog framing (RFC 3164, RFC 5424, ISO-stamped) and sshd message classification.

Both halves are pure string work: :func:`split_syslog` finds the stamp, program and message of a
line; :func:`read_sshd` maps one sshd message to an outcome, the client address it names and, for
lines that are not one of the main outcomes, a fixed hint code (``SshHit.event``, one of
:data:`SSHD_EVENTS`; the keys of :data:`transforms.signals.SSH_EVENT_HINTS`). The parser in
:mod:`transforms.parse` turns their results into events and puts the hint in
``Event.extra["ssh_event"]``.

Known answers:

>>> line = split_syslog("Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186")
>>> line.stamp, line.program
((12, 10, 6, 55, 46), 'sshd')
>>> read_sshd(line.message)
(SshHit(outcome=<SshOutcome.INVALID_USER: 'invalid_user'>, source='173.234.31.186', user='webmaster', \
method=None, invalid_user=True, event=None), 1)
>>> read_sshd("Did not receive identification string from 192.0.2.5 port 35836")[0].event
'no_ident'
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
# Web servers and proxies whose syslog messages carry access-log or error-log lines (nginx "access_log
# syslog:", Apache "ErrorLog syslog:" or a piped logger, HAProxy). Only their messages are read as web
# lines: another program's message that merely looks like an access line (an application logging text a
# client sent) must not become a request from the address it names.
WEB_PROGRAMS = frozenset(
    {
        "nginx",
        "openresty",
        "angie",
        "tengine",
        "apache",
        "apache2",
        "httpd",
        "lighttpd",
        "haproxy",
        "caddy",
        "traefik",
        "envoy",
        "h2o",
        "varnishncsa",
    }
)


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
    # what happened, for lines that are not one of the main outcomes: a fixed code from SSHD_EVENTS
    event: str | None = None


# The hint codes read_sshd can give (SshHit.event), each with the sshd lines it stands for. They are the
# keys of transforms.signals.SSH_EVENT_HINTS: fixed codes, never text from the line.
NOT_ALLOWED = "not_allowed"  # "User root from X not allowed because not listed in AllowUsers" (sshd_config)
ROOT_REFUSED = "root_refused"  # "ROOT LOGIN REFUSED FROM X" (PermitRootLogin no, old OpenSSH)
TOO_MANY_AUTH = "too_many_auth"  # "maximum authentication attempts exceeded for U from X" (MaxAuthTries)
AUTH_DISCONNECT = "auth_disconnect"  # the client left mid-authentication or said it had no method left
NO_IDENT = "no_ident"  # "Did not receive identification string from X": a port scan
BAD_PROTOCOL = "bad_protocol"  # "Bad protocol version identification", "banner exchange: ... invalid format"
KEX_FAILED = "kex_failed"  # "Unable to negotiate with X port N: no matching key exchange method found"
PREAUTH_TIMEOUT = "preauth_timeout"  # "Timeout before authentication for X" (LoginGraceTime)
REFUSED_CONNECT = "refused_connect"  # tcp_wrappers (libwrap) "refused connect from NAME (X)"
SSHD_EVENTS = frozenset(
    {
        NOT_ALLOWED,
        ROOT_REFUSED,
        TOO_MANY_AUTH,
        AUTH_DISCONNECT,
        NO_IDENT,
        BAD_PROTOCOL,
        KEX_FAILED,
        PREAUTH_TIMEOUT,
        REFUSED_CONNECT,
    }
)


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
    if len(line) > 16 and line[:4].isdigit() and line[4] == "-" and line[7] == "-":  # "2024-03-01T..."
        space = line.find(" ")
        if space < 0:
            return None
        return _split_tagged(line[:space], line[space + 1 :])
    stamp = parse_bsd_stamp(line)
    if stamp is None and len(line) > 6 and line[3] == " " and line[4].isdigit() and line[5] == " ":
        # "Jun 7 01:10:56": a single-digit day without its padding blank (copied or re-formatted logs)
        line = f"{line[:4]} {line[4:]}"
        stamp = parse_bsd_stamp(line)
    if stamp is None or len(line) < 16 or line[15] != " ":
        return None
    return _split_tagged(stamp, line[16:])


def program_name(tag: str) -> str:
    """``sshd`` from ``sshd[42]``, ``sshd(pam_unix)[42]``, ``sshd:`` or ``[sshd]``."""
    if tag.startswith("["):
        tag = tag[1:]
    for stop in "[(:]":
        cut = tag.find(stop)
        if cut >= 0:
            tag = tag[:cut]
    return tag.strip()


def is_web_program(program: str, names: frozenset[str] = WEB_PROGRAMS) -> bool:
    """Whether a tag is one of ``names`` (lower case), or one of them with a per-log suffix.

    >>> is_web_program("nginx-access"), is_web_program("httpd/backend1"), is_web_program("cron")
    (True, True, False)
    """
    name = program.lower()
    if name in names:
        return True
    for stop in "-_/.":
        cut = name.find(stop)
        if cut > 0:
            name = name[:cut]
    return name in names


def _split_tagged(stamp: tuple[int, int, int, int, int] | str, rest: str) -> SyslogLine:
    """Split ``HOST TAG: MSG`` (or ``TAG: MSG``) after the stamp."""
    space = rest.find(" ")
    first = rest if space < 0 else rest[:space]
    if first.endswith(":") or _is_bracketed_tag(first):  # no host: the first word is already the tag
        return SyslogLine(stamp, program_name(first), "" if space < 0 else rest[space + 1 :])
    after = "" if space < 0 else rest[space + 1 :]
    colon = after.find(": ")
    if colon >= 0:
        return SyslogLine(stamp, program_name(after[:colon]), after[colon + 2 :])
    if after.endswith(":"):
        return SyslogLine(stamp, program_name(after), "")
    # a header with no "tag:" ("last message repeated 3 times", "syslogd 1.4.1 restart"): no program
    return SyslogLine(stamp, "", after)


def _is_bracketed_tag(word: str) -> bool:
    """``[sshd]``, a tag some relays write without a host or colon; not a bracketed IPv6 host."""
    return len(word) > 2 and word[0] == "[" and word[-1] == "]" and word[1:-1].replace("-", "_").isidentifier()


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
# sshd writes "Failed|Accepted METHOD for [invalid user ]USER from ADDRESS port PORT ssh2[: INFO]" (auth.c,
# auth_log). Both USER and INFO can be client text: USER is whatever name the client sent, and INFO holds the
# hostbased "client user"/"client host" and certificate ids, so a line can hold several "from X port N" and
# neither the first nor the last one is safe by position. What sshd guarantees: it cuts the user name at its
# first ':' (the part after it is the BSD auth style; auth2.c, and auth1.c before it), so USER never holds a
# colon, while sshd itself puts ": " before INFO. The address sshd wrote is therefore the first
# "from X port N[ sshV]" that ends the line or is followed by a colon, with no colon before it: a fake one in
# USER is followed by more of USER (no colon, not the end); one in INFO comes after a colon. fail2ban's sshd
# filter reaches the same answers on its injection samples (tests/files/logs/sshd, "Injecting ...").
_AUTH_RESULT = re.compile(
    r"(Failed|Accepted) (\S+) for ((?:invalid|illegal) user )?([^:]*?) from (\S+) port \d+(?: ssh\d)?"
    r"(?=:| \[preauth\]$|$)"
)
# an sshd that logs no port (OpenSSH before 3.x); the colon-free user rule holds there too
_FAILED_NO_PORT = re.compile(r"Failed (\S+) for ((?:invalid|illegal) user )?([^:]*) from (\S+)$")
_INVALID_USER = re.compile(r"(?:Invalid|Illegal) user (.*) from (\S+?)(?: port \d+)?$")
_RHOST = re.compile(r"rhost=(\S*)(?:\s+user=(\S+))?")
# OpenSSH's own PAM glue (FreeBSD, Solaris, macOS); macOS appends the server address as "via X"
_PAM_DIRECT = re.compile(
    r"PAM: (?:[Aa]uthentication (?:failure|error)|(User not known) to the underlying authentication module)"
    r" for (illegal user |invalid user )?(.*) from (\S+?)(?: via \S+)?\s*$"
)
_CLOSED = re.compile(r"Connection (?:closed|reset) by (?:(authenticating |invalid )?user (.*) )?(\S+) port \d+")
_CLOSED_OLD = re.compile(r"Connection (?:closed|reset) by (\S+?)(?: \[preauth\])?$")
_DISCONNECTED = re.compile(r"Disconnect(?:ed from|ing) (?:(authenticating |invalid )?user (.*) )?(\S+) port \d+")
# "from IP: 11: Bye" (old) or "from IP port 22:11: Bye" (new); ": " keeps IPv6 colons in the address
_RECEIVED_DISCONNECT = re.compile(r"Received disconnect from (\S+?)(?: port \d+:|: )(\d+):")
_REVERSE_MAPPING = re.compile(r"reverse mapping checking getaddrinfo for \S+ \[([^\]]+)\]")
_ADDRESS_MAPS = re.compile(r"Address (\S+) maps to ")
# Solaris and macOS syslog put a message id first: "[ID 800047 auth.info] Failed ..."
_MESSAGE_ID = re.compile(r"\[ID \d+ [\w.]+\] ")
# Any other line: an address after "from " / "by " or in brackets, confirmed by _looks_like_ip below
_ANY_ADDRESS = re.compile(r"(?:\b(?:from|by) \[?|\[)([0-9A-Fa-f.:]*[0-9A-Fa-f])(?=[\s\]:,;]|$)")
_REPEATED = re.compile(r"message repeated (\d+) times: \[ ?(.*?) ?\]$")
_MAX_REPEAT_DIGITS = 9  # a longer count reads as 10**9: far above any cap, never parsed


class _Hinted(NamedTuple):
    """An sshd line that is not one of the main outcomes, and the hint code it gives."""

    prefix: str
    pattern: re.Pattern[str]  # groups "source", optionally "user" and "invalid"
    outcome: SshOutcome
    hint: str  # one of SSHD_EVENTS
    user: str | None = None  # the account the line names without a user group ("ROOT LOGIN")


# Every source is the address sshd appended itself; where the line also holds client text (a user name, a
# version string) a greedy ".*" before it makes that the *last* one.
_HINTED_LINES: tuple[_Hinted, ...] = (
    _Hinted(
        "User ",  # AllowUsers, DenyUsers, AllowGroups, DenyGroups; "... because account is locked" has no host
        re.compile(r"User (?P<user>.*) from (?P<source>\S+) not allowed because "),
        SshOutcome.OTHER,
        NOT_ALLOWED,
    ),
    _Hinted(
        "ROOT LOGIN REFUSED FROM ",
        re.compile(r"ROOT LOGIN REFUSED FROM (?P<source>[^\s,]+)"),
        SshOutcome.OTHER,
        ROOT_REFUSED,
        "root",
    ),
    _Hinted(
        # The "Disconnecting ...: Too many authentication failures" that follows repeats it: no hint there
        # (fail2ban counts only this one too); the older "Disconnecting: Too many ..." names no client.
        "maximum authentication attempts exceeded for ",
        re.compile(
            r"maximum authentication attempts exceeded for (?P<invalid>invalid user )?(?P<user>.*)"
            r" from (?P<source>\S+) port \d+"
        ),
        SshOutcome.OTHER,
        TOO_MANY_AUTH,
    ),
    _Hinted(
        "Did not receive identification string from ",
        re.compile(r"Did not receive identification string from (?P<source>\S+?)(?: port \d+)?$"),
        SshOutcome.OTHER,
        NO_IDENT,
    ),
    _Hinted(
        "Bad protocol version identification ",  # the quoted version string is the client's
        re.compile(r"Bad protocol version identification .* from (?P<source>\S+?)(?: port \d+)?(?: \[preauth\])?$"),
        SshOutcome.OTHER,
        BAD_PROTOCOL,
    ),
    _Hinted(
        "banner exchange: ",  # OpenSSH 8.x+; other reasons ("Connection timed out") are not a hint
        re.compile(r"banner exchange: Connection from (?P<source>\S+) port \d+: invalid format"),
        SshOutcome.OTHER,
        BAD_PROTOCOL,
    ),
    _Hinted(
        "ssh_dispatch_run_fatal: ",  # corrupt packets; other reasons (broken pipe, reset) are not a hint
        re.compile(
            r"ssh_dispatch_run_fatal: Connection from (?:(?P<invalid>invalid )?(?:authenticating )?user (?P<user>.*) )?"
            r"(?P<source>\S+) port \d+: (?:message authentication code incorrect|[Cc]onnection corrupted)"
        ),
        SshOutcome.OTHER,
        BAD_PROTOCOL,
    ),
    _Hinted(
        "Unable to negotiate with ",  # no common kex / cipher / MAC / host key type
        re.compile(r"Unable to negotiate with (?P<source>\S+?)(?: port \d+)?: "),
        SshOutcome.OTHER,
        KEX_FAILED,
    ),
    _Hinted(
        "Timeout before authentication for ",
        re.compile(r"Timeout before authentication for (?:connection from )?(?P<source>[^\s,]+)"),
        SshOutcome.DISCONNECT,
        PREAUTH_TIMEOUT,
    ),
    _Hinted(
        "refused connect from ",  # libwrap: "NAME (ADDRESS)", NAME may be "user@host" or a junk string
        re.compile(r"refused connect from (?:\S+ \()?(?P<source>[^()\s]+)\)?\s*$"),
        SshOutcome.OTHER,
        REFUSED_CONNECT,
    ),
)
_HINTED_PREFIXES = tuple(line.prefix for line in _HINTED_LINES)

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
        # The count is the sender's text: more digits than any real count would cost int() quadratic time
        # (and past 4,300 digits Python refuses); the parser caps it anyway (ParseParams.max_repeat_events).
        digits = match[1].lstrip("0") or "0"
        count = int(digits) if len(digits) <= _MAX_REPEAT_DIGITS else 10**_MAX_REPEAT_DIGITS
        return None if hit is None else (hit, count)
    hit = _classify(message)
    return None if hit is None else (hit, 1)


def _classify(message: str) -> SshHit | None:
    """The outcome and client address of one (unfolded) sshd message, or ``None`` without a client."""
    if message.startswith("[ID "):
        match = _MESSAGE_ID.match(message)
        if match:
            message = message[match.end() :]
    if message.startswith(_LEVEL_PREFIXES):
        message = message[7:]
    if message.startswith(("Failed ", "Accepted ")):
        match = _AUTH_RESULT.match(message)
        if match:
            outcome = SshOutcome.FAILED if match[1] == "Failed" else SshOutcome.ACCEPTED
            return SshHit(outcome, match[5], match[4] or None, match[2], match[3] is not None)
        match = _FAILED_NO_PORT.match(message)
        if match:
            return SshHit(SshOutcome.FAILED, match[4], match[3] or None, match[1], match[2] is not None)
        return None  # not sshd's shape (a user name with a colon): any address in it could be the client's text
    elif message.startswith(("Invalid user ", "Illegal user ")):
        match = _INVALID_USER.match(message)
        if match:
            return SshHit(SshOutcome.INVALID_USER, match[2], match[1] or None, None, True)
    elif message.startswith("PAM: "):
        match = _PAM_DIRECT.match(message)
        if match:  # "User not known": the account does not exist, as with "illegal user"
            invalid = match[1] is not None or match[2] is not None
            return SshHit(SshOutcome.AUTH_FAILURE, match[4], match[3] or None, None, invalid)
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
    elif message.startswith(_HINTED_PREFIXES):
        for line in _HINTED_LINES:
            if message.startswith(line.prefix) and (match := line.pattern.match(message)):
                if match["source"] == "UNKNOWN":  # sshd's stand-in when the peer is not a socket
                    return None
                groups = match.groupdict()
                user = groups.get("user") or line.user
                return SshHit(line.outcome, match["source"], user, None, groups.get("invalid") is not None, line.hint)
    # Last among the prefixed forms: a client-chosen user name in the lines above may contain "rhost=".
    elif "rhost=" in message:  # pam_unix: "authentication failure; ... rhost=H user=U"
        return _pam_failure(message)
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
        if match is None:
            return None
        # The client gave up on authentication: reason 14 (SSH2_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE,
        # "No more user authentication methods available"), or JSch's "Auth fail" (sent with reason 3).
        hint = AUTH_DISCONNECT if match[2] == "14" or "Auth fail" in message else None
        return SshHit(SshOutcome.DISCONNECT, match[1], None, None, False, hint)
    if message.startswith("Connection"):
        match = _CLOSED.match(message)
        if match is None:
            old = _CLOSED_OLD.match(message)
            return None if old is None else SshHit(SshOutcome.DISCONNECT, old[1], None, None, False)
    else:
        match = _DISCONNECTED.match(message)
        if match is None:
            return None
    # "Disconnected from / Connection closed by authenticating user U X": the client left in the middle of
    # authentication, as one-password-per-connection guessing does. "Disconnecting authenticating user U X:
    # Too many authentication failures" is the server's doing and repeats "maximum authentication attempts".
    hint = AUTH_DISCONNECT if match[1] == "authenticating " and not message.startswith("Disconnecting") else None
    return SshHit(SshOutcome.DISCONNECT, match[3], match[2] or None, None, match[1] == "invalid ", hint)


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
