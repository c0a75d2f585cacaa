"""Errors carry bounded reason codes, never the offending data.

Two kinds of error are kept apart: :class:`ConfigError` stops start-up with a message naming the
setting; :class:`RecordError` (and subclasses) is raised per record, caught by the router, counted
and sent to quarantine with its ``reason``. A record error's message must never contain input
data: an exception text that quotes the record could carry an IP or an e-mail into a log.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Quarantine reason codes: a closed set so that counters and dashboards stay bounded."""

    EMPTY = "empty"
    OVERSIZED = "oversized"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"  # a number beyond its field's real range (a status of 10**30)
    UNPARSEABLE_LINE = "unparseable_line"
    MISSING_IP = "missing_ip"
    INVALID_IP = "invalid_ip"
    TRANSFORM_FAILED = "transform_failed"


class PseudonymizerError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(PseudonymizerError):
    """A setting, policy entry or key file is invalid; the message names it. Stops start-up."""


class KeyringError(ConfigError):
    """The keyring is missing, unreadable or lacks a needed key. Never includes key material."""


class RecordError(PseudonymizerError):
    """One input record cannot be processed; ``reason`` says why, ``field`` says where (a name, not a value)."""

    def __init__(self, reason: Reason, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        super().__init__(reason.value if field is None else f"{reason.value}: {field}")
