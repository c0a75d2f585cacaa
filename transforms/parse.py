"""Input parsers: one raw record (bytes) becomes zero or more :class:`~transforms.model.Event`.

:func:`build_parser` checks :class:`ParseParams` once and returns a plain callable; the per-record
path does no I/O, no logging and no validation of its configuration. The format is detected per
record:

* a JSON object: ECS / Filebeat fields (nested or dotted keys) -> ``ecs_json``; flat fields named
  by ``field_map`` (Vector, Fluent Bit, nginx ``log_format ... escape=json``) -> ``flat_json``; or a
  wrapper carrying a raw line in ``message`` / ``log`` / ``msg`` -> ``json+<inner format>``;
* an Apache / nginx combined or common access-log line -> ``apache_combined`` / ``apache_common``,
  optionally after a virtual host (``vhost:port`` or a bare host name); Apache / nginx escapes in the
  request line, referrer and user agent are undone;
* an Apache (2.2, 2.4) or nginx error-log line that names a client -> ``apache_error`` / ``nginx_error``:
  an HTTP event without a status, whose ``extra["error_log"]`` is a fixed code (:data:`ERROR_LOG_EVENTS`);
* an sshd syslog line (RFC 3164, RFC 5424, ISO-stamped, old ``sshd(pam_unix)``) -> ``sshd_syslog``;
* a web server's syslog line (nginx, apache2, httpd, haproxy, ... see
  :data:`~transforms.syslog.WEB_PROGRAMS`) carrying one of the web lines above -> ``syslog+<format>``.

A recognized record that names no client (another program's syslog line, ``Server listening``, an
Apache notice) gives ``[]``; anything that cannot be read raises :class:`~transforms.errors.RecordError`
whose reason and field name never quote the input.

Known answers (ingest time 2015-05-18 00:00 UTC):

>>> from datetime import UTC
>>> parse = build_parser(ParseParams())
>>> ingest = datetime(2015, 5, 18, tzinfo=UTC)
>>> line = b'83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /a?b HTTP/1.1" 200 7 "-" "curl/8"'
>>> event = parse(line, ingest)[0]
>>> event.source_ip, event.method, event.url, event.status, event.referrer, event.format
('83.149.9.216', 'GET', '/a?b', 200, None, 'apache_combined')
>>> folded = b"Dec 10 07:13:56 LabSZ sshd[24227]: message repeated 2 times: [ Failed password for root from 5.36.59.76"
>>> [(e.ssh_outcome.value, e.repeat) for e in parse(folded + b" port 42393 ssh2]", ingest)]
[('failed', 2)]
>>> parse(b"Dec 10 06:55:48 LabSZ sshd[24200]: Received signal 15; terminating.", ingest)
[]
>>> event = parse(b"May 17 10:05:03 web nginx[2869]: " + line, ingest)[0]
>>> event.source_ip, event.url, event.format
('83.149.9.216', '/a?b', 'syslog+apache_combined')
>>> event = parse(b"[Sun May 17 10:05:03.120 2015] [auth_basic:error] [pid 7] [client 192.0.2.5:4711] "
...               b"AH01618: user bob not found: /admin", ingest)[0]
>>> event.source_ip, event.user, event.url, event.status, event.extra
('192.0.2.5', 'bob', '/admin', None, {'error_log': 'auth_user_not_found'})
"""

from __future__ import annotations

import ipaddress
import math
import re
from codecs import escape_decode  # undocumented but long-stable C helper of the codecs module (property-tested)
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Final, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from transforms.errors import Reason, RecordError
from transforms.model import Event, EventKind
from transforms.signals import SSH_EVENT_KEY
from transforms.syslog import (
    SSHD_PROGRAMS,
    WEB_PROGRAMS,
    SshHit,
    SyslogLine,
    is_web_program,
    looks_like_ip,
    program_name,
    read_sshd,
    split_syslog,
)
from transforms.timestamps import (
    infer_syslog_year,
    parse_apache_error_time,
    parse_apache_time,
    parse_epoch,
    parse_iso_time,
    parse_nginx_error_time,
    parse_time_text,
)

__all__ = [
    "DEFAULT_FIELD_MAP",
    "ERROR_LOG_EVENTS",
    "ERROR_LOG_KEY",
    "FIELD_MAP_KEYS",
    "ParseParams",
    "build_parser",
    "clean_ip",
    "unescape_log_field",
]

# Keys of ``field_map``: the Event fields a flat JSON record can fill, plus "request" (a whole request
# line such as nginx "$request") and "forwarded_for" (X-Forwarded-For).
FIELD_MAP_KEYS: Final = (
    "source_ip",
    "forwarded_for",
    "url",
    "request",
    "method",
    "status",
    "bytes_sent",
    "user_agent",
    "referrer",
    "http_version",
    "time",
    "user",
)

# Candidate paths, first present wins. A record is flat JSON only if a source_ip candidate is present;
# otherwise a raw line in "message" is parsed instead (so Logstash's legacy grok output, whose "path" is
# the log file, falls back to its "message"). Deliberately absent: "host" (Filebeat's shipper object,
# nginx's Host header, the ident column of Fluent Bit's nginx parser; the client in its apache2 parser),
# "source_ip" (Vector's syslog source: the *sender*) and "ip". Add them per deployment.
DEFAULT_FIELD_MAP: Final[Mapping[str, tuple[str, ...]]] = {
    "source_ip": (
        "remote_addr",  # nginx
        "client_ip",
        "remote_ip",
        "client_addr",
        "remote",  # Fluent Bit nginx parser
        "ClientHost",  # Traefik
        "request.remote_ip",  # Caddy
        "request.client_ip",  # Caddy
    ),
    "forwarded_for": ("http_x_forwarded_for", "x_forwarded_for", "xff", "request.headers.X-Forwarded-For"),
    "url": ("request_uri", "url", "uri", "path", "RequestPath", "request.uri"),  # "path": Fluent Bit parsers
    "request": ("request", "request_line"),
    "method": ("request_method", "method", "verb", "RequestMethod", "request.method"),
    "status": ("status", "status_code", "response_status", "code", "DownstreamStatus"),
    "bytes_sent": ("body_bytes_sent", "bytes_sent", "bytes", "size", "DownstreamContentSize"),
    "user_agent": ("http_user_agent", "user_agent", "agent", "useragent", "request.headers.User-Agent"),
    "referrer": ("http_referer", "referrer", "referer", "request.headers.Referer"),
    "time": ("@timestamp", "timestamp", "time", "time_iso8601", "time_local", "date", "ts", "StartUTC"),
    "user": ("remote_user", "user", "username", "user_name"),
    "http_version": ("server_protocol", "http_version", "httpversion", "request_protocol", "request.proto"),
}

# ECS (Elastic Common Schema) as written by Filebeat modules and Elastic Agent. Fixed, not configurable.
_ECS_FIELD_MAP: Final[Mapping[str, tuple[str, ...]]] = {
    "source_ip": ("source.ip", "client.ip", "source.address", "client.address"),
    "forwarded_for": (
        "http.request.headers.x-forwarded-for",
        "http.request.headers.x_forwarded_for",
        "http.request.headers.X-Forwarded-For",
        "nginx.access.remote_ip_list",  # Filebeat nginx module: the XFF hops followed by the peer
    ),
    "url": ("url.original",),
    "url_path": ("url.path",),
    "url_query": ("url.query",),
    "url_full": ("url.full",),
    "method": ("http.request.method",),
    "status": ("http.response.status_code",),
    "bytes_sent": ("http.response.body.bytes", "http.response.bytes"),
    "user_agent": ("user_agent.original",),
    "referrer": ("http.request.referrer",),
    "http_version": ("http.version",),
    "time": ("@timestamp",),
    "user": ("user.name", "user.email", "user.id"),
}

# Where a JSON wrapper keeps a raw line, and the name of the program that wrote it.
_MESSAGE_PATHS: Final = ("message", "log", "msg", "MESSAGE")
_PROGRAM_PATHS: Final = (
    "process.name",  # ECS
    "log.syslog.appname",  # ECS
    "programname",  # rsyslog
    "program",
    "appname",  # Vector syslog source
    "app_name",
    "SYSLOG_IDENTIFIER",  # journald
    "syslogtag",  # rsyslog ("sshd[42]:")
)
# Fields only used to date a wrapper's raw line: ECS first, then the usual flat names.
_WRAPPER_TIME_PATHS: Final = ("@timestamp", "timestamp", "time", "date", "ts")


class ParseParams(BaseModel):
    """Settings of the input parser, checked once when the policy is loaded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # larger records are rejected before they are decoded
    max_record_bytes: int = Field(default=65536, gt=0)
    # Event field name -> candidate dotted JSON paths for flat JSON; a key given here replaces that key's
    # defaults (DEFAULT_FIELD_MAP), keys left out keep them, an empty list turns the field off
    field_map: dict[str, list[str]] = Field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_FIELD_MAP.items()})
    # CIDRs of proxies / load balancers whose X-Forwarded-For is believed
    trusted_proxies: list[str] = Field(default_factory=list)
    # an event time further in the future than this is a broken clock: ingest time is used instead
    max_future_skew_s: int = Field(default=300, ge=0)
    # an event time older than this is a broken clock too
    max_event_age_days: int = Field(default=3650, gt=0)
    # "message repeated N times" counts as at most this many lines (N is attacker-influenced input)
    max_repeat_events: int = Field(default=1000, ge=1)
    # syslog program tags whose messages are read as access / error lines; "nginx" also covers "nginx-access",
    # "nginx_error", "nginx/site1". Add a deployment's own tags ("docker/web-1") here.
    web_programs: list[str] = Field(default_factory=lambda: sorted(WEB_PROGRAMS))

    @field_validator("field_map")
    @classmethod
    def _complete_field_map(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(FIELD_MAP_KEYS))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; valid fields: {', '.join(FIELD_MAP_KEYS)}")
        for name, paths in value.items():
            for path in paths:
                if not path or "" in path.split("."):
                    raise ValueError(f"field_map.{name}: {path!r} is not a dotted path (empty segment)")
        merged = {name: list(paths) for name, paths in DEFAULT_FIELD_MAP.items()}
        merged.update({name: list(paths) for name, paths in value.items()})
        return merged

    @field_validator("web_programs")
    @classmethod
    def _check_programs(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or any(char.isspace() or char in "[]():" for char in name):
                raise ValueError(f"{name!r} is not a syslog program tag such as nginx or httpd/site1")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IP network such as 10.0.0.0/8 or 2001:db8::/32") from None
        return value


def build_parser(params: ParseParams) -> Callable[[bytes, datetime], list[Event]]:
    """Build the record parser: ``parse(raw, ingest_time) -> list[Event]``.

    ``ingest_time`` must be timezone-aware UTC; it stands in for a missing, unparseable or implausible
    event time and anchors the year of syslog stamps. The parser raises only
    :class:`~transforms.errors.RecordError`, returns ``[]`` for a recognized record without a client
    event, and keeps a small cache of Apache time stamps (it is not meant to be shared across threads).
    """
    return _Parser(params)


def unescape_log_field(text: str) -> str:
    r"""Undo the escaping Apache (mod_log_config) and nginx apply to logged request lines and headers.

    ``\"`` ``\\`` ``\n`` ``\r`` ``\t`` ``\b`` ``\v`` and ``\xhh`` become the characters they stand for; escaped
    bytes are read as UTF-8 (Apache escapes each byte of a multi-byte character), and a byte that is no
    part of valid UTF-8 stays written as ``\xhh``. Other backslashes are kept. A field without a backslash
    is returned as it is.

    >>> unescape_log_field(r'Mozilla \"evil\" \xc3\xa9 \\x41 \xff')
    'Mozilla "evil" é \\x41 \\xff'
    """
    if "\\" not in text:
        return text
    # In C rather than a Python loop per escape (a field of 8,000 escapes cost 80x a plain one): split on
    # escaped backslashes first, so that every backslash left starts an escape; a backslash that starts no
    # escape Apache writes is doubled, so codecs.escape_decode keeps it (and never reads \0, \a or \' as
    # escapes); then escape_decode undoes the rest. Same result as reading the escapes left to right.
    parts = [
        escape_decode(_NOT_A_LOG_ESCAPE.sub(r"\\\\", part).encode())[0] if "\\" in part else part.encode()
        for part in text.split("\\\\")
    ]
    return b"\\".join(parts).decode("utf-8", "backslashreplace")


def clean_ip(text: str) -> str:
    """Strip whitespace, ``[v6]`` brackets and an IPv4 ``:port``; no validation (the pipeline does that).

    >>> clean_ip(" [2001:db8::1]:443 "), clean_ip("192.0.2.1:8080"), clean_ip("2001:db8::1")
    ('2001:db8::1', '192.0.2.1', '2001:db8::1')
    """
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        return text[1:end].strip() if end > 0 else text[1:].strip()
    if text.count(":") == 1:  # IPv6 has at least two colons: one colon is IPv4 (or a name) with a port
        return text.partition(":")[0]
    return text


# --- the parser ------------------------------------------------------------------------------------------

_ABSENT: Final[Any] = object()

_QUOTED = r'"([^"\\]*(?:\\.[^"\\]*)*)"'  # Apache escapes '"' and '\' inside quoted fields
_ACCESS_LINE = re.compile(
    # client address, identd, user; or, when a fourth column comes before the time, virtual host, client
    # address, identd, user (see _Parser._access_line for when the fourth column is believed)
    r"(\S+) (\S+) (\S+) (?:([^\s\[]\S*) )?"
    r"\[([^\]]*)\] "  # time
    + _QUOTED  # request line
    + r" (\d{3}|-) (\d+|-)"  # status, bytes
    r"(?: " + _QUOTED + " " + _QUOTED + r")?"  # referrer, user agent (combined)
    r"(?: (.*))?$"  # extra trailing fields: nginx "$http_x_forwarded_for", request time, ...
)
# A virtual-host column: "host:port" (Apache vhost_combined, "%v:%p"), or a bare host name ("$host ...").
_VHOST_PORT = re.compile(r"\S+:\d+")
_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
# Apache mod_log_config (ap_escape_logitem) writes '"' and '\' as \" and \\, a few controls as \b \n \r \t \v,
# and every other byte outside printable ASCII as \xhh; nginx writes \xhh for all of them.
# A backslash that starts none of the escapes Apache and nginx write (in a part without escaped backslashes).
_NOT_A_LOG_ESCAPE = re.compile(r'\\(?!x[0-9A-Fa-f]{2}|["bnrtv])')
# RFC 9110 token: what a method may be made of. Scanner junk ("\x16\x03\x01") is not a token.
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_XFF_CHARS = frozenset("0123456789abcdefABCDEF.:[], ")
_MALFORMED: Final = "malformed"

# Integers are bounded where they enter: every output serializes them (orjson refuses integers beyond 64 bits)
# and the detector compares them. A status of 0 is what some proxies log for an aborted request.
STATUS_RANGE: Final = (0, 999)
BYTES_RANGE: Final = (0, 2**63 - 1)
_APACHE_CACHE_SIZE = 4096


# --- web server error logs -------------------------------------------------------------------------------

# Event.extra key of an error-log event, and its values: a fixed code for what the line reports, never text
# from the line. The signal detector may map them to rules as it maps the sshd hints (SSH_EVENT_KEY).
ERROR_LOG_KEY: Final = "error_log"
AUTH_USER_NOT_FOUND = "auth_user_not_found"  # Basic/Digest auth: no such user (Apache AH01618/AH01790, nginx)
# Basic/Digest auth: wrong password (AH01617/AH01792, nginx); an event code, not a secret
AUTH_PASSWORD_MISMATCH = "auth_password_mismatch"  # noqa: S105
AUTH_FAILED = "auth_failed"  # other auth failures: wrong scheme, bad Digest nonce/realm/algorithm, authz, PAM
CLIENT_DENIED = "client_denied"  # "client denied by server configuration", nginx "access forbidden by rule"
INDEX_FORBIDDEN = "index_forbidden"  # a directory listing refused (Options -Indexes, nginx autoindex off)
FILE_NOT_FOUND = "file_not_found"  # "File does not exist", nginx open() "..." failed (2: No such file ...)
SCRIPT_NOT_FOUND = "script_not_found"  # CGI "script not found or unable to stat", FastCGI "Primary script unknown"
INVALID_REQUEST = "invalid_request"  # bad request line / URI / method, URI too long, nginx "client sent invalid"
RATE_LIMITED = "rate_limited"  # nginx limit_req / limit_conn
TLS_ERROR = "tls_error"  # TLS handshake failures, SNI / Host mismatches
WAF = "waf"  # ModSecurity reports (a block or a warning)
OTHER_ERROR = "other"  # any other message that names a client
ERROR_LOG_EVENTS: Final = frozenset(
    {
        AUTH_USER_NOT_FOUND,
        AUTH_PASSWORD_MISMATCH,
        AUTH_FAILED,
        CLIENT_DENIED,
        INDEX_FORBIDDEN,
        FILE_NOT_FOUND,
        SCRIPT_NOT_FOUND,
        INVALID_REQUEST,
        RATE_LIMITED,
        TLS_ERROR,
        WAF,
        OTHER_ERROR,
    }
)

# Apache 2.2 "[time] [level] [client IP] MESSAGE" and 2.4's default ErrorLogFormat
# "[time] [module:level] [pid P:tid T] (errno)Error: [client IP:port] AHnnnnn: MESSAGE"; sent to syslog
# the time is left out. The client column is Apache's own and comes before the message (which holds client
# text, and sometimes a second "[client ...]" that mod_security writes): only this position is read.
_APACHE_ERROR = re.compile(
    r"(?:\[(?P<time>[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d{1,6})? \d{4})\] )?"
    r"\[(?:[\w.-]*:)?(?:emerg|alert|crit|error|warn|notice|info|debug|trace[1-8])\](?: |$)"
    r"(?:\[pid [\w: ]*\] )?"
    r"(?:\S+\.c\(\d+\): )?"  # source file and line (debug levels)
    r"(?:\(\d+\)[^\[\]:]*: )?"  # the system error, "(13)Permission denied: "
    r"(?:\[(?:client|remote) (?P<client>\[[^\]\s]*\](?::\d+)?|[^\]\s]+)\](?: |$))?"
)
_AH_CODE = re.compile(r"(?:AH\d{5}: )?(?:Digest: )?")  # Apache 2.4 message id; 2.2 mod_auth_digest prefix
# nginx "YYYY/MM/DD HH:MM:SS [level] PID#TID: *CONNECTION MESSAGE, client: ..."
_NGINX_ERROR = re.compile(r"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[[a-z]+\] \d+#\d+: (?:\*\d+ )?")
_NGINX_CLIENT = re.compile(r", client: ([^\s,]+), server: ")
_NGINX_REQUEST = re.compile(r'"(.*?)"(?:, (?:subrequest|upstream|host|referrer): "|$)')


class _ErrorMessage(NamedTuple):
    """One kind of error message: a pattern matched at the message's start, and its code.

    Named groups "user", "url" and "request" (a whole request line) fill those Event fields.
    """

    pattern: re.Pattern[str]
    code: str


def _messages(*rows: tuple[str, str]) -> tuple[_ErrorMessage, ...]:
    return tuple(_ErrorMessage(re.compile(pattern), code) for pattern, code in rows)


# Apache messages after the "AHnnnnn: " id, first match wins. The fixed text is the server's; user names,
# URIs and paths are the client's. Basic-auth user names cannot hold ':' (the header splits at it).
_APACHE_MESSAGES = _messages(
    (r"user `(?P<user>.*)' in realm `[^']*' not found(?:: (?P<url>.*))?$", AUTH_USER_NOT_FOUND),  # Digest
    (r"user (?P<user>[^:]*?) not found(?:: (?P<url>.*))?$", AUTH_USER_NOT_FOUND),
    (r'user (?P<user>[^:]*): authentication failure for "(?P<url>.*)": Password Mismatch', AUTH_PASSWORD_MISMATCH),
    (r"user (?P<user>[^:]*): password mismatch(?:: (?P<url>.*))?$", AUTH_PASSWORD_MISMATCH),
    (r'user (?P<user>[^:]*): authorization failure for "(?P<url>.*)":', AUTH_FAILED),
    (r"Authorization of user (?P<user>.*?) to access (?P<url>\S*) failed", AUTH_FAILED),
    (r"client used wrong authentication scheme(?:: (?P<url>.*))?$", AUTH_FAILED),
    (r"invalid nonce .* received - hash is not ", OTHER_ERROR),  # a stale nonce: browsers send them routinely
    (r"(?:invalid nonce|realm mismatch|unknown algorithm|invalid qop|uri mismatch) ", AUTH_FAILED),
    (r"client denied by server configuration", CLIENT_DENIED),
    (r"Directory index forbidden by rule|Cannot serve directory ", INDEX_FORBIDDEN),
    (r"File does not exist", FILE_NOT_FOUND),
    (r"(?:script|stderr from \S+:) .*not found or unable to stat|Got error 'Primary script unknown", SCRIPT_NOT_FOUND),
    (r"Invalid URI in request (?P<request>.*)$", INVALID_REQUEST),
    (r"invalid URI path \((?P<url>.*)\)$", INVALID_REQUEST),
    (r"Invalid method in request |request failed: |Invalid protocol |Invalid HTTP method", INVALID_REQUEST),
    (r"Hostname \S+ provided via SNI|No hostname was provided via SNI|SSL handshake", TLS_ERROR),
    (r"(?:\[client [^\]]*\] )?ModSecurity: ", WAF),  # mod_security 2 repeats the client before its name
)
# nginx messages (between "*N " and ", client: "), first match wins.
_NGINX_MESSAGES = _messages(
    (r'user "(?P<user>.*)" was not found in "', AUTH_USER_NOT_FOUND),
    (r'user "(?P<user>.*)": password mismatch$', AUTH_PASSWORD_MISMATCH),
    (r"PAM: user '(?P<user>.*)' - not authenticated", AUTH_FAILED),
    (r'(?:open\(\) )?".*" (?:failed|is not found) \((?:2|20): ', FILE_NOT_FOUND),
    (r"access forbidden by rule", CLIENT_DENIED),
    (r'directory index of ".*" is forbidden', INDEX_FORBIDDEN),
    (r'FastCGI sent in stderr: "Primary script unknown', SCRIPT_NOT_FOUND),
    (r"limiting (?:requests|connections)|delaying request", RATE_LIMITED),
    (r"client sent ", INVALID_REQUEST),
    (r"SSL_\w+\(\) failed", TLS_ERROR),
    (r"ModSecurity: ", WAF),
)


class _Path:
    """A dotted JSON path that finds ``a.b.c`` nested, as a dotted key, or any mix (``{"a": {"b.c": 1}}``)."""

    __slots__ = ("_keys", "_size", "name")

    def __init__(self, dotted: str) -> None:
        parts = dotted.split(".")
        self.name = dotted  # a field name: safe to put in an error
        self._size = len(parts)
        # _keys[i]: the keys that may hold parts[i:j] at one level, with the j to continue from
        self._keys = tuple(
            tuple((".".join(parts[i:j]), j) for j in range(i + 1, len(parts) + 1)) for i in range(len(parts))
        )

    def get(self, obj: dict[str, Any]) -> Any:
        """The value at this path, or ``_ABSENT``."""
        if self._size == 1:
            return obj.get(self.name, _ABSENT)
        return self._walk(obj, 0)

    def _walk(self, node: Any, index: int) -> Any:
        if index == self._size:
            return node
        if type(node) is not dict:
            return _ABSENT
        for key, following in self._keys[index]:
            child = node.get(key, _ABSENT)
            if child is not _ABSENT:
                found = self._walk(child, following)
                if found is not _ABSENT:
                    return found
        return _ABSENT


class _Schema:
    """The candidate paths of each Event field for one JSON flavour."""

    def __init__(self, fmt: str, fields: Mapping[str, Iterable[str]]) -> None:
        self.format = fmt

        def paths(name: str) -> tuple[_Path, ...]:
            return tuple(_Path(p) for p in fields.get(name, ()))

        self.source_ip = paths("source_ip")
        self.forwarded_for = paths("forwarded_for")
        self.url = paths("url")
        self.url_path = paths("url_path")
        self.url_query = paths("url_query")
        self.url_full = paths("url_full")
        self.request = paths("request")
        self.method = paths("method")
        self.status = paths("status")
        self.bytes_sent = paths("bytes_sent")
        self.user_agent = paths("user_agent")
        self.referrer = paths("referrer")
        self.http_version = paths("http_version")
        self.time = paths("time")
        self.user = paths("user")

    def has_client(self, obj: dict[str, Any]) -> bool:
        """True when a client-address field is present (not null): the record is one of ours."""
        for path in self.source_ip:
            value = path.get(obj)
            if value is not _ABSENT and value is not None:
                return True
        return False


class _TrustedProxies:
    """Membership in the trusted proxy networks, memoized: ``ipaddress`` costs several us per call."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        networks = [ipaddress.ip_network(c.strip(), strict=False) for c in cidrs]
        self._v4 = tuple(n for n in networks if n.version == 4)
        self._v6 = tuple(n for n in networks if n.version == 6)
        self.contains: Callable[[str], bool] = lru_cache(maxsize=65536)(self._contains)

    def _contains(self, text: str) -> bool:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:  # "unknown", a host name, garbage: never trusted
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
            self._v4 if address.version == 4 else self._v6
        )
        return any(address in network for network in networks)

    def resolve(self, peer: str, forwarded_for: str | None) -> tuple[str, bool]:
        """The client address and whether X-Forwarded-For decided it.

        XFF is believed only when the peer is a trusted proxy (otherwise the client wrote it). The hops
        are walked right to left, skipping trusted proxies; the first untrusted hop is the client. When
        every hop is trusted the leftmost one is the client.
        """
        if forwarded_for is None or not self.contains(peer):
            return peer, False
        hops = [hop for hop in (clean_ip(part) for part in forwarded_for.split(",")) if hop]
        if not hops:
            return peer, False
        for hop in reversed(hops):
            if not self.contains(hop):
                return hop, True
        return hops[0], True


class _Parser:
    """The callable returned by :func:`build_parser`; everything it needs is prepared in ``__init__``."""

    def __init__(self, params: ParseParams) -> None:
        self._max_bytes = params.max_record_bytes
        self._skew_s = params.max_future_skew_s
        self._future = timedelta(seconds=params.max_future_skew_s)
        self._max_age = timedelta(days=params.max_event_age_days)
        self._max_repeat = params.max_repeat_events
        self._ecs = _Schema("ecs_json", _ECS_FIELD_MAP)
        self._flat = _Schema("flat_json", params.field_map)
        self._trusted = _TrustedProxies(params.trusted_proxies) if params.trusted_proxies else None
        self._message_paths = tuple(_Path(p) for p in _MESSAGE_PATHS)
        self._program_paths = tuple(_Path(p) for p in _PROGRAM_PATHS)
        self._wrapper_time_paths = tuple(_Path(p) for p in _WRAPPER_TIME_PATHS)
        self._web_programs = frozenset(name.lower() for name in params.web_programs)
        self._apache_times: dict[str, datetime | None] = {}

    def __call__(self, raw: bytes, ingest: datetime) -> list[Event]:
        if len(raw) > self._max_bytes:
            raise RecordError(Reason.OVERSIZED)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RecordError(Reason.INVALID_UTF8) from None  # the decoder's message quotes the bytes
        text = text.strip()
        if text.startswith("\ufeff"):
            text = text[1:].lstrip()
        if not text:
            raise RecordError(Reason.EMPTY)
        if text[0] == "{":
            return self._json_record(text, ingest)
        events = self._line(text, ingest, ingest, "", (ingest, "missing"))
        if events is None:
            raise RecordError(_non_object_reason(text))
        return events

    # --- raw lines -------------------------------------------------------------------------------------

    def _line(
        self, text: str, ingest: datetime, reference: datetime, prefix: str, fallback: tuple[datetime, str | None]
    ) -> list[Event] | None:
        """Events of a raw line (``None`` when the line is in no known format).

        ``reference`` dates year-less syslog stamps; ``fallback`` is the time (and flag) of a line that
        carries none of its own (an Apache error line inside a JSON wrapper).
        """
        first = text[0]
        # an access line starts with an address (or a virtual host); a syslog line with "<PRI>", a month
        # name or an ISO date; an Apache error line with "[", an nginx one with "YYYY/MM/DD"
        if first == "<" or first.isalpha() or (len(text) > 4 and text[4] == "-"):
            syslog = split_syslog(text)
            if syslog is not None:
                return self._syslog_events(syslog, ingest, reference, prefix)
        elif first == "[":
            events = self._apache_error(text, ingest, fallback, prefix)
            if events is not None:
                return events
        elif len(text) > 20 and text[4] == "/" and first.isdigit():
            events = self._nginx_error(text, ingest, prefix)
            if events is not None:
                return events
        return self._access_line(text, ingest, prefix)

    def _access_line(self, text: str, ingest: datetime, prefix: str) -> list[Event] | None:
        match = _ACCESS_LINE.match(text)
        if match is None:
            return None
        first, second, third, fourth, time_text, request, status, size, referrer, agent, tail = match.groups()
        if fourth is None:
            peer, user = first, third
        elif _is_virtual_host(first, second, third):
            peer, user = second, fourth
        else:
            # four columns that are not "vhost client - user": a user name with a blank, or a custom format.
            # Reading another column as the client could let client-sent text choose the address.
            return None
        source = clean_ip(peer)
        if not source or source == "-":
            raise RecordError(Reason.MISSING_IP, "source_ip")
        extra: dict[str, str] = {}
        if self._trusted is not None and tail:
            source = _forwarded(self._trusted, source, _quoted_forwarded_for(tail), extra)
        try:
            stamp = self._apache_times[time_text]
        except KeyError:
            stamp = parse_apache_time(time_text)
            if len(self._apache_times) >= _APACHE_CACHE_SIZE:
                self._apache_times.clear()
            self._apache_times[time_text] = stamp
        time, time_flag = self._settle(stamp, ingest, "unparseable")
        # Undo the logger's escaping only now, once the fields are split (an unescaped '"' must not end a field),
        # and only where there is a backslash: the test inline, as this is the per-line path.
        if "\\" in request:
            request = unescape_log_field(request)
        if referrer is not None and "\\" in referrer:
            referrer = unescape_log_field(referrer)
        if agent is not None and "\\" in agent:
            agent = unescape_log_field(agent)
        parts = _split_request(request)
        if parts is None:
            method = url = version = None
            extra["request"] = _MALFORMED  # a security signal (scanners, TLS on the HTTP port), not bad input
        else:
            method, url, version = parts
        return [
            Event(
                kind=EventKind.HTTP,
                source_ip=source,
                time=time,
                method=method,
                url=url,
                http_version=version,
                status=None if status == "-" else int(status),  # three digits by the line pattern
                bytes_sent=None if size == "-" else _bounded(size, BYTES_RANGE, "bytes_sent"),
                referrer=None if referrer is None or referrer in ("-", "") else referrer,
                user_agent=None if agent is None or agent in ("-", "") else agent,
                user=None if user == "-" else user,
                format=prefix + ("apache_common" if agent is None else "apache_combined"),
                time_flag=time_flag,
                extra=extra,
            )
        ]

    def _syslog_events(self, line: SyslogLine, ingest: datetime, reference: datetime, prefix: str) -> list[Event]:
        program = line.program
        if program in SSHD_PROGRAMS:
            found = read_sshd(line.message)
            if found is None:
                return []
            time, time_flag = self._syslog_time(line, ingest, reference)
            return self._ssh_events(found, time, time_flag, prefix + "sshd_syslog")
        if is_web_program(program, self._web_programs):
            return self._web_message(line, ingest, reference, prefix + "syslog+")
        return []  # recognized, but not a program we read: filtered by policy

    def _syslog_time(self, line: SyslogLine, ingest: datetime, reference: datetime) -> tuple[datetime, str | None]:
        stamp = line.stamp
        if stamp is None:
            return ingest, "missing"
        if isinstance(stamp, str):
            return self._settle(parse_iso_time(stamp), ingest, "unparseable")
        return self._settle(infer_syslog_year(stamp, reference, self._skew_s), ingest, "unparseable")

    def _web_message(self, line: SyslogLine, ingest: datetime, reference: datetime, prefix: str) -> list[Event]:
        """A web server's syslog message: an access line or an error line, each read as it would be from a file.

        Either carries its own full time (with the year, and a zone for access lines), which wins over the
        syslog stamp; an Apache error line sent to syslog has none and takes the syslog stamp's.
        """
        message = line.message.strip()
        if not message:
            return []
        events: list[Event] | None = None
        first = message[0]
        if first == "[":
            events = self._apache_error(message, ingest, self._syslog_time(line, ingest, reference), prefix)
        elif len(message) > 20 and message[4] == "/" and first.isdigit():
            events = self._nginx_error(message, ingest, prefix)
        if events is None:
            events = self._access_line(message, ingest, prefix)
        return [] if events is None else events  # startup notices and the like: no client event

    def _apache_error(
        self, text: str, ingest: datetime, fallback: tuple[datetime, str | None], prefix: str
    ) -> list[Event] | None:
        """An Apache error-log line (``None`` if it is not one; ``[]`` if it names no client)."""
        match = _APACHE_ERROR.match(text)
        if match is None:
            return None
        client = match["client"]
        if client is None:
            return []  # a server-level message ("caught SIGTERM", mod_jk notices): no client
        source = clean_ip(client)
        if not looks_like_ip(source):
            return []
        stamp = match["time"]
        if stamp is None:
            time, time_flag = fallback
        else:
            time, time_flag = self._settle(parse_apache_error_time(stamp), ingest, "unparseable")
        message = text[match.end() :]
        referrer = None
        cut = message.rfind(", referer: ")  # Apache appends the Referer header last
        if cut >= 0:
            referrer = unescape_log_field(message[cut + 11 :]) or None
            message = message[:cut]
        message_id = _AH_CODE.match(message)  # "AH01618: ": the fixed text of the message follows
        if message_id is not None:
            message = message[message_id.end() :]
        code, fields = _classify_error(_APACHE_MESSAGES, message)
        return [self._error_event(source, time, time_flag, code, fields, referrer, prefix + "apache_error", True)]

    def _nginx_error(self, text: str, ingest: datetime, prefix: str) -> list[Event] | None:
        """An nginx error-log line (``None`` if it is not one; ``[]`` if it names no client, or two)."""
        match = _NGINX_ERROR.match(text)
        if match is None:
            return None
        # nginx appends ", client: ADDRESS, server: NAME[, request: "..."][, host: "..."][, referrer: "..."]"
        # after the message. The message before it (a user name, a decoded path) and the request, host and
        # referrer after it are all client text, unescaped, so a client can write a second ", client: X,
        # server: " on either side and position cannot tell which one nginx wrote. A line naming two different
        # addresses is dropped rather than pinned on either: the same request is still in the access log.
        markers = list(_NGINX_CLIENT.finditer(text, match.end()))
        if not markers or any(marker[1] != markers[0][1] for marker in markers[1:]):
            return []
        marker = markers[0]
        source = clean_ip(marker[1])
        if not looks_like_ip(source):
            return []  # "client: unix:", or no address at all
        time, time_flag = self._settle(parse_nginx_error_time(match[1]), ingest, "unparseable")
        tail = text[marker.end() :]
        fields: dict[str, str] = {}
        # the first ', request: "' is nginx's own: only the server name (configuration) comes before it
        start = tail.find(', request: "')
        request = None if start < 0 else _NGINX_REQUEST.match(tail, start + 11)
        if request is not None:
            fields["request"] = request[1]
        referrer = None
        cut = tail.rfind(', referrer: "')
        if cut >= 0 and tail.endswith('"'):
            referrer = tail[cut + 13 : -1] or None
        code, found = _classify_error(_NGINX_MESSAGES, text[match.end() : marker.start()])
        fields.update(found)
        return [self._error_event(source, time, time_flag, code, fields, referrer, prefix + "nginx_error", False)]

    @staticmethod
    def _error_event(
        source: str,
        time: datetime,
        time_flag: str | None,
        code: str,
        fields: Mapping[str, str],
        referrer: str | None,
        fmt: str,
        escaped: bool,
    ) -> Event:
        """The HTTP event of an error-log line: no status (the line does not say), the error's fixed code."""
        extra = {ERROR_LOG_KEY: code}
        method = url = version = None
        request = fields.get("request")
        url = fields.get("url")
        if request is not None:
            parts = _split_request(unescape_log_field(request) if escaped else request)
            if parts is None:
                extra["request"] = _MALFORMED
            else:
                method, url, version = parts
        elif url is not None and escaped:
            url = unescape_log_field(url)
        return Event(
            kind=EventKind.HTTP,
            source_ip=source,
            time=time,
            method=method,
            url=url or None,
            http_version=version,
            referrer=None if referrer == "-" else referrer,
            user=fields.get("user") or None,
            format=fmt,
            time_flag=time_flag,
            extra=extra,
        )

    def _ssh_events(self, found: tuple[SshHit, int], time: datetime, time_flag: str | None, fmt: str) -> list[Event]:
        hit, count = found
        source = hit.source.strip()
        hostname = not looks_like_ip(source)
        # old pam_unix and UseDNS=yes log the client's host name: keep it, marked, for the pipeline to handle
        source = source.lower() if hostname else clean_ip(source)
        if not source or count < 1:  # "message repeated 0 times" stands for no line
            return []
        extra: dict[str, str] = {}
        if hostname:
            extra["source_kind"] = "hostname"
        if count > self._max_repeat:
            extra["repeat_capped"] = "1"
        if hit.event is not None:  # a fixed hint code for the signal detector, never text from the line
            extra[SSH_EVENT_KEY] = hit.event
        # One event that carries the count: "message repeated 1000 times" is one line and yields one abuse
        # event (with repeat=1000), not a thousand; the detector counts it as that many lines.
        return [
            Event(
                kind=EventKind.SSH,
                source_ip=source,
                time=time,
                user=hit.user,
                ssh_outcome=hit.outcome,
                ssh_method=hit.method,
                invalid_user=hit.invalid_user,
                format=fmt,
                time_flag=time_flag,
                extra=extra,
                repeat=min(count, self._max_repeat),
            )
        ]

    # --- JSON ------------------------------------------------------------------------------------------

    def _json_record(self, text: str, ingest: datetime) -> list[Event]:
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise RecordError(Reason.INVALID_JSON) from None
        if type(obj) is not dict:
            raise RecordError(Reason.NOT_AN_OBJECT)
        message = _first_str(obj, self._message_paths)
        program = ""
        if message is not None:
            program = program_name(_first_str(obj, self._program_paths) or "")
            if program in SSHD_PROGRAMS:  # rsyslog / journald / Filebeat system module: an sshd message
                return self._json_sshd(obj, message, ingest)
        if self._ecs.has_client(obj):
            return [self._json_http(obj, self._ecs, ingest)]
        if self._flat.has_client(obj):
            return [self._json_http(obj, self._flat, ingest)]
        if message is not None:
            return self._json_wrapped_line(obj, message, program, ingest)
        raise RecordError(Reason.MISSING_IP, "source_ip")

    def _json_http(self, obj: dict[str, Any], schema: _Schema, ingest: datetime) -> Event:
        peer = _text(obj, schema.source_ip)
        source = "" if peer is None else clean_ip(peer)
        if not source or source == "-":
            raise RecordError(Reason.MISSING_IP, "source_ip")
        extra: dict[str, str] = {}
        if self._trusted is not None:
            source = _forwarded(self._trusted, source, _header(obj, schema.forwarded_for, ", "), extra)
        method = _text(obj, schema.method)
        url = _text(obj, schema.url)
        version = _text(obj, schema.http_version)
        if url is None and schema.url_path:
            url = _text(obj, schema.url_path)
            query = _text(obj, schema.url_query)
            if url is not None and query is not None:
                url = f"{url}?{query}"
            if url is None:
                url = _text(obj, schema.url_full)
        if url is None and method is None and schema.request:
            request = _request_line(obj, schema.request)
            if request is not None:
                if " " not in request:  # Logstash's "request" is the target alone
                    url = request
                else:
                    parts = _split_request(request)
                    if parts is None:
                        extra["request"] = _MALFORMED
                    else:
                        method, url, line_version = parts
                        version = version or line_version
        if version is not None and version[:1].isdigit():  # ECS writes "1.1"
            version = "HTTP/" + version
        stamp, missing_flag = _json_time(obj, schema.time)
        time, time_flag = self._settle(stamp, ingest, missing_flag)
        return Event(
            kind=EventKind.HTTP,
            source_ip=source,
            time=time,
            method=method,
            url=url,
            http_version=version,
            status=_integer(obj, schema.status, STATUS_RANGE),
            bytes_sent=_integer(obj, schema.bytes_sent, BYTES_RANGE),
            referrer=_header(obj, schema.referrer, None),
            user_agent=_header(obj, schema.user_agent, None),
            user=_user(obj, schema.user),
            format=schema.format,
            time_flag=time_flag,
            extra=extra,
        )

    def _json_sshd(self, obj: dict[str, Any], message: str, ingest: datetime) -> list[Event]:
        """An sshd message in a JSON wrapper: a whole syslog line, or the bare message with the time beside it."""
        stamp, missing_flag = _json_time(obj, self._wrapper_time_paths)
        reference = self._reference(stamp, ingest)
        message = message.strip()
        line = split_syslog(message) if message else None
        if line is not None:
            return self._syslog_events(line, ingest, reference, "json+")
        found = read_sshd(message)
        if found is None:
            return []
        time, time_flag = self._settle(stamp, ingest, missing_flag)
        return self._ssh_events(found, time, time_flag, "json+sshd")

    def _json_wrapped_line(self, obj: dict[str, Any], message: str, program: str, ingest: datetime) -> list[Event]:
        """Filebeat without ingest pipeline, Fluent Bit tail, rsyslog omkafka: the raw line is in ``message``."""
        text = message.strip()
        if not text:
            raise RecordError(Reason.EMPTY, "message")
        stamp, missing_flag = _json_time(obj, self._wrapper_time_paths)
        fallback = self._settle(stamp, ingest, missing_flag)
        events = self._line(text, ingest, self._reference(stamp, ingest), "json+", fallback)
        if events is not None:
            return events
        if program:  # another program's message (cron, kernel, ...): recognized, no client event
            return []
        raise RecordError(Reason.UNPARSEABLE_LINE, "message")

    # --- shared ----------------------------------------------------------------------------------------

    def _settle(self, stamp: datetime | None, ingest: datetime, flag_if_none: str) -> tuple[datetime, str | None]:
        """The event time to keep and its flag: the record's time if plausible, else the ingest time."""
        if stamp is None:
            return ingest, flag_if_none
        if stamp > ingest + self._future or stamp < ingest - self._max_age:
            return ingest, "implausible"
        return stamp, None

    def _reference(self, stamp: datetime | None, ingest: datetime) -> datetime:
        """A wrapper's own time dates its syslog line better than the ingest time (replays, backlogs)."""
        if stamp is None or self._settle(stamp, ingest, "")[1] is not None:
            return ingest
        return stamp


# --- field readers: a present field of the wrong type raises WRONG_TYPE naming the path ------------------


def _first_str(obj: dict[str, Any], paths: tuple[_Path, ...]) -> str | None:
    """The first candidate that is a string; other types are skipped (ECS "log" is an object)."""
    for path in paths:
        value = path.get(obj)
        if type(value) is str:
            return value
    return None


def _present(obj: dict[str, Any], paths: tuple[_Path, ...]) -> tuple[Any, str]:
    """The first candidate present and not null, with its path; ``(None, "")`` when there is none."""
    for path in paths:
        value = path.get(obj)
        if value is not _ABSENT and value is not None:
            return value, path.name
    return None, ""


def _text(obj: dict[str, Any], paths: tuple[_Path, ...]) -> str | None:
    """A string field; ``""`` and ``"-"`` (nginx's "no value") are absent."""
    value, name = _present(obj, paths)
    if value is None:
        return None
    if type(value) is not str:
        raise RecordError(Reason.WRONG_TYPE, name)
    return None if value in ("", "-") else value


def _request_line(obj: dict[str, Any], paths: tuple[_Path, ...]) -> str | None:
    """A request line ("GET / HTTP/1.1"); an object under that name is another schema's, not an error
    (Caddy's "request" holds the request's fields)."""
    value, name = _present(obj, paths)
    if value is None or type(value) is dict:
        return None
    if type(value) is not str:
        raise RecordError(Reason.WRONG_TYPE, name)
    return None if value in ("", "-") else value


def _header(obj: dict[str, Any], paths: tuple[_Path, ...], join: str | None) -> str | None:
    """A header value: a string, or a list of strings (Caddy logs headers as lists; XFF may repeat)."""
    value, name = _present(obj, paths)
    if value is None:
        return None
    if type(value) is list:
        if not all(type(item) is str for item in value):
            raise RecordError(Reason.WRONG_TYPE, name)
        if not value:
            return None
        value = value[0] if join is None else join.join(value)
    elif type(value) is not str:
        raise RecordError(Reason.WRONG_TYPE, name)
    return None if value in ("", "-") else value


def _integer(obj: dict[str, Any], paths: tuple[_Path, ...], bounds: tuple[int, int]) -> int | None:
    """An integer field within ``bounds``: a JSON integer, an integral float, or digits in a string (nginx JSON
    quotes them). Out of range: ``out_of_range`` (orjson reads integers beyond 64 bits as floats, and no output
    could carry them)."""
    value, name = _present(obj, paths)
    if value is None:
        return None
    kind = type(value)
    if kind is int:
        return _bounded(value, bounds, name)
    if kind is str:
        text = value.strip()
        if text in ("", "-"):
            return None
        if text.isascii() and text.isdigit():
            return _bounded(text, bounds, name)
    elif kind is float and math.isfinite(value) and value.is_integer():
        return _bounded(int(value), bounds, name)
    raise RecordError(Reason.WRONG_TYPE, name)


def _bounded(value: int | str, bounds: tuple[int, int], name: str) -> int:
    """``value`` (an int, or ASCII digits) as an int within ``bounds``, else ``out_of_range``.

    Digit strings longer than the upper bound's are refused before ``int()`` reads them: a field of
    100,000 digits would otherwise cost quadratic time (or hit Python's digit limit)."""
    low, high = bounds
    if isinstance(value, str):
        if len(value.lstrip("0")) > len(str(high)):
            raise RecordError(Reason.OUT_OF_RANGE, name)
        value = int(value)
    if not low <= value <= high:
        raise RecordError(Reason.OUT_OF_RANGE, name)
    return value


def _user(obj: dict[str, Any], paths: tuple[_Path, ...]) -> str | None:
    """A user name, e-mail or id: a string, or an integer id."""
    value, name = _present(obj, paths)
    if value is None:
        return None
    if type(value) is int:
        return str(value)
    if type(value) is not str:
        raise RecordError(Reason.WRONG_TYPE, name)
    return None if value in ("", "-") else value


def _json_time(obj: dict[str, Any], paths: tuple[_Path, ...]) -> tuple[datetime | None, str]:
    """The record's time (or ``None``) and the flag to use if it is ``None``: "missing" or "unparseable"."""
    value, name = _present(obj, paths)
    if value is None:
        return None, "missing"
    kind = type(value)
    if kind is str:
        text = value.strip()
        if text in ("", "-"):
            return None, "missing"
        return parse_time_text(text), "unparseable"
    if kind is int or kind is float:
        return parse_epoch(value), "unparseable"
    raise RecordError(Reason.WRONG_TYPE, name)


# --- small helpers ---------------------------------------------------------------------------------------


def _split_request(request: str) -> tuple[str, str, str | None] | None:
    """``METHOD TARGET HTTP/x.y`` (or HTTP/0.9's ``METHOD TARGET``) -> parts; ``None`` if malformed."""
    parts = request.split(" ")
    if len(parts) >= 3 and parts[-1].startswith("HTTP/"):
        # a target with raw spaces is broken but still says what was asked for
        method, target, version = parts[0], " ".join(parts[1:-1]), parts[-1]
    elif len(parts) == 2:
        method, target, version = parts[0], parts[1], None
    else:
        return None
    if not target or _METHOD.fullmatch(method) is None:
        return None
    return method, target, version


def _is_virtual_host(vhost: str, peer: str, ident: str) -> bool:
    """Whether a fourth leading column makes the line ``vhost client ident user [time] ...``.

    ``host:port`` is Apache's vhost_combined. A bare host name is believed only when the next column looks
    like an address and the ident column is "-": in the usual three-column line those columns are the
    client and "-" (or an identd answer), never client text, so a user name with a blank in it cannot
    shift another column into the client's place.
    """
    if _VHOST_PORT.fullmatch(vhost):
        return True
    return ident == "-" and _HOSTNAME.fullmatch(vhost) is not None and not looks_like_ip(vhost) and looks_like_ip(peer)


def _classify_error(messages: tuple[_ErrorMessage, ...], message: str) -> tuple[str, dict[str, str]]:
    """The code of an error message and the fields its pattern captured (empty ones left out)."""
    for row in messages:
        match = row.pattern.match(message)
        if match is not None:
            return row.code, {name: value for name, value in match.groupdict().items() if value}
    return OTHER_ERROR, {}


def _forwarded(trusted: _TrustedProxies, peer: str, forwarded_for: str | None, extra: dict[str, str]) -> str:
    """The client address after X-Forwarded-For; marks ``extra["forwarded"]`` when XFF decided it."""
    source, forwarded = trusted.resolve(peer, forwarded_for)
    if forwarded:
        extra["forwarded"] = "1"
    return source


def _quoted_forwarded_for(tail: str) -> str | None:
    """nginx's default "main" format ends with ``"$http_x_forwarded_for"``: the first quoted trailing field,
    if it looks like a list of addresses."""
    if not tail.startswith('"'):
        return None
    end = tail.find('"', 1)
    value = tail[1:end] if end > 0 else ""
    if not value or value == "-" or not _XFF_CHARS.issuperset(value):
        return None
    return value


def _non_object_reason(text: str) -> Reason:
    """A line in no known format: valid JSON that is not an object, or just unparseable."""
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return Reason.UNPARSEABLE_LINE
    return Reason.NOT_AN_OBJECT
