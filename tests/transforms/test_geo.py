"""transforms.geo: known answers from the MaxMind test DBs and DB-IP, layouts, corrupt files, options.

The databases live in the shared data folder (``$PSEUDO_SHARED_DATA``, default ``<repo>/../shared/data``)
and are used by path, never copied; tests that need them skip where the folder is absent.
"""

from __future__ import annotations

import doctest
import ipaddress
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import maxminddb
import pytest

import transforms.geo
from transforms.errors import ConfigError
from transforms.geo import GeoLocator, GeoResult, _Slot
from transforms.ip import parse_ip

SHARED = Path(os.environ.get("PSEUDO_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
GEO = SHARED / "geo"
MM = GEO / "maxmind-test"
CITY_TEST = MM / "test-data" / "GeoIP2-City-Test.mmdb"
COUNTRY_TEST = MM / "test-data" / "GeoIP2-Country-Test.mmdb"
ASN_TEST = MM / "test-data" / "GeoLite2-ASN-Test.mmdb"
DBIP_COUNTRY = GEO / "dbip-country" / "dbip-country.mmdb"
ASN_FULL = GEO / "ip-location-db-asn" / "ip-location-db-asn.mmdb"
IPV4_COMPAT = ipaddress.IPv6Network("::/96")

F = TypeVar("F", bound=Callable[..., None])


def needs(*paths: Path) -> Callable[[F], F]:
    """Mark a test as using the shared data and skip it where any of ``paths`` is absent."""

    def mark(test: F) -> F:
        missing = [str(p) for p in paths if not p.exists()]
        test = pytest.mark.shared_data(test)
        return pytest.mark.skipif(bool(missing), reason=f"shared data not found: {', '.join(missing)}")(test)

    return mark


def test_docstring_examples() -> None:
    """The module's examples run."""
    assert doctest.testmod(transforms.geo).failed == 0


# --- known answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decimals", "keep_region", "expected"),
    [
        (4, True, GeoResult("GB", "ENG", 51.5142, -0.0931, None, None)),  # the DB's own precision
        (1, True, GeoResult("GB", "ENG", 51.5, -0.1, None, None)),  # default: ~11 km
        (0, True, GeoResult("GB", "ENG", 52.0, 0.0, None, None)),  # whole degrees (no "-0.0")
        (None, True, GeoResult("GB", "ENG", None, None, None, None)),  # coordinates dropped
        (1, False, GeoResult("GB", None, 51.5, -0.1, None, None)),  # region dropped
    ],
)
@needs(CITY_TEST)
def test_city_known_answer(decimals: int | None, keep_region: bool, expected: GeoResult) -> None:
    """81.2.69.160 in GeoIP2-City-Test is London: country, region and coordinates as configured."""
    geo = GeoLocator.open(str(CITY_TEST), None, coordinate_decimals=decimals, keep_region=keep_region)
    result = geo.lookup(parse_ip("81.2.69.160"))
    assert result == expected
    assert result is not None
    assert str(result.longitude) != "-0.0"
    geo.close()


@needs(ASN_TEST)
def test_asn_known_answer() -> None:
    """1.128.0.1 in GeoLite2-ASN-Test is AS1221 Telstra."""
    geo = GeoLocator.open(None, str(ASN_TEST))
    result = geo.lookup(parse_ip("1.128.0.1"))
    assert result == GeoResult(None, None, None, None, 1221, "Telstra Pty Ltd")
    assert result is not None
    assert result.as_dict() == {"asn": 1221, "as_org": "Telstra Pty Ltd"}


def _load_source(name: str) -> dict[ipaddress.IPv4Network | ipaddress.IPv6Network, dict[str, Any]]:
    """The source JSON of a test DB as {network: record}; later entries win, as in the writer."""
    entries = json.loads((MM / "source-data" / f"{name}.json").read_text())
    out: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, dict[str, Any]] = {}
    for entry in entries:
        for key, record in entry.items():
            net = ipaddress.ip_network(key, strict=False)
            # "::a.b.c.d/n" keys are IPv4 networks written in the IPv4-compatible range.
            if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and net.subnet_of(IPV4_COMPAT):
                net = ipaddress.ip_network(f"{ipaddress.IPv4Address(int(net.network_address))}/{net.prefixlen - 96}")
            out[net] = record
    return out


def _expected(record: dict[str, Any]) -> GeoResult | None:
    country = record.get("country", {}).get("iso_code")
    subs = record.get("subdivisions") or [{}]
    loc = record.get("location", {})
    lat, lon = loc.get("latitude"), loc.get("longitude")
    if lat is None or lon is None:
        lat = lon = None
    else:
        lat, lon = round(float(lat), 4), round(float(lon), 4)
    asn = record.get("autonomous_system_number")
    org = record.get("autonomous_system_organization")
    result = GeoResult(country, subs[0].get("iso_code"), lat, lon, asn, org)
    return None if result == GeoResult(None, None, None, None, None, None) else result


@cache
def _source_cases(name: str) -> list[tuple[str, GeoResult | None]]:
    source = _load_source(name)
    cases = []
    for net, record in source.items():
        for addr in (net.network_address, net.broadcast_address):
            ip = parse_ip(str(addr))
            if not ip.is_public:  # never looked up (e.g. documentation or Teredo ranges in the test data)
                continue
            cases.append((ip.text, _expected(record)))
    return cases


@pytest.mark.parametrize(("db", "source"), [(CITY_TEST, "GeoIP2-City-Test"), (COUNTRY_TEST, "GeoIP2-Country-Test")])
@needs(CITY_TEST, COUNTRY_TEST)
def test_city_and_country_answers_match_source_data(db: Path, source: str) -> None:
    """Every public network in the source JSON looks up to its country/region/coordinates (table from JSON)."""
    cases = _source_cases(source)
    geo = GeoLocator.open(str(db), None, coordinate_decimals=4)
    assert geo.problems == []
    mismatches = [(ip, geo.lookup(parse_ip(ip)), want) for ip, want in cases if geo.lookup(parse_ip(ip)) != want]
    assert mismatches == []
    assert len(cases) > 100  # the table really is table-sized


@needs(ASN_TEST)
def test_asn_answers_match_source_data() -> None:
    """Every public network of GeoLite2-ASN-Test looks up to its ASN and organisation."""
    cases = _source_cases("GeoLite2-ASN-Test")
    geo = GeoLocator.open(None, str(ASN_TEST))
    mismatches = [(ip, geo.lookup(parse_ip(ip)), want) for ip, want in cases if geo.lookup(parse_ip(ip)) != want]
    assert mismatches == []
    assert len(cases) > 500


@needs(COUNTRY_TEST)
def test_country_db_in_city_slot_has_no_region_or_coordinates() -> None:
    """A Country database may stand in for a City one: country only."""
    geo = GeoLocator.open(str(COUNTRY_TEST), None)
    assert geo.lookup(parse_ip("81.2.69.160")) == GeoResult("GB", None, None, None, None, None)
    assert geo.problems == []


# (address, country, asn) in the full-size DB-IP country and ip-location-db ASN databases (flat layouts)
FLAT_CASES = [
    ("81.2.69.160", "GB", 20712),  # Andrews & Arnold, London
    ("8.8.8.8", "US", 15169),  # Google DNS
    ("1.128.0.1", "AU", 1221),  # Telstra
    ("::ffff:8.8.8.8", "US", 15169),  # mapped: found only because it is normalised to IPv4
    ("2001:4860:4860::8888", None, 15169),  # IPv6 Google DNS (country varies by DB-IP build: not pinned)
]


@pytest.mark.parametrize(("text", "country", "asn"), FLAT_CASES)
@needs(DBIP_COUNTRY, ASN_FULL)
def test_flat_layout_databases(text: str, country: str | None, asn: int) -> None:
    """The DB-IP flat layout gives the country, the ip-location-db ASN DB the AS number."""
    geo = GeoLocator.open(str(DBIP_COUNTRY), str(ASN_FULL))
    result = geo.lookup(parse_ip(text))
    assert result is not None
    if country is not None:
        assert result.country == country
    assert (result.region, result.latitude, result.longitude) == (None, None, None)  # a country DB
    assert result.asn == asn
    assert result.as_org
    assert geo.problems == []
    assert set(geo.build_dates) == {"city", "asn"}


def test_flat_city_record_layout() -> None:
    """A flat city record (ip-location-db city layout) maps state1 and coordinates; the city name is dropped."""
    geo = GeoLocator(None, None, coordinate_decimals=1, keep_region=True, cache_size=0, problems=[], build_dates={})
    record = {"country_code": "DE", "state1": "Berlin", "city": "Berlin", "latitude": 52.5244, "longitude": 13.4105}
    assert geo._place(record) == ("DE", "Berlin", 52.5, 13.4)


# --- scopes, cache, lifecycle ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "10.1.2.3",  # private
        "127.0.0.1",  # loopback
        "169.254.1.1",  # link-local
        "100.64.1.1",  # CGNAT
        "192.0.2.1",  # documentation
        "224.0.0.1",  # multicast
        "::1",  # IPv6 loopback
        "fd00::1",  # ULA
    ],
)
@needs(CITY_TEST, ASN_TEST)
def test_non_public_addresses_are_never_looked_up(text: str) -> None:
    """Private and special addresses return None without touching a database."""
    geo = GeoLocator.open(str(CITY_TEST), str(ASN_TEST))
    assert geo.lookup(parse_ip(text)) is None


@needs(CITY_TEST, ASN_TEST)
def test_unknown_public_address_gives_none() -> None:
    """A public address absent from the databases gives None, not an empty result."""
    geo = GeoLocator.open(str(CITY_TEST), str(ASN_TEST))
    assert geo.lookup(parse_ip("8.8.8.8")) is None


@needs(CITY_TEST)
def test_results_are_cached_per_address() -> None:
    """The second look-up of an address returns the memoised object; cache_size=0 still works."""
    cached = GeoLocator.open(str(CITY_TEST), None)
    first = cached.lookup(parse_ip("81.2.69.160"))
    assert first is not None
    assert cached.lookup(parse_ip("::ffff:81.2.69.160")) is first  # same packed key
    uncached = GeoLocator.open(str(CITY_TEST), None, cache_size=0)
    assert uncached.lookup(parse_ip("81.2.69.160")) == first


@needs(CITY_TEST, ASN_TEST)
def test_build_dates_and_close() -> None:
    """build_dates come from the metadata; after close() look-ups return None."""
    geo = GeoLocator.open(str(CITY_TEST), str(ASN_TEST))
    with maxminddb.open_database(str(CITY_TEST)) as reader:
        epoch = reader.metadata().build_epoch
    assert geo.build_dates["city"] == datetime.fromtimestamp(epoch, UTC).date().isoformat()
    assert geo.enabled
    geo.close()
    assert not geo.enabled
    assert geo.lookup(parse_ip("81.2.69.160")) is None


@needs(MM / "test-data" / "MaxMind-DB-test-ipv4-24.mmdb")
def test_ipv6_lookup_in_ipv4_only_database() -> None:
    """An IPv4-only database is skipped for IPv6 addresses instead of raising."""
    db = MM / "test-data" / "MaxMind-DB-test-ipv4-24.mmdb"
    geo = GeoLocator.open(str(db), None)
    assert geo.lookup(parse_ip("2a00:1450::1")) is None
    assert geo.lookup_errors == 0


# --- missing and corrupt databases -----------------------------------------------------------------


def test_missing_files_are_problems_not_errors(tmp_path: Path) -> None:
    """Missing databases disable their slot with a message naming the path."""
    missing = tmp_path / "nope.mmdb"
    geo = GeoLocator.open(str(missing), str(missing))
    assert geo.problems == [
        f"geo city database not found: {missing}; country/region disabled",
        f"geo asn database not found: {missing}; asn disabled",
    ]
    assert not geo.enabled
    assert geo.lookup(parse_ip("81.2.69.160")) is None


def test_no_database_configured() -> None:
    """With no paths geolocation is disabled and says so."""
    geo = GeoLocator.open(None, None)
    assert not geo.enabled
    assert geo.problems == ["geo: no database configured; geolocation disabled"]


def test_garbage_file_is_a_problem(tmp_path: Path) -> None:
    """A file that is not an MMDB at all is reported as unreadable."""
    junk = tmp_path / "junk.mmdb"
    junk.write_bytes(b"not a maxmind database" * 100)
    geo = GeoLocator.open(str(junk), None)
    assert not geo.enabled
    assert geo.problems[0].startswith(f"geo city database unreadable: {junk}")


def _bad_dbs() -> list[Path]:
    found = sorted((MM / "bad-data").glob("*/*.mmdb")) if MM.is_dir() else []
    broken = ["MaxMind-DB-test-broken-pointers-24.mmdb", "MaxMind-DB-test-broken-search-tree-24.mmdb"]
    broken += ["GeoIP2-City-Test-Broken-Double-Format.mmdb", "GeoIP2-City-Test-Invalid-Node-Count.mmdb"]
    return found + [MM / "test-data" / name for name in broken if (MM / "test-data" / name).is_file()]


@pytest.mark.parametrize("db", _bad_dbs() or [pytest.param(None, marks=pytest.mark.skip(reason="no shared data"))])
@needs(MM / "bad-data")
def test_bad_databases_produce_problems_not_crashes(db: Path) -> None:
    """Every corrupt test DB opens without raising, reports a problem, and look-ups never raise."""
    geo = GeoLocator.open(str(db), str(db))
    assert len(geo.problems) >= 2  # one per slot: unreadable/corrupt, or at least not a City/ASN DB
    assert all(str(db) in problem for problem in geo.problems)
    for text in ("1.1.1.1", "81.2.69.160", "2001:4860::1"):
        geo.lookup(parse_ip(text))  # must not raise
    geo.close()


@needs(MM / "test-data" / "GeoIP2-City-Test-Broken-Double-Format.mmdb")
def test_runtime_lookup_failure_degrades_and_counts() -> None:
    """A look-up that fails after a passing probe gives no geo and increments lookup_errors."""
    db = MM / "test-data" / "GeoIP2-City-Test-Broken-Double-Format.mmdb"
    # Bypass the probe (which would reject this file) to reach the run-time path.
    slot = _Slot(maxminddb.open_database(str(db), maxminddb.MODE_AUTO), ipv6=True)
    geo = GeoLocator(slot, None, coordinate_decimals=1, keep_region=True, cache_size=16, problems=[], build_dates={})
    assert geo.lookup(parse_ip("81.2.69.160")) is None
    assert geo.lookup_errors == 1
    geo.close()


# --- options and result ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"coordinate_decimals": 5}, "coordinate_decimals must be None"),  # finer than ~10 m
        ({"coordinate_decimals": -1}, "coordinate_decimals must be None"),  # negative
        ({"coordinate_decimals": "1"}, "coordinate_decimals must be None"),  # string
        ({"coordinate_decimals": True}, "coordinate_decimals must be None"),  # bool
        ({"keep_region": "yes"}, "keep_region must be true or false"),  # not a bool
        ({"cache_size": -1}, "cache_size must be an integer >= 0"),  # negative
    ],
)
def test_invalid_options_raise_config_error(kwargs: dict[str, Any], message: str) -> None:
    """Bad options stop start-up with a message naming the parameter and its allowed values."""
    with pytest.raises(ConfigError, match=message):
        GeoLocator.open(None, None, **kwargs)


def test_as_dict_omits_none() -> None:
    """as_dict keeps only the fields that are set."""
    assert GeoResult("GB", None, 51.5, -0.1, None, None).as_dict() == {
        "country": "GB",
        "latitude": 51.5,
        "longitude": -0.1,
    }
