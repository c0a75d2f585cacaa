"""Known answers for web-server lines beyond the plain access line: virtual hosts, Apache / nginx escapes,
access and error lines inside syslog, and Apache / nginx error logs."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.model import Event, EventKind
from transforms.parse import ERROR_LOG_EVENTS, ERROR_LOG_KEY, ParseParams, build_parser, unescape_log_field
from transforms.syslog import is_web_program

INGEST = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
T0 = datetime(2024, 3, 1, 10, 0, 0, tzinfo=UTC)
PARSE = build_parser(ParseParams())
STAMP = "[01/Mar/2024:10:00:00 +0000]"
COMBINED = f'203.0.113.9 - - {STAMP} "GET /a?b=1 HTTP/1.1" 200 512 "https://ref.example/" "curl/8.5"'


def _events(raw: str | bytes) -> list[Event]:
    return PARSE(raw.encode() if isinstance(raw, str) else raw, INGEST)


def _check(events: list[Event], expected: list[dict[str, Any]]) -> None:
    assert len(events) == len(expected)
    assert [{name: getattr(e, name) for name in fields} for e, fields in zip(events, expected, strict=True)] == expected


# --- virtual hosts ----------------------------------------------------------------------------------------

VHOST_CASES: list[tuple[str, dict[str, Any]]] = [
    # nginx "$host $remote_addr - $remote_user ..." (CrowdSec nginx-cve-2021-41773): a bare host name first
    ("memze.ro " + COMBINED, {"source_ip": "203.0.113.9", "url": "/a?b=1", "format": "apache_combined"}),
    # ... with an IPv6 client and a user
    (
        f'www.sitename.com 2001:db8::7 - alice {STAMP} "GET / HTTP/1.1" 403 332 "-" "TrackBack/1.02"',
        {"source_ip": "2001:db8::7", "user": "alice", "status": 403},
    ),
    # ... in common log format
    (f'shop.example 203.0.113.9 - - {STAMP} "GET / HTTP/1.1" 200 5', {"format": "apache_common"}),
    # a single-label host name (nginx "_" or "localhost")
    ("localhost " + COMBINED, {"source_ip": "203.0.113.9"}),
    # a host name that starts like an ISO date is not taken for a syslog stamp
    ("2024-site.example " + COMBINED, {"source_ip": "203.0.113.9"}),
    # Apache vhost_combined "%v:%p": the second column may even be a name (HostnameLookups On)
    (f'shop.example:443 client.example.net - - {STAMP} "GET / HTTP/1.1" 200 5', {"source_ip": "client.example.net"}),
]


@pytest.mark.parametrize(("line", "expected"), VHOST_CASES)
def test_virtual_host_prefix_known_answers(line: str, expected: dict[str, Any]) -> None:
    """A leading virtual-host column is skipped and the next column is the client."""
    _check(_events(line), [expected])


# --- escapes ----------------------------------------------------------------------------------------------

UNESCAPE_CASES: list[tuple[str, str]] = [
    ("plain/1.0", "plain/1.0"),  # nothing to undo: returned as it is
    (r"a \"quoted\" word", 'a "quoted" word'),  # Apache's \"
    (r"back\\slash", "back\\slash"),  # Apache's \\
    (r"\\x41", "\\x41"),  # an escaped backslash before "x41": the client sent the four characters \x41
    (r"\x22 and \x5C", '" and \\'),  # nginx writes '"' and '\' as \xhh
    (r"\x5c\x5c", "\\\\"),  # lower-case hex digits
    (r"caf\xc3\xa9", "café"),  # the escaped bytes of one UTF-8 character
    (r"\xff\xfe", "\\xff\\xfe"),  # bytes that are no UTF-8 stay written as \xhh
    (r"\xc3", "\\xc3"),  # a truncated UTF-8 sequence too
    (r"line\nbreak\ttab\r\b\v", "line\nbreak\ttab\r\b\v"),  # Apache's named control escapes
    (r"nul\x00", "nul\x00"),  # a NUL byte
    (r"\q \x4 \xZZ", r"\q \x4 \xZZ"),  # not an escape either logger writes: kept
    ("trailing \\", "trailing \\"),  # a lone backslash at the end
    ("é \\x41", "é A"),  # unescaped non-ASCII text next to an escape survives the round trip
]


@pytest.mark.parametrize(("logged", "expected"), UNESCAPE_CASES)
def test_unescape_log_field(logged: str, expected: str) -> None:
    """unescape_log_field undoes Apache's and nginx's escapes, left to right, and keeps anything else."""
    assert unescape_log_field(logged) == expected


def _unescape_reference(text: str) -> str:
    """The escapes read one by one, left to right: the plain definition the fast version must equal."""
    named = {"\\": b"\\", '"': b'"', "b": b"\b", "n": b"\n", "r": b"\r", "t": b"\t", "v": b"\v"}
    out, position = bytearray(), 0
    for match in re.finditer(r'\\(x[0-9A-Fa-f]{2}|[\\"bnrtv])', text):
        out += text[position : match.start()].encode()
        code = match[1]
        out += bytes([int(code[1:], 16)]) if len(code) == 3 else named[code]
        position = match.end()
    out += text[position:].encode()
    return out.decode("utf-8", "backslashreplace")


@settings(max_examples=500)
@given(st.text(alphabet=list("\\\"nrtvbxqa0'\n4Fg1é\u2028 "), max_size=40))
def test_unescape_log_field_equals_reading_escapes_left_to_right(text: str) -> None:
    """The C-level unescape (split on escaped backslashes, then codecs.escape_decode) is the plain definition."""
    assert unescape_log_field(text) == _unescape_reference(text)


ESCAPED_LINE_CASES: list[tuple[str, dict[str, Any]]] = [
    # the request line, referrer and user agent are unescaped after the fields are split
    (
        r'203.0.113.9 - - [01/Mar/2024:10:00:00 +0000] "GET /q?a=\"<x>\"&b=\\ HTTP/1.1" 200 5 '
        r'"https://r.example/?q=\"1\"" "Mozilla \"X\" caf\xc3\xa9"',
        {
            "url": '/q?a="<x>"&b=\\',
            "referrer": 'https://r.example/?q="1"',
            "user_agent": 'Mozilla "X" café',
            "extra": {},
        },
    ),
    # nginx escape=default: \x22 and \x5C
    (
        r'203.0.113.9 - - [01/Mar/2024:10:00:00 +0000] "GET /a\x22b\x5Cc HTTP/1.1" 404 0 "-" "x\x22y"',
        {"url": '/a"b\\c', "user_agent": 'x"y', "referrer": None},
    ),
    # an escaped NUL and newline in the target reach the signal rules as the characters they are
    (
        r'203.0.113.9 - - [01/Mar/2024:10:00:00 +0000] "GET /../etc/passwd\x00.png HTTP/1.1" 400 0',
        {"url": "/../etc/passwd\x00.png"},
    ),
    # TLS sent to the HTTP port: the unescaped bytes are no method, so the request stays malformed
    (
        r'203.0.113.9 - - [01/Mar/2024:10:00:00 +0000] "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" 400 226',
        {"method": None, "url": None, "extra": {"request": "malformed"}},
    ),
    # an escaped blank cannot split the request differently from what was logged: Apache writes a blank as is
    (
        r'203.0.113.9 - - [01/Mar/2024:10:00:00 +0000] "GET /a\\x20b HTTP/1.1" 404 0',
        {"url": "/a\\x20b", "http_version": "HTTP/1.1"},
    ),
]


@pytest.mark.parametrize(("line", "expected"), ESCAPED_LINE_CASES)
def test_escaped_access_line_known_answers(line: str, expected: dict[str, Any]) -> None:
    """Apache and nginx escapes in the request line and headers are undone."""
    _check(_events(line), [expected])


# --- web servers in syslog --------------------------------------------------------------------------------

SYSLOG_CASES: list[tuple[str | bytes, list[dict[str, Any]]]] = [
    # nginx "access_log syslog:" (CrowdSec http-bf-wordpress-bf): the access line's own time and zone win
    (
        "Mar  1 10:05:00 ip-172-31-43-28.us-east-2.compute.internal nginx[2869]: " + COMBINED,
        [{"source_ip": "203.0.113.9", "time": T0, "url": "/a?b=1", "format": "syslog+apache_combined"}],
    ),
    # apache2 piped to logger, common log format
    (
        f'Mar  1 10:00:00 web apache2[77]: 203.0.113.9 - bob {STAMP} "POST /login HTTP/1.1" 401 12',
        [{"user": "bob", "status": 401, "format": "syslog+apache_common"}],
    ),
    # per-log tags: "nginx-access", "httpd/site1"; a virtual host in the message
    ("Mar  1 10:00:00 web nginx-access: " + COMBINED, [{"format": "syslog+apache_combined"}]),
    ("Mar  1 10:00:00 web httpd/site1[5]: site1.example " + COMBINED, [{"source_ip": "203.0.113.9"}]),
    # HAProxy with "option httplog clf"
    ("Mar  1 10:00:00 lb haproxy[760]: " + COMBINED, [{"status": 200, "format": "syslog+apache_combined"}]),
    # RFC 5424 framing
    ("<190>1 2024-03-01T10:00:00Z web nginx 42 - - " + COMBINED, [{"format": "syslog+apache_combined"}]),
    # a JSON wrapper around the whole syslog line
    (
        orjson.dumps({"message": "Mar  1 10:00:00 web nginx[1]: " + COMBINED}),
        [{"format": "json+syslog+apache_combined"}],
    ),
    # another program's message that looks like an access line (an application logging client text): no event
    ("Mar  1 10:00:00 web myapp[9]: " + COMBINED, []),
    # a web server's message with no client (start-up): recognized, no event
    ("Mar  1 10:00:00 web nginx[1]: signal process started", []),
    # Apache "ErrorLog syslog:" (fail2ban apache-auth): no time of its own, the syslog stamp dates it
    (
        "Mar  1 10:00:00 srv httpd[22034]: [authz_core:error] [pid 22034] [client 192.0.2.1:58585] AH01630: "
        "client denied by server configuration: /home/www/",
        [
            {
                "source_ip": "192.0.2.1",
                "time": T0,
                "format": "syslog+apache_error",
                "extra": {"error_log": "client_denied"},
            }
        ],
    ),
    # nginx error log to syslog: its own stamp (with the year) wins
    (
        'Mar  1 11:00:00 web nginx: 2024/03/01 10:00:00 [error] 7#7: *3 user "x" was not found in "/etc/htpasswd", '
        'client: 192.0.2.3, server: h, request: "GET / HTTP/2.0", host: "h"',
        [{"source_ip": "192.0.2.3", "time": T0, "user": "x", "format": "syslog+nginx_error"}],
    ),
    # a bracketed IPv6 client starts an access line with "[" too
    (
        f'Mar  1 10:00:00 web nginx[1]: [2001:db8::7]:443 - - {STAMP} "GET / HTTP/1.1" 200 5',
        [{"source_ip": "2001:db8::7", "format": "syslog+apache_common"}],
    ),
]


@pytest.mark.parametrize(("raw", "expected"), SYSLOG_CASES)
def test_web_server_syslog_known_answers(raw: str | bytes, expected: list[dict[str, Any]]) -> None:
    """A web server's syslog message is read as the access or error line it carries."""
    _check(_events(raw), expected)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("nginx", True),  # the program itself
        ("apache2_error", True),  # a per-log tag
        ("HTTPD", True),  # tags are compared without case
        ("haproxy", True),  # a proxy
        ("nginxfoo", False),  # only whole names, or a name and a separator
        ("sshd", False),  # read by the sshd reader instead
        ("", False),  # no tag
    ],
)
def test_is_web_program(tag: str, expected: bool) -> None:
    """is_web_program knows the web servers' tags and their per-log variants."""
    assert is_web_program(tag) is expected


def test_web_programs_setting_names_the_tags_read_as_web_lines() -> None:
    """A deployment's own tag is read once listed; the list replaces the defaults."""
    line = ("Mar  1 10:00:00 host docker/web-1[9]: " + COMBINED).encode()
    assert _events(line) == []  # not a known web server's tag
    parse = build_parser(ParseParams(web_programs=["docker/web-1", "Caddy"]))
    _check(parse(line, INGEST), [{"source_ip": "203.0.113.9", "format": "syslog+apache_combined"}])
    _check(parse(b"Mar  1 10:00:00 h caddy: " + COMBINED.encode(), INGEST), [{"source_ip": "203.0.113.9"}])
    assert parse(b"Mar  1 10:00:00 h nginx: " + COMBINED.encode(), INGEST) == []  # no longer listed


# --- error logs -------------------------------------------------------------------------------------------

A22 = "[Fri Mar 01 10:00:00 2024] [error] [client 192.0.2.5] "  # Apache 2.2
A24 = "[Fri Mar 01 10:00:00.250000 2024] [auth_basic:error] [pid 17512:tid 140123] [client 192.0.2.5:51380] "
NGX = "2024/03/01 10:00:00 [error] 2865#0: *66647 "
NGX_TAIL = ', client: 192.0.2.5, server: www.example, request: "GET /admin HTTP/1.1", host: "www.example"'


def error(code: str, **fields: Any) -> dict[str, Any]:
    """The expected fields of an error-log event from 192.0.2.5: its code, and no status."""
    return {"source_ip": "192.0.2.5", "status": None, "extra": {ERROR_LOG_KEY: code}, **fields}


ERROR_LOG_CASES: list[tuple[str, dict[str, Any] | None]] = [
    # Apache 2.4 Basic auth, unknown user: user and URI from the message, time with microseconds
    (
        A24 + "AH01618: user bob not found: /admin",
        error(
            "auth_user_not_found",
            user="bob",
            url="/admin",
            time=datetime(2024, 3, 1, 10, 0, 0, 250000, tzinfo=UTC),
            kind=EventKind.HTTP,
            format="apache_error",
            time_flag=None,
        ),
    ),
    # Apache 2.2, the same (and an empty user name)
    (A22 + "user  not found: /", error("auth_user_not_found", user=None, url="/", time=T0)),
    # 2.2 without the URI
    (A22 + "user root not found", error("auth_user_not_found", user="root", url=None)),
    # wrong password, Basic and Digest
    (
        A24 + 'AH01617: user alice: authentication failure for "/basic/file": Password Mismatch',
        error("auth_password_mismatch", user="alice", url="/basic/file"),
    ),
    (A22 + "Digest: user alice: password mismatch: /d/x", error("auth_password_mismatch", user="alice", url="/d/x")),
    # Digest, unknown user in a realm
    (
        A24 + "AH01790: user `alice' in realm `private area' not found: /d/x",
        error("auth_user_not_found", user="alice", url="/d/x"),
    ),
    # other auth failures: wrong scheme, authz, bad Digest nonces
    (A24 + "AH01614: client used wrong authentication scheme: /b", error("auth_failed", url="/b")),
    (
        A24 + "AH01637: Authorization of user u to access /o/x failed, reason: file owner dan does not match",
        error("auth_failed", user="u", url="/o/x"),
    ),
    (A22 + "Digest: invalid nonce JDiBAA=db93 received - user attempted time travel", error("auth_failed")),
    # ... but a stale nonce is routine for browsers: "other"
    (A22 + "Digest: invalid nonce l19lg received - hash is not 6fda8bb", error("other")),
    # access control
    (A24 + "AH01630: client denied by server configuration: /var/www/x", error("client_denied", url=None)),
    (A22 + "Directory index forbidden by rule: /var/www/html/", error("index_forbidden")),
    # missing files and scripts: file-system paths are not request targets, so no url
    (A22 + "File does not exist: /var/www/pma", error("file_not_found", url=None)),
    (A22 + "script '/var/www/wp-login.php' not found or unable to stat", error("script_not_found")),
    (A24 + "AH02811: stderr from /usr/lib/cgi-bin/luci: script not found or unable to stat", error("script_not_found")),
    (A24 + "AH01071: Got error 'Primary script unknown'", error("script_not_found")),
    # bad requests: the request line or URI is the url, unescaped
    (
        A24 + "AH00126: Invalid URI in request GET /cgi-bin/.%2e/.%2e/etc/passwd HTTP/1.1",
        error("invalid_request", method="GET", url="/cgi-bin/.%2e/.%2e/etc/passwd", http_version="HTTP/1.1"),
    ),
    (A24 + "AH10244: invalid URI path (/cgi-bin/.%2e/bin/sh)", error("invalid_request", url="/cgi-bin/.%2e/bin/sh")),
    (
        A22 + r"Invalid URI in request \xf9h\xa9 junk",
        error(
            "invalid_request", method=None, url=None, extra={ERROR_LOG_KEY: "invalid_request", "request": "malformed"}
        ),
    ),
    (A22 + "request failed: URI too long (longer than 8190)", error("invalid_request")),
    # TLS / SNI and ModSecurity (which repeats the client before its own name)
    (A24 + "AH02032: Hostname a.example provided via SNI and hostname b.example provided via HTTP", error("tls_error")),
    (A24 + '[client 192.0.2.5] ModSecurity: Access denied with code 403 (phase 2). [id "1"]', error("waf")),
    # anything else naming a client
    (A24 + "AH01215: /bin/bash: warning: HTTP_TEST: ignoring function definition attempt", error("other")),
    # Apache appends the Referer header last; it is not part of the URI
    (
        A22 + "user gg not found: /, referer: http://r.example/m.html",
        error("auth_user_not_found", url="/", referrer="http://r.example/m.html"),
    ),
    # log injection: the message's own "[client X]" is client text; the column before the message is Apache's
    (
        A22 + "File does not exist: /srv/http/site/[client 198.51.100.66] user root not found",
        error("file_not_found", user=None),
    ),
    # IPv6 clients, with and without a port
    (
        "[Sat Jul 20 22:11:44.147674 2013] [authz_owner:error] [pid 1] [client [2001:db8::80da:af6b:8b2c]:51548] "
        "AH01637: Authorization of user t to access /x failed, reason: owner",
        {"source_ip": "2001:db8::80da:af6b:8b2c", "extra": {ERROR_LOG_KEY: "auth_failed"}},
    ),
    ("[Thu Jul 11 01:21:44 2013] [error] [client 2001:db8::1] user t not found: /", {"source_ip": "2001:db8::1"}),
    # "[remote X]" (connection-level client), and a system error before the client column
    (
        "[Mon Nov 06 13:39:56.637868 2023] [auth_basic:error] [pid 3] [remote 192.0.2.5:35924] "
        "AH01618: user w not found: /",
        error("auth_user_not_found", user="w"),
    ),
    (
        "[Fri Mar 01 10:00:00 2024] [core:error] [pid 1] (13)Permission denied: [client 192.0.2.5:1] AH00035: access",
        error("other"),
    ),
    # no client: a server-level message, recognized, no event
    ("[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/workers2.properties", None),
    ("[Fri Mar 01 10:00:00.1 2024] [mpm_event:notice] [pid 1:tid 2] AH00489: Apache/2.4.57 configured", None),
    # an unreadable stamp: ingest time, flagged
    (
        "[Fri Mar 41 10:00:00 2024] [error] [client 192.0.2.5] File does not exist: /x",
        error("file_not_found", time=INGEST, time_flag="unparseable"),
    ),
    # nginx Basic auth: user, request line, referrer
    (
        NGX + 'user "xyz" was not found in "/var/www/.htpasswd"' + NGX_TAIL + ', referrer: "https://r.example/"',
        error(
            "auth_user_not_found",
            user="xyz",
            method="GET",
            url="/admin",
            http_version="HTTP/1.1",
            referrer="https://r.example/",
            time=T0,
            format="nginx_error",
        ),
    ),
    (NGX + 'user "scriben dio": password mismatch' + NGX_TAIL, error("auth_password_mismatch", user="scriben dio")),
    (NGX + "PAM: user 'u' - not authenticated: Authentication failure" + NGX_TAIL, error("auth_failed", user="u")),
    # nginx missing files, with the request's URL; ENOTDIR as well
    (
        NGX + 'open() "/var/www/site/cgi-bin/php4" failed (2: No such file or directory)' + NGX_TAIL,
        error("file_not_found", url="/admin"),
    ),
    (
        NGX + '"/var/www/site/roundcube/" is not found (2: No such file or directory)' + NGX_TAIL,
        error("file_not_found"),
    ),
    (NGX + 'open() "/var/www/index.php/x" failed (20: Not a directory)' + NGX_TAIL, error("file_not_found")),
    # ... but a permission problem is the server's, not a probe
    (NGX + 'open() "/var/www/x" failed (13: Permission denied)' + NGX_TAIL, error("other")),
    # nginx access rules, listings, limits, FastCGI, bad requests, TLS
    (NGX + "access forbidden by rule" + NGX_TAIL, error("client_denied")),
    (NGX + 'directory index of "/var/www/up/" is forbidden' + NGX_TAIL, error("index_forbidden")),
    (NGX + 'limiting requests, excess: 1.852 by zone "one"' + NGX_TAIL, error("rate_limited")),
    (NGX + 'delaying request, excess: 0.841, by zone "req_limit"' + NGX_TAIL, error("rate_limited")),
    (NGX + 'FastCGI sent in stderr: "Primary script unknown" while reading' + NGX_TAIL, error("script_not_found")),
    (NGX + "client sent invalid method while reading client request line" + NGX_TAIL, error("invalid_request")),
    (
        "2024/03/01 10:00:00 [crit] 76952#76952: *2454307 SSL_do_handshake() failed (SSL: error:1408F0C6:SSL "
        "routines:ssl3_get_record:packet length too long) while SSL handshaking, client: 192.0.2.5, "
        "server: 0.0.0.0:443",
        error("tls_error", url=None, method=None),
    ),
    # IPv6 client, no connection number
    (
        '2024/03/01 10:00:00 [error] 1#1: limiting connections by zone "c", client: 2001:db8::7, server: s',
        {"source_ip": "2001:db8::7", "extra": {ERROR_LOG_KEY: "rate_limited"}},
    ),
    # client text that repeats nginx's own ", client: X, server: " before or after it: the line names two
    # addresses and position cannot tell which one nginx wrote, so it gives no event (the access log has it)
    (NGX + 'user "a, client: 198.51.100.66, server: x": password mismatch' + NGX_TAIL, None),
    (NGX + "access forbidden by rule" + NGX_TAIL + ', referrer: "y, client: 198.51.100.66, server: x"', None),
    # ... while a repeat of the same address is no contradiction
    (
        NGX + "access forbidden by rule" + NGX_TAIL + ', referrer: ", client: 192.0.2.5, server: x"',
        error("client_denied"),
    ),
    # no client: start-up and shutdown messages; a Unix-socket client has no address
    ("2024/03/01 10:00:00 [notice] 1#1: signal process started", None),
    ("2024/03/01 10:00:00 [emerg] 1#1: bind() to 0.0.0.0:80 failed (98: Address already in use)", None),
    (NGX + "access forbidden by rule, client: unix:, server: s", None),
]


@pytest.mark.parametrize(("line", "expected"), ERROR_LOG_CASES)
def test_error_log_known_answers(line: str, expected: dict[str, Any] | None) -> None:
    """Each Apache / nginx error-log line gives the listed event, or none (None) when it names no one client."""
    _check(_events(line), [] if expected is None else [expected])


def test_error_log_codes_are_a_closed_set() -> None:
    """Every code the error-log readers give is one of ERROR_LOG_EVENTS, and every code is given by some case."""
    given = set()
    for line, _ in ERROR_LOG_CASES:
        given |= {event.extra[ERROR_LOG_KEY] for event in _events(line)}
    assert given == ERROR_LOG_EVENTS
    assert set(ERROR_LOG_EVENTS) == {
        "auth_user_not_found",
        "auth_password_mismatch",
        "auth_failed",
        "client_denied",
        "index_forbidden",
        "file_not_found",
        "script_not_found",
        "invalid_request",
        "rate_limited",
        "tls_error",
        "waf",
        "other",
    }


def test_error_line_in_a_json_wrapper_takes_the_wrapper_time() -> None:
    """journald / Filebeat: an Apache error message without its own time is dated by the wrapper's."""
    raw = orjson.dumps(
        {
            "@timestamp": "2024-03-01T10:00:00Z",
            "process": {"name": "httpd"},
            "message": "[auth_basic:error] [pid 1] [client 192.0.2.5:4] AH01618: user x not found: /",
        }
    )
    _check(_events(raw), [error("auth_user_not_found", time=T0, time_flag=None, format="json+apache_error")])
