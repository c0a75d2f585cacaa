"""The policy: what each output keeps and how, validated once into frozen, strict models.

The policy file (``config/policy.toml``) is parsed into :class:`Policy`. Unknown keys anywhere and
unknown transform names stop start-up with a message that names the offending location and, for
transform names, lists the valid ones.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from transforms.detect import DetectionParams
from transforms.errors import ConfigError
from transforms.model import EventKind
from transforms.parse import ParseParams
from transforms.registry import TRANSFORMS
from transforms.release import AggregateParams, ReleaseParams
from transforms.signals import SignalParams

_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
# Set by the router on every abuse record; a policy field may not overwrite them.
ABUSE_RESERVED = frozenset({"kind", "rule", "category", "severity", "technique", "schema"})
ANALYTICS_RESERVED = frozenset({"schema"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FieldSpec(_Frozen):
    """One output field: its dotted name, the transform that computes it, and the transform's parameters."""

    name: str
    transform: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if not _FIELD_NAME.match(value):
            raise ValueError("must be a dotted lower_snake_case name such as 'client.prefix'")
        return value

    @field_validator("transform")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in TRANSFORMS:
            raise ValueError(f"unknown transform {value!r}; valid: {', '.join(sorted(TRANSFORMS))}")
        return value

    @model_validator(mode="after")
    def _params_fit(self) -> FieldSpec:
        TRANSFORMS[self.transform].params.model_validate(self.params)
        return self


class OutputPolicy(_Frozen):
    kinds: list[EventKind]
    fields: list[FieldSpec] = Field(min_length=1)

    @field_validator("fields")
    @classmethod
    def _unique(cls, value: list[FieldSpec]) -> list[FieldSpec]:
        names = [f.name for f in value]
        for name in names:
            if any(other != name and other.startswith(name + ".") for other in names):
                raise ValueError(f"field {name!r} is both a value and a parent of another field")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate field name(s): {', '.join(duplicates)}")
        return value


# Transforms whose values link records to each other (the release re-keys them per window).
LINKING_TRANSFORMS = frozenset({"pseudonymize_ip", "pseudonymize_visitor", "pseudonymize_user"})


class AnalyticsPolicy(OutputPolicy):
    # Absent from a policy file: records are released one by one as before (analytics/1), no aggregates.
    release: ReleaseParams = ReleaseParams(enabled=False)
    aggregates: AggregateParams = AggregateParams(enabled=False)

    @model_validator(mode="after")
    def _release_fits(self) -> AnalyticsPolicy:
        if not self.release.enabled:
            if self.aggregates.enabled:
                raise ValueError("aggregates need the release (analytics.release.enabled = true)")
            return self
        self.release.check_fields([f.name for f in self.fields])
        transforms = {f.name: f.transform for f in self.fields}
        for name in self.release.links:
            if transforms[name] not in LINKING_TRANSFORMS:
                raise ValueError(f"release link {name!r} must be a pseudonym ({', '.join(sorted(LINKING_TRANSFORMS))})")
        for name, transform in transforms.items():
            linking = transform in LINKING_TRANSFORMS and name not in self.release.links
            if linking and self.release.quasi_identifiers.get(name) != "keep_or_drop":
                raise ValueError(f"pseudonym field {name!r}: a link, or a quasi-identifier with 'keep_or_drop'")
        return self

    @field_validator("fields")
    @classmethod
    def _no_reserved(cls, value: list[FieldSpec]) -> list[FieldSpec]:
        clash = sorted({f.name.split(".")[0] for f in value} & ANALYTICS_RESERVED)
        if clash:
            raise ValueError(f"reserved field name(s): {', '.join(clash)}")
        if any(f.transform == "escrow_ip" for f in value):
            raise ValueError("'escrow_ip' is reversible: it belongs in the abuse output only, never in analytics")
        return value


class AbusePolicy(OutputPolicy):
    signals: SignalParams = SignalParams()

    @field_validator("fields")
    @classmethod
    def _contract(cls, value: list[FieldSpec]) -> list[FieldSpec]:
        names = {f.name for f in value}
        clash = sorted({n.split(".")[0] for n in names} & ABUSE_RESERVED)
        if clash:
            raise ValueError(f"reserved field name(s), set by the router: {', '.join(clash)}")
        for required, transform in (("subject", "pseudonymize_ip"), ("time", "truncate_time")):
            spec = next((f for f in value if f.name == required), None)
            if spec is None or spec.transform != transform:
                raise ValueError(f"abuse records must have {required!r} computed by {transform!r}")
            if required == "subject" and spec.params.get("purpose") != "security":
                raise ValueError("abuse 'subject' must use purpose 'security'")
        if any(f.transform == "escrow_ip" and f.name != "escrow" for f in value):
            raise ValueError("'escrow_ip' must be the field named 'escrow' (where `pseudonymizer reveal` reads it)")
        return value


class GeoPolicy(_Frozen):
    coordinate_decimals: int | None = Field(1, ge=0, le=4)


class Policy(_Frozen):
    version: Literal[1]
    parse: ParseParams = ParseParams()  # frozen models: a shared default instance is safe
    geo: GeoPolicy = GeoPolicy()
    analytics: AnalyticsPolicy
    abuse: AbusePolicy
    detection: DetectionParams = DetectionParams()


def validate_policy(data: dict[str, Any], source: str) -> Policy:
    """Validate a parsed policy document; ``ConfigError`` names every offending location."""
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(root)"
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(f"  {where}: {message}")
        raise ConfigError(f"policy {source} is invalid:\n" + "\n".join(problems)) from None
