"""Known answers for sshd syslog lines: outcomes, addresses, users, hints, framings, years and repeats."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from transforms.model import Event, EventKind, SshOutcome
from transforms.parse import ParseParams, build_parser
from transforms.signals import SSH_EVENT_HINTS, SSH_EVENT_KEY, SignalDetector, SignalParams
from transforms.syslog import SSHD_EVENTS

INGEST = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
PARSE = build_parser(ParseParams())
HEAD = "Mar  1 10:00:00 LabSZ sshd[24200]: "  # a classic RFC 3164 header
T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)

FAILED, ACCEPTED, INVALID = SshOutcome.FAILED, SshOutcome.ACCEPTED, SshOutcome.INVALID_USER
AUTH_FAILURE, DISCONNECT, OTHER = SshOutcome.AUTH_FAILURE, SshOutcome.DISCONNECT, SshOutcome.OTHER


def hint(code: str) -> dict[str, str]:
    """The ``extra`` of an event whose line the parser names with the signal detector's hint ``code``."""
    return {SSH_EVENT_KEY: code}


def _summary(event: Event) -> tuple[Any, ...]:
    return (event.ssh_outcome, event.source_ip, event.user, event.ssh_method, event.invalid_user, event.extra)


# (message after the header, expected (outcome, source, user, method, invalid_user, extra) or None for no event)
MESSAGE_CASES: list[tuple[str, tuple[Any, ...] | None]] = [
    # failed password, invalid user
    (
        "Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2",
        (FAILED, "173.234.31.186", "webmaster", "password", True, {}),
    ),
    # failed password, existing user
    ("Failed password for root from 5.36.59.76 port 42393 ssh2", (FAILED, "5.36.59.76", "root", "password", False, {})),
    # failed publickey from IPv6
    ("Failed publickey for git from 2001:db8::5 port 22 ssh2", (FAILED, "2001:db8::5", "git", "publickey", False, {})),
    # failed "none" (a probe for allowed methods)
    (
        "Failed none for invalid user 0 from 103.79.141.133 port 35470 ssh2",
        (FAILED, "103.79.141.133", "0", "none", True, {}),
    ),
    # an empty user name
    (
        "Failed password for invalid user  from 192.0.2.1 port 22 ssh2",
        (FAILED, "192.0.2.1", None, "password", True, {}),
    ),
    # Log injection. sshd writes "for [invalid user ]USER from ADDRESS port N ssh2[: INFO]"; USER and INFO are
    # client text, but USER never holds ':' (sshd cuts it there), so the address is the first "from X port N
    # [sshV]" that ends the line or is followed by ": ". Expected hosts agree with fail2ban's sshd samples.
    # The user name holds " from <ip> port N ssh2": sshd's own address comes after it
    (
        "Failed password for invalid user x from 10.0.0.1 port 1 ssh2 from 203.0.113.5 port 22 ssh2",
        (FAILED, "203.0.113.5", "x from 10.0.0.1 port 1 ssh2", "password", True, {}),
    ),
    # ... and the user name is nothing else (the brief's example)
    (
        "Failed password for invalid user from 1.2.3.4 port 22 ssh2 from 5.6.7.8 port 1 ssh2",
        (FAILED, "5.6.7.8", "from 1.2.3.4 port 22 ssh2", "password", True, {}),
    ),
    # ... without a port (fail2ban sshd line 143)
    (
        "Failed password for invalid user from 10.10.1.1 from 127.0.0.1 port 58946 ssh2",
        (FAILED, "127.0.0.1", "from 10.10.1.1", "password", True, {}),
    ),
    # ... and followed by more text, so that no fake "ssh2" ends the line
    (
        "Failed password for invalid user a from 10.0.0.1 port 1 ssh2 b from 203.0.113.5 port 22 ssh2",
        (FAILED, "203.0.113.5", "a from 10.0.0.1 port 1 ssh2 b", "password", True, {}),
    ),
    # The auth info after "ssh2: " holds " from <ip> port N ssh2" (fail2ban line 147): sshd's address is first
    (
        "Failed password for invalid user test from 127.0.0.1 port 58946 ssh2: from 10.10.1.2 port 55555 ssh2",
        (FAILED, "127.0.0.1", "test", "password", True, {}),
    ),
    # ... hostbased, whose info quotes the client's "client user" and "client host"
    (
        'Failed hostbased for dan from 192.0.2.1 port 45785 ssh2: RSA 8c:e3:aa, client user "x from 203.0.113.5 '
        'port 1 ssh2", client host "h"',
        (FAILED, "192.0.2.1", "dan", "hostbased", False, {}),
    ),
    # ... SSH-1 rhosts: "ssh1: ruser ..." (fail2ban lines 135 and 138)
    (
        "Failed password for user from 127.0.0.1 port 20000 ssh1: ruser from 1.2.3.4",
        (FAILED, "127.0.0.1", "user", "password", False, {}),
    ),
    (
        "Failed password for user from aaaa:bbbb:cccc:1234::1:1 port 20000 ssh1: ruser " + "X" * 100 + " from 1.2.3.4",
        (FAILED, "aaaa:bbbb:cccc:1234::1:1", "user", "password", False, {}),
    ),
    # ... an accepted certificate whose id (chosen by whoever had it signed) holds an address
    (
        "Accepted publickey for alice from 192.0.2.7 port 50000 ssh2: ED25519-CERT SHA256:Ab ID x from 203.0.113.5 "
        "port 1 ssh2 (serial 1) CA ED25519 SHA256:Cd",
        (ACCEPTED, "192.0.2.7", "alice", "publickey", False, {}),
    ),
    # an sshd that writes the port but no protocol (fail2ban samples)
    (
        "Failed password for invalid user ROOT from 194.117.26.70 port 12345",
        (FAILED, "194.117.26.70", "ROOT", "password", True, {}),
    ),
    # old OpenSSH said "illegal user" here too
    (
        "Failed password for illegal user test from 192.0.2.9 port 22 ssh2",
        (FAILED, "192.0.2.9", "test", "password", True, {}),
    ),
    # a message from the unprivileged child carries " [preauth]"
    (
        "Failed none for invalid user x from 192.0.2.9 port 22 ssh2 [preauth]",
        (FAILED, "192.0.2.9", "x", "none", True, {}),
    ),
    # UseDNS=yes: a host name instead of an address
    (
        "Failed password for root from Host-7.Example.NET port 22 ssh2",
        (FAILED, "host-7.example.net", "root", "password", False, {"source_kind": "hostname"}),
    ),
    # accepted password
    (
        "Accepted password for fztu from 119.137.62.142 port 49116 ssh2",
        (ACCEPTED, "119.137.62.142", "fztu", "password", False, {}),
    ),
    # accepted publickey with the key fingerprint after "ssh2:"
    (
        "Accepted publickey for alice from 192.0.2.7 port 50000 ssh2: RSA SHA256:Ab/Cd+Ef",
        (ACCEPTED, "192.0.2.7", "alice", "publickey", False, {}),
    ),
    # keyboard-interactive/pam
    (
        "Accepted keyboard-interactive/pam for bob from 192.0.2.8 port 50001 ssh2",
        (ACCEPTED, "192.0.2.8", "bob", "keyboard-interactive/pam", False, {}),
    ),
    # invalid user, old format (no port)
    ("Invalid user webmaster from 173.234.31.186", (INVALID, "173.234.31.186", "webmaster", None, True, {})),
    # invalid user, new format (with port)
    ("Invalid user admin from 192.0.2.9 port 4444", (INVALID, "192.0.2.9", "admin", None, True, {})),
    # very old OpenSSH said "Illegal user"
    ("Illegal user test from 192.0.2.9", (INVALID, "192.0.2.9", "test", None, True, {})),
    # pam_unix failure without a user
    (
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=173.234.31.186 ",
        (AUTH_FAILURE, "173.234.31.186", None, None, False, {}),
    ),
    # pam_unix failure with a user
    (
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
        "rhost=112.95.230.3  user=root",
        (AUTH_FAILURE, "112.95.230.3", "root", None, False, {}),
    ),
    # pam_unix with a host name: lower-cased and marked
    (
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
        "rhost=EC2-52.Compute.Amazonaws.com",
        (AUTH_FAILURE, "ec2-52.compute.amazonaws.com", None, None, False, {"source_kind": "hostname"}),
    ),
    # "PAM N more authentication failures" sums up attempts already logged: OTHER, not more failures
    (
        "PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=5.36.59.76  user=root",
        (OTHER, "5.36.59.76", "root", None, False, {}),
    ),
    # ... and its singular form
    (
        "PAM 1 more authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=5.36.59.76  user=root",
        (OTHER, "5.36.59.76", "root", None, False, {}),
    ),
    # a local pam failure (empty rhost): no client
    ("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=  user=root", None),
    # FreeBSD-style PAM failure
    (
        "error: PAM: Authentication failure for illegal user x from 192.0.2.3",
        (AUTH_FAILURE, "192.0.2.3", "x", None, True, {}),
    ),
    # preauth disconnects, old and new spellings
    ("Connection closed by 173.234.31.186 [preauth]", (DISCONNECT, "173.234.31.186", None, None, False, {})),
    ("Connection closed by 192.0.2.1 port 5555 [preauth]", (DISCONNECT, "192.0.2.1", None, None, False, {})),
    (
        "Connection closed by authenticating user root 192.0.2.1 port 5555 [preauth]",
        (DISCONNECT, "192.0.2.1", "root", None, False, hint("auth_disconnect")),
    ),
    # ... and reset, or "Disconnected from": the client gave up in the middle of authentication
    (
        "Connection reset by authenticating user root 192.0.2.20 port 1558 [preauth]",
        (DISCONNECT, "192.0.2.20", "root", None, False, hint("auth_disconnect")),
    ),
    (
        "Disconnected from authenticating user root 192.0.2.6 port 33553 [preauth]",
        (DISCONNECT, "192.0.2.6", "root", None, False, hint("auth_disconnect")),
    ),
    # an injected user name: the last "X port N" is the address
    (
        "Connection closed by authenticating user test 127.0.0.1 port 12345 192.0.2.11 port 46039 [preauth]",
        (DISCONNECT, "192.0.2.11", "test 127.0.0.1 port 12345", None, False, hint("auth_disconnect")),
    ),
    (
        "Connection closed by invalid user admin 192.0.2.1 port 5555 [preauth]",
        (DISCONNECT, "192.0.2.1", "admin", None, True, {}),
    ),
    ("Connection reset by 192.0.2.1 port 5555 [preauth]", (DISCONNECT, "192.0.2.1", None, None, False, {})),
    (
        "Received disconnect from 103.99.0.122: 11: Bye Bye [preauth]",
        (DISCONNECT, "103.99.0.122", None, None, False, {}),
    ),
    (
        "error: Received disconnect from 103.99.0.122: 14: No more user authentication methods available. [preauth]",
        (DISCONNECT, "103.99.0.122", None, None, False, hint("auth_disconnect")),  # 14: no method left
    ),
    (
        "error: Received disconnect from 192.168.2.92 port 1684:14: No supported authentication methods available"
        " [preauth]",
        (DISCONNECT, "192.168.2.92", None, None, False, hint("auth_disconnect")),
    ),
    # the Java client JSch gives up with reason 3 and "Auth fail"
    (
        "Received disconnect from 89.24.13.192: 3: com.jcraft.jsch.JSchException: Auth fail",
        (DISCONNECT, "89.24.13.192", None, None, False, hint("auth_disconnect")),
    ),
    (
        "Received disconnect from 192.0.2.1 port 5555:11: disconnected by user",
        (DISCONNECT, "192.0.2.1", None, None, False, {}),
    ),
    # old format with an IPv6 address: the address keeps its colons
    ("Received disconnect from 2001:db8::1: 11: Bye Bye", (DISCONNECT, "2001:db8::1", None, None, False, {})),
    ("Disconnected from user alice 192.0.2.1 port 22", (DISCONNECT, "192.0.2.1", "alice", None, False, {})),
    ("Disconnected from 192.0.2.1 port 22 [preauth]", (DISCONNECT, "192.0.2.1", None, None, False, {})),
    (
        "Disconnecting invalid user admin 192.0.2.1 port 22: Too many authentication failures [preauth]",
        (DISCONNECT, "192.0.2.1", "admin", None, True, {}),
    ),
    (
        "Timeout before authentication for 192.0.2.1 port 40000",
        (DISCONNECT, "192.0.2.1", None, None, False, hint("preauth_timeout")),
    ),
    (
        "fatal: Timeout before authentication for 192.0.2.14 port 55555",
        (DISCONNECT, "192.0.2.14", None, None, False, hint("preauth_timeout")),
    ),
    (
        "Timeout before authentication for connection from 192.0.2.17 to 127.0.0.1, pid = 29098",
        (DISCONNECT, "192.0.2.17", None, None, False, hint("preauth_timeout")),
    ),
    # other lines naming a client
    (
        "reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com [173.234.31.186] failed"
        " - POSSIBLE BREAK-IN ATTEMPT!",
        (OTHER, "173.234.31.186", None, None, False, {}),
    ),
    # a port scan: no SSH banner at all
    (
        "Did not receive identification string from 123.235.32.19",
        (OTHER, "123.235.32.19", None, None, False, hint("no_ident")),
    ),
    (
        "Did not receive identification string from 192.0.2.5 port 35836",
        (OTHER, "192.0.2.5", None, None, False, hint("no_ident")),
    ),
    (
        "Address 192.0.2.4 maps to x.example, but this does not map back to the address - POSSIBLE BREAK-IN ATTEMPT!",
        (OTHER, "192.0.2.4", None, None, False, {}),
    ),
    (
        "error: maximum authentication attempts exceeded for root from 192.0.2.1 port 22 ssh2 [preauth]",
        (OTHER, "192.0.2.1", "root", None, False, hint("too_many_auth")),
    ),
    (
        "error: maximum authentication attempts exceeded for invalid user xxx from 192.0.2.7 port 49941 ssh2 [preauth]",
        (OTHER, "192.0.2.7", "xxx", None, True, hint("too_many_auth")),
    ),
    # the server's disconnect that follows repeats the line above: no hint, so it is not counted twice
    (
        "Disconnecting authenticating user root 192.0.2.1 port 22: Too many authentication failures [preauth]",
        (DISCONNECT, "192.0.2.1", "root", None, False, {}),
    ),
    # AllowUsers / DenyUsers / AllowGroups / DenyGroups
    (
        "User root from 211.188.220.49 not allowed because not listed in AllowUsers",
        (OTHER, "211.188.220.49", "root", None, False, hint("not_allowed")),
    ),
    (
        "User root from 10.0.0.40 not allowed because none of user's groups are listed in AllowGroups",
        (OTHER, "10.0.0.40", "root", None, False, hint("not_allowed")),
    ),
    (
        "User allena from Example.COM not allowed because not in any group",
        (OTHER, "example.com", "allena", None, False, {"source_kind": "hostname", SSH_EVENT_KEY: "not_allowed"}),
    ),
    ("User root not allowed because account is locked", None),  # names no client
    # PermitRootLogin no (old OpenSSH); the line names the account
    ("ROOT LOGIN REFUSED FROM 1.2.3.4", (OTHER, "1.2.3.4", "root", None, False, hint("root_refused"))),
    (
        "ROOT LOGIN REFUSED FROM 1.2.3.4 port 12345 [preauth]",
        (OTHER, "1.2.3.4", "root", None, False, hint("root_refused")),
    ),
    ("ROOT LOGIN REFUSED FROM ::ffff:1.2.3.4", (OTHER, "::ffff:1.2.3.4", "root", None, False, hint("root_refused"))),
    # not SSH: a banner the server cannot read
    (
        "Bad protocol version identification 'dummy string' from 69.61.56.115 port 31778",
        (OTHER, "69.61.56.115", None, None, False, hint("bad_protocol")),
    ),
    # ... whose client-chosen text holds " from X": the address sshd appended wins
    (
        "Bad protocol version identification 'dummy string' from 192.0.2.1' from 69.61.56.115 port 31778",
        (OTHER, "69.61.56.115", None, None, False, hint("bad_protocol")),
    ),
    ("Bad protocol version identification 'GET / HTTP/1.1' from 192.0.2.9 port 1 from UNKNOWN port 65535", None),
    (
        "banner exchange: Connection from 192.0.2.1 port 40000: invalid format",
        (OTHER, "192.0.2.1", None, None, False, hint("bad_protocol")),
    ),
    # another banner-exchange reason: a client line, no hint
    (
        "banner exchange: Connection from 192.0.2.1 port 40000: Connection timed out",
        (OTHER, "192.0.2.1", None, None, False, {}),
    ),
    (
        "ssh_dispatch_run_fatal: Connection from 192.0.2.13 port 33738: message authentication code incorrect"
        " [preauth]",
        (OTHER, "192.0.2.13", None, None, False, hint("bad_protocol")),
    ),
    (
        "ssh_dispatch_run_fatal: Connection from 192.0.2.13 port 52452: Connection corrupted [preauth]",
        (OTHER, "192.0.2.13", None, None, False, hint("bad_protocol")),
    ),
    # no common key exchange / cipher / MAC / host key type
    (
        "Unable to negotiate with 192.0.2.1 port 22: no matching key exchange method found.",
        (OTHER, "192.0.2.1", None, None, False, hint("kex_failed")),
    ),
    (
        "fatal: Unable to negotiate with 192.0.2.2 port 55419: no matching key exchange method found. "
        "Their offer: diffie-hellman-group1-sha1",
        (OTHER, "192.0.2.2", None, None, False, hint("kex_failed")),
    ),
    (
        "Unable to negotiate with 2001:db8::2 port 50404: no matching host key type found. Their offer: ssh-dss",
        (OTHER, "2001:db8::2", None, None, False, hint("kex_failed")),
    ),
    ("fatal: Unable to negotiate a key exchange method [preauth]", None),  # older: names no client
    # tcp_wrappers: the address in brackets, whatever precedes it
    (
        "refused connect from _U2FsdGVkX19P3BCJmFBHhjLza8BcMH06WCUVwttMHpE=_@::ffff:218.249.210.161"
        " (::ffff:218.249.210.161)",
        (OTHER, "::ffff:218.249.210.161", None, None, False, hint("refused_connect")),
    ),
    ("refused connect from host.example (192.0.2.3)", (OTHER, "192.0.2.3", None, None, False, hint("refused_connect"))),
    (
        'Connection from 192.0.2.1 port 40000 on 10.0.0.1 port 22 rdomain ""',
        (OTHER, "192.0.2.1", None, None, False, {}),
    ),
    # Solaris / macOS message ids before the message
    (
        "[ID 800047 auth.info] Failed keyboard-interactive for james from 205.186.180.30 port 54520 ssh2",
        (FAILED, "205.186.180.30", "james", "keyboard-interactive", False, {}),
    ),
    # an sshd that logs no port
    (
        "Failed password for invalid user ROOT from aaaa:bbbb:cccc:1234::1:1",
        (FAILED, "aaaa:bbbb:cccc:1234::1:1", "ROOT", "password", True, {}),
    ),
    # macOS PAM glue: "error" as well as "failure", and the server address after "via"
    (
        "error: PAM: authentication error for james from 205.186.180.88 via 192.168.1.201",
        (AUTH_FAILURE, "205.186.180.88", "james", None, False, {}),
    ),
    (
        "error: PAM: User not known to the underlying authentication module for illegal user kernelitshell"
        " from 10.215.4.227 ",
        (AUTH_FAILURE, "10.215.4.227", "kernelitshell", None, True, {}),
    ),
    # a client-chosen user name holding "rhost=" is not read as a pam_unix line
    (
        "Connection closed by invalid user rhost=203.0.113.9 192.0.2.1 port 5555 [preauth]",
        (DISCONNECT, "192.0.2.1", "rhost=203.0.113.9", None, True, {}),
    ),
    # lines without a client: no event
    ("pam_unix(sshd:session): session closed for user fztu", None),
    ("pam_unix(sshd:session): session opened for user fztu by (uid=0)", None),
    ("pam_unix(sshd:auth): check pass; user unknown", None),
    ("Received signal 15; terminating.", None),
    ("Server listening on 0.0.0.0 port 22.", None),
    ("Server listening on :: port 22.", None),
    ("Disconnecting: Too many authentication failures for admin [preauth]", None),  # no address to count
    ("input_userauth_request: invalid user webmaster [preauth]", None),
    ("fatal: Write failed: Connection reset by peer [preauth]", None),
    ("PAM service(sshd) ignoring max retries; 6 > 3", None),
    ("Did not receive identification string from UNKNOWN port 65535", None),
    ("", None),
]


@pytest.mark.parametrize(("message", "expected"), MESSAGE_CASES)
def test_sshd_message_known_answers(message: str, expected: tuple[Any, ...] | None) -> None:
    """Each sshd message gives the listed event, or none when it names no client."""
    events = PARSE((HEAD + message).encode(), INGEST)
    if expected is None:
        assert events == []
        return
    assert [_summary(e) for e in events] == [expected]
    event = events[0]
    assert (event.kind, event.time, event.time_flag, event.format) == (EventKind.SSH, T0, None, "sshd_syslog")


HINTED_CASES = [(message, expected) for message, expected in MESSAGE_CASES if expected and SSH_EVENT_KEY in expected[5]]


def test_parser_hints_are_the_signal_detectors_codes() -> None:
    """The parser can give exactly the detector's hint codes, and the known answers show each of them."""
    assert set(SSHD_EVENTS) == set(SSH_EVENT_HINTS)
    assert {expected[5][SSH_EVENT_KEY] for _, expected in HINTED_CASES} == set(SSH_EVENT_HINTS)


@pytest.mark.parametrize(("message", "expected"), HINTED_CASES)
def test_hinted_lines_fire_their_signal(message: str, expected: tuple[Any, ...]) -> None:
    """A parsed line with a hint fires the rule the detector maps that hint to."""
    detect = SignalDetector.build(SignalParams(enabled_rules=["ssh.auth_failed", "ssh.preauth_probe"]))
    (event,) = PARSE((HEAD + message).encode(), INGEST)
    assert [signal.rule for signal in detect(event)] == [SSH_EVENT_HINTS[expected[5][SSH_EVENT_KEY]]]


# (whole line, expected (outcome, source, time, time_flag, format) per event)
FRAMING_CASES: list[tuple[str, list[tuple[Any, ...]]]] = [
    # loghub OpenSSH_2k, line 1 (the year comes from the ingest time: December is last year)
    (
        "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
        [(INVALID, "173.234.31.186", datetime(2023, 12, 10, 6, 55, 46, tzinfo=UTC), None, "sshd_syslog")],
    ),
    # loghub Linux_2k, old pam_unix tag; two blanks before "user="
    (
        "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 euid=0 "
        "tty=NODEVssh ruser= rhost=218.188.2.4  user=root",
        [(AUTH_FAILURE, "218.188.2.4", datetime(2023, 6, 14, 15, 16, 1, tzinfo=UTC), None, "sshd_syslog")],
    ),
    # a space-padded day
    (
        "Mar  1 10:00:00 h sshd[1]: Invalid user a from 192.0.2.1",
        [(INVALID, "192.0.2.1", T0, None, "sshd_syslog")],
    ),
    # <PRI> before an RFC 3164 header
    ("<38>Mar  1 10:00:00 h sshd[1]: Invalid user a from 192.0.2.1", [(INVALID, "192.0.2.1", T0, None, "sshd_syslog")]),
    # no host (written through /dev/log)
    ("Mar  1 10:00:00 sshd[1]: Invalid user a from 192.0.2.1", [(INVALID, "192.0.2.1", T0, None, "sshd_syslog")]),
    # rsyslog file format: ISO stamp with fraction and offset
    (
        "2024-03-01T11:00:00.123456+01:00 h sshd[1]: Invalid user a from 192.0.2.1",
        [(INVALID, "192.0.2.1", datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC), None, "sshd_syslog")],
    ),
    # RFC 5424, no structured data
    (
        "<34>1 2024-03-01T10:00:00Z h sshd 123 - - Invalid user a from 192.0.2.1",
        [(INVALID, "192.0.2.1", T0, None, "sshd_syslog")],
    ),
    # RFC 5424 with structured data holding escaped ']' and a BOM before the message
    (
        '<34>1 2024-03-01T10:00:00Z h sshd 123 AUTH [meta a="x\\]y"][origin ip="10.0.0.1"] '
        "\ufeffInvalid user a from 192.0.2.1",
        [(INVALID, "192.0.2.1", T0, None, "sshd_syslog")],
    ),
    # RFC 5424 nil timestamp: ingest time, "missing"
    ("<34>1 - h sshd - - - Invalid user a from 192.0.2.1", [(INVALID, "192.0.2.1", INGEST, "missing", "sshd_syslog")]),
    # a day without its padding blank, as in lines copied into bug reports
    (
        "Jun 7 01:10:56 host sshd[5937]: Did not receive identification string from 69.61.56.114",
        [(OTHER, "69.61.56.114", datetime(2023, 6, 7, 1, 10, 56, tzinfo=UTC), None, "sshd_syslog")],
    ),
    # a bracketed tag, with and without the colon, and no host
    (
        "Mar  1 10:00:00 [sshd]: User root from 192.0.2.1 not allowed because not listed in AllowUsers",
        [(OTHER, "192.0.2.1", T0, None, "sshd_syslog")],
    ),
    (
        "Mar  1 10:00:00 [sshd] User root from 192.0.2.1 not allowed because not listed in AllowUsers",
        [(OTHER, "192.0.2.1", T0, None, "sshd_syslog")],
    ),
    # a bracketed host is still a host
    (
        "Mar  1 10:00:00 [2001:db8::1] sshd[1]: Invalid user a from 192.0.2.1",
        [(INVALID, "192.0.2.1", T0, None, "sshd_syslog")],
    ),
    # OpenSSH 9.8+ logs from "sshd-session"
    (
        "Mar  1 10:00:00 h sshd-session[9]: Invalid user a from 192.0.2.1",
        [(INVALID, "192.0.2.1", T0, None, "sshd_syslog")],
    ),
    # an impossible date: ingest time, "unparseable"
    (
        "Feb 30 10:00:00 h sshd[1]: Invalid user a from 192.0.2.1",
        [(INVALID, "192.0.2.1", INGEST, "unparseable", "sshd_syslog")],
    ),
    (
        "Mar  1 25:00:00 h sshd[1]: Invalid user a from 192.0.2.1",
        [(INVALID, "192.0.2.1", INGEST, "unparseable", "sshd_syslog")],
    ),
    # an ISO stamp an hour ahead: implausible
    (
        "2024-03-01T13:00:00Z h sshd[1]: Invalid user a from 192.0.2.1",
        [(INVALID, "192.0.2.1", INGEST, "implausible", "sshd_syslog")],
    ),
    # other programs: recognized, no event
    ("Dec 10 06:55:46 LabSZ CRON[1]: pam_unix(cron:session): session opened for user root by (uid=0)", []),
    ("Jun 15 04:06:18 combo su(pam_unix)[21416]: session opened for user cyrus by (uid=0)", []),
    ("Jun 19 04:09:11 combo syslogd 1.4.1: restart.", []),
    ("Jul  7 08:06:15 combo  -- root[2421]: ROOT LOGIN ON tty2", []),
    ("Jun 17 19:43:13 combo ftpd[31439]: connection from 211.107.232.1 () at Fri Jun 17 19:43:13 2005", []),
    ("Mar  1 10:00:00 h last message repeated 3 times", []),
    ("<34>1 2024-03-01T10:00:00Z h nginx 1 - - 192.0.2.1 GET /", []),
]


@pytest.mark.parametrize(("line", "expected"), FRAMING_CASES)
def test_syslog_framing_known_answers(line: str, expected: list[tuple[Any, ...]]) -> None:
    """Each syslog framing is read, with its time; other programs give no event."""
    events = PARSE(line.encode(), INGEST)
    assert [(e.ssh_outcome, e.source_ip, e.time, e.time_flag, e.format) for e in events] == expected


@pytest.mark.parametrize(
    ("stamp", "ingest", "year"),
    [
        ("Dec 10 06:55:46", INGEST, 2023),  # later in the calendar than ingest: last year
        ("Mar  1 11:59:59", INGEST, 2024),  # just before ingest: this year
        ("Mar  1 12:04:59", INGEST, 2024),  # within the 300 s skew: still this year
        ("Mar  1 12:05:01", INGEST, 2023),  # beyond the skew: a year ago
        ("Feb 29 10:00:00", INGEST, 2024),  # leap day in a leap year
        ("Feb 29 10:00:00", datetime(2025, 3, 1, tzinfo=UTC), 2024),  # leap day: back to the last leap year
        ("Feb 29 10:00:00", datetime(2024, 2, 28, tzinfo=UTC), 2020),  # leap day not yet reached this year
        ("Jan  1 00:02:00", datetime(2024, 12, 31, 23, 59, tzinfo=UTC), 2025),  # clock skew across New Year
        ("Dec 31 23:59:00", datetime(2025, 1, 1, 0, 1, tzinfo=UTC), 2024),  # read just after New Year
    ],
)
def test_syslog_year_is_the_latest_not_in_the_future(stamp: str, ingest: datetime, year: int) -> None:
    """The year-less stamp gets the latest year that is at most max_future_skew_s after ingest."""
    (event,) = PARSE(f"{stamp} h sshd[1]: Invalid user a from 192.0.2.1".encode(), ingest)
    assert (event.time.year, event.time_flag) == (year, None)


def test_message_repeated_is_one_event_with_its_count() -> None:
    """rsyslog's 'message repeated N times: [ MSG ]' is one event carrying N, not N events (no amplification)."""
    line = HEAD + "message repeated 5 times: [ Failed password for root from 5.36.59.76 port 42393 ssh2]"
    events = PARSE(line.encode(), INGEST)
    assert [_summary(e) for e in events] == [(FAILED, "5.36.59.76", "root", "password", False, {})]
    assert events[0].repeat == 5


def test_message_repeated_keeps_the_hint() -> None:
    """The event of a folded repeat carries the line's hint and count."""
    line = HEAD + "message repeated 3 times: [ Did not receive identification string from 192.0.2.5]"
    events = PARSE(line.encode(), INGEST)
    assert [(_summary(e), e.repeat) for e in events] == [((OTHER, "192.0.2.5", None, None, False, hint("no_ident")), 3)]


def test_message_repeated_is_capped() -> None:
    """A huge repeat count is capped at max_repeat_events, and the event says so."""
    parse = build_parser(ParseParams(max_repeat_events=3))
    line = HEAD + "message repeated 999999999 times: [ Failed password for root from 5.36.59.76 port 1 ssh2]"
    events = parse(line.encode(), INGEST)
    assert [(e.repeat, e.extra) for e in events] == [(3, {"repeat_capped": "1"})]


def test_a_repeat_count_of_thousands_of_digits_is_capped_not_parsed() -> None:
    """A count past Python's int-string limit made the parser raise ValueError (a transform_failed record)."""
    line = HEAD + "message repeated " + "9" * 5000 + " times: [ Failed password for root from 5.36.59.76 port 1 ssh2]"
    events = PARSE(line.encode(), INGEST)
    assert [(e.repeat, e.extra) for e in events] == [(1000, {"repeat_capped": "1"})]


@pytest.mark.parametrize(
    "message",
    [
        "message repeated 0 times: [ Failed password for root from 5.36.59.76 port 1 ssh2]",  # zero
        "message repeated 2 times: [ session closed for user x]",  # repeats of a line without a client
        "message repeated lots of times: [ Failed password for root from 5.36.59.76 port 1 ssh2]",  # no count
    ],
)
def test_message_repeated_without_events(message: str) -> None:
    """Folded repeats with no count, a zero count, or no client give no event."""
    assert PARSE((HEAD + message).encode(), INGEST) == []
