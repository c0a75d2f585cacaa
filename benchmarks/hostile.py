"""Hostile records for every input format the parser reads, with planted identifiers to search the outputs for.

Shared by the fuzz benchmark (``python -m benchmarks.fuzz``) and the Hypothesis tests
(``tests/pipeline/test_fuzz_filemode.py``): every generator is a plain function of a :class:`random.Random`,
so the benchmark draws records from a seeded generator and Hypothesis feeds it ``st.randoms()``.

A generator returns a :class:`Sample`: the raw record (bytes, as a Kafka message or a file line carries it)
and the :class:`Canary` values planted in it. A canary is a unique, distinctive value of a kind no output may
carry (a full IPv4 or IPv6 address, an e-mail address, a JWT, an AWS key id, a UUID, a hex or base64url token,
a user name, a non-allow-listed query value), put where a client or a shipper can put it: the method, the
version, path segments, query values (``utm_*`` included), the referrer's host and path, the user agent, JSON
fields, sshd user names. What the policy legitimately writes never contains one:

* the client address only as keyed pseudonyms and a prefix (``a.b.c.0/24``, ``2001:db8:1234::/48``): IPv4
  canaries end in a non-zero octet and are matched only as a whole dotted quad, IPv6 canaries have eight
  non-zero groups, so no prefix matches them;
* paths templated (identifiers become ``{id}``, ``{uuid}``, ``{token}``...), queries cut to allow-listed
  parameters (``utm_*`` in analytics, none in abuse) whose values are scrubbed;
* the referrer's host only, the user agent reduced to browser/OS families, users pseudonymized;
* quarantine envelopes sealed (AES-GCM): a canary in one would be plaintext that escaped the seal.

:func:`find_leaks` is the checker: it searches one output text (lower-cased, and percent-decoded as well) for
every canary of a record. Matching is strict on purpose: a truncated token still leaks its first 16 characters.
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any, Final
from urllib.parse import quote, unquote

__all__ = [
    "FAMILIES",
    "INGEST",
    "Canary",
    "Planter",
    "Sample",
    "benign_sized",
    "find_leaks",
    "generate",
    "real_lines",
]

# The fuzz run's ingest time: generated event times lie in the day before it.
INGEST: Final = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# Every kind a planted identifier can have; ``user`` and ``query_word`` are only planted where the policy
# pseudonymizes or drops the value (a plain word in a kept path segment is kept by design).
IDENT_KINDS: Final = ("ipv4", "ipv6", "email", "jwt", "aws_key", "uuid", "hex_token", "b64_token")
_LOWER_DIGITS: Final = string.ascii_lowercase + string.digits
_B64URL: Final = string.ascii_letters + string.digits + "-_"
_B32: Final = string.ascii_uppercase + "234567"
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WORDS: Final = (
    "products",
    "shoes",
    "blog",
    "news",
    "about",
    "contact",
    "search",
    "images",
    "static",
    "css",
    "js",
    "api",
    "v1",
    "v2",
    "users",
    "orders",
    "cart",
    "checkout",
    "help",
    "docs",
    "assets",
    "archive",
    "category",
    "tag",
    "page",
    "login",
    "account",
    "settings",
    "download",
    "files",
    "reports",
    "media",
)
_AGENTS: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 "
    "Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
    "Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.4.0",
    "python-requests/2.31.0",
    "sqlmap/1.7.2#stable (https://sqlmap.org)",
)
_METHODS: Final = ("GET", "GET", "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH")
_ODD_METHODS: Final = (
    "get",
    "CONNECT",
    "PROPFIND",
    "M-SEARCH",
    "PRI",
    "TRACE",
    "DEBUG",
    "\x16\x03\x01",
    "G\u00c9T",
    "GET\tX",
    "-",
    "",
    "A" * 300,
    "X" * 9000,
    "%47ET",
    "{}",
    "GET/1.1",
    "1234",
)
_ODD_VERSIONS: Final = ("HTTP/9.9", "HTTP/1.1x", "HTTP/", "HTTP/1.1\x00", "HTTP/" + "1" * 400, "http/1.1", "HTTP/2")


@dataclass(frozen=True, slots=True)
class Canary:
    """One planted identifier: its kind, where it was put, the value, and the strings no output may contain."""

    kind: str
    field: str
    value: str
    needles: tuple[str, ...]  # lower-case; an IPv4 needle matches only as a whole dotted quad

    @property
    def bounded(self) -> bool:
        return self.kind in ("ipv4", "client_ipv4")


@dataclass(frozen=True, slots=True)
class Sample:
    """One generated record: its family, raw bytes and the canaries planted in it."""

    family: str
    raw: bytes
    canaries: tuple[Canary, ...] = ()
    # for mutated real lines: "file:line" (reports name the line instead of copying real data)
    origin: str | None = None
    mutation: str | None = None


class Planter:
    """Makes unique canary values for one record and remembers where each was put."""

    def __init__(self, rng: Random) -> None:
        self.rng = rng
        self.canaries: list[Canary] = []

    def _add(self, kind: str, where: str, value: str, *needles: str) -> str:
        self.canaries.append(Canary(kind, where, value, tuple(n.lower() for n in (value, *needles))))
        return value

    def _chars(self, alphabet: str, size: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(size))

    def ipv4_text(self) -> str:
        rng = self.rng
        first = rng.choice([n for n in range(1, 224) if n not in (10, 127)])
        # documentation ranges sometimes (the example), else anywhere; never a .0 host part
        if rng.random() < 0.3:
            return f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rng.randint(1, 254)}"
        return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"

    def ipv6_text(self) -> str:
        # eight non-zero groups without leading zeros: the canonical text is the text itself, and no /48
        # prefix ("2001:db8:1234::/48") or compressed form can equal it
        groups = [f"{self.rng.randint(0x1000, 0xFFFF):x}" for _ in range(6)]
        return "2001:db8:" + ":".join(groups)

    def ident(self, where: str, kinds: Iterable[str] = IDENT_KINDS) -> str:
        """A fresh identifier of a random kind out of ``kinds``, recorded as planted at ``where``."""
        kind = self.rng.choice(tuple(kinds))
        rng = self.rng
        if kind == "ipv4":
            return self._add(kind, where, self.ipv4_text())
        if kind == "ipv6":
            return self._add(kind, where, self.ipv6_text())
        if kind == "email":
            local = self._chars(string.ascii_lowercase, 1) + self._chars(_LOWER_DIGITS, 9)
            domain = rng.choice(("example.com", "mail.example.org", "corp.example.net"))
            return self._add(kind, where, f"{local}@{domain}", local)
        if kind == "jwt":
            header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
            claims = json.dumps({"sub": self._chars(_LOWER_DIGITS, 12), "iat": rng.randint(10**9, 2 * 10**9)})
            payload = base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=")
            signature = self._chars(_B64URL, 43)
            return self._add(kind, where, f"{header}.{payload}.{signature}", payload, signature[:16])
        if kind == "aws_key":
            return self._add(kind, where, "AKIA" + self._chars(_B32, 16))
        if kind == "uuid":
            hexes = self._chars("0123456789abcdef", 32)
            value = f"{hexes[:8]}-{hexes[8:12]}-4{hexes[13:16]}-a{hexes[17:20]}-{hexes[20:]}"
            return self._add(kind, where, value)
        if kind == "hex_token":
            value = self._chars("0123456789abcdef", rng.choice((32, 40, 64)))
            return self._add(kind, where, value, value[:16])
        if kind == "b64_token":
            # 128-bit (22 chars), 192-bit (32) and 256-bit (43) secrets in base64url
            value = self._chars(_B64URL, rng.choice((22, 32, 43)))
            return self._add(kind, where, value, value[:16])
        raise ValueError(f"unknown canary kind {kind}")

    def user(self, where: str) -> str:
        """A user name (pseudonymized by policy wherever it is read as one)."""
        if self.rng.random() < 0.2:
            return self.ident(where, ("email",))
        value = self.rng.choice(("u", "adm", "svc-", "j.")) + self._chars(_LOWER_DIGITS, 9)
        return self._add("user", where, value)

    def word(self, where: str) -> str:
        """A plain word in a place the policy drops (a query parameter outside the allow-list)."""
        return self._add("query_word", where, "cq" + self._chars(string.ascii_lowercase, 10))

    def client(self, where: str = "source") -> str:
        """The record's client address: only its pseudonyms and prefix may reach an output."""
        if self.rng.random() < 0.8:
            return self._add("client_ipv4", where, self.ipv4_text())
        return self._add("client_ipv6", where, self.ipv6_text())

    def hostname(self, where: str) -> str:
        """A client host name (old pam_unix ``rhost=``): pseudonymized, never kept."""
        return self._add("hostname", where, f"h{self._chars(_LOWER_DIGITS, 9)}.dyn.example.net")


# --- pieces of a request ----------------------------------------------------------------------------------


def _maybe(rng: Random, p: float) -> bool:
    return rng.random() < p


def _event_time(rng: Random) -> datetime:
    return INGEST - timedelta(seconds=rng.randint(0, 86_000))


def _apache_time(at: datetime) -> str:
    return f"{at.day:02d}/{_MONTHS[at.month - 1]}/{at.year}:{at:%H:%M:%S} +0000"


def _syslog_stamp(at: datetime) -> str:
    return f"{_MONTHS[at.month - 1]} {at.day:2d} {at:%H:%M:%S}"


def _ident_in_segment(rng: Random, planter: Planter, where: str) -> str:
    """An identifier as a whole path segment, with an extension, inside a word, or percent-encoded."""
    value = planter.ident(where)
    style = rng.randrange(5)
    if style == 0:
        return value
    if style == 1:
        return f"{value}.{rng.choice(('png', 'json', 'pdf', 'html'))}"
    if style == 2:
        return f"{rng.choice(_WORDS)}_{value}"
    if style == 3:
        return quote(value, safe="")
    return f"{rng.choice(_WORDS)}-{value}-{rng.choice(_WORDS)}"


def _path(rng: Random, planter: Planter | None, where: str = "path") -> str:
    segments = [rng.choice(_WORDS) for _ in range(rng.randint(1, 5))]
    if planter is not None and _maybe(rng, 0.7):
        segments.insert(rng.randint(0, len(segments)), _ident_in_segment(rng, planter, where))
    path = "/" + "/".join(segments)
    if planter is not None and _maybe(rng, 0.1):
        path += f";jsessionid={planter.ident('path_matrix', ('hex_token', 'b64_token'))}"
    return path


def _query(rng: Random, planter: Planter | None) -> str:
    pairs: list[str] = []
    if planter is None:
        pairs = [f"{rng.choice(('page', 'q', 'sort'))}={rng.choice(_WORDS)}" for _ in range(rng.randint(0, 2))]
        return "&".join(pairs)
    if _maybe(rng, 0.5):
        pairs.append(f"utm_source={rng.choice(_WORDS)}")
    if _maybe(rng, 0.5):
        key = rng.choice(("utm_campaign", "utm_term", "utm_content", "utm_medium", "utm_id"))
        value = planter.ident("utm")
        if _maybe(rng, 0.3):
            value = f"{rng.choice(_WORDS)} {value}"
        pairs.append(f"{key}={quote(value, safe='@') if _maybe(rng, 0.5) else value}")
    if _maybe(rng, 0.6):
        pairs.append(f"canary={planter.ident('query') if _maybe(rng, 0.5) else planter.word('query')}")
    if _maybe(rng, 0.3):
        pairs.append(f"{rng.choice(('session', 'token', 'email', 'sid'))}={planter.ident('query')}")
    if _maybe(rng, 0.1):  # the name of an allow-listed parameter is client text too
        pairs.append(f"utm_{planter.ident('utm_key', ('aws_key', 'hex_token', 'b64_token', 'uuid'))}=1")
    rng.shuffle(pairs)
    return "&".join(pairs)


def _target(rng: Random, planter: Planter | None) -> str:
    target = _path(rng, planter)
    query = _query(rng, planter)
    if query:
        target += "?" + query
    if planter is not None and _maybe(rng, 0.1):
        target += "#" + planter.ident("fragment")
    if _maybe(rng, 0.1):
        target = f"http://www.example.com{target}"
    return target


def _referrer(rng: Random, planter: Planter | None) -> str:
    if _maybe(rng, 0.2):
        return "-"
    host = "www.example.com"
    if planter is not None:
        style = rng.randrange(6)
        if style == 0:
            host = planter.ident("referrer_host", ("ipv4",))
        elif style == 1:
            host = f"[{planter.ident('referrer_host', ('ipv6',))}]"
        elif style == 2:
            host = f"{planter.ident('referrer_host', ('hex_token', 'b64_token', 'uuid'))}.sessions.example.com"
        elif style == 3:
            host = f"{planter.ident('referrer_userinfo', ('email',))}@{host}"
            host = host.replace("@", "%40", 1) if _maybe(rng, 0.3) else host
    path = _path(rng, planter, "referrer_path") if planter is not None else "/"
    query = ""
    if planter is not None and _maybe(rng, 0.5):
        query = f"?q={planter.ident('referrer_query')}"
    return f"{rng.choice(('https', 'http'))}://{host}{path}{query}"


def _agent(rng: Random, planter: Planter | None) -> str:
    agent = rng.choice(_AGENTS)
    if planter is None or not _maybe(rng, 0.5):
        return agent
    value = planter.ident("user_agent")
    style = rng.randrange(5)
    if style == 0:
        return f"{agent} {value}"
    if style == 1:
        return f"{value}/1.0"
    if style == 2:
        return f"Mozilla/5.0 (compatible; {value}; +http://www.example.com/bot.html)"
    if style == 3:  # in place of a browser version
        return _AGENTS[0].replace("120.0.6099.109", value)
    return value


def _method(rng: Random, planter: Planter | None) -> str:
    if planter is not None and _maybe(rng, 0.15):
        return planter.ident("method")
    if _maybe(rng, 0.05):
        return rng.choice(_ODD_METHODS)
    return rng.choice(_METHODS)


def _version(rng: Random, planter: Planter | None) -> str:
    if planter is not None and _maybe(rng, 0.1):
        return "HTTP/" + planter.ident("version")
    if _maybe(rng, 0.05):
        return rng.choice(_ODD_VERSIONS)
    return rng.choice(("HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0"))


def _escape_quoted(text: str) -> str:
    """Apache's escaping of a quoted log field (so the line stays one of its own)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


# --- formats ----------------------------------------------------------------------------------------------


def _access_line(rng: Random, planter: Planter | None, *, combined: bool = True) -> str:
    client = planter.client() if planter is not None else "203.0.113.1"
    user = planter.user("user") if planter is not None and _maybe(rng, 0.3) else "-"
    request = f"{_method(rng, planter)} {_target(rng, planter)} {_version(rng, planter)}"
    status = rng.choice((200, 200, 301, 304, 401, 403, 404, 500))
    line = (
        f'{client} - {user} [{_apache_time(_event_time(rng))}] "{_escape_quoted(request)}" {status} '
        f"{rng.randint(0, 99_999)}"
    )
    if combined:
        line += f' "{_escape_quoted(_referrer(rng, planter))}" "{_escape_quoted(_agent(rng, planter))}"'
        if _maybe(rng, 0.1) and planter is not None:  # nginx "main": "$http_x_forwarded_for" after the agent
            line += f' "{planter.ident("xff", ("ipv4",))}"'
    return line


def _apache_combined(rng: Random) -> Sample:
    planter = Planter(rng)
    return Sample("apache_combined", _access_line(rng, planter).encode(), tuple(planter.canaries))


def _apache_common(rng: Random) -> Sample:
    planter = Planter(rng)
    return Sample("apache_common", _access_line(rng, planter, combined=False).encode(), tuple(planter.canaries))


def _nest(flat: dict[str, Any], rng: Random) -> dict[str, Any]:
    """ECS fields as dotted keys, as nested objects, or a mix of both (shippers write either)."""
    mode = rng.randrange(3)
    if mode == 0:
        return flat
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        if mode == 2 and _maybe(rng, 0.5):
            cut = rng.randint(1, len(parts))
            parts = [*parts[: cut - 1], ".".join(parts[cut - 1 :])]
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # a leaf already sits here: keep this field dotted instead
                node = out
                parts = [key]
                break
            node = child
        node[parts[-1]] = value
    return out


def _ecs_fields(rng: Random, planter: Planter) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "@timestamp": _event_time(rng).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "source.ip": planter.client(),
        "http.request.method": _json_method(rng, planter),
        "http.version": rng.choice(("1.1", "2.0", "1.0")),
        "http.response.status_code": rng.choice((200, 404, 403, 500)),
        "http.response.body.bytes": rng.randint(0, 10**6),
        "user_agent.original": _agent(rng, planter),
    }
    if _maybe(rng, 0.7):
        fields["url.original"] = _target(rng, planter)
    else:
        fields["url.path"] = _path(rng, planter)
        fields["url.query"] = _query(rng, planter) or None
    referrer = _referrer(rng, planter)
    if referrer != "-":
        fields["http.request.referrer"] = referrer
    if _maybe(rng, 0.3):
        fields[rng.choice(("user.name", "user.email", "user.id"))] = planter.user("json_user")
    if _maybe(rng, 0.3):  # fields no output reads: they must go nowhere
        fields[rng.choice(("trace.id", "http.request.id", "event.original", "client.user.name"))] = planter.ident(
            "json_other"
        )
    if _maybe(rng, 0.1):
        fields["http.request.headers.x-forwarded-for"] = planter.ident("xff", ("ipv4",))
    return fields


def _json_method(rng: Random, planter: Planter) -> str:
    # JSON carries the method as a string of anything: no request-line grammar stands in the way
    if _maybe(rng, 0.2):
        return planter.ident("method")
    return _method(rng, None)


def _ecs_json(rng: Random) -> Sample:
    planter = Planter(rng)
    record = _nest(_ecs_fields(rng, planter), rng)
    return Sample("ecs_json", _dumps(rng, record), tuple(planter.canaries))


def _flat_fields(rng: Random, planter: Planter) -> dict[str, Any]:
    at = _event_time(rng)
    fields: dict[str, Any] = {
        "remote_addr": planter.client(),
        rng.choice(("time_local", "time_iso8601", "time")): (
            _apache_time(at) if _maybe(rng, 0.5) else at.strftime("%Y-%m-%dT%H:%M:%S+00:00")
        ),
        "status": rng.choice((200, "200", 404, "404", 401)),
        "body_bytes_sent": rng.choice((rng.randint(0, 10**5), str(rng.randint(0, 10**5)))),
        "http_referer": _referrer(rng, planter),
        "http_user_agent": _agent(rng, planter),
    }
    if _maybe(rng, 0.5):
        fields["request"] = f"{_method(rng, planter)} {_target(rng, planter)} {_version(rng, planter)}"
    else:
        fields["request_method"] = _json_method(rng, planter)
        fields["request_uri"] = _target(rng, planter)
        fields["server_protocol"] = _version(rng, planter)
    if _maybe(rng, 0.3):
        fields["remote_user"] = planter.user("json_user")
    if _maybe(rng, 0.2):
        fields["http_x_forwarded_for"] = planter.ident("xff", ("ipv4", "ipv6"))
    if _maybe(rng, 0.2):
        fields["request_id"] = planter.ident("json_other")
    return fields


def _flat_json(rng: Random) -> Sample:
    planter = Planter(rng)
    return Sample("flat_json", _dumps(rng, _flat_fields(rng, planter)), tuple(planter.canaries))


def _dumps(rng: Random, record: Any) -> bytes:
    """JSON as shippers write it (stdlib json: it writes any integer, as a shipper may)."""
    return json.dumps(record, ensure_ascii=_maybe(rng, 0.5), separators=rng.choice(((",", ":"), (", ", ": ")))).encode()


# sshd messages: {user} is a planted user name, {host} the client, {port} a port, {ident} any identifier
_SSHD_MESSAGES: Final = (
    "Failed password for {user} from {host} port {port} ssh2",
    "Failed password for invalid user {user} from {host} port {port} ssh2",
    "Accepted publickey for {user} from {host} port {port} ssh2: RSA SHA256:{ident}",
    "Accepted password for {user} from {host} port {port} ssh2",
    "Invalid user {user} from {host} port {port}",
    "Illegal user {user} from {host}",
    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={host}  user={user}",
    "Disconnected from authenticating user {user} {host} port {port} [preauth]",
    "Connection closed by invalid user {user} {host} port {port} [preauth]",
    "Received disconnect from {host} port {port}:11: {ident} [preauth]",
    "Received disconnect from {host} port {port}:14: No more user authentication methods available. [preauth]",
    "Did not receive identification string from {host} port {port}",
    "Bad protocol version identification '{ident}' from {host} port {port}",
    "maximum authentication attempts exceeded for {user} from {host} port {port} ssh2 [preauth]",
    "User {user} from {host} not allowed because not listed in AllowUsers",
    "Unable to negotiate with {host} port {port}: no matching key exchange method found. Their offer: {ident}",
    "Timeout before authentication for {host} port {port}",
    "error: PAM: Authentication failure for illegal user {user} from {host}",
    "reverse mapping checking getaddrinfo for {ident} [{host}] failed - POSSIBLE BREAK-IN ATTEMPT!",
    # a user name that carries a fake "from X port N": the address sshd wrote is the last one
    "Failed password for invalid user {user} from {ident} port 22 from {host} port {port} ssh2",
    "Failed none for {user}:{ident} from {host} port {port} ssh2",
)


def _syslog_prefix(rng: Random, program: str) -> str:
    at = _event_time(rng)
    style = rng.randrange(4)
    if style == 0:
        return f"{_syslog_stamp(at)} host {program}[{rng.randint(2, 65_000)}]: "
    if style == 1:
        return f"<38>1 {at:%Y-%m-%dT%H:%M:%S}.000Z host {program} {rng.randint(2, 65_000)} - - "
    if style == 2:
        return f"{at:%Y-%m-%dT%H:%M:%S}+00:00 host {program}[{rng.randint(2, 65_000)}]: "
    return f"{_syslog_stamp(at)} {program}[{rng.randint(2, 65_000)}]: "


def _sshd_message(rng: Random, planter: Planter) -> str:
    template = rng.choice(_SSHD_MESSAGES)
    rhost_name = "rhost" in template and _maybe(rng, 0.3)
    host = planter.hostname("ssh_rhost") if rhost_name else planter.client()
    return template.format(
        user=planter.user("ssh_user") if "{user}" in template else "",
        host=host,
        port=rng.randint(1024, 65_535),
        ident=planter.ident("ssh_text") if "{ident}" in template else "",
    )


def _sshd(rng: Random) -> Sample:
    planter = Planter(rng)
    program = rng.choice(("sshd", "sshd", "sshd-session", "sshd(pam_unix)"))
    line = _syslog_prefix(rng, program) + _sshd_message(rng, planter)
    return Sample("sshd_syslog", line.encode(), tuple(planter.canaries))


_REPEATS: Final = (2, 3, 10, 100, 999, 1000, 1001, 5000, 10**6, 10**12, 2**64, 10**30)


def _sshd_repeated(rng: Random) -> Sample:
    """rsyslog's ``message repeated N times: [ MSG ]``: N is whatever the line says."""
    planter = Planter(rng)
    count: int | str = rng.choice(_REPEATS)
    if _maybe(rng, 0.05):
        count = "9" * rng.choice((20, 4301, 6000))  # past int()'s default digit limit
    message = _sshd_message(rng, planter)
    line = _syslog_prefix(rng, "sshd") + f"message repeated {count} times: [ {message}]"
    return Sample("sshd_repeated", line.encode(), tuple(planter.canaries))


def _syslog_web(rng: Random) -> Sample:
    planter = Planter(rng)
    program = rng.choice(("nginx", "apache2", "httpd", "haproxy", "nginx-access"))
    line = _syslog_prefix(rng, program) + _access_line(rng, planter)
    return Sample("syslog_web", line.encode(), tuple(planter.canaries))


def _error_line(rng: Random, planter: Planter) -> str:
    at = _event_time(rng)
    host = planter.client()
    style = rng.randrange(5)
    stamp = f"{_DAYS[at.weekday()]} {_MONTHS[at.month - 1]} {at.day:02d} {at:%H:%M:%S}"
    port = rng.randint(1024, 65535)
    path = _path(rng, planter, "error_url")
    if style == 0:
        client = f"[{host}]" if ":" in host else host
        return (
            f"[{stamp}.123456 {at.year}] [auth_basic:error] [pid 1:tid 2] [client {client}:{port}]"
            f" AH01618: user {planter.user('error_user')} not found: {path}"
        )
    if style == 1:
        return (
            f"[{stamp} {at.year}] [error] [client {host}] user {planter.user('error_user')}: authentication failure "
            f'for "{path}": Password Mismatch, referer: {_referrer(rng, planter)}'
        )
    if style == 2:
        return (
            f"[{stamp} {at.year}] [error] [client {host}] File does not exist: /var/www{path}, "
            f"referer: {_referrer(rng, planter)}"
        )
    nginx_stamp = f"{at:%Y/%m/%d %H:%M:%S}"
    if style == 3:
        return (
            f'{nginx_stamp} [error] 1234#0: *5 user "{planter.user("error_user")}" was not found in '
            f'"/etc/nginx/.htpasswd", client: {host}, server: example.com, request: "GET {path} HTTP/1.1", '
            f'host: "example.com", referrer: "{_referrer(rng, planter)}"'
        )
    return (
        f'{nginx_stamp} [error] 1234#0: *1 open() "/usr/share/nginx/html{path}" failed (2: No such file or '
        f'directory), client: {host}, server: example.com, request: "{_method(rng, planter)} {path} HTTP/1.1", '
        f'host: "example.com"'
    )


def _error_log(rng: Random) -> Sample:
    planter = Planter(rng)
    line = _error_line(rng, planter)
    if _maybe(rng, 0.2):
        line = _syslog_prefix(rng, rng.choice(("nginx", "httpd"))) + line
    return Sample("error_log", line.encode(), tuple(planter.canaries))


def _json_wrapped(rng: Random) -> Sample:
    """Filebeat without ingest pipeline, journald, rsyslog omkafka: a raw line inside a JSON wrapper."""
    planter = Planter(rng)
    kind = rng.randrange(3)
    wrapper: dict[str, Any] = {}
    if kind == 0:
        message = _access_line(rng, planter)
    elif kind == 1:
        message = _sshd_message(rng, planter)
        wrapper[rng.choice(("process.name", "programname", "SYSLOG_IDENTIFIER"))] = "sshd"
    else:
        message = _error_line(rng, planter)
    wrapper[rng.choice(("message", "log", "msg", "MESSAGE"))] = message
    if _maybe(rng, 0.7):
        wrapper[rng.choice(("@timestamp", "timestamp", "time"))] = _event_time(rng).strftime("%Y-%m-%dT%H:%M:%SZ")
    if _maybe(rng, 0.3):
        wrapper["host"] = {"name": planter.ident("json_other", ("hex_token", "uuid"))}
    return Sample("json_wrapped", _dumps(rng, _nest(wrapper, rng)), tuple(planter.canaries))


# --- wrong types, hostile methods, huge fields, adversarial text -----------------------------------------

_WRONG_VALUES: Final[tuple[Callable[[Random], Any], ...]] = (
    lambda r: r.randint(0, 10**6),
    lambda r: 2**64,
    lambda r: 2**63,
    lambda r: -(2**63) - 1,
    lambda r: 10 ** r.randint(20, 400),
    lambda r: -r.randint(1, 10**6),
    lambda r: r.choice((1.5, -0.0, 1e308, 3.0, 2.0**70, 1e-300)),
    lambda r: {"nested": {"deeper": [1, "x"]}},
    lambda r: [],
    lambda r: ["a", 1, None],
    lambda r: None,
    lambda r: r.choice((True, False)),
    lambda r: "",
    lambda r: "-",
    lambda r: " " * r.randint(1, 5),
    lambda r: "\u0000\u202e\ud7ff",
    lambda r: "9" * r.randint(20, 5000),
    lambda r: "x" * r.randint(1000, 20_000),
    lambda r: {},
)


def _json_wrong_types(rng: Random) -> Sample:
    """One or more fields of an ECS or flat JSON record replaced by a value of the wrong type or range."""
    planter = Planter(rng)
    ecs = _maybe(rng, 0.5)
    fields = _ecs_fields(rng, planter) if ecs else _flat_fields(rng, planter)
    for key in rng.sample(sorted(fields), k=rng.randint(1, 3)):
        fields[key] = rng.choice(_WRONG_VALUES)(rng)
    record = _nest(fields, rng) if ecs else fields
    return Sample("json_wrong_types", _dumps(rng, record), tuple(planter.canaries))


def _huge_integers(rng: Random) -> Sample:
    """The issue's poison record: an integer beyond 64 bits in an Apache ``%b`` or a JSON status / bytes."""
    planter = Planter(rng)
    big = rng.choice((2**64, 2**63, 10**20, 10**30, 10 ** rng.randint(19, 4000)))
    style = rng.randrange(3)
    if style == 0:
        line = _access_line(rng, planter)
        head, _, tail = line.partition('" ')
        status, _, rest = tail.partition(" ")
        _, _, rest = rest.partition(" ")
        return Sample("huge_integers", f'{head}" {status} {big} {rest}'.encode(), tuple(planter.canaries))
    fields = _ecs_fields(rng, planter)
    fields["http.response.status_code" if style == 1 else "http.response.body.bytes"] = big
    return Sample("huge_integers", _dumps(rng, _nest(fields, rng)), tuple(planter.canaries))


def _hostile_method(rng: Random) -> Sample:
    """Methods and versions a client chooses: identifiers, odd tokens, bytes, lengths."""
    planter = Planter(rng)
    method = planter.ident("method") if _maybe(rng, 0.6) else rng.choice(_ODD_METHODS)
    version = "HTTP/" + planter.ident("version") if _maybe(rng, 0.4) else rng.choice(_ODD_VERSIONS)
    target = _target(rng, planter)
    if _maybe(rng, 0.5):
        request = f"{method} {target} {version}"
        line = (
            f'{planter.client()} - - [{_apache_time(_event_time(rng))}] "{_escape_quoted(request)}" 400 0 "-" '
            f'"{_escape_quoted(_agent(rng, planter))}"'
        )
        return Sample("hostile_method", line.encode(), tuple(planter.canaries))
    fields = _ecs_fields(rng, planter)
    fields["http.request.method"] = method
    fields["http.version"] = version.removeprefix("HTTP/")
    return Sample("hostile_method", _dumps(rng, _nest(fields, rng)), tuple(planter.canaries))


# The parser rejects records over max_record_bytes (65536); signals match an 8 KB window today; the user agent
# reducer reads 512 characters; a path keeps 12 segments of 64 characters; a query keeps 16 parameters.
_SIZE_LIMITS: Final = (512, 513, 1024, 4096, 8191, 8192, 8193, 16_384, 65_000, 65_536, 65_537, 200_000)


def _huge_fields(rng: Random) -> Sample:
    """One field padded to (or past) a limit, an identifier hidden at its start, middle or end."""
    planter = Planter(rng)
    size = rng.choice(_SIZE_LIMITS)
    value = planter.ident("huge_" + rng.choice(("path", "query", "agent", "referrer", "method", "user")))
    where = planter.canaries[-1].field.removeprefix("huge_")
    filler = rng.choice(("a", "/a", "%41", "ab/", "x=1&", " ", "é"))
    pad = filler * max(1, (size - len(value)) // len(filler))
    position = rng.randrange(3)
    padded = (value + pad) if position == 0 else (pad + value) if position == 2 else pad[: len(pad) // 2] + value + pad
    method, target, agent, referrer, user = "GET", "/", _AGENTS[0], "-", "-"
    if where == "path":
        target = "/" + padded.lstrip("/")
    elif where == "query":
        target = "/search?utm_campaign=" + padded
    elif where == "agent":
        agent = padded
    elif where == "referrer":
        referrer = "https://www.example.com/" + padded
    elif where == "method":
        method = padded.replace(" ", "_").replace("/", "_")
    else:
        user = padded.replace(" ", "_")
    line = (
        f'{planter.client()} - {user} [{_apache_time(_event_time(rng))}] "{method} {target} HTTP/1.1" 200 5 '
        f'"{_escape_quoted(referrer)}" "{_escape_quoted(agent)}"'
    )
    return Sample("huge_fields", line.encode(), tuple(planter.canaries))


# Runs that make a backtracking matcher slow: newlines (raw and %0a) before whitespace-eating patterns,
# %25 chains (double-encoding), quotes, shell metacharacters, traversal, many segments and parameters.
_ADVERSARIAL_UNITS: Final = (
    "%0a",
    "%0A%20",
    "\\n",
    "%25",
    "%2525",
    ";",
    "|",
    "$(",
    "`",
    "'",
    "' or ",
    "<",
    "<script",
    "../",
    "..%2f",
    "%00",
    "/",
    "a/",
    "a=1&",
    "{",
    " ",
    "union select ",
    "\\x0a",
    "%u0027",
)


def adversarial_field(rng: Random, size: int) -> str:
    """A field of about ``size`` characters made of one or two repeated hostile units."""
    unit = rng.choice(_ADVERSARIAL_UNITS)
    if _maybe(rng, 0.5):
        unit += rng.choice(_ADVERSARIAL_UNITS)
    return unit * max(1, size // len(unit))


def _adversarial(rng: Random) -> Sample:
    """Hostile text in the fields signals match (user agent, referrer, path, query) at sizes up to the limits."""
    planter = Planter(rng)
    size = rng.choice((256, 512, 1024, 2048, 4096, 8192, 16_000))
    text = adversarial_field(rng, size)
    where = rng.randrange(4)
    target, referrer, agent = "/index.html", "-", _AGENTS[0]
    if where == 0:
        agent = text
    elif where == 1:
        referrer = "https://www.example.com/?q=" + text
    elif where == 2:
        target = "/" + text.lstrip("/")
    else:
        target = "/search?q=" + text
    line = (
        f'{planter.client()} - - [{_apache_time(_event_time(rng))}] "GET {_escape_quoted(target)} HTTP/1.1" 200 5 '
        f'"{_escape_quoted(referrer)}" "{_escape_quoted(agent)}"'
    )
    return Sample("adversarial_text", line.encode(), tuple(planter.canaries))


def benign_sized(rng: Random, size: int) -> Sample:
    """A benign Apache line of about ``size`` bytes (long path of words): the baseline of the slowness ratios."""
    planter = Planter(rng)
    head = f'{planter.client()} - - [{_apache_time(_event_time(rng))}] "GET '
    tail = f' HTTP/1.1" 200 5 "https://www.example.com/" "{_AGENTS[0]}"'
    words: list[str] = []
    length = len(head) + len(tail)
    while length < size:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    path = "/" + "/".join(words) if words else "/"
    return Sample("benign", (head + path + tail).encode(), tuple(planter.canaries))


# --- mutations, random bytes, invalid UTF-8 -------------------------------------------------------------

_INSERTS: Final = (b'"', b"\\", b" ", b"\x00", b"\n", b"\r", b"{", b"}", b"[", b"]", b"%", b":", b"\xff", b"\xc3")


def mutate(rng: Random, raw: bytes) -> tuple[bytes, str]:
    """One to three random edits: bit flips, inserts, deletes, truncation, duplication, field swaps."""
    names = []
    data = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        operation = rng.randrange(8)
        at = rng.randrange(len(data) + 1)
        if operation == 0 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
            names.append("flip")
        elif operation == 1:
            data[at:at] = rng.choice(_INSERTS) * rng.randint(1, 4)
            names.append("insert")
        elif operation == 2:
            del data[at : at + rng.randint(1, 16)]
            names.append("delete")
        elif operation == 3:
            del data[at:]
            names.append("truncate")
        elif operation == 4:
            end = min(len(data), at + rng.randint(1, 64))
            data[at:at] = data[at:end] * rng.randint(1, 4)
            names.append("duplicate")
        elif operation == 5:
            parts = bytes(data).split(b" ")
            if len(parts) > 2:
                i, j = rng.sample(range(len(parts)), 2)
                parts[i], parts[j] = parts[j], parts[i]
                data = bytearray(b" ".join(parts))
            names.append("swap_fields")
        elif operation == 6:
            digits = [i for i, b in enumerate(data) if 48 <= b <= 57]
            if digits:
                i = rng.choice(digits)
                data[i : i + 1] = str(rng.choice((2**64, 10**25, 10**400))).encode()
            names.append("huge_number")
        else:
            data += b" " + bytes(data[: rng.randint(0, len(data))])
            names.append("append_copy")
    return bytes(data), "+".join(names)


_REAL_LOGS: Final = (
    ("elastic-apache-access", "apache_logs_2015-05-17_18"),
    ("loghub-openssh", "OpenSSH_2k.log"),
    ("loghub-linux", "Linux_2k.log"),
    ("loghub-apache-error", "Apache_2k.log"),
)


@dataclass
class RealLines:
    """Lines of the shared real logs (empty where the folder is absent), with where each came from."""

    lines: list[tuple[str, bytes]] = field(default_factory=list)  # ("file:line", raw)


def real_lines(shared: Path) -> RealLines:
    found = RealLines()
    for folder, name in _REAL_LOGS:
        path = shared / "logs" / folder / name
        if not path.exists():
            continue
        for number, line in enumerate(path.read_bytes().splitlines()):
            if line.strip():
                found.lines.append((f"{folder}/{name}:{number + 1}", line))
    return found


def mutated_real(rng: Random, real: RealLines) -> Sample:
    """A real log line, mutated; an access line's client address is checked for like a planted one."""
    origin, line = rng.choice(real.lines)
    raw, mutation = mutate(rng, line)
    canaries: tuple[Canary, ...] = ()
    client = line.partition(b" ")[0].decode("ascii", "replace")
    parts = client.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts) and parts[3] != "0":  # an access line's client
        canaries = (Canary("client_ipv4", "source", client, (client,)),)
    return Sample("mutated_real", raw, canaries, origin, mutation)


def _mutated_generated(rng: Random) -> Sample:
    base = rng.choice(_PLANTED)(rng)
    raw, mutation = mutate(rng, base.raw)
    return Sample("mutated_generated", raw, base.canaries, None, f"{base.family}:{mutation}")


def _random_bytes(rng: Random) -> Sample:
    size = rng.choice((1, 2, 16, 100, 1000, 10_000))
    return Sample("random_bytes", rng.randbytes(size))


def _invalid_utf8(rng: Random) -> Sample:
    """A valid record with bytes that are not UTF-8: lone continuation bytes, overlongs, surrogates, 0xff."""
    base = rng.choice(_PLANTED)(rng)
    data = bytearray(base.raw)
    bad = rng.choice((b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xff", b"\xf8\x88\x80\x80\x80", b"\xe2\x82"))
    at = rng.randrange(len(data) + 1)
    data[at:at] = bad
    return Sample("invalid_utf8", bytes(data), base.canaries, None, base.family)


# --- the families -----------------------------------------------------------------------------------------

_PLANTED: Final[tuple[Callable[[Random], Sample], ...]] = (
    _apache_combined,
    _apache_common,
    _ecs_json,
    _flat_json,
    _json_wrapped,
    _syslog_web,
    _sshd,
    _error_log,
)

# family -> (generator, weight in a fuzz run). Generators take only the Random; mutated_real needs the real
# lines and is added by the benchmark where they exist.
FAMILIES: Final[dict[str, tuple[Callable[[Random], Sample], float]]] = {
    "apache_combined": (_apache_combined, 14),
    "apache_common": (_apache_common, 4),
    "ecs_json": (_ecs_json, 10),
    "flat_json": (_flat_json, 8),
    "json_wrapped": (_json_wrapped, 5),
    "syslog_web": (_syslog_web, 4),
    "sshd_syslog": (_sshd, 8),
    "sshd_repeated": (_sshd_repeated, 2),
    "error_log": (_error_log, 4),
    "json_wrong_types": (_json_wrong_types, 9),
    "huge_integers": (_huge_integers, 1),
    "hostile_method": (_hostile_method, 5),
    "huge_fields": (_huge_fields, 1),
    "adversarial_text": (_adversarial, 0.3),
    "mutated_generated": (_mutated_generated, 8),
    "random_bytes": (_random_bytes, 2),
    "invalid_utf8": (_invalid_utf8, 1.5),
}
MUTATED_REAL_WEIGHT: Final = 12.0


def generate(family: str, rng: Random) -> Sample:
    """One record of ``family`` (a key of :data:`FAMILIES`)."""
    return FAMILIES[family][0](rng)


# --- the checker ------------------------------------------------------------------------------------------


def _whole_quad(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else ""
    after = text[end] if end < len(text) else ""
    return not before.isdigit() and not after.isdigit()


def find_leaks(output: str, canaries: Iterable[Canary]) -> list[Canary]:
    """The canaries found in one output text (case-insensitive, raw or percent-decoded)."""
    lowered = output.lower()
    texts = (lowered, unquote(lowered)) if "%" in lowered else (lowered,)
    found = []
    for canary in canaries:
        if _contains(texts, canary):
            found.append(canary)
    return found


def _contains(texts: tuple[str, ...], canary: Canary) -> bool:
    for text in texts:
        for needle in canary.needles:
            at = text.find(needle)
            while at >= 0:
                if not canary.bounded or _whole_quad(text, at, at + len(needle)):
                    return True
                at = text.find(needle, at + 1)
    return False
