"""Known answers for the input parser: access lines, JSON (ECS, flat, wrappers), errors, X-Forwarded-For, params."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

import transforms.parse
import transforms.syslog
import transforms.timestamps
from transforms.errors import Reason, RecordError
from transforms.model import Event, EventKind, SshOutcome
from transforms.parse import DEFAULT_FIELD_MAP, ParseParams, build_parser, clean_ip

INGEST = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
T0 = datetime(2024, 3, 1, 10, 0, 0, tzinfo=UTC)  # the time most records below carry
PARSE = build_parser(ParseParams())
TRUSTED = build_parser(ParseParams(trusted_proxies=["10.0.0.0/8", "2001:db8:ffff::/48"]))

COMBINED = (
    '203.0.113.9 - - [01/Mar/2024:10:00:00 +0000] "GET /a?b=1 HTTP/1.1" 200 512 "https://ref.example/" "curl/8.5"'
)


def _one(raw: bytes | str, parse: Any = PARSE, ingest: datetime = INGEST) -> Event:
    events = parse(raw.encode() if isinstance(raw, str) else raw, ingest)
    assert len(events) == 1
    return events[0]


def _json(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)


def _check(event: Event, expected: dict[str, Any]) -> None:
    actual = {name: getattr(event, name) for name in expected}
    assert actual == expected


# --- raw access lines ------------------------------------------------------------------------------------

ACCESS_CASES: list[tuple[str, dict[str, Any]]] = [
    # combined: every field
    (
        COMBINED,
        {
            "kind": EventKind.HTTP,
            "source_ip": "203.0.113.9",
            "time": T0,
            "method": "GET",
            "url": "/a?b=1",
            "http_version": "HTTP/1.1",
            "status": 200,
            "bytes_sent": 512,
            "referrer": "https://ref.example/",
            "user_agent": "curl/8.5",
            "user": None,
            "format": "apache_combined",
            "time_flag": None,
            "extra": {},
        },
    ),
    # common log format: no referrer / user agent; an authenticated user
    (
        '203.0.113.9 - alice [01/Mar/2024:10:00:00 +0000] "POST /login HTTP/1.0" 302 -',
        {"user": "alice", "referrer": None, "user_agent": None, "bytes_sent": None, "format": "apache_common"},
    ),
    # Apache vhost_combined: a leading vhost:port
    (
        "shop.example:443 " + COMBINED,
        {"source_ip": "203.0.113.9", "url": "/a?b=1", "format": "apache_combined"},
    ),
    # nginx "main": a trailing "$http_x_forwarded_for", ignored from an untrusted peer
    (COMBINED + ' "198.51.100.1"', {"source_ip": "203.0.113.9", "extra": {}}),
    # a trailing request time
    (COMBINED + " 0.004", {"status": 200, "user_agent": "curl/8.5"}),
    # "-" request line (client sent nothing): malformed is a signal, still an event
    (
        '203.0.113.9 - - [01/Mar/2024:10:00:00 +0000] "-" 408 -',
        {"method": None, "url": None, "http_version": None, "status": 408, "extra": {"request": "malformed"}},
    ),
    # TLS handshake on the HTTP port, escaped by Apache
    (
        r'203.0.113.9 - - [01/Mar/2024:10:00:00 +0000] "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" 400 226 "-" "-"',
        {"method": None, "url": None, "status": 400, "user_agent": None, "extra": {"request": "malformed"}},
    ),
    # garbage request line
    (
        '203.0.113.9 - - [01/Mar/2024:10:00:00 +0000] "garbage" 400 0 "-" "-"',
        {"method": None, "extra": {"request": "malformed"}},
    ),
    # HTTP/0.9: no version
    (
        '203.0.113.9 - - [01/Mar/2024:10:00:00 +0000] "GET /" 200 10',
        {"method": "GET", "url": "/", "http_version": None, "extra": {}},
    ),
    # a raw space inside the target: kept, not malformed
    ('203.0.113.9 - - [01/Mar/2024:10:00:00 +0000] "GET /a b HTTP/1.1" 400 0', {"url": "/a b", "extra": {}}),
    # status "-" is absent
    ('203.0.113.9 - - [01/Mar/2024:10:00:00 +0000] "GET / HTTP/1.1" - -', {"status": None}),
    # IPv6 peer
    (COMBINED.replace("203.0.113.9", "2001:db8::7"), {"source_ip": "2001:db8::7"}),
    # IPv4 peer with a port (some %{c}a formats): the port is stripped
    (COMBINED.replace("203.0.113.9", "203.0.113.9:51000"), {"source_ip": "203.0.113.9"}),
    # a zone offset is converted to UTC
    (COMBINED.replace("+0000", "+0200"), {"time": datetime(2024, 3, 1, 8, 0, tzinfo=UTC)}),
    (COMBINED.replace("+0000", "-0130"), {"time": datetime(2024, 3, 1, 11, 30, tzinfo=UTC)}),
    # unreadable time: ingest time, flagged
    (COMBINED.replace("01/Mar/2024:10:00:00 +0000", "yesterday"), {"time": INGEST, "time_flag": "unparseable"}),
    # day 30 of February is not a date
    (COMBINED.replace("01/Mar", "30/Feb"), {"time": INGEST, "time_flag": "unparseable"}),
    # an hour in the future (skew allows 5 minutes): implausible
    (COMBINED.replace("10:00:00", "13:00:00"), {"time": INGEST, "time_flag": "implausible"}),
    # eleven years old (limit 3650 days): implausible
    (COMBINED.replace("2024", "2013"), {"time": INGEST, "time_flag": "implausible"}),
    # Apache's escaped quotes in the user agent are undone once the fields are split
    (COMBINED.replace('"curl/8.5"', r'"Mozilla \"evil\""'), {"user_agent": 'Mozilla "evil"'}),
    # CRLF line ending and surrounding blanks
    ("  " + COMBINED + "\r\n", {"source_ip": "203.0.113.9", "user_agent": "curl/8.5"}),
    # a byte-order mark before the line
    ("\ufeff" + COMBINED, {"source_ip": "203.0.113.9"}),
]


@pytest.mark.parametrize(("line", "expected"), ACCESS_CASES)
def test_access_line_known_answers(line: str, expected: dict[str, Any]) -> None:
    """Each access-log line parses to the listed field values."""
    _check(_one(line), expected)


# --- JSON ------------------------------------------------------------------------------------------------

ECS_NESTED = {
    "@timestamp": "2024-03-01T10:00:00.000Z",
    "source": {"ip": "203.0.113.9", "port": 51000},
    "url": {"original": "/a?b=1", "path": "/a", "query": "b=1"},
    "http": {
        "version": "1.1",
        "request": {"method": "GET", "referrer": "https://ref.example/"},
        "response": {"status_code": 200, "body": {"bytes": 512}},
    },
    "user_agent": {"original": "curl/8.5", "name": "curl"},
    "user": {"name": "alice"},
    "message": "the original line, ignored when structured fields are present",
}
ECS_EXPECTED = {
    "kind": EventKind.HTTP,
    "source_ip": "203.0.113.9",
    "time": T0,
    "method": "GET",
    "url": "/a?b=1",
    "http_version": "HTTP/1.1",
    "status": 200,
    "bytes_sent": 512,
    "referrer": "https://ref.example/",
    "user_agent": "curl/8.5",
    "user": "alice",
    "format": "ecs_json",
    "time_flag": None,
    "extra": {},
}
NGINX_JSON = {
    "time_iso8601": "2024-03-01T11:00:00+01:00",
    "remote_addr": "203.0.113.9",
    "remote_user": "",
    "request": "GET /a?b=1 HTTP/1.1",
    "request_uri": "/a?b=1",
    "request_method": "GET",
    "server_protocol": "HTTP/1.1",
    "status": "200",
    "body_bytes_sent": "512",
    "http_referer": "https://ref.example/",
    "http_user_agent": "curl/8.5",
    "http_x_forwarded_for": "",
}
FLAT_EXPECTED = {**ECS_EXPECTED, "user": None, "format": "flat_json"}
APACHE_EXPECTED = {k: v for k, v in ECS_EXPECTED.items() if k not in ("user", "format")}

JSON_CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    # ECS, nested objects (Filebeat nginx/apache module output)
    (ECS_NESTED, ECS_EXPECTED),
    # ECS, dotted keys (Elastic Agent, Logstash ECS mode)
    (
        {
            "@timestamp": "2024-03-01T10:00:00Z",
            "source.ip": "203.0.113.9",
            "url.original": "/a?b=1",
            "http.version": "1.1",
            "http.request.method": "GET",
            "http.request.referrer": "https://ref.example/",
            "http.response.status_code": 200,
            "http.response.body.bytes": 512,
            "user_agent.original": "curl/8.5",
            "user.name": "alice",
        },
        ECS_EXPECTED,
    ),
    # ECS, nested and dotted mixed at different levels
    (
        {
            "@timestamp": "2024-03-01T10:00:00Z",
            "source": {"ip": "203.0.113.9"},
            "http": {"request.method": "GET", "response": {"status_code": 404}},
            "url.path": "/a",
            "url.query": "b=1",
        },
        {"method": "GET", "status": 404, "url": "/a?b=1", "format": "ecs_json"},
    ),
    # ECS: client.ip when source.ip is absent; user.email when user.name is absent; epoch millis
    (
        {"@timestamp": 1709287200000, "client": {"ip": "198.51.100.4"}, "user": {"email": "a@example.org"}},
        {"source_ip": "198.51.100.4", "user": "a@example.org", "time": T0, "method": None, "url": None},
    ),
    # ECS: source.address with a port; url.full when there is no original or path; no time
    (
        {"source": {"address": "198.51.100.4:5000"}, "url": {"full": "https://x.example/p"}},
        {"source_ip": "198.51.100.4", "url": "https://x.example/p", "time": INGEST, "time_flag": "missing"},
    ),
    # ECS: an IPv6 address in brackets
    ({"source": {"ip": "[2001:db8::7]"}}, {"source_ip": "2001:db8::7"}),
    # ECS: a numeric user id
    ({"source.ip": "203.0.113.9", "user.id": 1000}, {"user": "1000"}),
    # nginx log_format escape=json: numbers as strings, "" for absent
    (NGINX_JSON, FLAT_EXPECTED),
    # flat JSON with only a request line (nginx "$request")
    (
        {"remote_addr": "203.0.113.9", "request": "DELETE /x HTTP/2.0", "status": 204},
        {"method": "DELETE", "url": "/x", "http_version": "HTTP/2.0", "status": 204, "extra": {}},
    ),
    # flat JSON with a malformed request line
    (
        {"remote_addr": "203.0.113.9", "request": "\x16\x03\x01 \x00", "status": 400},
        {"method": None, "url": None, "extra": {"request": "malformed"}},
    ),
    # Fluent Bit nginx parser field names; "-" for an absent referrer; float epoch "date"
    (
        {
            "date": 1709287200.0,
            "remote": "203.0.113.9",
            "host": "-",
            "user": "-",
            "method": "GET",
            "path": "/a?b=1",
            "code": "200",
            "size": "512",
            "referer": "-",
            "agent": "curl/8.5",
        },
        {"url": "/a?b=1", "status": 200, "bytes_sent": 512, "referrer": None, "user": None, "time": T0},
    ),
    # Caddy: nested request object, headers as lists, float epoch "ts"
    (
        {
            "ts": 1709287200.5,
            "request": {
                "remote_ip": "203.0.113.9",
                "method": "GET",
                "uri": "/a?b=1",
                "proto": "HTTP/2.0",
                "headers": {"User-Agent": ["curl/8.5"], "Referer": ["https://ref.example/"]},
            },
            "status": 200,
            "size": 512,
        },
        {
            "url": "/a?b=1",
            "http_version": "HTTP/2.0",
            "user_agent": "curl/8.5",
            "referrer": "https://ref.example/",
            "time": datetime(2024, 3, 1, 10, 0, 0, 500000, tzinfo=UTC),
        },
    ),
    # epoch seconds as a string; nginx $time_local in Apache format
    ({"remote_addr": "203.0.113.9", "time": "1709287200"}, {"time": T0, "time_flag": None}),
    ({"remote_addr": "203.0.113.9", "time_local": "01/Mar/2024:10:00:00 +0000"}, {"time": T0}),
    # unparseable and implausible JSON times
    ({"remote_addr": "203.0.113.9", "time": "last tuesday"}, {"time": INGEST, "time_flag": "unparseable"}),
    ({"remote_addr": "203.0.113.9", "time": "2099-01-01T00:00:00Z"}, {"time": INGEST, "time_flag": "implausible"}),
    ({"remote_addr": "203.0.113.9", "time": 0}, {"time": INGEST, "time_flag": "implausible"}),
    # a naive ISO time is read as UTC
    ({"remote_addr": "203.0.113.9", "timestamp": "2024-03-01T10:00:00"}, {"time": T0}),
    # Filebeat without ingest pipeline: the raw line is in "message"; "host"/"log" objects are not fields
    (
        {
            "@timestamp": "2024-03-01T10:00:01.123Z",
            "message": COMBINED,
            "host": {"name": "web-1"},
            "log": {"file": {"path": "/var/log/nginx/access.log"}, "offset": 42},
            "agent": {"type": "filebeat"},
        },
        {**APACHE_EXPECTED, "format": "json+apache_combined"},
    ),
    # Logstash legacy grok output: "path" is the log file, there is no known address field, so "message" wins
    (
        {"path": "/var/log/httpd/access_log", "clientip": "203.0.113.9", "message": COMBINED},
        {"url": "/a?b=1", "format": "json+apache_combined"},
    ),
    # Fluent Bit tail: the raw line in "log"
    ({"log": COMBINED + "\n", "stream": "stdout"}, {"source_ip": "203.0.113.9", "format": "json+apache_combined"}),
]


@pytest.mark.parametrize(("obj", "expected"), JSON_CASES)
def test_json_known_answers(obj: dict[str, Any], expected: dict[str, Any]) -> None:
    """Each JSON record parses to the listed field values."""
    _check(_one(_json(obj)), expected)


SSH_JSON_CASES: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
    # rsyslog omkafka: a whole syslog line in "message"
    (
        {"message": "Mar  1 10:00:00 bastion sshd[42]: Failed password for root from 198.51.100.7 port 2222 ssh2"},
        [{"ssh_outcome": SshOutcome.FAILED, "source_ip": "198.51.100.7", "time": T0, "format": "json+sshd_syslog"}],
    ),
    # a replayed backlog: the wrapper's timestamp (2022) picks the syslog year, not the ingest time (2024)
    (
        {
            "@timestamp": "2022-12-31T23:59:30Z",
            "message": "Dec 31 23:59:00 bastion sshd[42]: Invalid user x from 198.51.100.7",
        },
        [{"ssh_outcome": SshOutcome.INVALID_USER, "time": datetime(2022, 12, 31, 23, 59, tzinfo=UTC)}],
    ),
    # journald via Vector: bare message, the program beside it, the time beside it
    (
        {
            "SYSLOG_IDENTIFIER": "sshd",
            "message": "Accepted publickey for alice from 192.0.2.7 port 50000 ssh2: ED25519 SHA256:AbC",
            "timestamp": "2024-03-01T10:00:00.000000Z",
            "host": "bastion",
        },
        [
            {
                "ssh_outcome": SshOutcome.ACCEPTED,
                "ssh_method": "publickey",
                "user": "alice",
                "source_ip": "192.0.2.7",
                "time": T0,
                "format": "json+sshd",
            }
        ],
    ),
    # ECS (Filebeat system module): process.name; Vector's "source_ip" (the syslog sender) is not the client
    (
        {
            "process": {"name": "sshd", "pid": 42},
            "message": "message repeated 2 times: [ Failed password for root from 198.51.100.7 port 2222 ssh2]",
            "source_ip": "10.9.9.9",
        },
        [{"source_ip": "198.51.100.7", "time_flag": "missing", "repeat": 2}],
    ),
    # rsyslog tag with the pid, a line that names no client
    ({"syslogtag": "sshd[42]:", "message": "Server listening on 0.0.0.0 port 22."}, []),
    # another program's message: recognized, no client event
    ({"programname": "CRON", "message": "(root) CMD (run-parts /etc/cron.hourly)"}, []),
    # a raw syslog line from another program
    ({"message": "Mar  1 10:00:00 bastion kernel: [UFW BLOCK] SRC=198.51.100.7"}, []),
]


@pytest.mark.parametrize(("obj", "expected"), SSH_JSON_CASES)
def test_json_wrapped_sshd_known_answers(obj: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    """sshd messages inside JSON wrappers parse to the listed events (or to none)."""
    events = PARSE(_json(obj), INGEST)
    assert len(events) == len(expected)
    for event, fields in zip(events, expected, strict=True):
        _check(event, fields)


# --- errors ----------------------------------------------------------------------------------------------

ERROR_CASES: list[tuple[bytes, Reason, str | None]] = [
    (b"", Reason.EMPTY, None),  # nothing at all
    (b" \t\r\n", Reason.EMPTY, None),  # blanks only
    (b"\xef\xbb\xbf \n", Reason.EMPTY, None),  # a byte-order mark and a newline
    (b"203.0.113.9 - - \xff\xfe", Reason.INVALID_UTF8, None),  # not UTF-8
    (b"\xed\xa0\x80", Reason.INVALID_UTF8, None),  # an encoded surrogate
    (b"{", Reason.INVALID_JSON, None),  # truncated JSON
    (b'{"remote_addr": "203.0.113.9",}', Reason.INVALID_JSON, None),  # trailing comma
    (b'{"a": NaN}', Reason.INVALID_JSON, None),  # not JSON
    (b"[1, 2]", Reason.NOT_AN_OBJECT, None),  # an array
    (b'"203.0.113.9"', Reason.NOT_AN_OBJECT, None),  # a string
    (b"42", Reason.NOT_AN_OBJECT, None),  # a number
    (b"null", Reason.NOT_AN_OBJECT, None),  # null
    (b"hello world", Reason.UNPARSEABLE_LINE, None),  # prose
    (b"[Sun Dec 04 04:47:44 2005] [bogus] workerEnv.init() ok", Reason.UNPARSEABLE_LINE, None),  # no log level
    (b"2021/03/16 09:15:14 error: no brackets", Reason.UNPARSEABLE_LINE, None),  # not an nginx error line
    (b'203.0.113.9 - - [01/Mar/2024:10:00:00 +0000] "GET / HTTP/1.1" abc 1', Reason.UNPARSEABLE_LINE, None),
    (b"Mar  1 10:00:00", Reason.UNPARSEABLE_LINE, None),  # a syslog stamp and nothing else
    # four columns before the time that are not "vhost client - user": never read another column as the client
    (
        b'203.0.113.9 - a b [01/Mar/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 1',  # a user name with a blank
        Reason.UNPARSEABLE_LINE,
        None,
    ),
    (
        b'client.example.net - 198.51.100.66 x [01/Mar/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 1',  # the same,
        Reason.UNPARSEABLE_LINE,  # with HostnameLookups: the user name holds an address, the 2nd column is "-"
        None,
    ),
    (
        b'198.51.100.1 203.0.113.9 - - [01/Mar/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 1',  # an address is no
        Reason.UNPARSEABLE_LINE,  # host name: two addresses, and nothing says which one is the client
        None,
    ),
    (b'shop.example - - - [01/Mar/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 1', Reason.UNPARSEABLE_LINE, None),
    (  # an identd answer (client text) in the vhost reading: not believed
        b'shop.example 203.0.113.9 ident - [01/Mar/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 1',
        Reason.UNPARSEABLE_LINE,
        None,
    ),
    (b'a.example b.example - - [01/Mar/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 1', Reason.UNPARSEABLE_LINE, None),
    (b"Foo  1 10:00:00 host sshd[1]: Invalid user x from 1.2.3.4", Reason.UNPARSEABLE_LINE, None),  # no month
    (b'- - - [01/Mar/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 1', Reason.MISSING_IP, "source_ip"),  # "-" peer
    (b'{"url": {"original": "/x"}}', Reason.MISSING_IP, "source_ip"),  # ECS without an address
    (b'{"foo": 1}', Reason.MISSING_IP, "source_ip"),  # nothing we know
    (b'{"remote_addr": "-", "request_uri": "/"}', Reason.MISSING_IP, "source_ip"),  # nginx "no value"
    (b'{"source": {"ip": "  "}}', Reason.MISSING_IP, "source_ip"),  # blank
    (b'{"remote_addr": 3405803785}', Reason.WRONG_TYPE, "remote_addr"),  # an address as a number
    (b'{"source": {"ip": {"v": "203.0.113.9"}}}', Reason.WRONG_TYPE, "source.ip"),  # an object
    (
        b'{"source.ip": "203.0.113.9", "http.response.status_code": "abc"}',
        Reason.WRONG_TYPE,
        "http.response.status_code",
    ),
    (b'{"remote_addr": "203.0.113.9", "status": [200]}', Reason.WRONG_TYPE, "status"),  # a list
    (b'{"remote_addr": "203.0.113.9", "status": true}', Reason.WRONG_TYPE, "status"),  # a boolean is not 1
    (b'{"remote_addr": "203.0.113.9", "status": "-12"}', Reason.WRONG_TYPE, "status"),  # a sign
    (b'{"remote_addr": "203.0.113.9", "bytes_sent": 1.5}', Reason.WRONG_TYPE, "bytes_sent"),  # a fraction
    (b'{"remote_addr": "203.0.113.9", "http_user_agent": 5}', Reason.WRONG_TYPE, "http_user_agent"),
    (b'{"remote_addr": "203.0.113.9", "http_user_agent": ["a", 1]}', Reason.WRONG_TYPE, "http_user_agent"),
    (b'{"remote_addr": "203.0.113.9", "request_uri": {}}', Reason.WRONG_TYPE, "request_uri"),
    (b'{"remote_addr": "203.0.113.9", "request": ["GET / HTTP/1.1"]}', Reason.WRONG_TYPE, "request"),
    (b'{"source.ip": "203.0.113.9", "@timestamp": {"now": 1}}', Reason.WRONG_TYPE, "@timestamp"),
    (b'{"source.ip": "203.0.113.9", "@timestamp": false}', Reason.WRONG_TYPE, "@timestamp"),
    (b'{"source.ip": "203.0.113.9", "user": {"name": ["alice"]}}', Reason.WRONG_TYPE, "user.name"),
    (b'{"message": "  "}', Reason.EMPTY, "message"),  # a wrapper with a blank line
    (b'{"message": "Failed password for root from 1.2.3.4 port 1 ssh2"}', Reason.UNPARSEABLE_LINE, "message"),
    (b'{"log": "{\\"nested\\": 1}"}', Reason.UNPARSEABLE_LINE, "message"),  # JSON in JSON is not unwrapped
]


@pytest.mark.parametrize(("raw", "reason", "field"), ERROR_CASES)
def test_bad_records_raise_their_reason(raw: bytes, reason: Reason, field: str | None) -> None:
    """Each bad record raises RecordError with the listed reason and field name."""
    with pytest.raises(RecordError) as caught:
        PARSE(raw, INGEST)
    assert (caught.value.reason, caught.value.field) == (reason, field)


@pytest.mark.parametrize(("raw", "reason", "field"), ERROR_CASES)
def test_error_text_never_quotes_the_record(raw: bytes, reason: Reason, field: str | None) -> None:
    """The exception text is the reason code and a field name, nothing from the input, and chains nothing."""
    with pytest.raises(RecordError) as caught:
        PARSE(raw, INGEST)
    assert str(caught.value) == (reason.value if field is None else f"{reason.value}: {field}")
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ or caught.value.__context__ is None


def test_oversized_is_checked_on_the_byte_length_before_decoding() -> None:
    """A record longer than max_record_bytes is OVERSIZED even if it is not UTF-8; the limit itself passes."""
    parse = build_parser(ParseParams(max_record_bytes=len(COMBINED)))
    assert parse(COMBINED.encode(), INGEST)[0].source_ip == "203.0.113.9"
    with pytest.raises(RecordError) as caught:
        parse(b"\xff" * (len(COMBINED) + 1), INGEST)
    assert caught.value.reason is Reason.OVERSIZED
    with pytest.raises(RecordError) as caught:
        parse(b" " * (len(COMBINED) + 1), INGEST)
    assert caught.value.reason is Reason.OVERSIZED


# --- X-Forwarded-For -------------------------------------------------------------------------------------

XFF_CASES: list[tuple[str, str, str | list[str] | None, str, dict[str, str]]] = [
    # (peer, field, XFF, expected source, expected extra)
    # trusted peer: the rightmost untrusted hop is the client
    ("10.0.0.2", "flat", "203.0.113.5, 10.0.0.3", "203.0.113.5", {"forwarded": "1"}),
    # a spoofed leftmost hop is not believed
    ("10.0.0.2", "flat", "1.1.1.1, 203.0.113.5, 10.0.0.3", "203.0.113.5", {"forwarded": "1"}),
    # untrusted peer: its XFF is client-controlled and ignored
    ("198.51.100.1", "flat", "203.0.113.5", "198.51.100.1", {}),
    # trusted peer without XFF: the peer is the client
    ("10.0.0.2", "flat", None, "10.0.0.2", {}),
    ("10.0.0.2", "flat", "-", "10.0.0.2", {}),
    # every hop trusted: the leftmost
    ("10.0.0.2", "flat", "10.1.1.1, 10.2.2.2", "10.1.1.1", {"forwarded": "1"}),
    # ports and brackets on hops; an IPv6 trusted proxy
    ("2001:db8:ffff::1", "flat", "[2001:db8::9]:443, 198.51.100.9:80", "198.51.100.9", {"forwarded": "1"}),
    # IPv4-mapped peer inside a trusted IPv4 network
    ("::ffff:10.0.0.2", "flat", "203.0.113.5", "203.0.113.5", {"forwarded": "1"}),
    # an unreadable hop is untrusted: it becomes the source and the pipeline rejects it as invalid
    ("10.0.0.2", "flat", "unknown", "unknown", {"forwarded": "1"}),
    # Caddy: the header as a list
    ("10.0.0.2", "caddy", ["203.0.113.5", "10.0.0.3"], "203.0.113.5", {"forwarded": "1"}),
    # ECS: the request header, nested
    ("10.0.0.2", "ecs", "203.0.113.5", "203.0.113.5", {"forwarded": "1"}),
    # nginx "main" access line: the quoted trailing field
    ("10.0.0.2", "line", "203.0.113.5, 10.0.0.3", "203.0.113.5", {"forwarded": "1"}),
    ("198.51.100.1", "line", "203.0.113.5", "198.51.100.1", {}),
    ("10.0.0.2", "line", "-", "10.0.0.2", {}),
]


def _xff_record(peer: str, where: str, xff: str | list[str] | None) -> bytes:
    if where == "line":
        return (COMBINED.replace("203.0.113.9", peer) + f' "{xff}" 0.001').encode()
    if where == "ecs":
        return _json({"source": {"ip": peer}, "http": {"request": {"headers": {"x-forwarded-for": xff}}}})
    if where == "caddy":
        return _json({"request": {"remote_ip": peer, "headers": {"X-Forwarded-For": xff}}})
    return _json({"remote_addr": peer, "http_x_forwarded_for": xff})


@pytest.mark.parametrize(("peer", "where", "xff", "source", "extra"), XFF_CASES)
def test_forwarded_for_is_believed_only_from_trusted_proxies(
    peer: str, where: str, xff: str | list[str] | None, source: str, extra: dict[str, str]
) -> None:
    """XFF decides the source only when the peer is a trusted proxy; the walk is right to left."""
    event = _one(_xff_record(peer, where, xff), TRUSTED)
    assert (event.source_ip, event.extra) == (source, extra)


def test_forwarded_for_is_ignored_without_trusted_proxies() -> None:
    """With no trusted proxies configured, XFF is never read (not even type-checked)."""
    raw = _json({"remote_addr": "10.0.0.2", "http_x_forwarded_for": 5})
    assert _one(raw).source_ip == "10.0.0.2"
    with pytest.raises(RecordError) as caught:
        TRUSTED(raw, INGEST)
    assert (caught.value.reason, caught.value.field) == (Reason.WRONG_TYPE, "http_x_forwarded_for")


# --- params ----------------------------------------------------------------------------------------------


def test_field_map_entries_replace_only_their_own_key() -> None:
    """A field_map key replaces that key's defaults; keys left out keep theirs."""
    params = ParseParams(field_map={"source_ip": ["clientAddr"]})
    assert params.field_map["source_ip"] == ["clientAddr"]
    assert params.field_map["url"] == list(DEFAULT_FIELD_MAP["url"])
    event = _one(_json({"clientAddr": "203.0.113.9", "remote_addr": "10.0.0.1", "url": "/x"}), build_parser(params))
    assert (event.source_ip, event.url) == ("203.0.113.9", "/x")


def test_field_map_empty_list_turns_a_field_off() -> None:
    """An empty candidate list disables a field (a wrong-typed value there is then not an error)."""
    parse = build_parser(ParseParams(field_map={"status": []}))
    assert _one(_json({"remote_addr": "203.0.113.9", "status": "abc"}), parse).status is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"field_map": {"client": ["ip"]}}, "valid fields: source_ip"),  # unknown key, valid ones listed
        ({"field_map": {"url": ["a..b"]}}, "field_map.url"),  # empty path segment
        ({"trusted_proxies": ["10.0.0.0/33"]}, "is not an IP network"),  # bad prefix length
        ({"trusted_proxies": ["proxy.internal"]}, "is not an IP network"),  # a name
        ({"max_record_bytes": 0}, "greater than 0"),
        ({"max_future_skew_s": -1}, "greater than or equal to 0"),
        ({"max_repeat_events": 0}, "greater than or equal to 1"),
        ({"trusted_proxy": []}, "Extra inputs are not permitted"),  # a typo in a setting name
        ({"web_programs": [""]}, "is not a syslog program tag"),  # empty
        ({"web_programs": ["nginx[1]"]}, "is not a syslog program tag"),  # a tag with its pid
        ({"web_programs": ["my app"]}, "is not a syslog program tag"),  # a blank
    ],
)
def test_bad_params_are_rejected_at_build_time(settings: dict[str, Any], message: str) -> None:
    """Invalid settings fail validation with a message naming the problem."""
    with pytest.raises(ValidationError, match=message):
        ParseParams.model_validate(settings)


def test_params_are_frozen_and_defaults_need_no_settings() -> None:
    """The params model is immutable and builds with no settings at all (the policy may omit [parse])."""
    params = ParseParams()
    with pytest.raises(ValidationError):
        params.max_record_bytes = 1  # type: ignore[misc]
    assert "host" not in params.field_map["source_ip"]  # Filebeat's "host" is the shipper, not the client


def test_trusted_proxies_are_copied_at_build_time() -> None:
    """Mutating the params' list after building does not change the built parser."""
    params = ParseParams(trusted_proxies=["10.0.0.0/8"])
    parse = build_parser(params)
    params.trusted_proxies.clear()
    raw = _json({"remote_addr": "10.0.0.2", "http_x_forwarded_for": "203.0.113.5"})
    assert _one(raw, parse).source_ip == "203.0.113.5"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.9", "203.0.113.9"),  # plain
        (" 203.0.113.9\t", "203.0.113.9"),  # blanks
        ("203.0.113.9:8080", "203.0.113.9"),  # IPv4 with port
        ("2001:db8::1", "2001:db8::1"),  # IPv6 keeps its colons
        ("[2001:db8::1]", "2001:db8::1"),  # brackets
        ("[2001:db8::1]:443", "2001:db8::1"),  # brackets and port
        ("fe80::1%eth0", "fe80::1%eth0"),  # zone kept: validation is the pipeline's
        ("not-an-ip", "not-an-ip"),  # no validation here
    ],
)
def test_clean_ip(text: str, expected: str) -> None:
    """clean_ip strips blanks, brackets and an IPv4 port and validates nothing."""
    assert clean_ip(text) == expected


@pytest.mark.parametrize("module", [transforms.parse, transforms.syslog, transforms.timestamps])
def test_docstring_examples_run(module: Any) -> None:
    """The known answers in the modules' docstrings hold."""
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
