"""The parsed event: what every input format is reduced to before any privacy transform runs.

A parser turns one raw record (bytes) into one or more :class:`Event` (an rsyslog
``message repeated N times`` line is one event with ``repeat=N``). Fields hold *raw* values (the client IP, the full
URL with its query): they exist only between the parser and the transforms and are never
serialized. The output records are built from them by the policy (see ``transforms.policy``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final


class EventKind(StrEnum):
    HTTP = "http"  # a web access-log request
    SSH = "ssh"  # an sshd authentication event


class SshOutcome(StrEnum):
    FAILED = "failed"  # "Failed password for [invalid user] X from IP"
    ACCEPTED = "accepted"  # "Accepted password|publickey for X from IP"
    INVALID_USER = "invalid_user"  # "Invalid user X from IP" (no password tried yet)
    AUTH_FAILURE = "auth_failure"  # pam_unix "authentication failure; ... rhost=IP user=X"
    DISCONNECT = "disconnect"  # preauth disconnects / "Received disconnect from IP"
    OTHER = "other"  # any other sshd line that names a client IP


# The HTTP methods an output may name (RFC 9110, PATCH from RFC 5789, WebDAV from RFC 4918). The method is
# whatever a client sends, so anything else is OTHER: an IP address, an e-mail or a token sent as a method
# never reaches an output as text. Methods are case-sensitive (RFC 9110 9.1): "get" is OTHER too.
HTTP_METHODS: Final = frozenset(
    {
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK",
    }
)  # fmt: skip
# HTTP versions as logged, to their canonical names (HTTP/2 and HTTP/3 have no minor version).
HTTP_VERSIONS: Final = {
    "HTTP/1.0": "HTTP/1.0",
    "HTTP/1.1": "HTTP/1.1",
    "HTTP/2": "HTTP/2",
    "HTTP/2.0": "HTTP/2",
    "HTTP/3": "HTTP/3",
    "HTTP/3.0": "HTTP/3",
}
OTHER: Final = "OTHER"


def classify_method(method: str | None) -> str | None:
    """The method if it is one of :data:`HTTP_METHODS`, else ``"OTHER"``; None stays None (no request line).

    >>> classify_method("PROPFIND"), classify_method("203.0.113.77"), classify_method("get")
    ('PROPFIND', 'OTHER', 'OTHER')
    """
    if method is None:
        return None
    return method if method in HTTP_METHODS else OTHER


def classify_version(version: str | None) -> str | None:
    """The canonical HTTP version (``HTTP/2.0`` -> ``HTTP/2``), ``"OTHER"`` for anything else, None for None.

    >>> classify_version("HTTP/2.0"), classify_version("HTTP/1.1"), classify_version("bob@example.com")
    ('HTTP/2', 'HTTP/1.1', 'OTHER')
    """
    if version is None:
        return None
    return HTTP_VERSIONS.get(version, OTHER)


@dataclass(frozen=True, slots=True)
class Event:
    """One request or authentication attempt, with raw values, as read from a record."""

    kind: EventKind
    source_ip: str  # the client address as text (after X-Forwarded-For resolution), not yet validated
    # event time (timezone-aware UTC): from the record, or the ingest time when the record's is missing or
    # implausible, in which case time_flag says why
    time: datetime
    # web access fields
    method: str | None = None
    url: str | None = None  # request target as logged: path and query, possibly absolute-URI
    http_version: str | None = None  # e.g. "HTTP/1.1"
    status: int | None = None
    bytes_sent: int | None = None
    referrer: str | None = None
    user_agent: str | None = None
    # identity found in the record: a username, user id or e-mail address (pseudonymized, never kept)
    user: str | None = None
    # sshd fields
    ssh_outcome: SshOutcome | None = None
    ssh_method: str | None = None  # "password", "publickey", ...
    invalid_user: bool = False  # the username did not exist on the host
    # provenance
    format: str = ""  # "ecs_json", "flat_json", "apache_combined", "sshd_syslog", ...
    time_flag: str | None = None  # None, or why ingest time was used: "missing", "unparseable", "implausible"
    extra: dict[str, str] = field(default_factory=dict)  # parser-specific hints, never raw personal data
    # How many identical lines this event stands for (rsyslog's "message repeated N times", capped by the
    # parser): one event carries the count as a number, so one input line never becomes N outputs.
    repeat: int = 1

    @property
    def method_class(self) -> str | None:
        """The method in the closed vocabulary of :func:`classify_method` (what outputs may carry)."""
        return classify_method(self.method)


@dataclass(frozen=True, slots=True)
class Observation:
    """What the stateful detector sees of one event: pseudonymized and minimized, safe for internal topics.

    Built by the record processor from an :class:`Event` after its transforms ran; it never holds a raw
    address, username, query string or user agent, so it may travel on a repartition topic (keyed by
    ``subject``) and live in a changelogged table.
    """

    subject: str  # security pseudonym of the source (the partitioning key)
    time: float  # event time, Unix seconds
    kind: str  # "http" | "ssh"
    signals: tuple[str, ...] = ()  # per-record rule ids that fired (transforms.signals.RULES)
    method: str | None = None
    status: int | None = None
    path: str | None = None  # templated path (transforms.url), never a query string
    user: str | None = None  # security pseudonym of the username, if any
    ssh_outcome: str | None = None
    bot: bool = False  # the reduced user agent says bot/crawler
    # Context copied into alerts: where the source is, coarsely.
    prefix: str | None = None
    scope: str | None = None
    country: str | None = None
    asn: int | None = None
    as_org: str | None = None
    repeat: int = 1  # identical events this one stands for (Event.repeat): the detector counts each
    # Its time is the record's own (not the ingest time a record without a plausible one gets): only such times
    # move event time on (transforms/event_time.py). Not carried on the observation topic.
    timed: bool = field(default=True, compare=False)

    def to_row(self) -> list[Any]:
        """The positional form the observation topic carries, without ``subject`` (it keys the row's group).

        Positional rows cost half of what field-named dicts did to encode, group and decode (measured: 3.5
        instead of 7.8 us per observation), and nearly every event becomes an observation.
        """
        return [
            self.time,
            self.kind,
            self.signals,
            self.method,
            self.status,
            self.path,
            self.user,
            self.ssh_outcome,
            self.bot,
            self.prefix,
            self.scope,
            self.country,
            self.asn,
            self.as_org,
            self.repeat,
        ]

    @classmethod
    def from_row(cls, subject: str, row: list[Any]) -> Observation:
        """The observation :meth:`to_row` encoded (after a JSON round trip); ValueError on a malformed row."""
        if not isinstance(row, list) or len(row) not in (OBSERVATION_ROW_LENGTH, OBSERVATION_ROW_LENGTH - 1):
            # One shorter: a row written before ``repeat`` existed (still in the topic after an upgrade).
            raise ValueError("observation row of the wrong shape")
        time, kind, signals, *rest = row
        observation = cls(subject, time, kind, tuple(signals) if signals else (), *rest)
        # The fields the consumer computes with (event time, the repeat count) are checked; the rest are
        # compared only, and a wrong type there matches nothing.
        if type(time) not in (int, float) or type(observation.repeat) is not int or observation.repeat < 1:
            raise ValueError("observation row with a wrong time or repeat")
        return observation


# Every field but ``subject``, in declaration order: the length of :meth:`Observation.to_row`.
OBSERVATION_ROW_LENGTH: Final = len(Observation.__slots__) - 2  # subject keys the row's group; timed stays local
