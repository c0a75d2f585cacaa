"""The sample traffic generator: deterministic, mixed as asked, and shaped like real shipper output."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import math
import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import maxminddb
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import traffic
from pipeline.traffic import (
    DEMO_MIX,
    OVERSIZED_BYTES,
    Population,
    SampleRecord,
    TrafficMix,
    generate,
    generate_for_demo,
    generate_records,
    produce,
)
from tests.conftest import shared_path
from transforms.errors import ConfigError, Reason

START = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)

COMBINED = re.compile(
    rb"^(?P<ip>\S+) - (?P<user>\S+) \[(?P<time>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000)\] "
    rb'"(?P<method>[A-Z]+) (?P<target>(?:[^"\\]|\\.)+) HTTP/1\.1" (?P<status>\d{3}) (?P<size>\d+|-) '
    rb'"(?P<referrer>(?:[^"\\]|\\.)*)" "(?P<ua>(?:[^"\\]|\\.)*)"$'
)
SYSLOG = re.compile(
    rb"^(?P<month>[A-Z][a-z]{2}) (?P<day>[ \d]\d) \d\d:\d\d:\d\d (?P<host>\S+) sshd\[\d+\]: (?P<msg>.+)$"
)
SSH_IP = r"(?P<ip>[0-9a-f.:]+)"
SSH_MESSAGES = [
    re.compile(p)
    for p in (
        rf"^Failed password for (invalid user )?\S+ from {SSH_IP} port \d+ ssh2$",
        rf"^Accepted publickey for \S+ from {SSH_IP} port \d+ ssh2: (ED25519|RSA) SHA256:\S+$",
        rf"^Invalid user \S+ from {SSH_IP} port \d+$",
        rf"^message repeated \d+ times: \[ Failed password for (invalid user )?\S+ from {SSH_IP} port \d+ ssh2\]$",
        rf"^pam_unix\(sshd:auth\): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
        rf"rhost={SSH_IP}  user=\S+$",
        rf"^Received disconnect from {SSH_IP} port \d+:11: .+$",
        rf"^Disconnect(ed|ing) from (user|invalid user|authenticating user) \S+ {SSH_IP} port \d+.*$",
        rf"^Disconnecting (invalid user|authenticating user) \S+ {SSH_IP} port \d+: "
        r"Too many authentication failures \[preauth\]$",
        rf"^Connection closed by authenticating user \S+ {SSH_IP} port \d+ \[preauth\]$",
    )
]
SCANNER_AGENTS = ("zgrab", "Nikto", "sqlmap")
BOT_AGENTS = ("Googlebot", "bingbot", "AhrefsBot", "SemrushBot", "YandexBot", "Applebot", "GPTBot")
DOCUMENTATION_NETS = [
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]


def records(count: int = 2000, **kwargs: object) -> list[SampleRecord]:
    return list(generate_records(count, start=START, **kwargs))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sample() -> list[SampleRecord]:
    """The 2,000 records most tests look at (seed 7, default mix)."""
    return records()


def http_fields(record: SampleRecord) -> dict[str, object]:
    """method/target/status/user agent/referrer of a well-formed HTTP record, whatever its format."""
    if record.format == "ecs_json":
        doc = orjson.loads(record.value)
        return {
            "ip": doc["source"]["ip"],
            "method": doc["http"]["request"]["method"],
            "target": doc["url"]["original"],
            "status": doc["http"]["response"]["status_code"],
            "ua": doc["user_agent"]["original"],
            "referrer": doc["http"]["request"].get("referrer"),
        }
    match = COMBINED.match(record.value)
    assert match, record.value
    referrer = match["referrer"].decode()
    return {
        "ip": match["ip"].decode(),
        "method": match["method"].decode(),
        "target": match["target"].decode(),
        "status": int(match["status"]),
        "ua": match["ua"].decode(),
        "referrer": None if referrer == "-" else referrer,
    }


# --- determinism and arguments ---------------------------------------------------------------------------


def test_same_seed_and_start_give_the_same_bytes() -> None:
    """Two runs with one seed and start are byte-identical; another seed gives another stream."""
    first = list(generate(500, seed=3, start=START))
    assert first == list(generate(500, seed=3, start=START))
    assert first != list(generate(500, seed=4, start=START))


def test_a_naive_start_is_read_as_utc() -> None:
    """A start without a time zone means UTC, so it gives the same stream as the aware one."""
    naive = START.replace(tzinfo=None)
    assert list(generate(50, start=naive)) == list(generate(50, start=START))


def test_default_start_is_now() -> None:
    """Without start, the first events are stamped around the current time."""
    first = next(generate_records(1))
    assert abs(first.time - datetime.now(UTC)) < timedelta(seconds=10)


def test_count_none_generates_without_end() -> None:
    """count=None is an endless stream (for the live demo); it is lazy."""
    assert len(list(itertools.islice(generate(None, start=START), 5000))) == 5000


def test_count_zero_generates_nothing() -> None:
    assert list(generate(0, start=START)) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": -1}, "count"),  # negative count
        ({"events_per_second": 0}, "events_per_second"),  # the clock would not advance
        ({"events_per_second": math.inf}, "events_per_second"),
        ({"json_share": 1.5}, "json_share"),  # a share is between 0 and 1
        ({"json_share": -0.1}, "json_share"),
    ],
)
def test_bad_arguments_fail_at_call_time(kwargs: dict[str, object], message: str) -> None:
    """Bad arguments raise ConfigError naming the argument when generate() is called, not on first next()."""
    args: dict[str, object] = {"count": 10, **kwargs}
    with pytest.raises(ConfigError, match=message):
        generate(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"browsing": -0.1}, "browsing"),  # negative weight
        ({"scanner": math.nan}, "scanner"),  # not a number
        ({"browsing": 0, "crawlers": 0, "brute_force": 0, "scanner": 0, "malformed": 0}, "at least one"),
    ],
)
def test_traffic_mix_rejects_bad_weights(weights: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrafficMix(**weights)


# --- the mix ---------------------------------------------------------------------------------------------


def test_every_population_appears_in_2000_records(sample: list[SampleRecord]) -> None:
    assert {r.population for r in sample} == set(Population)


@pytest.mark.parametrize("mix", [TrafficMix(), DEMO_MIX, TrafficMix(browsing=1, scanner=1, malformed=2)])
def test_mix_proportions_are_roughly_respected(mix: TrafficMix) -> None:
    """Each population's count is within 4 standard deviations of its expected share."""
    n = 4000
    counts = Counter(r.population for r in records(n, mix=mix, seed=11))
    total = sum(mix.weights())
    for population, weight in zip(Population, mix.weights(), strict=True):
        p = weight / total
        assert abs(counts[population] - n * p) <= 4 * math.sqrt(n * p * (1 - p)) + 1, (population, counts)


def test_a_zero_weight_turns_a_population_off() -> None:
    populations = {r.population for r in records(1000, mix=TrafficMix(scanner=0, malformed=0))}
    assert Population.SCANNER not in populations
    assert Population.MALFORMED not in populations


def test_malformed_share_is_present(sample: list[SampleRecord]) -> None:
    """About 1% of the default stream is malformed: the quarantine path shows up."""
    malformed = [r for r in sample if r.population is Population.MALFORMED]
    assert 5 <= len(malformed) <= 45
    assert all(r.reason is not None for r in malformed)
    assert all(r.reason is None for r in sample if r.population is not Population.MALFORMED)


def test_demo_mix_has_more_attacks_and_errors() -> None:
    demo = Counter(r.population for r in generate_records(3000, start=START, mix=DEMO_MIX))
    default = Counter(r.population for r in records(3000))
    for population in (Population.BRUTE_FORCE, Population.SCANNER, Population.MALFORMED):
        assert demo[population] > default[population]
    assert len(list(generate_for_demo(100, start=START))) == 100


@pytest.mark.parametrize("json_share", [0.0, 0.3, 1.0])
def test_json_share_sets_the_share_of_http_records_written_as_ecs(json_share: float) -> None:
    http = [r for r in records(3000, json_share=json_share) if r.reason is None and r.format != "sshd_syslog"]
    share = sum(r.format == "ecs_json" for r in http) / len(http)
    assert abs(share - json_share) < 0.04


# --- formats ---------------------------------------------------------------------------------------------


def test_json_records_are_ecs_documents(sample: list[SampleRecord]) -> None:
    """Well-formed JSON records parse and carry Filebeat's nested ECS fields with the right types."""
    docs = [orjson.loads(r.value) for r in sample if r.format == "ecs_json" and r.reason is None]
    assert len(docs) > 300
    for doc in docs:
        datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))
        ipaddress.ip_address(doc["source"]["ip"])
        assert isinstance(doc["url"]["original"], str)
        assert isinstance(doc["user_agent"]["original"], str)
        assert doc["http"]["request"]["method"] in {"GET", "POST", "HEAD"}
        assert isinstance(doc["http"]["response"]["status_code"], int)
        assert isinstance(doc["http"]["response"]["body"]["bytes"], int)
        assert isinstance(doc["http"]["request"].get("referrer", ""), str)
    assert any("referrer" in d["http"]["request"] for d in docs)
    assert any("@" in d.get("user", {}).get("email", "") for d in docs)


def test_apache_records_are_combined_log_lines(sample: list[SampleRecord]) -> None:
    lines = [r for r in sample if r.format == "apache_combined" and r.reason is None]
    assert len(lines) > 800
    for record in lines:
        match = COMBINED.match(record.value)
        assert match, record.value
        assert match["ip"].decode() == record.source_ip
        ipaddress.ip_address(match["ip"].decode())
        datetime.strptime(match["time"].decode(), "%d/%b/%Y:%H:%M:%S %z")


def test_sshd_records_look_like_sshd_syslog(sample: list[SampleRecord]) -> None:
    """Every sshd record is a syslog line whose message is one of OpenSSH's, naming the record's source IP."""
    lines = [r for r in sample if r.format == "sshd_syslog"]
    assert len(lines) > 50
    kinds: Counter[int] = Counter()
    for record in lines:
        match = SYSLOG.match(record.value)
        assert match, record.value
        message = match["msg"].decode()
        hits = [
            i for i, pattern in enumerate(SSH_MESSAGES) if (m := pattern.match(message)) and m["ip"] == record.source_ip
        ]
        assert hits, message
        kinds[hits[0]] += 1
    assert kinds[0] > 0, "failed passwords"
    assert kinds[2] > 0, "invalid users"
    assert kinds[3] > 0, "rsyslog's folded repeats"
    more = [r.value for r in records(5000, seed=2) if r.format == "sshd_syslog"]
    assert any(b"Accepted publickey for deploy from 10." in line for line in more)


def test_syslog_days_are_space_padded() -> None:
    record = next(r for r in generate_records(500, start=datetime(2025, 3, 3, tzinfo=UTC)) if r.format == "sshd_syslog")
    assert record.value.startswith(b"Mar  3 ")


def test_well_formed_records_are_utf8_and_under_the_size_limit(sample: list[SampleRecord]) -> None:
    for record in sample:
        if record.reason is None:
            record.value.decode("utf-8")
            assert 0 < len(record.value) <= OVERSIZED_BYTES
            assert record.source_ip is not None
            assert record.source_ip.encode() in record.value


def test_timestamps_advance_at_the_rate_and_a_few_go_back() -> None:
    """2,000 events at 50/s span about 40 s; some are a little out of order, as in real access logs."""
    times = [r.time for r in records(2000, events_per_second=50)]
    span = (max(times) - min(times)).total_seconds()
    assert 37 < span < 43
    latest = times[0]
    late = 0
    for t in times:
        if t < latest - timedelta(seconds=0.4):
            late += 1
            assert latest - t < timedelta(seconds=4)
        latest = max(latest, t)
    assert 10 < late < 150


# --- populations -----------------------------------------------------------------------------------------


def test_browsing_comes_from_public_ipv4_and_ipv6_and_some_private_sources() -> None:
    browsing = [r for r in records(5000) if r.population is Population.BROWSING]
    addresses = {ipaddress.ip_address(r.source_ip or "") for r in browsing}
    assert len(addresses) > 60  # a few visitors come back often, most now and then
    assert any(a.version == 6 for a in addresses)
    assert any(a in ipaddress.ip_network("10.0.0.0/8") for a in addresses)
    for address in addresses:
        assert address.is_global or address in ipaddress.ip_network("10.0.0.0/8"), address
        assert not any(address in net for net in DOCUMENTATION_NETS), address


def test_browsing_uses_browser_user_agents(sample: list[SampleRecord]) -> None:
    agents = Counter(
        http_fields(r)["ua"] for r in sample if r.population is Population.BROWSING and r.format != "sshd_syslog"
    )
    for family in ("Chrome/", "Firefox/", "Safari/", "Edg/", "iPhone", "Android"):
        assert any(family in str(ua) for ua in agents), family


def test_browsing_urls_carry_personal_data_for_the_minimizer() -> None:
    """Queries and paths hold e-mails, tokens, user ids and tracking tags, as real ones do."""
    targets = [
        str(http_fields(r)["target"])
        for r in records(5000)
        if r.population is Population.BROWSING and r.format != "sshd_syslog"
    ]
    joined = "\n".join(targets)
    assert re.search(r"[?&]email=[^&\s]+(@|%40)example\.(com|org|net)", joined)
    assert re.search(r"/reset\?token=eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+", joined)
    assert re.search(r"/users/\d+/orders/\d+", joined)
    assert "utm_source=" in joined
    assert "gclid=" in joined
    assert any(t.startswith("/static/") for t in targets)
    assert any(t == "/login" for t in targets)


def test_reset_tokens_are_jwts_with_an_email_inside() -> None:
    import base64

    target = next(
        str(http_fields(r)["target"])
        for r in records(5000)
        if r.population is Population.BROWSING and b"/reset?token=" in r.value
    )
    payload = target.split("token=")[1].split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert "@example." in claims["email"]


def test_crawlers_use_bot_agents_fetch_robots_txt_and_many_paths(sample: list[SampleRecord]) -> None:
    crawls = [http_fields(r) for r in sample if r.population is Population.CRAWLERS]
    assert all(any(bot in str(c["ua"]) for bot in BOT_AGENTS) for c in crawls)
    targets = [c["target"] for c in crawls]
    assert "/robots.txt" in targets
    assert len(set(targets)) > 50


def test_brute_force_hammers_sshd_from_two_sources_and_login_from_one(sample: list[SampleRecord]) -> None:
    attacks = [r for r in sample if r.population is Population.BRUTE_FORCE]
    ssh = [r for r in attacks if r.format == "sshd_syslog"]
    http = [http_fields(r) for r in attacks if r.format != "sshd_syslog"]
    assert len({r.source_ip for r in ssh}) == 2
    assert sum(b"Failed password" in r.value for r in ssh) > 20
    assert sum(b"invalid user" in r.value for r in ssh) > 5
    assert len({h["ip"] for h in http}) == 1
    assert sum(h["method"] == "POST" and h["target"] == "/login" and h["status"] == 401 for h in http) > 10


def test_scanner_is_one_source_with_scanner_agents_probing_known_paths() -> None:
    probes = [http_fields(r) for r in records(4000) if r.population is Population.SCANNER]
    assert len({p["ip"] for p in probes}) == 1
    assert all(any(agent in str(p["ua"]) for agent in SCANNER_AGENTS) for p in probes)
    targets = {str(p["target"]) for p in probes}
    for wanted in ("/.env", "/.git/config", "/wp-admin/", "/phpmyadmin/", "/../../etc/passwd"):
        assert wanted in targets
    assert any("OR" in t and "'1'='1" in t for t in targets)  # the SQL injection probe, +-encoded
    assert sum(p["status"] == 404 for p in probes) > len(probes) / 2


def test_malformed_records_are_broken_the_way_their_reason_says() -> None:
    """Each malformed record fails exactly where its reason code says: the quarantine path's test oracle."""
    broken = records(600, mix=TrafficMix(browsing=0, crawlers=0, brute_force=0, scanner=0, malformed=1))
    by_reason: dict[Reason, list[SampleRecord]] = {}
    for record in broken:
        assert record.reason is not None
        by_reason.setdefault(record.reason, []).append(record)
    assert set(by_reason) == {
        Reason.INVALID_JSON, Reason.INVALID_UTF8, Reason.INVALID_IP, Reason.UNPARSEABLE_LINE, Reason.NOT_AN_OBJECT,
        Reason.WRONG_TYPE, Reason.MISSING_IP, Reason.EMPTY, Reason.OVERSIZED,
    }  # fmt: skip
    for record in by_reason[Reason.EMPTY]:
        assert record.value == b""
    for record in by_reason[Reason.OVERSIZED]:
        assert len(record.value) > OVERSIZED_BYTES
    for record in by_reason[Reason.INVALID_UTF8]:
        with pytest.raises(UnicodeDecodeError):
            record.value.decode("utf-8")
    for record in by_reason[Reason.INVALID_JSON]:
        assert record.value.startswith(b"{")
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(record.value)
    for record in by_reason[Reason.NOT_AN_OBJECT]:
        assert not isinstance(orjson.loads(record.value), dict)
    for record in by_reason[Reason.MISSING_IP]:
        assert "source" not in orjson.loads(record.value)
    for record in by_reason[Reason.WRONG_TYPE]:
        doc = orjson.loads(record.value)
        assert (
            not isinstance(doc["source"]["ip"], str)
            or not isinstance(doc["url"]["original"], str)
            or not isinstance(doc["http"]["response"]["status_code"], int)
        )
    for record in by_reason[Reason.INVALID_IP]:
        with pytest.raises(ValueError, match="does not appear to be"):
            ipaddress.ip_address(record.source_ip or "")
    for record in by_reason[Reason.UNPARSEABLE_LINE]:
        assert not record.value.startswith((b"{", b"["))
        assert not COMBINED.match(record.value)
        assert not SYSLOG.match(record.value)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), json_share=st.floats(min_value=0, max_value=1))
def test_any_seed_gives_parseable_well_formed_records(seed: int, json_share: float) -> None:
    """Property: for any seed, every record not built to be malformed is valid UTF-8 in its declared format."""
    for record in generate_records(300, seed=seed, start=START, mix=DEMO_MIX, json_share=json_share):
        if record.reason is not None:
            continue
        if record.format == "ecs_json":
            assert isinstance(orjson.loads(record.value), dict)
        elif record.format == "apache_combined":
            assert COMBINED.match(record.value), record.value
        else:
            assert record.format == "sshd_syslog"
            assert SYSLOG.match(record.value), record.value


@pytest.mark.shared_data
def test_visitor_networks_are_where_db_ip_says() -> None:
    """Each ISP range lies in the country the table claims, so a GeoIP lookup spreads visitors over many countries."""
    path = shared_path("geo", "dbip-country", "dbip-country.mmdb")
    import random

    rng = random.Random(1)
    with maxminddb.open_database(str(path)) as reader:
        for network, country, _ in traffic._ISP_V4 + traffic._ISP_V6:
            for _ in range(5):
                address = traffic._address(rng, network)
                found = reader.get(address)
                assert isinstance(found, dict), (network, address)
                assert found.get("country_code") == country, (network, address, found)
        visitors = {r.source_ip for r in records(5000) if r.population is Population.BROWSING}
        countries = {
            found.get("country_code")
            for ip in visitors
            if isinstance(found := reader.get(ip or ""), dict)  # private addresses have no country
        }
    assert len(countries) >= 15


# --- produce ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bootstrap", "servers"),
    [
        ("127.0.0.1:9092", ["127.0.0.1:9092"]),  # plain Kafka client form
        ("kafka://kafka:9092", ["kafka:9092"]),  # faust's URL form, as in PSEUDO_BROKER
        ("kafka://a:9092;kafka://b:9092", ["a:9092", "b:9092"]),  # faust's list
        ("a:9092, b:9092", ["a:9092", "b:9092"]),
    ],
)
def test_bootstrap_accepts_plain_and_faust_forms(bootstrap: str, servers: list[str]) -> None:
    assert traffic._bootstrap_servers(bootstrap) == servers


@pytest.mark.parametrize("rate", [0, -5, math.nan])
def test_produce_rejects_a_bad_rate_before_connecting(rate: float) -> None:
    with pytest.raises(ConfigError, match="rate"):
        asyncio.run(produce("127.0.0.1:1", "unused", [], rate=rate))


@pytest.mark.integration
def test_produce_delivers_every_record_without_a_key(kafka_bootstrap: str) -> None:
    """100 records (one oversized) go to a fresh topic at a set rate and come back unchanged and unkeyed."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    BOOTSTRAP = kafka_bootstrap
    topic = f"test-traffic-{uuid.uuid4().hex[:12]}"
    oversized = next(
        r.value
        for r in generate_records(None, start=START, mix=TrafficMix(0, 0, 0, 0, 1))
        if r.reason is Reason.OVERSIZED
    )
    values = [*generate(99, seed=5, start=START), oversized]

    async def run() -> tuple[int, float, list[tuple[bytes | None, bytes]]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
            began = asyncio.get_running_loop().time()
            sent = await produce(BOOTSTRAP, topic, values, rate=500)
            elapsed = asyncio.get_running_loop().time() - began
            consumer = AIOKafkaConsumer(
                topic, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest", enable_auto_commit=False
            )
            await consumer.start()
            received: list[tuple[bytes | None, bytes]] = []
            try:
                async with asyncio.timeout(30):
                    while len(received) < len(values):
                        batches = await consumer.getmany(timeout_ms=1000)
                        received += [(m.key, m.value) for msgs in batches.values() for m in msgs if m.value is not None]
            finally:
                await consumer.stop()
            return sent, elapsed, received
        finally:
            await admin.delete_topics([topic])
            await admin.close()

    sent, elapsed, received = asyncio.run(run())
    assert sent == len(values)
    assert elapsed >= (len(values) - 1) / 500 * 0.9  # the rate limit held
    assert sorted(v for _, v in received) == sorted(values)
    assert all(key is None for key, _ in received)
