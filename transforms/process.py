"""The composed record processor: raw bytes in, routed outputs out. Shared by the stream and file modes.

Every raw record ends in exactly one :class:`Route`: ``analytics`` (at least one minimized record),
``quarantine`` (a :class:`~transforms.errors.RecordError` with its reason code) or ``filtered`` (by
policy, with a reason). Abuse records are a side output: a record may produce abuse events whatever
its route, except quarantine. Processing fails closed: any unexpected exception while transforming
quarantines the record with ``transform_failed`` instead of letting a half-minimized record out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from transforms.errors import Reason, RecordError
from transforms.escrow import IpEscrow
from transforms.geo import GeoLocator
from transforms.ip import parse_ip
from transforms.keyring import Keyring, Purpose
from transforms.model import Event, Observation
from transforms.parse import build_parser
from transforms.policy import OutputPolicy, Policy
from transforms.pseudonymize import BeyondRetention, Pseudonymizer
from transforms.registry import TRANSFORMS, BuildContext, FieldFn, Subject
from transforms.release import ReleaseRow
from transforms.signals import Signal, SignalDetector
from transforms.useragent import UserAgentReducer

ANALYTICS_SCHEMA = "analytics/1"
ABUSE_SCHEMA = "abuse/1"


class Route(StrEnum):
    ANALYTICS = "analytics"
    QUARANTINE = "quarantine"
    FILTERED = "filtered"


class FilterReason(StrEnum):
    NO_CLIENT_EVENT = "no_client_event"  # recognized line without a client (e.g. "session closed")
    KIND_NOT_IN_ANALYTICS = "kind_not_in_analytics"  # e.g. sshd events are not web analytics
    BEYOND_RETENTION = "beyond_retention"  # the epoch key was shredded: the record must not be kept


@dataclass(slots=True)
class Outcome:
    route: Route
    reason: str | None = None  # quarantine reason code or filter reason
    field: str | None = None  # for quarantine: the field name that failed, never its value
    analytics: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    abuse: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # One per security-relevant event, for the stateful detector (pseudonymized, minimized).
    observations: list[Observation] = dataclasses.field(default_factory=list)
    # With the k-anonymous release on: each analytics record on its way to the release windows (same order).
    release_rows: list[ReleaseRow] = dataclasses.field(default_factory=list)


# The abuse fields an observation reads (see _observation); an event without signals computes only these.
OBSERVATION_FIELDS = frozenset(
    {"subject", "source.prefix", "source.scope", "source.geo", "event.url", "event.user", "event.user_agent"}
)


class _OutputBuilder:
    """Builds one output's nested record from its prebuilt field callables."""

    def __init__(self, kinds: frozenset[str], fields: list[tuple[str, tuple[str, ...], str, FieldFn]]) -> None:
        self.kinds = kinds
        self._fields = fields  # (dotted name, parent keys, leaf key, callable)

    @classmethod
    def build(cls, policy: OutputPolicy, ctx: BuildContext) -> _OutputBuilder:
        fields = []
        for spec in policy.fields:
            transform = TRANSFORMS[spec.transform]
            fn = transform.build(transform.params.model_validate(spec.params), ctx)
            *parents, leaf = spec.name.split(".")
            fields.append((spec.name, tuple(parents), leaf, fn))
        return cls(frozenset(policy.kinds), fields)

    def subset(self, names: frozenset[str]) -> _OutputBuilder:
        """The same builder restricted to the named fields (the same prebuilt callables, shared caches)."""
        return _OutputBuilder(self.kinds, [f for f in self._fields if f[0] in names])

    def __call__(self, subject: Subject, base: dict[str, Any]) -> dict[str, Any]:
        for _, parents, leaf, fn in self._fields:
            value = fn(subject)
            if value is None:
                continue
            target = base
            for part in parents:
                child = target.get(part)
                if child is None:
                    child = target[part] = {}
                target = child
            target[leaf] = value
        return base


class RecordProcessor:
    """Parse, validate, pseudonymize, minimize and route one raw record. Build once, call per record."""

    def __init__(
        self,
        parse: Callable[[bytes, datetime], list[Event]],
        analytics: _OutputBuilder,
        abuse: _OutputBuilder,
        detect: SignalDetector,
        daily_visitors: Pseudonymizer | None = None,
        release_unit: str = "client.pseudonym",
    ) -> None:
        self._parse = parse
        # Set when analytics go through the release: the daily visitor the aggregates count (never released).
        self._daily_visitors = daily_visitors
        self._release_unit = release_unit
        self._analytics = analytics
        self._abuse = abuse
        self._observed = abuse.subset(OBSERVATION_FIELDS)
        self._detect = detect

    @classmethod
    def build(cls, policy: Policy, keyring: Keyring, geo: GeoLocator | None = None) -> RecordProcessor:
        ctx = BuildContext(
            pseudonymizers={p: Pseudonymizer(keyring, p) for p in Purpose},
            geo=geo,
            user_agents=UserAgentReducer(),
            escrow=IpEscrow(keyring.escrow_public_keys[-1]) if keyring.escrow_public_keys else None,
        )
        release = policy.analytics.release
        analytics_ctx = ctx
        if release.enabled:
            # Released pseudonyms live one release window: a unit links one window of records, never more.
            window_lived = Pseudonymizer(keyring, Purpose.ANALYTICS, lifetime_s=release.window_s)
            analytics_ctx = dataclasses.replace(
                ctx, pseudonymizers={**ctx.pseudonymizers, Purpose.ANALYTICS: window_lived}
            )
        return cls(
            parse=build_parser(policy.parse),
            analytics=_OutputBuilder.build(policy.analytics, analytics_ctx),
            abuse=_OutputBuilder.build(policy.abuse, ctx),
            detect=SignalDetector.build(policy.abuse.signals),
            daily_visitors=ctx.pseudonymizers[Purpose.ANALYTICS] if release.enabled else None,
            release_unit=release.unit,
        )

    def __call__(self, raw: bytes, ingest_time: datetime) -> Outcome:
        try:
            events = self._parse(raw, ingest_time)
            if not events:
                return Outcome(Route.FILTERED, FilterReason.NO_CLIENT_EVENT.value)
            outcome = Outcome(Route.FILTERED, FilterReason.KIND_NOT_IN_ANALYTICS.value)
            for event in events:
                self._route_event(event, outcome)
            if outcome.analytics:
                outcome.route, outcome.reason = Route.ANALYTICS, None
            return outcome
        except RecordError as exc:
            return Outcome(Route.QUARANTINE, exc.reason.value, exc.field)
        except BeyondRetention:
            return Outcome(Route.FILTERED, FilterReason.BEYOND_RETENTION.value)
        except Exception:  # fail closed: never let a half-transformed record through
            return Outcome(Route.QUARANTINE, Reason.TRANSFORM_FAILED.value)

    def _route_event(self, event: Event, outcome: Outcome) -> None:
        ip = None if event.extra.get("source_kind") == "hostname" else parse_ip(event.source_ip)
        subject = Subject(event=event, ip=ip, unix=event.time.timestamp())
        if event.kind in self._abuse.kinds:
            signals = self._detect(event)
            # The observation the stateful detector sees is read from the policy's abuse fields, so alerts
            # carry exactly what the policy allows; most events have no signal and need only that subset.
            if signals:
                shared = self._abuse(subject, {})
                outcome.abuse.extend(self._abuse_records(shared, signals, event.repeat))
            else:
                shared = self._observed(subject, {})
            outcome.observations.append(_observation(shared, subject, signals))
        if event.kind in self._analytics.kinds:
            record = self._analytics(subject, {"schema": ANALYTICS_SCHEMA})
            outcome.analytics.append(record)
            daily = self._daily_visitors
            if daily is not None:
                if ip is None:
                    visitor = daily.hostname(event.source_ip, subject.unix)
                else:
                    visitor = daily.visitor(ip.packed, event.user_agent, subject.unix)
                outcome.release_rows.append(ReleaseRow.of(record, visitor, subject.unix, self._release_unit))

    def _abuse_records(self, shared: dict[str, Any], signals: list[Signal], repeat: int) -> list[dict[str, Any]]:
        records = []
        for signal in signals:
            record: dict[str, Any] = {
                "schema": ABUSE_SCHEMA,
                "kind": "event",
                "rule": signal.rule,
                "category": signal.category,
                "severity": signal.severity.value,
            }
            if signal.technique:
                record["technique"] = signal.technique
            if repeat > 1:
                record["repeat"] = repeat  # the line stood for this many identical ones: a count, not copies
            record.update(shared)
            records.append(record)
        return records


def _observation(shared: dict[str, Any], subject: Subject, signals: list[Signal]) -> Observation:
    """The detector's view of one event, taken from the policy's abuse fields (nothing more)."""
    source = shared.get("source", {})
    geo = source.get("geo", {})
    detail = shared.get("event", {})
    event = subject.event
    return Observation(
        subject=shared["subject"],
        time=subject.unix,
        kind=event.kind.value,
        signals=tuple(s.rule for s in signals),
        method=event.method_class,
        status=event.status,
        path=detail.get("url", {}).get("path"),
        user=detail.get("user"),
        ssh_outcome=event.ssh_outcome.value if event.ssh_outcome else None,
        bot=bool(detail.get("user_agent", {}).get("bot")),
        prefix=source.get("prefix"),
        scope=source.get("scope"),
        country=geo.get("country"),
        asn=geo.get("asn"),
        as_org=geo.get("as_org"),
        repeat=event.repeat,
        timed=event.time_flag is None,
    )
