"""No client-chosen text reaches an output: identifiers planted in every field a client controls never appear.

The real :class:`~transforms.process.RecordProcessor` is built with the shipped policy and a fixed test keyring;
each example plants one identifier (an IPv4 or IPv6 address, an e-mail address, a JWT, an AWS access key id, a
UUID, a hex or base64url token) as the method, the HTTP version, a path segment, a query value (``utm_*``, kept
by the policy, and another), the referrer host or path, or the user agent, in an ECS JSON record (where any
text fits any field) and an Apache line (where the field's syntax allows it). The analytics records, the abuse
records and the observations must not contain it, compared case-insensitively (a referrer host is lower-cased).
"""

from __future__ import annotations

import json
import random
import string
from datetime import UTC, datetime
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config import load_policy
from tests.transforms.keyfixtures import fixed_keyring
from transforms.process import RecordProcessor

PROCESSOR = RecordProcessor.build(load_policy(), fixed_keyring())
INGEST = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CLIENT = "198.51.100.23"

_B64URL = string.ascii_letters + string.digits + "-_"


def _text(alphabet: str, size: int) -> st.SearchStrategy[str]:
    """``size`` characters drawn as a secret generator draws them: uniformly, from a seeded PRNG.

    Hypothesis picks and shrinks the seed, not the characters: left to itself it builds and shrinks
    towards "a00000000000000000000", a string no key generator emits and no reader would call random.
    """

    def draw(seed: int) -> str:
        generator = random.Random(seed)
        return "".join(generator.choice(alphabet) for _ in range(size))

    return st.integers(0, 2**64 - 1).map(draw)


ipv4 = st.ip_addresses(v=4).filter(lambda a: a.is_global).map(str)
ipv6 = st.ip_addresses(v=6).filter(lambda a: a.is_global and a.ipv4_mapped is None).map(lambda a: a.exploded)
emails = st.from_regex(r"[a-z]{3,8}\.[a-z]{3,8}@[a-z]{4,9}\.(com|org|net)", fullmatch=True)
aws_key_ids = st.tuples(st.sampled_from(["AKIA", "ASIA"]), _text(string.ascii_uppercase + "234567", 16)).map("".join)
uuids = st.uuids().map(str)
hex_tokens = (
    st.integers(16, 64)
    .flatmap(lambda n: _text("0123456789abcdef", n))
    .filter(
        lambda t: any(c.isdigit() for c in t)  # 16 hex letters and no digit is a word to any reader ("deadbeef...")
    )
)
base64url_tokens = st.integers(20, 64).flatmap(lambda n: _text(_B64URL, n))
jwts = st.tuples(_text(_B64URL, 24), _text(_B64URL, 43)).map(lambda p: f"eyJhbGciOiJIUzI1NiJ9.eyJ{p[0]}.{p[1]}")
# RFC 9110 token characters: what an Apache request line can carry as a method.
_TOKEN_CHARS = set("!#$%&'*+.^_`|~-" + string.ascii_letters + string.digits)
identifiers = st.one_of(ipv4, ipv6, emails, aws_key_ids, uuids, hex_tokens, base64url_tokens, jwts)
PLACES = ["method", "version", "path", "utm_value", "query_value", "referrer_host", "referrer_path", "user_agent"]


def _fields(place: str, planted: str) -> dict[str, str]:
    """Request fields with ``planted`` in ``place`` (raw, as a client would send it)."""
    fields = {
        "method": "GET",
        "version": "HTTP/1.1",
        "url": "/shop/items/list?utm_source=news&page=2",
        "referrer": "https://www.example.org/start",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    }
    if place == "method":
        fields["method"] = planted
    elif place == "version":
        fields["version"] = planted
    elif place == "path":
        fields["url"] = f"/shop/{quote(planted, safe='@:')}/items"
    elif place == "utm_value":
        fields["url"] = f"/shop?utm_campaign={quote(planted, safe='')}"
    elif place == "query_value":
        fields["url"] = f"/shop?session={quote(planted, safe='')}"
    elif place == "referrer_host":
        host = f"[{planted}]" if ":" in planted else planted.replace("@", ".")
        fields["referrer"] = f"https://{host}/start"
    elif place == "referrer_path":
        fields["referrer"] = f"https://www.example.org/u/{planted}?id={planted}"
    else:
        fields["user_agent"] = f"Mozilla/5.0 (compatible; {planted}) {planted}bot/1.0"
    return fields


def _ecs(fields: dict[str, str]) -> bytes:
    version = fields["version"]
    return json.dumps(
        {
            "@timestamp": "2026-11-27T11:59:00Z",
            "source": {"ip": CLIENT},
            "url": {"original": fields["url"]},
            "http": {
                "version": version.removeprefix("HTTP/") if version.startswith("HTTP/") else version,
                "request": {"method": fields["method"], "referrer": fields["referrer"]},
                "response": {"status_code": 404},
            },
            "user_agent": {"original": fields["user_agent"]},
        }
    ).encode()


def _apache(fields: dict[str, str]) -> bytes | None:
    if not set(fields["method"]) <= _TOKEN_CHARS or " " in fields["version"] + fields["url"]:
        return None  # the request line could not carry it: the parser would call it malformed
    request = f"{fields['method']} {fields['url']} {fields['version']}"
    line = (
        f'{CLIENT} - - [27/Nov/2026:11:59:00 +0000] "{request}" 404 12 "{fields["referrer"]}" "{fields["user_agent"]}"'
    )
    return line.encode()


def _outputs(raw: bytes) -> str:
    outcome = PROCESSOR(raw, INGEST)
    rows = [o.to_row() for o in outcome.observations]
    return orjson.dumps([outcome.analytics, outcome.abuse, rows]).decode().lower()


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(planted=identifiers, place=st.sampled_from(PLACES))
def test_a_planted_identifier_never_reaches_an_output(planted: str, place: str) -> None:
    """Whatever field a client puts an identifier in, no analytics, abuse or observation record holds it."""
    fields = _fields(place, planted)
    for raw in (_ecs(fields), _apache(fields)):
        if raw is None:
            continue
        blob = _outputs(raw)
        assert planted.lower() not in blob, (place, raw)


# (method as sent, expected analytics http.method) -- the method of main's fuzz run, and ordinary ones
METHODS = [
    ("GET", "GET"),  # standard
    ("PROPFIND", "PROPFIND"),  # WebDAV
    ("203.0.113.77", "OTHER"),  # an address as the method
    ("bob@example.com", "OTHER"),  # an e-mail as the method (JSON only: no token character)
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "OTHER"),  # a JWT
    ("get", "OTHER"),  # methods are case-sensitive
]


def test_method_known_answers_through_the_processor() -> None:
    """The analytics method is the closed-vocabulary class; the observation carries the same class."""
    for method, expected in METHODS:
        fields = _fields("method", method)
        outcome = PROCESSOR(_ecs(fields), INGEST)
        assert outcome.analytics[0]["http"]["method"] == expected, method
        assert [o.method for o in outcome.observations] == [expected], method


def test_an_odd_method_is_a_pseudonym_on_the_abuse_side() -> None:
    """An odd method fires protocol abuse (signals see the raw text); the abuse record keeps OTHER and a pseudonym."""
    outcome = PROCESSOR(_ecs(_fields("method", "203.0.113.77")), INGEST)
    abuse = [r for r in outcome.abuse if r["rule"] == "http.protocol_abuse"]
    assert abuse, "signals must still see the raw method"
    assert abuse[0]["event"]["method"] == "OTHER"
    odd = abuse[0]["event"]["odd_method"]
    assert isinstance(odd, str)
    assert "203.0.113.77" not in odd
    again = PROCESSOR(_ecs(_fields("method", "203.0.113.77")), INGEST).abuse[0]["event"]["odd_method"]
    other = PROCESSOR(_ecs(_fields("method", "198.51.100.1")), INGEST).abuse[0]["event"]["odd_method"]
    assert again == odd != other  # one odd method can be told from another without its text


def test_a_standard_method_has_no_pseudonym() -> None:
    """Only methods outside the vocabulary get a pseudonym field."""
    outcome = PROCESSOR(_ecs(_fields("path", "x") | {"method": "POST"}), INGEST)
    assert all("odd_method" not in r.get("event", {}) for r in outcome.abuse)


FIXED = [
    "203.0.113.77",
    "2001:db8:85a3::8a2e:370:7334",
    "bob.smith@example.com",
    "AKIA2B7QX4MZK5RTV3NP",
    "550e8400-e29b-41d4-a716-446655440000",
    "9f86d081884c7d659a2feaa0c55ad015",
    "Zx9_kQ2mB7vLwR4tYp0aHc",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("planted", FIXED)
def test_fixed_identifiers_in_every_place(planted: str, place: str) -> None:
    """The property's examples, fixed: each identifier in each client-controlled field, both formats."""
    fields = _fields(place, planted)
    for raw in (_ecs(fields), _apache(fields)):
        if raw is not None:
            assert planted.lower() not in _outputs(raw)
