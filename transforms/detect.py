"""Stateful detections per source: leaky buckets over :class:`~transforms.model.Observation`, in event time.

Each :class:`BucketRule` is a leaky bucket with CrowdSec semantics, kept per subject (the security
pseudonym of the source; the caller keys the state by ``Observation.subject``):

* an observation that satisfies the rule's :class:`MatchSpec` pours one token;
* the bucket leaks one token every ``leak_s`` seconds of *event* time, continuously (a token bucket:
  CrowdSec's ``leakspeed``), never below empty;
* it **overflows when it holds more than** ``capacity`` tokens (capacity 5 -> the 6th line in quick
  succession), which emits one abuse ``alert`` and ends the bucket;
* with ``distinct`` (CrowdSec's ``distinct``/uniq filter) an observation pours only if its value (path,
  user, status or signals) is new for the bucket's life; an observation without that value never pours;
* after an alert the (subject, rule) pair is quiet for ``quiet_s`` of event time (CrowdSec's
  ``blackhole``): matching observations with a time before ``alert time + quiet_s`` are ignored,
  so **at most one alert per quiet period**.

Usage::

    detect = Detector.build(DetectionParams())
    states: dict[str, dict] = {}
    for observation in outcome.observations:
        state, alerts = detect(states.get(observation.subject), observation)
        ...  # store state (or drop the key when it is None), send the alerts

Counting follows the reference scenario, which counts log *lines*, not attempts: an sshd
"Invalid user" line and the following "Failed password for invalid user" line are two tokens, as in
CrowdSec. Lines that only *accompany* a failure that another line already reports are not counted by
the main ssh rules, or every attempt would count twice: the pam_unix "authentication failure" line
modern OpenSSH writes next to each "Failed password" line, and the "Disconnected from / Connection
closed by authenticating user ... [preauth]" or "Received disconnect ...: Auth fail" line of a client
that gives up. Some sshd logs have only those lines (old sshd: pam_unix only; key-only servers:
disconnects only), so ``ssh.bruteforce_fallback`` counts them, and is ``suppressed_by`` the main ssh
rules: where those see the source it stays silent, so the same attempts never raise two brute-force
alerts from two kinds of line.

Event time and out-of-order observations
========================================

Everything is computed in event time, so a replay gives the same alerts as the live stream: the
result depends only on the observations and the order in which they arrive (and on when
:meth:`Detector.expire` runs, see below), never on wall-clock time.

* The state remembers the latest event time seen for the subject. An observation older than
  ``latest - max_out_of_order_s`` (the *cutoff*) is **late**: it changes nothing but the ``late``
  counter of the state.
* Each bucket keeps the times (and levels) of its events newer than the cutoff, at most
  ``MAX_PENDING`` of them; older ones are folded into an *anchor* (time, level). An observation that
  arrives out of order (older than the bucket's newest event, but not late) is inserted at its place
  and the levels after it are recomputed from the anchor. The level of a leaky bucket at any moment
  is a function of the *set* of its events (Lindley's recursion), so this gives exactly the levels
  that time-ordered arrival would give, and a bucket overflows at the event where the time-ordered
  stream would have overflowed: **the set of (subject, rule) alerts does not depend on the arrival
  order within max_out_of_order_s** (property-tested), with these limits:

  - beyond ``MAX_PENDING`` events within the window the oldest are folded early; an observation
    older than the anchor then counts as a token at the anchor's time, without leak (it may count
    slightly more than time order would, never less);
  - ``distinct`` values and the evidence/``count`` bookkeeping follow arrival order: a bucket's
    life (what its distinct set, ``first_seen`` and ``count`` cover) restarts when an in-order
    observation finds the bucket empty;
  - an overflow ends the bucket: events already in it that are newer than the overflowing one (there
    are some only when an out-of-order observation completed the burst) end with it.

* A bucket is dropped once it is empty at the cutoff and has no event newer than the cutoff (no
  accepted observation can then see a non-empty bucket); a quiet period once it ends before the
  cutoff. ``__call__`` returns ``None`` when nothing is left: a source has state only while it has
  counted events within the last ``max_out_of_order_s`` (or a running quiet period), and none at all
  if no rule counts its observations.
* :meth:`Detector.expire` applies the same pruning at a caller-given ``now`` (the stream's latest
  event time): it declares observations older than ``now - max_out_of_order_s`` late for the subject.

State (a JSON object; orjson round-trips it exactly; keys are short because every change of it is
written to a changelog topic)::

    {"v": 1, "t": latest event time, "late": late observations (omitted when 0),
     "b": {rule id: {"at": anchor time, "al": anchor level, "pt": [times], "pl": [levels],
                     "f": first event of the life, "n": matching events, "k": tokens poured,
                     "d": [distinct value digests], "e": [evidence samples]}},
     "q": {rule id: end of quiet period}}

Its size is bounded whatever the input: at most one bucket and one quiet period per rule, each bucket
at most ``MAX_PENDING`` times, ``distinct_cap(rule)`` digests of 10 hex digits (values are never
stored, only a 40-bit BLAKE2b digest) and ``evidence_samples`` samples whose path is cut to
``MAX_EVIDENCE_PATH`` characters. It holds nothing that the observations do not already carry.

Alert (an abuse record)::

    {"schema": "abuse/1", "kind": "alert", "rule", "category", "severity", "technique" (when set),
     "subject", "time" (the overflowing event), "first_seen", "last_seen" (the bucket life's first
     and last event), "count" (matching events in the bucket's life, repeated distinct values included),
     "distinct" (distinct values = tokens poured; distinct rules only),
     "source": {"prefix", "scope", "geo": {"country", "asn", "as_org"}} (only what the observation has),
     "evidence": [{"time", "method", "path", "status", "ssh_outcome", "signals"} without empty values]}

Times are ISO-8601 UTC to the second (``2024-05-01T12:00:07Z``), like the policy's abuse records.

Default rules (``DEFAULT_RULES``; thresholds from the CrowdSec hub scenarios named in each
description, the reference values in ``../shared/data/README.md``):

=========================  ==============================================  ========  ======  ========  =====
rule                       source scenario                                 capacity  leak s  distinct  quiet
=========================  ==============================================  ========  ======  ========  =====
ssh.bruteforce             crowdsecurity/ssh-bf                            5         10      -         300
ssh.user_enum              crowdsecurity/ssh-bf_user-enum                  5         10      user      300
ssh.slow_bruteforce        crowdsecurity/ssh-slow-bf                       10        60      -         300
ssh.persistent_bruteforce  fail2ban sshd jail (maxretry 5, findtime 10m)   4         600     -         600
ssh.bruteforce_fallback    crowdsecurity/ssh-bf on pam/disconnect lines    5         10      -         300
ssh.preauth_scan           lepresidente/ssh-bad-keyexchange-bf             5         10      -         300
http.probing               crowdsecurity/http-probing                      10        10      path      300
http.protocol_probing      crowdsecurity/http-probing (malformed lines)    10        10      -         300
http.crawl                 crowdsecurity/http-crawl-non_statics            40        0.5     path      300
http.sensitive_files       crowdsecurity/http-sensitive-files              4         5       path      300
http.traversal_probing     crowdsecurity/http-path-traversal-probing       3         10      path      300
http.sqli_probing          crowdsecurity/http-sqli-probbing-detection      10        1       -         300
http.xss_probing           crowdsecurity/http-xss-probbing                 5         1       -         300
http.admin_probing         crowdsecurity/http-admin-interface-probing      2         10      path      300
http.backdoor_probing      crowdsecurity/http-backdoors-attempts           1         5       path      300
http.bad_user_agent        crowdsecurity/http-bad-user-agent               1         60      -         300
http.login_bruteforce      crowdsecurity/http-generic-bf, http-bf-wordpr.  5         10      -         300
http.flood                 none (this project): > 30 requests/s sustained  300       0.0333  -         300
=========================  ==============================================  ========  ======  ========  =====
"""

from __future__ import annotations

import bisect
import fnmatch
import hashlib
import itertools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from transforms.model import EventKind, Observation, SshOutcome
from transforms.signals import RULES

__all__ = [
    "DEFAULT_RULES",
    "MATCH_MEMO_SIZE",
    "MAX_EVIDENCE_PATH",
    "MAX_PENDING",
    "STATIC_EXTENSIONS",
    "BucketRule",
    "DetectionParams",
    "Detector",
    "MatchSpec",
    "distinct_cap",
    "is_static",
]

ALERT_SCHEMA: Final = "abuse/1"
STATE_VERSION: Final = 1
# Event times of a bucket kept for exact out-of-order insertion (older ones fold into its anchor).
MAX_PENDING: Final = 64
# Distinct (kind, outcome, method, status, bot, signals, path) combinations whose matching rules are remembered.
MATCH_MEMO_SIZE: Final = 1 << 16
# Evidence paths are cut to this many characters: the URL policy bounds paths, but a policy change must
# not be able to grow the detector state.
MAX_EVIDENCE_PATH: Final = 512
# Overflow is "more than capacity"; the tolerance keeps float leak arithmetic (5 - 1.0000000001 + 1)
# from turning an exactly full bucket into an overflow.
_EPSILON: Final = 1e-9
_DIGEST_BYTES: Final = 5  # 40-bit digests: collisions among <= 256 values are ~3e-8 likely

# File extensions of static assets (the last path segment's, lower-cased). CrowdSec's crawl and probing
# scenarios ignore static resources: a page view fetches dozens of them, and a missing favicon is no probe.
STATIC_EXTENSIONS: Final = frozenset(
    {
        "css", "js", "mjs", "map", "json",
        "png", "jpg", "jpeg", "gif", "ico", "svg", "webp", "avif", "bmp", "tif", "tiff",
        "woff", "woff2", "ttf", "otf", "eot",
        "mp3", "mp4", "webm", "ogg", "ogv", "wav", "flac", "m4a", "mov",
        "pdf", "txt", "xml", "rss", "atom",
    }
)  # fmt: skip

_RULE_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
_METHOD = re.compile(r"^[A-Za-z]{1,32}$")
_KINDS: Final = tuple(kind.value for kind in EventKind)
_SSH_OUTCOMES: Final = tuple(outcome.value for outcome in SshOutcome)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _none_empty(name: str, value: list[Any] | None) -> None:
    if value is not None and not value:
        raise ValueError(f"{name} must not be empty (omit it to match any value)")


def _only_known(name: str, value: list[str] | None, valid: Sequence[str], what: str) -> list[str] | None:
    """Validate a list against the allowed values; the message names the unknown ones and lists the valid."""
    _none_empty(name, value)
    unknown = sorted({item for item in value or () if item not in valid})
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(unknown)}; valid: {', '.join(valid)}")
    return value


class MatchSpec(_Frozen):
    """Which observations a rule counts: every given condition must hold; a list means any of its values.

    ``path_globs``/``exclude_path_globs`` are shell globs (``*``, ``?``, ``[...]``; ``*`` also crosses
    ``/``) matched case-insensitively on the templated path; an observation without a path matches
    no ``path_globs`` and no ``exclude_path_globs``. ``static`` compares :func:`is_static` of the path.
    """

    kinds: list[str] | None = None  # "http" / "ssh"
    signals_any: list[str] | None = None  # per-record rule ids (transforms.signals.RULES)
    ssh_outcomes: list[str] | None = None  # failed / invalid_user / accepted / auth_failure / ...
    methods: list[str] | None = None  # exact, case-sensitive: "get" is not "GET" in a log
    status: list[int] | None = None
    status_min: int | None = Field(None, ge=100, le=599)
    status_max: int | None = Field(None, ge=100, le=599)
    path_globs: list[str] | None = None
    exclude_path_globs: list[str] | None = None
    static: bool | None = None
    bot: bool | None = None

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: list[str] | None) -> list[str] | None:
        return _only_known("kinds", value, _KINDS, "kind(s)")

    @field_validator("signals_any")
    @classmethod
    def _known_signals(cls, value: list[str] | None) -> list[str] | None:
        return _only_known("signals_any", value, tuple(RULES), "signal rule id(s)")

    @field_validator("ssh_outcomes")
    @classmethod
    def _known_outcomes(cls, value: list[str] | None) -> list[str] | None:
        return _only_known("ssh_outcomes", value, _SSH_OUTCOMES, "ssh outcome(s)")

    @field_validator("methods")
    @classmethod
    def _method_tokens(cls, value: list[str] | None) -> list[str] | None:
        _none_empty("methods", value)
        bad = sorted({method for method in value or () if not _METHOD.match(method)})
        if bad:
            raise ValueError(f"invalid method(s) {', '.join(map(repr, bad))}: letters only, e.g. 'POST'")
        return value

    @field_validator("status")
    @classmethod
    def _status_codes(cls, value: list[int] | None) -> list[int] | None:
        _none_empty("status", value)
        bad = sorted({code for code in value or () if not 100 <= code <= 599})
        if bad:
            raise ValueError(f"status code(s) {', '.join(map(str, bad))} outside 100..599")
        return value

    @field_validator("path_globs", "exclude_path_globs")
    @classmethod
    def _globs(cls, value: list[str] | None) -> list[str] | None:
        _none_empty("path globs", value)
        bad = [glob for glob in value or () if not glob or glob[0] not in "/*?["]
        if bad:
            raise ValueError(f"path glob(s) {', '.join(map(repr, bad))} must start with '/' or a wildcard")
        return value

    @model_validator(mode="after")
    def _status_range(self) -> MatchSpec:
        if self.status_min is not None and self.status_max is not None and self.status_min > self.status_max:
            raise ValueError("status_min must not exceed status_max")
        return self


class BucketRule(_Frozen):
    """One leaky bucket per subject: what it counts, how fast it leaks, what its alert says."""

    id: str  # e.g. "ssh.bruteforce": the alert's "rule"
    category: str  # e.g. "brute_force"
    severity: Literal["low", "medium", "high"]
    technique: str | None = None  # MITRE ATT&CK id, e.g. "T1110"
    description: str = Field(min_length=1)  # what it detects and the scenario its thresholds come from
    match: MatchSpec
    capacity: int = Field(ge=1, le=100_000)  # overflow when the bucket holds MORE than this
    leak_s: float = Field(gt=0, le=86_400)  # one token leaks every leak_s seconds of event time
    distinct: Literal["path", "user", "status", "signal"] | None = None
    quiet_s: float = Field(300.0, ge=0, le=30 * 86_400)  # no new alert for (subject, rule) this long
    # Rules that take precedence: while the subject has a bucket or a quiet period in one of them, an
    # overflow of this rule ends its bucket silently (used where two rules see the same attack in
    # different log lines, e.g. pam_unix and "Failed password" lines of one sshd).
    suppressed_by: list[str] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _rule_id(cls, value: str) -> str:
        if not _RULE_ID.match(value):
            raise ValueError("must be a dotted lower_snake_case id such as 'ssh.bruteforce'")
        if value in RULES:
            raise ValueError(f"{value!r} is a per-record signal id; a stateful rule needs its own id")
        return value

    @field_validator("category")
    @classmethod
    def _category(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be a lower_snake_case name such as 'brute_force'")
        return value

    @field_validator("technique")
    @classmethod
    def _technique(cls, value: str | None) -> str | None:
        if value is not None and not _TECHNIQUE.match(value):
            raise ValueError("must be a MITRE ATT&CK technique id such as 'T1110' or 'T1595.002'")
        return value


def _rule(
    rule_id: str,
    category: str,
    severity: Literal["low", "medium", "high"],
    technique: str | None,
    description: str,
    match: MatchSpec,
    capacity: int,
    leak_s: float,
    *,
    distinct: Literal["path", "user", "status", "signal"] | None = None,
    quiet_s: float = 300.0,
    suppressed_by: Iterable[str] = (),
) -> BucketRule:
    return BucketRule(
        id=rule_id,
        category=category,
        severity=severity,
        technique=technique,
        description=description,
        match=match,
        capacity=capacity,
        leak_s=leak_s,
        distinct=distinct,
        quiet_s=quiet_s,
        suppressed_by=list(suppressed_by),
    )


# sshd lines that report a failed authentication themselves: "Failed password", "Invalid user", and the
# hinted "not allowed because", "ROOT LOGIN REFUSED", "maximum authentication attempts exceeded" (outcome
# "other" with ssh.auth_failed). Not the lines that accompany them (pam_unix, disconnects): see the fallback.
_SSH_FAILED_LINE = MatchSpec(
    kinds=["ssh"],
    signals_any=["ssh.auth_failed", "ssh.invalid_user"],
    ssh_outcomes=["failed", "invalid_user", "other"],
)
_LINE_COUNTING_SSH_RULES: Final = (
    "ssh.bruteforce",
    "ssh.user_enum",
    "ssh.slow_bruteforce",
    "ssh.persistent_bruteforce",
)

DEFAULT_RULES: Final[tuple[BucketRule, ...]] = (
    _rule(
        "ssh.bruteforce", "brute_force", "medium", "T1110",
        "SSH password guessing: more than 5 failed-auth lines leaking 1 per 10 s "
        "(crowdsecurity/ssh-bf).",
        _SSH_FAILED_LINE, 5, 10.0,
    ),
    _rule(
        "ssh.user_enum", "brute_force", "medium", "T1589",
        "SSH user enumeration: more than 5 distinct user names in failed-auth lines, 1 leaking per 10 s; "
        "'Invalid user' lines alone are enough (crowdsecurity/ssh-bf_user-enum).",
        _SSH_FAILED_LINE, 5, 10.0, distinct="user",
    ),
    _rule(
        "ssh.slow_bruteforce", "brute_force", "medium", "T1110",
        "Slow SSH password guessing: more than 10 failed-auth lines leaking 1 per 60 s "
        "(crowdsecurity/ssh-slow-bf).",
        _SSH_FAILED_LINE, 10, 60.0,
    ),
    _rule(
        "ssh.persistent_bruteforce", "brute_force", "low", "T1110",
        "Persistent SSH failures: 5 failed-auth lines within 10 minutes, or more than 1 per 10 minutes "
        "sustained (fail2ban sshd jail defaults maxretry 5, findtime 10m, bantime 10m, as a leaky bucket: "
        "capacity 4, 1 leaking per 600 s); catches guessing too slow or too short for crowdsecurity/ssh-bf "
        "and ssh-slow-bf.",
        _SSH_FAILED_LINE, 4, 600.0, quiet_s=600.0,
    ),
    _rule(
        "ssh.bruteforce_fallback", "brute_force", "medium", "T1110",
        "SSH guessing seen only through the lines that accompany failures: pam_unix 'authentication "
        "failure' (old sshd writes nothing else) and clients leaving mid-authentication ('Disconnected from "
        "authenticating user ... [preauth]', key-only servers); the crowdsecurity/ssh-bf thresholds (its "
        "SSHD_AUTH_FAIL and SSHD_PREAUTH_AUTHENTICATING_USER patterns); silent where the main ssh rules see "
        "the source.",
        MatchSpec(kinds=["ssh"], signals_any=["ssh.auth_failed"], ssh_outcomes=["auth_failure", "disconnect"]),
        5, 10.0, suppressed_by=_LINE_COUNTING_SSH_RULES,
    ),
    _rule(
        "ssh.preauth_scan", "recon", "low", "T1595",
        "SSH scanning before authentication (no identification string, bad banner, no common key exchange, "
        "timeouts): more than 5 such lines leaking 1 per 10 s (lepresidente/ssh-bad-keyexchange-bf; "
        "CrowdSec's ssh-bf also counts bad banners).",
        MatchSpec(kinds=["ssh"], signals_any=["ssh.preauth_probe"]), 5, 10.0,
    ),
    _rule(
        "http.probing", "recon", "low", "T1595",
        "Web scanning: more than 10 distinct non-static paths answered 400/403/404, 1 leaking per 10 s "
        "(crowdsecurity/http-probing).",
        MatchSpec(kinds=["http"], status=[400, 403, 404], static=False), 10, 10.0, distinct="path",
    ),
    _rule(
        "http.protocol_probing", "recon", "low", "T1595",
        "Non-HTTP or malformed requests (TLS on the plain port, binary junk, CONNECT): more than 10 leaking "
        "1 per 10 s (crowdsecurity/http-probing as it fires on the apache2/nginx malformed-request tests).",
        MatchSpec(kinds=["http"], signals_any=["http.protocol_abuse"]), 10, 10.0,
    ),
    _rule(
        "http.crawl", "crawl", "low", None,
        "Aggressive crawling: more than 40 distinct non-static paths, 1 leaking per 0.5 s, i.e. more than "
        "2 new pages a second kept up for a while (crowdsecurity/http-crawl-non_statics).",
        MatchSpec(kinds=["http"], static=False), 40, 0.5, distinct="path",
    ),
    _rule(
        "http.sensitive_files", "discovery", "medium", "T1083",
        "Sensitive file probing (.env, .git, backups, keys): more than 4 distinct paths, 1 leaking per 5 s "
        "(crowdsecurity/http-sensitive-files).",
        MatchSpec(kinds=["http"], signals_any=["http.sensitive_file"]), 4, 5.0, distinct="path",
    ),
    _rule(
        "http.traversal_probing", "traversal", "high", "T1190",
        "Path traversal probing: more than 3 distinct paths, 1 leaking per 10 s "
        "(crowdsecurity/http-path-traversal-probing).",
        MatchSpec(kinds=["http"], signals_any=["http.path_traversal"]), 3, 10.0, distinct="path",
    ),
    _rule(
        "http.sqli_probing", "injection", "high", "T1190",
        "SQL injection probing: more than 10 requests, 1 leaking per 1 s "
        "(crowdsecurity/http-sqli-probbing-detection, which counts distinct query strings; observations "
        "carry no query, so every request counts).",
        MatchSpec(kinds=["http"], signals_any=["http.sqli"]), 10, 1.0,
    ),
    _rule(
        "http.xss_probing", "injection", "medium", "T1190",
        "XSS probing: more than 5 requests, 1 leaking per 1 s (crowdsecurity/http-xss-probbing, which counts "
        "distinct query strings; observations carry no query, so every request counts).",
        MatchSpec(kinds=["http"], signals_any=["http.xss"]), 5, 1.0,
    ),
    _rule(
        "http.admin_probing", "recon", "low", "T1595.003",
        "Admin interface probing: more than 2 distinct admin paths answered 403/404, 1 leaking per 10 s "
        "(crowdsecurity/http-admin-interface-probing).",
        MatchSpec(kinds=["http"], signals_any=["http.admin_probe"]), 2, 10.0, distinct="path",
    ),
    _rule(
        "http.backdoor_probing", "backdoor", "high", "T1505.003",
        "Web shell probing: more than 1 distinct known web-shell path, 1 leaking per 5 s "
        "(crowdsecurity/http-backdoors-attempts).",
        MatchSpec(kinds=["http"], signals_any=["http.webshell"]), 1, 5.0, distinct="path",
    ),
    _rule(
        "http.bad_user_agent", "recon", "medium", "T1595.002",
        "Scanner or bad-bot user agent: a second request within about a minute (crowdsecurity/"
        "http-bad-user-agent: capacity 1, leakspeed 1m).",
        MatchSpec(kinds=["http"], signals_any=["http.scanner_ua", "http.bad_bot_ua"]), 1, 60.0,
    ),
    _rule(
        "http.login_bruteforce", "brute_force", "medium", "T1110",
        "Web login guessing (401/403 on a login path or a POST, WordPress wp-login/xmlrpc failures): more "
        "than 5 leaking 1 per 10 s (crowdsecurity/http-generic-bf, crowdsecurity/http-bf-wordpress_bf, "
        "LePresidente/http-generic-401-bf).",
        MatchSpec(kinds=["http"], signals_any=["http.auth_failure"]), 5, 10.0,
    ),
    _rule(
        "http.flood", "dos", "low", "T1499.002",
        "Request flood: a burst of more than 300 requests, or more than 30 a second kept up (e.g. 600 in "
        "10 s), static assets included; this project's choice: CrowdSec's http-dos-* scenarios need query "
        "strings and user agents, which observations do not carry.",
        MatchSpec(kinds=["http"]), 300, 1 / 30,
    ),
)  # fmt: skip


class DetectionParams(_Frozen):
    """Settings of the stateful detector, validated once at start-up."""

    enabled: bool = True
    rules: list[BucketRule] = Field(default_factory=lambda: list(DEFAULT_RULES))
    # Observations older than (latest seen for the subject - this) are late: ignored for state, counted.
    max_out_of_order_s: float = Field(300.0, ge=0, le=86_400)
    evidence_samples: int = Field(3, ge=0, le=20)

    @field_validator("rules")
    @classmethod
    def _consistent(cls, value: list[BucketRule]) -> list[BucketRule]:
        ids = [rule.id for rule in value]
        duplicates = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
        if duplicates:
            raise ValueError(f"duplicate rule id(s): {', '.join(duplicates)}")
        known = set(ids)
        for rule in value:
            unknown = sorted(set(rule.suppressed_by) - known)
            if unknown:
                raise ValueError(
                    f"rule {rule.id!r}: suppressed_by names unknown rule id(s) {', '.join(unknown)}; "
                    f"valid: {', '.join(ids)}"
                )
            if rule.id in rule.suppressed_by:
                raise ValueError(f"rule {rule.id!r} cannot be suppressed by itself")
        return value


# --------------------------------------------------------------------------------------------- matching


def is_static(path: str | None) -> bool:
    """Whether a (templated) path names a static asset by its extension (:data:`STATIC_EXTENSIONS`).

    >>> is_static("/img/{hex}.PNG"), is_static("/index.php"), is_static("/.env"), is_static(None)
    (True, False, False, False)
    """
    if not path:
        return False
    name = path[path.rfind("/") + 1 :]
    dot = name.rfind(".")
    return dot > 0 and name[dot + 1 :].lower() in STATIC_EXTENSIONS


def _glob_matcher(globs: list[str]) -> Callable[[str], bool]:
    pattern = re.compile("|".join(f"(?:{fnmatch.translate(glob.lower())})" for glob in globs))
    return lambda path: pattern.match(path.lower()) is not None


_Check = Callable[[Observation], bool]


def _compile_match(spec: MatchSpec) -> _Check:
    """One predicate for a MatchSpec; conditions are checked cheapest first, the first failing one stops."""
    checks: list[_Check] = []
    if spec.ssh_outcomes is not None:
        outcomes = frozenset(spec.ssh_outcomes)
        checks.append(lambda o: o.ssh_outcome in outcomes)
    if spec.methods is not None:
        methods = frozenset(spec.methods)
        checks.append(lambda o: o.method in methods)
    if spec.status is not None:
        codes = frozenset(spec.status)
        checks.append(lambda o: o.status in codes)
    if spec.status_min is not None:
        low = spec.status_min
        checks.append(lambda o: o.status is not None and o.status >= low)
    if spec.status_max is not None:
        high = spec.status_max
        checks.append(lambda o: o.status is not None and o.status <= high)
    if spec.bot is not None:
        bot = spec.bot
        checks.append(lambda o: bool(o.bot) is bot)
    if spec.signals_any is not None:
        wanted = frozenset(spec.signals_any)
        checks.append(lambda o: not wanted.isdisjoint(o.signals))
    if spec.static is not None:
        static = spec.static
        checks.append(lambda o: is_static(o.path) is static)
    if spec.path_globs is not None:
        included = _glob_matcher(spec.path_globs)
        checks.append(lambda o: o.path is not None and included(o.path))
    if spec.exclude_path_globs is not None:
        excluded = _glob_matcher(spec.exclude_path_globs)
        checks.append(lambda o: o.path is None or not excluded(o.path))
    if not checks:
        return lambda o: True
    if len(checks) == 1:
        return checks[0]
    every = tuple(checks)
    return lambda o: all(check(o) for check in every)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=_DIGEST_BYTES).hexdigest()


# The value a distinct rule counts, or None when the observation has none (it then never pours).
_DISTINCT_VALUES: Final[Mapping[str, Callable[[Observation], str | None]]] = {
    "path": lambda o: o.path or None,
    "user": lambda o: o.user or None,
    "status": lambda o: None if o.status is None else str(o.status),
    # the observation's signal set as one value: a new combination of rules is a new value
    "signal": lambda o: ",".join(sorted(o.signals)) or None,
}


def distinct_cap(rule: BucketRule) -> int:
    """How many distinct-value digests a bucket of ``rule`` remembers (the oldest are forgotten first).

    At least twice what one overflow needs, so that forgetting only happens in long-lived buckets.
    """
    return min(256, max(32, 2 * (rule.capacity + 1)))


# --------------------------------------------------------------------------------------------- output


def _sample_order(sample: dict[str, Any]) -> tuple[float, bytes]:
    return sample["t"], orjson.dumps(sample)


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(math.floor(unix), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sample(obs: Observation) -> dict[str, Any]:
    """What an alert may show of one event (already minimized in the observation); ``t`` is its time."""
    sample: dict[str, Any] = {"t": obs.time}
    if obs.method is not None:
        sample["method"] = obs.method
    if obs.path is not None:
        sample["path"] = obs.path[:MAX_EVIDENCE_PATH]
    if obs.status is not None:
        sample["status"] = obs.status
    if obs.ssh_outcome is not None:
        sample["ssh_outcome"] = obs.ssh_outcome
    if obs.signals:
        sample["signals"] = list(obs.signals)
    return sample


def _source(obs: Observation) -> dict[str, Any]:
    source: dict[str, Any] = {}
    if obs.prefix is not None:
        source["prefix"] = obs.prefix
    if obs.scope is not None:
        source["scope"] = obs.scope
    geo: dict[str, Any] = {}
    if obs.country is not None:
        geo["country"] = obs.country
    if obs.asn is not None:
        geo["asn"] = obs.asn
    if obs.as_org is not None:
        geo["as_org"] = obs.as_org
    if geo:
        source["geo"] = geo
    return source


# --------------------------------------------------------------------------------------------- buckets


def _new_bucket(t: float, cutoff: float, distinct: bool) -> dict[str, Any]:
    # Empty since the cutoff: every observation accepted from now on is at least that recent, so none of
    # them can land before the anchor (which only an early fold past MAX_PENDING moves forward).
    bucket: dict[str, Any] = {"at": cutoff, "al": 0.0, "pt": [], "pl": [], "f": t, "n": 0, "k": 0, "e": []}
    if distinct:
        bucket["d"] = []
    return bucket


def _copy_bucket(bucket: dict[str, Any]) -> dict[str, Any]:
    """A copy whose lists may be changed (samples are never changed in place, so they are shared)."""
    copy = dict(bucket)
    for key in ("pt", "pl", "e", "d"):
        if key in copy:
            copy[key] = list(copy[key])
    return copy


class _Rule:
    """A BucketRule prepared for the per-event path: predicate, distinct value, alert header."""

    __slots__ = (
        "capacity",
        "distinct_cap",
        "distinct_of",
        "header",
        "id",
        "leak_s",
        "matches",
        "quiet_s",
        "suppressed_by",
    )

    def __init__(self, rule: BucketRule) -> None:
        self.id = rule.id
        self.matches = _compile_match(rule.match)
        self.capacity = rule.capacity
        self.leak_s = rule.leak_s
        self.quiet_s = rule.quiet_s
        self.distinct_of = _DISTINCT_VALUES[rule.distinct] if rule.distinct is not None else None
        self.distinct_cap = distinct_cap(rule)
        self.suppressed_by = tuple(rule.suppressed_by)
        header: dict[str, Any] = {
            "schema": ALERT_SCHEMA,
            "kind": "alert",
            "rule": rule.id,
            "category": rule.category,
            "severity": rule.severity,
        }
        if rule.technique is not None:
            header["technique"] = rule.technique
        self.header = header

    def level_at(self, bucket: dict[str, Any], t: float) -> float:
        """The bucket's level at ``t`` (not before its newest event): negative once it has drained."""
        times = bucket["pt"]
        if times:
            return bucket["pl"][-1] - (t - times[-1]) / self.leak_s
        return float(bucket["al"] - (t - bucket["at"]) / self.leak_s)

    def pour(self, bucket: dict[str, Any], t: float) -> float | None:
        """Add a token at ``t`` (in time order among the bucket's events); the overflow time, if any.

        Levels from the insertion point on are recomputed from the previous event (or the anchor), so an
        out-of-order token leaves the bucket as time-ordered arrival would have.
        """
        times: list[float] = bucket["pt"]
        levels: list[float] = bucket["pl"]
        if t < bucket["at"]:
            t = bucket["at"]  # older than an early fold (MAX_PENDING): a token at the anchor's time, no leak
        index = bisect.bisect_right(times, t)
        times.insert(index, t)
        levels.insert(index, 0.0)
        if index:
            prev_t, prev_level = times[index - 1], levels[index - 1]
        else:
            prev_t, prev_level = bucket["at"], bucket["al"]
        leak_s, limit = self.leak_s, self.capacity + _EPSILON
        for j in range(index, len(times)):
            tj = times[j]
            level = prev_level - (tj - prev_t) / leak_s
            level = (level if level > 0.0 else 0.0) + 1.0
            levels[j] = level
            if level > limit:
                return tj
            prev_t, prev_level = tj, level
        return None

    def settle(self, bucket: dict[str, Any], cutoff: float) -> dict[str, Any] | None:
        """Fold events older than ``cutoff`` (and beyond MAX_PENDING) into the anchor; None once drained.

        No accepted observation is older than the cutoff, so folding there loses nothing; a bucket with
        no pending event and empty at the cutoff cannot affect any later observation.
        """
        times = bucket["pt"]
        fold = bisect.bisect_left(times, cutoff)
        fold = max(fold, len(times) - MAX_PENDING)
        if fold:
            bucket = dict(bucket)
            bucket["at"], bucket["al"] = times[fold - 1], bucket["pl"][fold - 1]
            bucket["pt"], bucket["pl"] = times[fold:], bucket["pl"][fold:]
        if not bucket["pt"] and bucket["al"] - (cutoff - bucket["at"]) / self.leak_s <= _EPSILON:
            return None
        return bucket


class Detector:
    """Leaky-bucket detections per subject. Build once with :meth:`build`; calling it is pure.

    ``detector(state, observation) -> (new_state, alerts)``: ``state`` is the subject's previous state
    (``None`` at first), never changed in place; ``new_state`` is ``None`` when nothing is left to keep.

    >>> detect = Detector.build(DetectionParams())
    >>> state, fired = None, []
    >>> for second in range(6):  # six "Failed password" lines in six seconds
    ...     obs = Observation("s-x", 1_700_000_000.0 + second, "ssh", ("ssh.auth_failed",), ssh_outcome="failed")
    ...     state, alerts = detect(state, obs)
    ...     fired += [(alert["rule"], alert["count"], alert["time"]) for alert in alerts]
    >>> fired  # fail2ban's 5 failures in 10 min, then CrowdSec's more-than-5 leaking 1 per 10 s
    [('ssh.persistent_bruteforce', 5, '2023-11-14T22:13:24Z'), ('ssh.bruteforce', 6, '2023-11-14T22:13:25Z')]
    """

    __slots__ = ("_by_id", "_by_kind", "_evidence", "_matches", "_window", "rule_ids")

    rule_ids: tuple[str, ...]

    def __init__(self, rules: tuple[_Rule, ...], max_out_of_order_s: float, evidence_samples: int) -> None:
        """Use :meth:`build`; this only stores prebuilt parts."""
        self.rule_ids = tuple(rule.id for rule in rules)
        self._by_id = {rule.id: rule for rule in rules}
        self._window = max_out_of_order_s
        self._evidence = evidence_samples
        self._by_kind: dict[str, tuple[_Rule, ...]] = {}
        # The rules an observation matches depend on these fields only (see _compile_match); traffic repeats
        # them, so the predicates run once per distinct combination (about a quarter of the detector's time).
        self._matches: dict[tuple[Any, ...], tuple[_Rule, ...]] = {}

    @property
    def max_out_of_order_s(self) -> float:
        """How far behind a subject's latest event an observation may be and still count (older is late)."""
        return self._window

    @classmethod
    def build(cls, params: DetectionParams) -> Detector:
        """Prepare the rules of ``params`` (already validated by the model): predicates, globs, headers."""
        rules = tuple(_Rule(rule) for rule in params.rules)
        detector = cls(rules, params.max_out_of_order_s, params.evidence_samples)
        # Candidate rules per observation kind, so that an ssh line never runs the http predicates.
        for kind in (*_KINDS, ""):
            detector._by_kind[kind] = tuple(
                prepared
                for prepared, rule in zip(rules, params.rules, strict=True)
                if rule.match.kinds is None or kind in rule.match.kinds
            )
        return detector

    def __call__(
        self, state: dict[str, Any] | None, obs: Observation
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The subject's new state and the alerts that ``obs`` completes (in rule order)."""
        t = obs.time
        if not isinstance(t, int | float) or not math.isfinite(t):
            return state, []  # a time that cannot be placed in event time changes nothing
        signature = (obs.kind, obs.ssh_outcome, obs.method, obs.status, obs.bot, obs.signals, obs.path)
        matched = self._matches.get(signature)
        if matched is None:
            candidates = self._by_kind.get(obs.kind, self._by_kind[""])
            matched = tuple(rule for rule in candidates if rule.matches(obs))
            if len(self._matches) >= MATCH_MEMO_SIZE:
                self._matches.clear()
            self._matches[signature] = matched
        if state is None or state.get("v") != STATE_VERSION:  # unknown versions are not guessed at
            if not matched:
                return None, []
            latest, late = float(t), 0
            buckets: dict[str, dict[str, Any]] = {}
            quiet: dict[str, float] = {}
        else:
            latest, late = state["t"], state.get("late", 0)
            if t < latest - self._window:
                return {**state, "late": late + 1}, []
            if t > latest:
                latest = float(t)
            buckets, quiet = dict(state["b"]), dict(state["q"])
        alerts: list[dict[str, Any]] = []
        cutoff = latest - self._window
        # A folded line ("message repeated N times", Observation.repeat) counts as N lines at one time, exactly
        # as N observations would (property-tested). Its cost stays bounded by the rules, not by N: a distinct
        # rule sees the same value again, which only counts (added at once below), and a counting rule goes
        # quiet at its first overflow, after at most capacity + 1 repeats; then the loop ends.
        repeat = obs.repeat if type(obs.repeat) is int and obs.repeat > 1 else 1
        for first in itertools.chain((True,), itertools.repeat(False, repeat - 1)):
            counted = False
            for rule in matched:
                until = quiet.get(rule.id)
                if (until is not None and t < until) or (not first and rule.distinct_of is not None):
                    continue
                counted = True
                alert = self._count(rule, buckets, quiet, obs, cutoff)
                if alert is not None:
                    alerts.append(alert)
            if not counted:
                break
            if first and repeat > 1:
                # Separate observations are pruned between calls: drained buckets from before this one must not
                # suppress (suppressed_by) what its repeats complete, as they would not for N observations.
                pruned = self._prune(latest, late, buckets, quiet, keep_watermark=True)
                assert pruned is not None  # keep_watermark: never None
                buckets, quiet = dict(pruned["b"]), dict(pruned["q"])
        if repeat > 1:
            for rule in matched:
                until = quiet.get(rule.id)
                if rule.distinct_of is None or (until is not None and t < until) or rule.distinct_of(obs) is None:
                    continue
                # _count replaced this bucket by its own copy on the first repeat: it may be changed here.
                bucket = buckets.get(rule.id)
                if bucket is not None:
                    bucket["n"] += repeat - 1
        return self._prune(latest, late, buckets, quiet, keep_watermark=True), alerts

    def observe(
        self, state: dict[str, Any] | None, observations: Iterable[Observation]
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], int]:
        """One subject's observations in order: (new state, alerts, observations that failed).

        The stream's detector agent and the file mode both call this. An observation the detector cannot
        handle leaves the state as it was (calls never change it in place) and is counted, so one bad
        observation can neither stop detection nor lose the subject's other observations.
        """
        alerts: list[dict[str, Any]] = []
        failed = 0
        for observation in observations:
            try:
                state, fired = self(state, observation)
            except Exception:  # fail closed for this one observation; the caller counts it
                failed += 1
                continue
            alerts.extend(fired)
        return state, alerts, failed

    def expire(self, state: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
        """Drop drained buckets and ended quiet periods as of event time ``now``; None when nothing is left.

        ``now`` is the stream's latest event time: observations older than ``now - max_out_of_order_s``
        are from then on late for this subject as well.
        """
        if state is None or state.get("v") != STATE_VERSION:
            return None
        if not math.isfinite(now):
            return state
        latest = max(state["t"], float(now))
        return self._prune(latest, state.get("late", 0), dict(state["b"]), dict(state["q"]), keep_watermark=False)

    # -- internals ---------------------------------------------------------------------------------

    def _count(
        self,
        rule: _Rule,
        buckets: dict[str, dict[str, Any]],
        quiet: dict[str, float],
        obs: Observation,
        cutoff: float,
    ) -> dict[str, Any] | None:
        """Pour ``obs`` into the rule's bucket (a copy replaces it in ``buckets``); the alert, if it overflows."""
        t = float(obs.time)
        value = None
        if rule.distinct_of is not None:
            value = rule.distinct_of(obs)
            if value is None:
                return None
        stored = buckets.get(rule.id)
        if stored is None:
            bucket = _new_bucket(t, cutoff, value is not None)
        else:
            bucket = _copy_bucket(stored)
            times = bucket["pt"]
            in_order = not times or t >= times[-1]
            if in_order and t >= bucket["at"] and rule.level_at(bucket, t) <= _EPSILON:
                # The bucket emptied before this event: a new life (distinct set, first_seen, count).
                bucket.update(f=t, n=0, k=0, e=[])
                if "d" in bucket:
                    bucket["d"] = []
        bucket["n"] += 1
        bucket["f"] = min(bucket["f"], t)
        if value is not None:
            digest = _digest(value)
            seen: list[str] = bucket.setdefault("d", [])
            if digest in seen:
                buckets[rule.id] = bucket  # counted, but a repeated value pours nothing
                return None
            seen.append(digest)
            if len(seen) > rule.distinct_cap:
                del seen[0]
        bucket["k"] += 1
        if self._evidence:
            samples: list[dict[str, Any]] = bucket["e"]
            samples.append(_sample(obs))
            if len(samples) > self._evidence:
                # keep the newest by event time (out-of-order samples may arrive after newer ones; equal times in
                # the canonical order, so that which one goes does not depend on the order they came in)
                samples.sort(key=_sample_order)
                del samples[0]
        overflow = rule.pour(bucket, t)
        if overflow is None:
            buckets[rule.id] = bucket
            return None
        # An overflow ends the bucket and starts the quiet period, whether or not it is reported.
        buckets.pop(rule.id, None)
        quiet[rule.id] = overflow + rule.quiet_s
        if any(other in buckets or quiet.get(other, -math.inf) > overflow for other in rule.suppressed_by):
            return None
        return self._alert(rule, bucket, obs, overflow)

    def _alert(self, rule: _Rule, bucket: dict[str, Any], obs: Observation, at: float) -> dict[str, Any]:
        alert = dict(rule.header)
        alert["subject"] = obs.subject
        alert["time"] = _iso(at)
        alert["first_seen"] = _iso(min(bucket["f"], at))
        alert["last_seen"] = _iso(at)
        alert["count"] = bucket["n"]
        if rule.distinct_of is not None:
            alert["distinct"] = bucket["k"]
        source = _source(obs)
        if source:
            alert["source"] = source
        # Equal times in one canonical order (then by content), not in the order they were applied: the stream and
        # the file mode may apply a second's lines in another order when some came after the watermark.
        samples = sorted((s for s in bucket["e"] if s["t"] <= at), key=_sample_order)
        alert["evidence"] = [
            {"time": _iso(sample["t"]), **{k: v for k, v in sample.items() if k != "t"}}
            for sample in samples[-self._evidence :]
        ]
        return alert

    def _prune(
        self,
        latest: float,
        late: int,
        buckets: dict[str, dict[str, Any]],
        quiet: dict[str, float],
        *,
        keep_watermark: bool,
    ) -> dict[str, Any] | None:
        """Settle buckets and drop ended quiet periods as of ``latest``.

        ``keep_watermark``: with nothing left, keep the subject's latest event time rather than forgetting the
        subject. Forgetting it would make an observation from before the window (older than an alert's quiet
        period, already dropped) look new, and fire that alert again inside its quiet period (found by the
        property test). The periodic :meth:`expire` sweep drops such states once the stream has moved on.
        """
        cutoff = latest - self._window
        kept: dict[str, dict[str, Any]] = {}
        for rule_id, bucket in buckets.items():
            rule = self._by_id.get(rule_id)  # a rule removed from the policy leaves its buckets behind
            if rule is not None and (settled := rule.settle(bucket, cutoff)) is not None:
                kept[rule_id] = settled
        quiet = {rule_id: until for rule_id, until in quiet.items() if until > cutoff and rule_id in self._by_id}
        if not kept and not quiet and not keep_watermark:
            return None
        state: dict[str, Any] = {"v": STATE_VERSION, "t": latest, "b": kept, "q": quiet}
        if late:
            state["late"] = late
        return state
