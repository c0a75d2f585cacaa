"""Properties of the composed processor: whatever the input, raw identifiers never reach an output."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config import load_policy
from tests.transforms.keyfixtures import fixed_keyring
from transforms.process import RecordProcessor, Route

PROCESSOR = RecordProcessor.build(load_policy(), fixed_keyring())
INGEST = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

public_v4 = st.ip_addresses(v=4).filter(lambda a: a.is_global and int(a) & 0xFF != 0)
public_v6 = st.ip_addresses(v=6).filter(lambda a: a.is_global and int(a) & 0xFFFF != 0 and a.ipv4_mapped is None)
emails = st.from_regex(r"[a-z]{3,8}\.[a-z]{3,8}@[a-z]{4,9}\.(com|org|net)", fullmatch=True)
tokens = st.from_regex(r"[A-Za-z0-9]{24,40}", fullmatch=True).filter(lambda t: any(c.isdigit() for c in t))
path_words = st.lists(st.from_regex(r"[a-z]{2,10}", fullmatch=True), min_size=1, max_size=4)


def _leaks(outcome_blob: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return str(address) in outcome_blob or address.exploded in outcome_blob


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    address=public_v4 | public_v6, email=emails, token=tokens, words=path_words, status=st.sampled_from([200, 401, 404])
)
def test_no_output_contains_the_input_ip_email_token_or_query(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, email: str, token: str, words: list[str], status: int
) -> None:
    url = "/" + "/".join(words) + f"/{email}?email={email}&token={token}&q={address}"
    referrer = f"https://{address}/{token}"
    request = f"GET {url} HTTP/1.1"
    line = f'{address} - {email} [17/May/2015:10:05:03 +0000] "{request}" {status} 12 "{referrer}" "curl/8 {email}"'
    outcome = PROCESSOR(line.encode(), INGEST)
    assert outcome.route in (Route.ANALYTICS, Route.FILTERED, Route.QUARANTINE)
    blob = orjson.dumps([outcome.analytics, outcome.abuse]).decode()
    assert not _leaks(blob, address)
    assert email not in blob
    assert token not in blob
    assert "email=" not in blob
    assert "token=" not in blob


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_always_end_in_exactly_one_route(payload: bytes) -> None:
    outcome = PROCESSOR(payload, INGEST)
    assert outcome.route in Route
    if outcome.route is Route.QUARANTINE:
        assert outcome.reason
        assert outcome.reason.islower()
        assert outcome.analytics == outcome.abuse == []
    if outcome.route is Route.ANALYTICS:
        assert outcome.analytics


@settings(max_examples=200)
@given(address=public_v4, sshd_user=st.from_regex(r"[a-z]{3}[0-9]{2}[a-z0-9]{0,8}", fullmatch=True))
def test_sshd_usernames_and_addresses_are_pseudonymized(address: ipaddress.IPv4Address, sshd_user: str) -> None:
    message = f"Failed password for invalid user {sshd_user} from {address} port 38926 ssh2"
    line = f"Dec 10 06:55:46 LabSZ sshd[24200]: {message}"
    outcome = PROCESSOR(line.encode(), INGEST)
    assert outcome.abuse
    blob = orjson.dumps(outcome.abuse).decode()
    assert str(address) not in blob
    assert f'"{sshd_user}"' not in blob
