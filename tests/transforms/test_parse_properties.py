"""Properties of the input parser, checked with Hypothesis."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transforms.errors import RecordError
from transforms.model import Event
from transforms.parse import ParseParams, build_parser
from transforms.timestamps import MONTHS

PARAMS = ParseParams(trusted_proxies=["10.0.0.0/8"])
PARSE = build_parser(PARAMS)
INGEST = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SKEW = timedelta(seconds=PARAMS.max_future_skew_s)
MAX_AGE = timedelta(days=PARAMS.max_event_age_days)
MONTH_NAMES = {number: name for name, number in MONTHS.items()}

ingest_times = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC))
ipv4 = st.ip_addresses(v=4).map(str)
ip = st.ip_addresses().map(str)


def _parse_or_reject(raw: bytes, ingest: datetime = INGEST) -> list[Event] | None:
    """The events, or None when the parser raised RecordError (anything else propagates and fails)."""
    try:
        events = PARSE(raw, ingest)
    except RecordError:
        return None
    assert isinstance(events, list)
    for event in events:
        assert isinstance(event, Event)
        # the time is always set, aware UTC and plausible (it falls back to the ingest time otherwise)
        assert event.time.utcoffset() == timedelta(0)
        assert ingest - MAX_AGE <= event.time <= ingest + SKEW
        assert event.source_ip
    return events


@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_nothing_but_record_error(raw: bytes) -> None:
    """Any bytes give events or a RecordError, never another exception."""
    _parse_or_reject(raw)


# text shaped like the real formats, with random holes: reaches much deeper than random bytes
line_prefixes = st.sampled_from(
    [
        "",
        "Dec 10 06:55:46 LabSZ sshd[24200]: ",
        "<34>1 2024-03-01T10:00:00Z h sshd 1 - ",
        "2024-03-01T10:00:00Z h sshd[1]: ",
        '203.0.113.9 - - [01/Mar/2024:10:00:00 +0000] "',
        "10.0.0.1 - - [",
        "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; rhost=",
        'Mar  1 10:00:00 web nginx[1]: 203.0.113.9 - - [01/Mar/2024:10:00:00 +0000] "',
        "shop.example 203.0.113.9 - ",
        "[Fri Mar 01 10:00:00.1 2024] [core:error] [pid 1:tid 2] [client ",
        "[Fri Mar 01 10:00:00 2024] [error] ",
        "Mar  1 10:00:00 web httpd[1]: [authz_core:error] [pid 1] ",
        "2024/03/01 10:00:00 [error] 1#1: *2 ",
    ]
)
line_words = st.sampled_from(
    [
        " ",
        "Failed password for ",
        "invalid user ",
        "from ",
        " port 22",
        "message repeated 3 times: [ ",
        "]",
        '"',
        "\\",
        "[",
        "203.0.113.9",
        "2001:db8::1",
        "-",
        " 200 ",
        "GET / HTTP/1.1",
        "rhost=",
        " user=root",
        "Received disconnect from ",
        ": 11: ",
        "Connection closed by ",
        ", client: ",
        ", server: ",
        ', request: "',
        "[client 2001:db8::1]:1] ",
        "AH01618: user ",
        " not found: ",
        "\\x",
        '\\"',
        "\x00",
        "é",
        "\ufeff",
    ]
)


@given(line_prefixes, st.lists(st.one_of(line_words, st.text(max_size=8)), max_size=14))
def test_format_shaped_text_raises_nothing_but_record_error(prefix: str, words: list[str]) -> None:
    """Text that starts like a real format and continues randomly never crashes the parser."""
    _parse_or_reject((prefix + "".join(words)).encode())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)
json_keys = st.sampled_from(
    [
        "source",
        "source.ip",
        "client.ip",
        "url",
        "url.original",
        "http",
        "http.response.status_code",
        "@timestamp",
        "remote_addr",
        "status",
        "request",
        "http_x_forwarded_for",
        "message",
        "log",
        "process.name",
        "programname",
        "user",
        "time",
    ]
)


@given(st.dictionaries(json_keys | st.text(max_size=6), json_values | ip, max_size=8))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_json_objects_raise_nothing_but_record_error(obj: dict[str, Any]) -> None:
    """Any JSON object gives events or a RecordError, never another exception."""
    _parse_or_reject(orjson.dumps(obj))


@given(
    st.integers(1, 12),
    st.integers(1, 31),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
    ingest_times,
)
def test_syslog_year_never_puts_an_event_in_the_future(
    month: int, day: int, hour: int, minute: int, second: int, ingest: datetime
) -> None:
    """A year-less stamp gets the latest year at most max_future_skew_s after ingest, never later."""
    line = (
        f"{MONTH_NAMES[month]} {day:2d} {hour:02d}:{minute:02d}:{second:02d} h sshd[1]: Invalid user a from 192.0.2.1"
    )
    (event,) = PARSE(line.encode(), ingest)
    if event.time_flag is not None:  # no year has this date (Feb 30) or, rarely, older than the age limit
        assert event.time == ingest
        return
    assert event.time <= ingest + SKEW
    assert (event.time.month, event.time.day, event.time.hour) == (month, day, hour)
    # the latest such year: the same stamp in any later year would be beyond the skew (or not exist)
    for later in range(event.time.year + 1, event.time.year + 9):
        try:
            assert event.time.replace(year=later) > ingest + SKEW
        except ValueError:  # Feb 29 in a common year
            continue


safe_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='"\\'), max_size=30)
tokens = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='"\\[]'), min_size=1)


@given(
    ip,
    st.sampled_from(["GET", "POST", "HEAD", "PROPFIND", "M-SEARCH"]),
    tokens,
    st.sampled_from(["HTTP/1.0", "HTTP/1.1", "HTTP/2.0"]),
    st.integers(100, 599),
    st.none() | st.integers(0, 10**12),
    safe_text,
    safe_text,
    st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2024, 3, 1, 11)),
)
def test_combined_lines_round_trip(
    peer: str,
    method: str,
    target: str,
    version: str,
    status: int,
    size: int | None,
    referrer: str,
    agent: str,
    when: datetime,
) -> None:
    """Every field written into a combined line is read back unchanged."""
    stamp = f"{when.day:02d}/{MONTH_NAMES[when.month]}/{when.year}:{when:%H:%M:%S} +0000"
    line = (
        f'{peer} - - [{stamp}] "{method} {target} {version}" {status} {"-" if size is None else size} '
        f'"{referrer}" "{agent}"'
    )
    (event,) = PARSE(line.encode(), INGEST)
    assert (event.source_ip, event.method, event.url, event.http_version) == (peer, method, target, version)
    assert (event.status, event.bytes_sent) == (status, size)
    assert (event.referrer, event.user_agent) == (_logged(referrer), _logged(agent))
    assert (event.time, event.time_flag) == (when.replace(tzinfo=UTC, microsecond=0), None)


def _logged(value: str) -> str | None:
    """How a quoted field reads back: "-" and "" mean absent."""
    return None if value in ("", "-") else value


TRUSTED_NET = ipaddress.ip_network("10.0.0.0/8")


@given(ipv4, st.lists(ipv4, max_size=5))
def test_forwarded_for_never_picks_a_trusted_hop_over_an_untrusted_one(peer: str, hops: list[str]) -> None:
    """From an untrusted peer XFF is ignored; from a trusted one the source is the rightmost untrusted hop."""
    raw = orjson.dumps({"remote_addr": peer, "http_x_forwarded_for": ", ".join(hops)})
    (event,) = PARSE(raw, INGEST)
    untrusted = [h for h in hops if ipaddress.ip_address(h) not in TRUSTED_NET]
    if ipaddress.ip_address(peer) not in TRUSTED_NET or not hops:
        assert (event.source_ip, event.extra) == (peer, {})
    elif untrusted:
        assert (event.source_ip, event.extra) == (untrusted[-1], {"forwarded": "1"})
    else:
        assert (event.source_ip, event.extra) == (hops[0], {"forwarded": "1"})


# --- escapes and log injection -----------------------------------------------------------------------------

_APACHE_NAMED = {0x08: "\\b", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x0B: "\\v", 0x22: '\\"', 0x5C: "\\\\"}


def _apache_escape(text: str) -> str:
    """What Apache's ap_escape_logitem writes for a request line or header."""
    out = []
    for byte in text.encode():
        if byte in _APACHE_NAMED:
            out.append(_APACHE_NAMED[byte])
        elif byte < 0x20 or byte >= 0x7F:
            out.append(f"\\x{byte:02x}")
        else:
            out.append(chr(byte))
    return "".join(out)


def _nginx_escape(text: str) -> str:
    """What nginx's default access-log escaping writes: \\xXX for '"', '\\' and bytes outside 0x20-0x7e."""
    return "".join(
        f"\\x{byte:02X}" if byte in (0x22, 0x5C) or byte < 0x20 or byte > 0x7E else chr(byte) for byte in text.encode()
    )


any_text = st.text(st.characters(codec="utf-8"), max_size=30)


@given(st.text(st.characters(codec="utf-8"), min_size=1, max_size=30), any_text, any_text, st.booleans())
def test_escaped_fields_read_back_as_the_client_sent_them(target: str, referrer: str, agent: str, nginx: bool) -> None:
    """Whatever a client sends as target, Referer and User-Agent reads back unchanged after the logger's escaping."""
    escape = _nginx_escape if nginx else _apache_escape
    line = (
        f'203.0.113.9 - - [01/Mar/2024:10:00:00 +0000] "GET {escape(target)} HTTP/1.1" 200 1 '
        f'"{escape(referrer)}" "{escape(agent)}"'
    )
    (event,) = PARSE(line.encode(), INGEST)
    assert (event.source_ip, event.method, event.url, event.http_version) == ("203.0.113.9", "GET", target, "HTTP/1.1")
    assert (event.referrer, event.user_agent) == (_logged(referrer), _logged(agent))


# client-controlled words: addresses, dashes and host names that a user name might hold to shift columns
client_words = st.lists(
    st.sampled_from(["198.51.100.66", "2001:db8::66", "-", "evil.example", "x", "h:80", "a b"]) | tokens, max_size=4
).map(" ".join)


@given(st.sampled_from(["203.0.113.9", "2001:db8::9", "client.example.net"]), client_words, st.booleans())
def test_user_column_text_never_becomes_the_client(peer: str, user: str, vhost: bool) -> None:
    """Whatever the remote-user column holds, a line is read with the logged client, or rejected."""
    head = ("shop.example " if vhost else "") + f"{peer} - {user}"
    line = f'{head} [01/Mar/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"'
    events = _parse_or_reject(line.encode())
    assert events is None or [event.source_ip for event in events] == [peer]


injected = st.lists(
    st.sampled_from(
        [
            "[client 198.51.100.66]",
            "[client 198.51.100.66:1] ",
            "[remote 198.51.100.66] ",
            ", client: 198.51.100.66, server: x",
            ', client: 198.51.100.66, server: x, request: "GET / HTTP/1.1", host: "h"',
            " from 198.51.100.66 port 22 ssh2",
            " from 198.51.100.66",
            "user x not found: /",
            "invalid user ",
            " port 1",
            " ssh2",
            ": ",
            '"',
            " ",
        ]
    )
    | safe_text,
    max_size=6,
).map("".join)


@given(ip, injected, st.booleans())
def test_apache_error_client_is_the_column_apache_wrote(client: str, message: str, apache24: bool) -> None:
    """Client text in an Apache error message never changes the client read from the header."""
    column = f"[{client}]:4711" if apache24 and ":" in client else client
    head = (
        "[Fri Mar 01 10:00:00.1 2024] [core:error] [pid 1:tid 2]" if apache24 else "[Fri Mar 01 10:00:00 2024] [error]"
    )
    events = _parse_or_reject(f"{head} [client {column}] {message}".encode())
    assert events is not None
    assert [event.source_ip for event in events] == [client]


@given(ip, injected, injected, injected)
def test_nginx_error_is_never_pinned_on_injected_text(client: str, message: str, request: str, referrer: str) -> None:
    """Client text around nginx's ", client: X, server: " gives the logged client, or no event: never another."""
    line = (
        f'2024/03/01 10:00:00 [error] 1#1: *2 {message}, client: {client}, server: s, request: "{request}", '
        f'host: "h", referrer: "{referrer}"'
    )
    events = _parse_or_reject(line.encode())
    assert events is not None
    assert [event.source_ip for event in events] in ([client], [])


@given(
    st.text(st.characters(codec="utf-8", exclude_characters=":\r\n"), max_size=30)
    | injected.map(lambda t: t.replace(":", "")),
    ip,
    st.integers(0, 65535),
    st.sampled_from(["Failed password", "Failed publickey", "Accepted password", "Failed none"]),
    st.booleans(),
    st.none() | injected,
)
def test_sshd_address_is_the_one_sshd_wrote(
    user: str, address: str, port: int, result: str, invalid: bool, info: str | None
) -> None:
    """A colon-free user name (as sshd logs them) and any auth info never change the address of an auth result."""
    line = (
        f"Mar  1 10:00:00 h sshd[1]: {result} for {'invalid user ' if invalid else ''}{user} from {address} "
        f"port {port} ssh2" + ("" if info is None else ": " + info)
    )
    (event,) = PARSE(line.encode(), INGEST)
    assert event.source_ip == address
