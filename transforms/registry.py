"""The one explicit registry: policy transform names -> (parameter model, builder).

A policy field names a transform from :data:`TRANSFORMS` and gives its parameters. At start-up the
parameters are validated by the transform's own frozen model and the builder returns a prebuilt
callable; per event, the callable only reads a :class:`Subject` and returns a JSON-ready value (or
``None``, meaning "leave the field out"). Nothing here can emit a raw address, a raw query string,
a username or a full user agent: the only pass-through is :class:`CopyParams`, limited to fields
that carry no personal data and that no client chooses as text (numbers, enums the parser sets).
Client-chosen enums go through a closed vocabulary (``classify_method``, ``classify_version``);
every other value kept as text (path segments, query values, referrer host, user-agent families)
goes through :class:`~transforms.scrub.TextScrubber`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from transforms.errors import ConfigError
from transforms.escrow import IpEscrow
from transforms.geo import GeoLocator
from transforms.ip import IPTruncator, ParsedIP
from transforms.keyring import Purpose
from transforms.model import OTHER, Event, classify_method, classify_version
from transforms.pseudonymize import Pseudonymizer
from transforms.scrub import TextScrubber
from transforms.url import UrlMinimizer, referrer_host
from transforms.useragent import UserAgentReducer


@dataclass(slots=True)
class Subject:
    """What the field transforms of one event read: the event and values derived from it once."""

    event: Event
    ip: ParsedIP | None  # None when the source is a host name (old pam_unix rhost=)
    unix: float  # event time as Unix seconds (epoch selection, time truncation)


FieldFn = Callable[[Subject], Any]
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{8,}")


@dataclass(frozen=True, slots=True)
class BuildContext:
    """Shared, prebuilt resources that builders may use (one instance per worker)."""

    pseudonymizers: dict[Purpose, Pseudonymizer]
    geo: GeoLocator | None
    user_agents: UserAgentReducer
    escrow: IpEscrow | None = None  # sealer of the newest escrow key; None when the keyring has none


class _Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NoParams(_Params):
    pass


class PurposeParams(_Params):
    purpose: Purpose


class TruncateParams(_Params):
    ipv4_prefix: int = Field(24, ge=0, le=32)
    ipv6_prefix: int = Field(48, ge=0, le=128)


GeoPart = Literal["country", "region", "coordinates", "asn", "as_org", "db"]


def _default_geo_parts() -> list[GeoPart]:
    return ["country", "region", "asn", "as_org", "db"]


class GeoParams(_Params):
    keep: list[GeoPart] = Field(default_factory=_default_geo_parts)


class UrlParams(_Params):
    query_allowlist: list[str] = Field(default_factory=lambda: ["utm_*"])
    max_path_segments: int = Field(12, ge=1, le=64)


class TimeParams(_Params):
    granularity_s: int = Field(1, ge=1, le=86_400)


# Event attributes that carry no personal data and may be copied verbatim: numbers, flags and values the parser
# itself sets. Not the method, the HTTP version or the sshd method: those are text from the record (a client
# sends any method it likes), so they are classified (classify_method, classify_version) or left out.
SafeField = Literal["kind", "status", "bytes_sent", "ssh_outcome", "invalid_user", "format"]


class CopyParams(_Params):
    field: SafeField


def _pseudonymize_ip(params: PurposeParams, ctx: BuildContext) -> FieldFn:
    pz = ctx.pseudonymizers[params.purpose]

    def pseudonymize_ip(s: Subject) -> str:
        if s.ip is None:
            return pz.hostname(s.event.source_ip, s.unix)
        return pz.ip(s.ip.packed, s.unix)

    return pseudonymize_ip


def _pseudonymize_visitor(params: PurposeParams, ctx: BuildContext) -> FieldFn:
    pz = ctx.pseudonymizers[params.purpose]

    def pseudonymize_visitor(s: Subject) -> str | None:
        if s.ip is None:
            return None
        return pz.visitor(s.ip.packed, s.event.user_agent, s.unix)

    return pseudonymize_visitor


def _pseudonymize_user(params: PurposeParams, ctx: BuildContext) -> FieldFn:
    pz = ctx.pseudonymizers[params.purpose]

    def pseudonymize_user(s: Subject) -> str | None:
        user = s.event.user
        return pz.user(user, s.unix) if user else None

    return pseudonymize_user


def _truncate_ip(params: TruncateParams, ctx: BuildContext) -> FieldFn:
    truncate = IPTruncator(params.ipv4_prefix, params.ipv6_prefix)

    def truncate_ip(s: Subject) -> str | None:
        return truncate(s.ip) if s.ip is not None else None

    return truncate_ip


def _classify_ip(params: NoParams, ctx: BuildContext) -> FieldFn:
    def classify_ip(s: Subject) -> str:
        return s.ip.scope.value if s.ip is not None else "hostname"

    return classify_ip


def _generalize_geo(params: GeoParams, ctx: BuildContext) -> FieldFn:
    geo = ctx.geo
    if geo is None or not geo.enabled:
        return lambda s: None
    keep = set(params.keep)
    dates = dict(geo.build_dates) if "db" in keep else {}

    def generalize_geo(s: Subject) -> dict[str, Any] | None:
        if s.ip is None:
            return None
        found = geo.lookup(s.ip)
        if found is None:
            return None
        out: dict[str, Any] = {}
        if "country" in keep and found.country:
            out["country"] = found.country
        if "region" in keep and found.region:
            out["region"] = found.region
        if "coordinates" in keep and found.latitude is not None and found.longitude is not None:
            out["lat"], out["lon"] = found.latitude, found.longitude
        if "asn" in keep and found.asn is not None:
            out["asn"] = found.asn
        if "as_org" in keep and found.as_org:
            out["as_org"] = found.as_org
        if not out:
            return None
        if dates:
            out["db"] = dates
        return out

    return generalize_geo


def _reduce_user_agent(params: NoParams, ctx: BuildContext) -> FieldFn:
    reduce = ctx.user_agents
    scrub = TextScrubber()

    # Families repeat from record to record ("Chrome", "Windows"): each is judged once (it was a tenth of the
    # per-record cost); bounded, so a stream of invented families cannot grow it.
    @lru_cache(maxsize=4096)
    def carries_identifier(family: str) -> bool:
        # A hex run glued to a word ("db6709156d94aababot", from "(\S+)bot/") is no token to the scrubber, whose
        # rules look at whole words; no real family holds eight hex characters mixing digits and letters.
        return scrub(family) != family or any(
            sum(c.isdigit() for c in run) >= 2 and sum(c.isalpha() for c in run) >= 2
            for run in _HEX_RUN.findall(family)
        )

    def reduce_user_agent(s: Subject) -> dict[str, Any] | None:
        ua = s.event.user_agent
        if not ua:
            return None
        reduced = reduce(ua).as_dict()
        # A family is captured from the agent string by ua-parser's regexes ("(\S+)bot/..."), so a client can
        # put text there: a family that the scrubber would change carries an identifier and is dropped.
        for part in ("browser", "os"):
            family = reduced[part]
            if isinstance(family, str) and carries_identifier(family):
                reduced[part] = None
                if part == "browser":
                    reduced["browser_major"] = None
        return reduced

    return reduce_user_agent


def _strip_url(params: UrlParams, ctx: BuildContext) -> FieldFn:
    minimize = UrlMinimizer(query_allowlist=params.query_allowlist, max_path_segments=params.max_path_segments)

    def strip_url(s: Subject) -> dict[str, Any] | None:
        if s.event.url is None:
            return None
        path, query = minimize(s.event.url)
        if path is None:
            return None
        return {"path": path, "query": query} if query else {"path": path}

    return strip_url


def _reduce_referrer(params: NoParams, ctx: BuildContext) -> FieldFn:
    def reduce_referrer(s: Subject) -> str | None:
        return referrer_host(s.event.referrer)

    return reduce_referrer


def _classify_method(params: NoParams, ctx: BuildContext) -> FieldFn:
    def method_class(s: Subject) -> str | None:
        return classify_method(s.event.method)

    return method_class


def _classify_version(params: NoParams, ctx: BuildContext) -> FieldFn:
    def version_class(s: Subject) -> str | None:
        return classify_version(s.event.http_version)

    return version_class


def _pseudonymize_method(params: PurposeParams, ctx: BuildContext) -> FieldFn:
    pz = ctx.pseudonymizers[params.purpose]

    def pseudonymize_method(s: Subject) -> str | None:
        # Only methods outside the vocabulary: the security team can tell one odd method from another
        # (the same scanner's "DEBUG" across sources) without reading the text a client chose.
        method = s.event.method
        if method is None or classify_method(method) != OTHER:
            return None
        return pz.digest(b"method:" + method.encode("utf-8", "surrogatepass"), s.unix)

    return pseudonymize_method


def _copy_field(params: CopyParams, ctx: BuildContext) -> FieldFn:
    name = params.field

    def copy_field(s: Subject) -> Any:
        value = getattr(s.event, name)
        return value.value if hasattr(value, "value") else value

    return copy_field


def _truncate_time(params: TimeParams, ctx: BuildContext) -> FieldFn:
    step = params.granularity_s
    last: list[Any] = [None, None]  # one-entry memo: consecutive events usually share the truncated time

    def truncate_time(s: Subject) -> str:
        whole = int(s.unix // step) * step
        if last[0] != whole:
            last[0] = whole
            last[1] = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return str(last[1])

    return truncate_time


def _time_quality(params: NoParams, ctx: BuildContext) -> FieldFn:
    def time_quality(s: Subject) -> str:
        flag = s.event.time_flag
        return "event" if flag is None else f"ingest:{flag}"

    return time_quality


def _escrow_ip(params: NoParams, ctx: BuildContext) -> FieldFn:
    escrow = ctx.escrow
    if escrow is None:
        # Fail at start-up: a policy that asks for escrow must not silently run without it.
        raise ConfigError(
            "policy field transform 'escrow_ip' needs an escrow public key, and the keyring has none: create one "
            "with `pseudonymizer keys escrow-rotate --keys K --private-key-out FILE` (a keyring with only legacy e1 "
            "escrow keys needs it too: workers no longer seal with a key they could open), or remove the field"
        )
    seal = escrow.seal

    def escrow_ip(s: Subject) -> str | None:
        # Host-name sources (old pam_unix rhost=) have no address to escrow.
        return seal(s.ip.packed) if s.ip is not None else None

    return escrow_ip


@dataclass(frozen=True, slots=True)
class TransformSpec:
    params: type[_Params]
    build: Callable[[Any, BuildContext], FieldFn]
    doc: str


TRANSFORMS: dict[str, TransformSpec] = {
    "pseudonymize_ip": TransformSpec(PurposeParams, _pseudonymize_ip, "HMAC pseudonym of the source address"),
    "pseudonymize_visitor": TransformSpec(
        PurposeParams, _pseudonymize_visitor, "HMAC of address + user agent: unique visitors per epoch"
    ),
    "pseudonymize_user": TransformSpec(PurposeParams, _pseudonymize_user, "HMAC pseudonym of a username/e-mail"),
    "truncate_ip": TransformSpec(TruncateParams, _truncate_ip, "network prefix, /24 and /48 by default"),
    "classify_ip": TransformSpec(NoParams, _classify_ip, "public/private/loopback/cgnat/... scope"),
    "generalize_geo": TransformSpec(GeoParams, _generalize_geo, "country, region, rounded coordinates, ASN"),
    "reduce_user_agent": TransformSpec(NoParams, _reduce_user_agent, "browser family+major, OS, device, bot"),
    "strip_url": TransformSpec(UrlParams, _strip_url, "templated path and allowlisted query parameters"),
    "reduce_referrer": TransformSpec(
        NoParams, _reduce_referrer, "referrer host only, labels carrying addresses or tokens as placeholders"
    ),
    "classify_method": TransformSpec(
        NoParams, _classify_method, "HTTP method in a closed vocabulary (RFC 9110, PATCH, WebDAV), else OTHER"
    ),
    "classify_version": TransformSpec(NoParams, _classify_version, "HTTP/1.0, HTTP/1.1, HTTP/2, HTTP/3, else OTHER"),
    "pseudonymize_method": TransformSpec(
        PurposeParams, _pseudonymize_method, "HMAC pseudonym of a method outside the vocabulary (else absent)"
    ),
    "copy_field": TransformSpec(
        CopyParams, _copy_field, "a number, flag or parser-set value (kind, status, bytes...), verbatim"
    ),
    "truncate_time": TransformSpec(TimeParams, _truncate_time, "event time truncated to a granularity"),
    "time_quality": TransformSpec(NoParams, _time_quality, "whether the time came from the record"),
    "escrow_ip": TransformSpec(
        NoParams,
        _escrow_ip,
        "source address sealed to the escrow public key (HPKE) for audited `reveal` (abuse field 'escrow' only)",
    ),
}
