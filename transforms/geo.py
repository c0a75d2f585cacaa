"""Coarse geolocation of public client addresses from MaxMind DB (MMDB) files.

:class:`GeoLocator` reads up to two databases, a "city" one (country, region, coordinates) and an
ASN one, with the ``maxminddb`` C extension. It accepts the nested GeoIP2 layout
(``country.iso_code``, ``subdivisions[0].iso_code``, ``location.latitude``) and the flat layout of
free databases (DB-IP / ip-location-db: ``country_code``, ``state1``/``region``, ``latitude``); a
Country database in the city slot simply yields no region or coordinates. The city name, postal
code, accuracy radius and time zone are never output.

Opening never raises for a missing or corrupt file: the slot is disabled and a human-readable line
is added to :attr:`GeoLocator.problems`. A new file is probed at open (a few look-ups and a walk of
the first records), because many corrupt MMDBs open fine and fail on the first look-up.

Only public addresses are looked up (a private or reserved address says nothing about a place),
and results are memoised per address in a bounded LRU cache keyed on ``ParsedIP.packed``.
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

import maxminddb

from transforms.errors import ConfigError
from transforms.ip import IPScope, ParsedIP

__all__ = ["GeoLocator", "GeoResult"]

# Probe addresses: spread over the tree so that a broken search tree or data section shows up.
_PROBE_IPS: Final = ("1.1.1.1", "8.8.8.8", "81.2.69.160", "89.160.20.128", "175.16.199.1", "216.160.83.56")
_PROBE_IPS_V6: Final = ("2001:4860:4860::8888", "2a02:cf40::1", "2001:218::1")
_PROBE_RECORDS: Final = 256  # first records of the tree decoded at open (about 1 ms on a full-size DB)
_MAX_COORDINATE_DECIMALS: Final = 4  # 4 decimals is ~10 m: anything finer is not coarse location
_MAX_AS_ORG_LENGTH: Final = 128
_MAX_INTERNED: Final = 4096
_NOTHING: Final = (None, None, None, None, None, None)


@dataclass(frozen=True, slots=True)
class GeoResult:
    """Generalized location of one address; every field is optional."""

    country: str | None  # ISO 3166-1 alpha-2, e.g. "GB"
    region: str | None  # subdivision ISO code ("ENG") or, in flat DBs, the state/region name
    latitude: float | None  # rounded to GeoLocator's coordinate_decimals
    longitude: float | None
    asn: int | None
    as_org: str | None

    def as_dict(self) -> dict[str, str | float | int]:
        """The fields that are set, by name (None fields omitted)."""
        out: dict[str, str | float | int] = {}
        if self.country is not None:
            out["country"] = self.country
        if self.region is not None:
            out["region"] = self.region
        if self.latitude is not None:
            out["latitude"] = self.latitude
        if self.longitude is not None:
            out["longitude"] = self.longitude
        if self.asn is not None:
            out["asn"] = self.asn
        if self.as_org is not None:
            out["as_org"] = self.as_org
        return out


class _Slot:
    """One opened database with what the locator needs to know about it."""

    __slots__ = ("ipv6", "reader")

    def __init__(self, reader: Any, ipv6: bool) -> None:
        self.reader = reader
        self.ipv6 = ipv6  # an IPv4-only database raises ValueError for an IPv6 look-up


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _num(value: object) -> float | None:
    # bool is an int: reject it explicitly
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _open_slot(
    kind: str, path: str | None, disabled: str, expect: tuple[str, ...], problems: list[str]
) -> tuple[_Slot | None, str | None]:
    """Open and probe one database; on failure append to ``problems`` and return (None, None)."""
    if path is None:
        return None, None
    if not os.path.isfile(path):
        problems.append(f"geo {kind} database not found: {path}; {disabled} disabled")
        return None, None
    try:
        reader = maxminddb.open_database(path, maxminddb.MODE_AUTO)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        problems.append(f"geo {kind} database unreadable: {path} ({type(exc).__name__}); {disabled} disabled")
        return None, None
    try:
        meta = reader.metadata()
        ipv6 = meta.ip_version == 6
        probes = _PROBE_IPS + (_PROBE_IPS_V6 if ipv6 else ())
        for probe in probes:
            reader.get(probe)
        for _ in itertools.islice(iter(reader), _PROBE_RECORDS):
            pass
        build_date = _build_date(meta.build_epoch)
        db_type = str(meta.database_type)
    except Exception as exc:  # any failure of a probe means the file cannot be trusted
        reader.close()
        problems.append(f"geo {kind} database corrupt: {path} ({type(exc).__name__}); {disabled} disabled")
        return None, None
    if build_date is None:
        problems.append(f"geo {kind} database {path} has an implausible build_epoch")
    if not any(word in db_type.lower() for word in expect):
        # Still used: a custom database may be fine, but the operator should know.
        problems.append(f"geo {kind} database {path} has unexpected type {db_type!r} (expected {'/'.join(expect)})")
    return _Slot(reader, ipv6), build_date


def _build_date(epoch: object) -> str | None:
    try:
        return datetime.fromtimestamp(epoch, UTC).date().isoformat()  # type: ignore[arg-type]
    except (OverflowError, OSError, ValueError, TypeError):
        return None


def _check_options(coordinate_decimals: object, keep_region: object, cache_size: object) -> None:
    if coordinate_decimals is not None and (
        type(coordinate_decimals) is not int or not 0 <= coordinate_decimals <= _MAX_COORDINATE_DECIMALS
    ):
        raise ConfigError(
            f"coordinate_decimals must be None (drop coordinates) or an integer from 0 to "
            f"{_MAX_COORDINATE_DECIMALS}, got {coordinate_decimals!r}"
        )
    if type(keep_region) is not bool:
        raise ConfigError(f"keep_region must be true or false, got {keep_region!r}")
    if type(cache_size) is not int or cache_size < 0:
        raise ConfigError(f"cache_size must be an integer >= 0 (0 disables the cache), got {cache_size!r}")


class GeoLocator:
    """Look up country, region, rounded coordinates and ASN of public addresses.

    Build with :meth:`open`; call :meth:`lookup` per event; :meth:`close` when done.
    """

    problems: list[str]
    build_dates: dict[str, str]
    enabled: bool
    lookup_errors: int

    def __init__(
        self,
        city: _Slot | None,
        asn: _Slot | None,
        *,
        coordinate_decimals: int | None,
        keep_region: bool,
        cache_size: int,
        problems: list[str],
        build_dates: dict[str, str],
    ) -> None:
        """Prefer :meth:`open`, which opens, probes and validates the databases."""
        _check_options(coordinate_decimals, keep_region, cache_size)
        self._city = city
        self._asn = asn
        self._decimals = coordinate_decimals
        self._keep_region = keep_region
        self.problems = problems
        self.build_dates = build_dates
        self.enabled = city is not None or asn is not None
        # Look-ups that raised at run time (a corrupt part of the tree the probe missed): exposed
        # as a counter for telemetry; such a look-up degrades to "no geo" rather than failing the record.
        self.lookup_errors = 0
        self._interned: dict[tuple[Any, ...], GeoResult] = {}
        self._cached: Callable[[bytes], GeoResult | None] = (
            lru_cache(maxsize=cache_size)(self._lookup_packed) if cache_size else self._lookup_packed
        )

    @classmethod
    def open(
        cls,
        city_db: str | None,
        asn_db: str | None,
        *,
        coordinate_decimals: int | None = 1,
        keep_region: bool = True,
        cache_size: int = 65536,
    ) -> GeoLocator:
        """Open the databases (either path may be None); problems are reported, never raised.

        ``coordinate_decimals``: 0..4 decimals kept of latitude/longitude (1 decimal is ~11 km),
        None drops coordinates. ``keep_region``: output the first-level subdivision.
        ``cache_size``: addresses memoised (0 disables the cache).
        Raises :class:`ConfigError` only for invalid options.
        """
        _check_options(coordinate_decimals, keep_region, cache_size)
        problems: list[str] = []
        build_dates: dict[str, str] = {}
        city, city_date = _open_slot(
            "city", city_db, "country/region", ("city", "country", "enterprise", "location"), problems
        )
        asn, asn_date = _open_slot("asn", asn_db, "asn", ("asn", "isp", "enterprise"), problems)
        if city_date is not None:
            build_dates["city"] = city_date
        if asn_date is not None:
            build_dates["asn"] = asn_date
        if city_db is None and asn_db is None:
            problems.append("geo: no database configured; geolocation disabled")
        return cls(
            city,
            asn,
            coordinate_decimals=coordinate_decimals,
            keep_region=keep_region,
            cache_size=cache_size,
            problems=problems,
            build_dates=build_dates,
        )

    def lookup(self, ip: ParsedIP) -> GeoResult | None:
        """Generalized location of a public address; None for other scopes or when nothing is known."""
        if ip.scope is not IPScope.PUBLIC or not self.enabled:
            return None
        return self._cached(ip.packed)

    def close(self) -> None:
        """Release the databases; later look-ups return None."""
        self.enabled = False
        for slot in (self._city, self._asn):
            if slot is not None:
                slot.reader.close()
        self._city = self._asn = None
        cache_clear = getattr(self._cached, "cache_clear", None)
        if cache_clear is not None:
            cache_clear()

    # -- per-address work (behind the cache) -------------------------------------------------------

    def _get(self, slot: _Slot, text: str, v6: bool) -> dict[str, Any] | None:
        if v6 and not slot.ipv6:
            return None
        try:
            record = slot.reader.get(text)
        except (ValueError, maxminddb.InvalidDatabaseError):
            self.lookup_errors += 1
            return None
        return record if isinstance(record, dict) else None

    def _lookup_packed(self, packed: bytes) -> GeoResult | None:
        v6 = len(packed) == 16
        # The C reader takes text; ParsedIP normalised ::ffff:a.b.c.d to 4 bytes, which matters
        # because flat databases do not alias the IPv4-mapped range.
        text = _ntop(packed)
        country = region = as_org = None
        lat = lon = None
        asn: int | None = None
        city = self._city
        if city is not None and (rec := self._get(city, text, v6)) is not None:
            country, region, lat, lon = self._place(rec)
        asn_slot = self._asn
        if asn_slot is not None and (rec := self._get(asn_slot, text, v6)) is not None:
            asn, as_org = _as(rec)
        key = (country, region, lat, lon, asn, as_org)
        if key == _NOTHING:
            return None
        # Many addresses share one answer (a country-only DB has ~250): share the object too,
        # which skips the frozen-dataclass construction and keeps the per-address cache small.
        result = self._interned.get(key)
        if result is None:
            result = GeoResult(*key)
            if len(self._interned) < _MAX_INTERNED:
                self._interned[key] = result
        return result

    def _place(self, rec: dict[str, Any]) -> tuple[str | None, str | None, float | None, float | None]:
        region: str | None = None
        lat: float | None = None
        lon: float | None = None
        if "country_code" not in rec and "latitude" not in rec:  # nested GeoIP2 layout
            node = rec.get("country")
            country = _str(node.get("iso_code")) if isinstance(node, dict) else None
            if self._keep_region:
                subs = rec.get("subdivisions")
                if isinstance(subs, list) and subs and isinstance(subs[0], dict):
                    region = _str(subs[0].get("iso_code"))
            loc = rec.get("location")
            if isinstance(loc, dict):
                lat, lon = _num(loc.get("latitude")), _num(loc.get("longitude"))
        else:  # flat DB-IP / ip-location-db layout
            country = _str(rec.get("country_code"))
            if self._keep_region:
                region = _str(rec.get("state1")) or _str(rec.get("region"))
            lat, lon = _num(rec.get("latitude")), _num(rec.get("longitude"))
        if self._decimals is None or lat is None or lon is None:
            lat = lon = None
        else:
            # "+ 0.0" turns the -0.0 that rounding a small negative value gives into 0.0.
            lat, lon = round(lat, self._decimals) + 0.0, round(lon, self._decimals) + 0.0
        return country, region, lat, lon


def _as(rec: dict[str, Any]) -> tuple[int | None, str | None]:
    node: dict[str, Any] = rec
    if "autonomous_system_number" not in rec:
        traits = rec.get("traits")  # GeoIP2 Enterprise keeps the ASN under traits
        if isinstance(traits, dict):
            node = traits
    number = node.get("autonomous_system_number")
    asn = number if isinstance(number, int) and not isinstance(number, bool) else None
    org = _str(node.get("autonomous_system_organization"))
    return asn, (org[:_MAX_AS_ORG_LENGTH] if org else None)


def _ntop(packed: bytes) -> str:
    return socket.inet_ntoa(packed) if len(packed) == 4 else socket.inet_ntop(socket.AF_INET6, packed)
