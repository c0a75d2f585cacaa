"""Stateful detections: every default rule on synthetic observations, bucket semantics, config, properties."""

from __future__ import annotations

import copy
import dataclasses
import doctest
import itertools
import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

import transforms.detect
from transforms.detect import (
    DEFAULT_RULES,
    MAX_EVIDENCE_PATH,
    MAX_PENDING,
    BucketRule,
    DetectionParams,
    Detector,
    MatchSpec,
    distinct_cap,
    is_static,
)
from transforms.model import Observation
from transforms.signals import RULES

T0 = 1_714_564_800.0  # 2024-05-01T12:00:00Z
SUBJECT = "s-testkeys-20240426-aaaaaaaaaaaaaaaaaaaaaaaaaa"
OTHER = "s-testkeys-20240426-bbbbbbbbbbbbbbbbbbbbbbbbbb"

_SSH_SIGNALS = {
    "failed": ("ssh.auth_failed",),
    "auth_failure": ("ssh.auth_failed",),
    "invalid_user": ("ssh.invalid_user",),
}


def ssh(
    t: float, outcome: str = "failed", user: str | None = "u-root", signals: tuple[str, ...] | None = None
) -> Observation:
    """An sshd observation ``t`` seconds after T0, with the signals the per-record stage gives it."""
    if signals is None:
        signals = _SSH_SIGNALS.get(outcome, ())
    return Observation(SUBJECT, T0 + t, "ssh", signals, user=user, ssh_outcome=outcome, prefix="198.51.100.0/24")


def http(
    t: float,
    path: str | None = "/",
    status: int | None = 200,
    signals: tuple[str, ...] = (),
    method: str | None = "GET",
    bot: bool = False,
) -> Observation:
    """An access-log observation ``t`` seconds after T0."""
    return Observation(SUBJECT, T0 + t, "http", signals, method=method, status=status, path=path, bot=bot)


def run(detector: Detector, observations: Iterable[Observation]) -> tuple[dict[str, Any] | None, list[dict]]:
    """Feed one subject's observations in the given order; the last state and every alert."""
    state: dict[str, Any] | None = None
    alerts: list[dict] = []
    for obs in observations:
        state, fired = detector(state, obs)
        alerts += fired
    return state, alerts


def fired(alerts: Sequence[dict], rule: str) -> int:
    return sum(1 for alert in alerts if alert["rule"] == rule)


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.build(DetectionParams())


def every(n: int, step: float, make: Any, start: float = 0.0) -> list[Observation]:
    """``n`` observations ``step`` seconds apart; ``make(i, t)`` builds the i-th."""
    return [make(i, start + i * step) for i in range(n)]


# --------------------------------------------------------------------------------------------- per rule


def _jsch(i: int, t: float) -> Observation:
    """A JSch client's attempt: "Failed password", then "Received disconnect ...: 3: Auth fail" (tagged)."""
    return ssh(t, "failed") if i % 2 == 0 else ssh(t, "disconnect", signals=("ssh.auth_failed",))


# (rule, observations, alerts of that rule expected). One comment per row says what it shows.
RULE_CASES: list[tuple[str, list[Observation], int]] = [
    # -- ssh.bruteforce: more than 5 failed-auth lines, 1 leaking per 10 s (crowdsecurity/ssh-bf)
    ("ssh.bruteforce", every(6, 1, lambda i, t: ssh(t)), 1),  # 6 "Failed password" lines in 5 s
    ("ssh.bruteforce", every(5, 0, lambda i, t: ssh(t)), 0),  # 5 in the same second: full, not over
    ("ssh.bruteforce", every(12, 10, lambda i, t: ssh(t)), 0),  # one per 10 s: leaks as fast as it fills
    ("ssh.bruteforce", every(6, 1, lambda i, t: ssh(t, "invalid_user")), 1),  # "Invalid user" lines alone
    ("ssh.bruteforce", every(6, 1, lambda i, t: ssh(t, "auth_failure")), 0),  # pam lines: another rule's
    ("ssh.bruteforce", every(10, 1, lambda i, t: ssh(t, "accepted", signals=())), 0),  # logins are not failures
    # CrowdSec counts lines: 3 invalid-user attempts are 6 lines ("Invalid user" + "Failed ... invalid user")
    ("ssh.bruteforce", every(6, 1, lambda i, t: ssh(t, "invalid_user" if i % 2 == 0 else "failed")), 1),
    # "maximum authentication attempts exceeded", "not allowed because": failures reported by their own line
    ("ssh.bruteforce", every(6, 1, lambda i, t: ssh(t, "other", signals=("ssh.auth_failed",))), 1),
    # "Disconnected from authenticating user ... [preauth]" accompanies a failure: the fallback's line
    ("ssh.bruteforce", every(6, 1, lambda i, t: ssh(t, "disconnect", signals=("ssh.auth_failed",))), 0),
    # -- ssh.user_enum: more than 5 distinct users (crowdsecurity/ssh-bf_user-enum)
    ("ssh.user_enum", every(6, 1, lambda i, t: ssh(t, "invalid_user", user=f"u-{i}")), 1),  # 6 names
    ("ssh.user_enum", every(6, 1, lambda i, t: ssh(t, "invalid_user", user="u-admin")), 0),  # one name 6 times
    ("ssh.user_enum", every(6, 1, lambda i, t: ssh(t, "invalid_user", user=None)), 0),  # no name: no value
    # -- ssh.slow_bruteforce: more than 10, 1 leaking per 60 s (crowdsecurity/ssh-slow-bf)
    ("ssh.slow_bruteforce", every(22, 30, lambda i, t: ssh(t)), 1),  # every 30 s: the 20th line overflows
    ("ssh.slow_bruteforce", every(19, 30, lambda i, t: ssh(t)), 0),  # 19 lines: level 10, not over
    ("ssh.slow_bruteforce", every(30, 61, lambda i, t: ssh(t)), 0),  # slower than the leak
    # -- ssh.persistent_bruteforce: 5 within 10 minutes (fail2ban sshd defaults), 1 leaking per 600 s
    ("ssh.persistent_bruteforce", every(5, 100, lambda i, t: ssh(t)), 1),  # 5 failures in 400 s
    ("ssh.persistent_bruteforce", every(5, 165, lambda i, t: ssh(t)), 0),  # 5 failures in 11 minutes
    ("ssh.persistent_bruteforce", every(4, 1, lambda i, t: ssh(t)), 0),  # 4 failures: maxretry not reached
    ("ssh.persistent_bruteforce", every(10, 650, lambda i, t: ssh(t)), 0),  # slower than one per 10 min
    ("ssh.persistent_bruteforce", every(12, 300, lambda i, t: ssh(t)), 1),  # one per 5 min, on and on
    # -- ssh.bruteforce_fallback: logs with only the accompanying lines
    ("ssh.bruteforce_fallback", every(6, 1, lambda i, t: ssh(t, "auth_failure")), 1),  # old sshd: 6 pam lines
    ("ssh.bruteforce_fallback", every(5, 1, lambda i, t: ssh(t, "auth_failure")), 0),  # 5: full, not over
    # key-only server: 6 clients leaving mid-authentication (the sshd-invalid-bf fixture)
    ("ssh.bruteforce_fallback", every(6, 1, lambda i, t: ssh(t, "disconnect", signals=("ssh.auth_failed",))), 1),
    ("ssh.bruteforce_fallback", every(6, 1, lambda i, t: ssh(t, "disconnect", signals=())), 0),  # plain "Bye Bye"
    # modern sshd: a pam line then a "Failed password" line per attempt: ssh.bruteforce speaks, the fallback not
    ("ssh.bruteforce_fallback", every(12, 1, lambda i, t: ssh(t, "auth_failure" if i % 2 == 0 else "failed")), 0),
    # JSch clients: "Failed password" then "Received disconnect ...: Auth fail": counted once, by ssh.bruteforce
    ("ssh.bruteforce_fallback", every(14, 1, _jsch), 0),
    ("ssh.bruteforce", every(14, 1, _jsch), 1),  # the 7 "Failed password" lines in 12 s
    # -- ssh.preauth_scan: pre-authentication junk (lepresidente/ssh-bad-keyexchange-bf)
    # 6 bad banners in one second
    ("ssh.preauth_scan", every(6, 0, lambda i, t: ssh(t, "other", user=None, signals=("ssh.preauth_probe",))), 1),
    ("ssh.preauth_scan", every(6, 0, lambda i, t: ssh(t, "other", user=None, signals=())), 0),  # untagged lines
    # -- http.probing: more than 10 distinct non-static 400/403/404 paths, 1 leaking per 10 s
    ("http.probing", every(11, 0.5, lambda i, t: http(t, f"/p{i}.php", 404)), 1),  # 11 missing scripts
    ("http.probing", every(11, 0.5, lambda i, t: http(t, f"/admin{i}", 403)), 1),  # refusals count too
    ("http.probing", every(11, 0.5, lambda i, t: http(t, "/gone.php", 404)), 0),  # one path 11 times
    ("http.probing", every(11, 0.5, lambda i, t: http(t, f"/img/{i}.png", 404)), 0),  # missing images: static
    ("http.probing", every(11, 0.5, lambda i, t: http(t, f"/p{i}", 200)), 0),  # found pages are no probe
    ("http.probing", every(11, 0.5, lambda i, t: http(t, f"/p{i}", 500)), 0),  # server errors are not probes
    # -- http.protocol_probing: TLS on the plain port, binary junk (the malformed-request fixtures)
    # 11 unreadable request lines in 5 s
    ("http.protocol_probing", every(11, 0.5, lambda i, t: http(t, None, 400, ("http.protocol_abuse",), None)), 1),
    # 10: full, not over
    ("http.protocol_probing", every(10, 0.5, lambda i, t: http(t, None, 400, ("http.protocol_abuse",), None)), 0),
    # -- http.crawl: more than 40 distinct non-static paths, 1 leaking per 0.5 s
    ("http.crawl", every(41, 0.01, lambda i, t: http(t, f"/page/{i}")), 1),  # 41 pages in 0.4 s
    ("http.crawl", every(100, 0.2, lambda i, t: http(t, f"/page/{i}")), 1),  # 5 pages a second for 20 s
    ("http.crawl", every(60, 1, lambda i, t: http(t, f"/page/{i}")), 0),  # a page a second: leaks away
    ("http.crawl", every(60, 0.05, lambda i, t: http(t, f"/s/{i}.css")), 0),  # a page's assets: static
    ("http.crawl", every(60, 0.05, lambda i, t: http(t, "/api/poll")), 0),  # polling one endpoint
    # -- http.sensitive_files: more than 4 distinct, 1 leaking per 5 s
    # 5 distinct dot-files in 1 s
    ("http.sensitive_files", every(5, 0.2, lambda i, t: http(t, f"/.env{i}", 404, ("http.sensitive_file",))), 1),
    # one file asked 5 times (a misconfigured client, not a scan)
    ("http.sensitive_files", every(5, 0.2, lambda i, t: http(t, "/.env", 404, ("http.sensitive_file",))), 0),
    # -- http.traversal_probing: more than 3 distinct, 1 leaking per 10 s
    # 4 distinct traversals in 3 s
    ("http.traversal_probing", every(4, 1, lambda i, t: http(t, f"/../{i}", 400, ("http.path_traversal",))), 1),
    # 3: full, not over
    ("http.traversal_probing", every(3, 1, lambda i, t: http(t, f"/../{i}", 400, ("http.path_traversal",))), 0),
    # -- http.sqli_probing / http.xss_probing: payloads in the query, so the path repeats
    ("http.sqli_probing", every(11, 0.05, lambda i, t: http(t, "/item", 200, ("http.sqli",))), 1),  # sqlmap pace
    ("http.sqli_probing", every(11, 2, lambda i, t: http(t, "/item", 200, ("http.sqli",))), 0),  # one per 2 s
    # 6 payloads in half a second
    ("http.xss_probing", every(6, 0.1, lambda i, t: http(t, "/search", 200, ("http.xss",))), 1),
    # 5: full, not over
    ("http.xss_probing", every(5, 0.1, lambda i, t: http(t, "/search", 200, ("http.xss",))), 0),
    # -- http.admin_probing: more than 2 distinct admin paths answered 403/404
    # 3 distinct admin paths in 4 s
    ("http.admin_probing", every(3, 2, lambda i, t: http(t, f"/admin{i}.php", 404, ("http.admin_probe",))), 1),
    # 2: full, not over
    ("http.admin_probing", every(2, 2, lambda i, t: http(t, f"/admin{i}.php", 404, ("http.admin_probe",))), 0),
    # -- http.backdoor_probing: a second distinct web-shell name within seconds
    # two web-shell names in a second
    ("http.backdoor_probing", every(2, 1, lambda i, t: http(t, f"/c{i}99.php", 404, ("http.webshell",))), 1),
    # one: the per-record event says it, no burst
    ("http.backdoor_probing", every(1, 1, lambda i, t: http(t, "/c99.php", 404, ("http.webshell",))), 0),
    # -- http.bad_user_agent: a second request within about a minute (capacity 1, leak 60 s)
    ("http.bad_user_agent", every(2, 30, lambda i, t: http(t, "/", 200, ("http.scanner_ua",))), 1),  # Nikto
    ("http.bad_user_agent", every(2, 30, lambda i, t: http(t, "/", 200, ("http.bad_bot_ua",))), 1),  # bad bot
    ("http.bad_user_agent", every(3, 180, lambda i, t: http(t, "/", 200, ("http.bad_bot_ua",))), 0),  # polite
    # -- http.login_bruteforce: more than 5 failed logins, 1 leaking per 10 s
    # 6 refused logins in 5 s
    ("http.login_bruteforce", every(6, 1, lambda i, t: http(t, "/login", 401, ("http.auth_failure",), "POST")), 1),
    # 5: full, not over
    ("http.login_bruteforce", every(5, 1, lambda i, t: http(t, "/login", 401, ("http.auth_failure",), "POST")), 0),
    ("http.login_bruteforce", every(6, 1, lambda i, t: http(t, "/login", 200, (), "POST")), 0),  # logins that work
    # -- http.flood: a burst of more than 300 requests, or more than 30 a second kept up
    ("http.flood", every(301, 0.0, lambda i, t: http(t, "/")), 1),  # 301 requests in one second
    ("http.flood", every(700, 10 / 700, lambda i, t: http(t, "/")), 1),  # 700 requests in 10 s
    ("http.flood", every(400, 0.1, lambda i, t: http(t, "/")), 0),  # 10 requests a second for 40 s
    ("http.flood", every(300, 0.0, lambda i, t: http(t, "/")), 0),  # a burst of 300: full, not over
]


@pytest.mark.parametrize(
    ("rule", "observations", "expected"), RULE_CASES, ids=[f"{case[0]}-{n}" for n, case in enumerate(RULE_CASES)]
)
def test_each_default_rule_fires_on_its_pattern_only(
    detector: Detector, rule: str, observations: list[Observation], expected: int
) -> None:
    """Every default rule alerts once on its attack pattern and stays silent on the near misses."""
    _, alerts = run(detector, observations)
    assert fired(alerts, rule) == expected


def test_every_default_rule_has_a_positive_case() -> None:
    """The table above exercises every default rule at least once."""
    positives = {rule for rule, _, expected in RULE_CASES if expected}
    assert positives == {rule.id for rule in DEFAULT_RULES}


def test_an_admin_who_mistypes_is_never_flagged_but_a_guesser_is(detector: Detector) -> None:
    """Two typos a day for a month raise nothing; 100 guesses in minutes from the same host do."""
    day = 86_400.0
    typos = [ssh(d * day + offset) for d in range(30) for offset in (9 * 3600.0, 17 * 3600.0)]
    _, alerts = run(detector, typos)
    assert alerts == []
    _, alerts = run(detector, [*typos, *every(100, 2, lambda i, t: ssh(31 * day + t, user=f"u-{i % 7}"))])
    assert {"ssh.bruteforce", "ssh.user_enum", "ssh.slow_bruteforce"} <= {a["rule"] for a in alerts}


def test_benign_traffic_leaves_no_state(detector: Detector) -> None:
    """Observations that no rule counts (a successful login, a static asset) create no state at all."""
    assert detector(None, ssh(0, "accepted", signals=())) == (None, [])
    assert detector(None, Observation(SUBJECT, T0, "dns")) == (None, [])  # an unknown kind matches nothing


# --------------------------------------------------------------------------------------------- semantics


def _rule(capacity: int = 3, leak_s: float = 10.0, **fields: Any) -> BucketRule:
    values: dict[str, Any] = {
        "id": "test.rule",
        "category": "test",
        "severity": "low",
        "description": "a test rule",
        "match": MatchSpec(kinds=["ssh"]),
        "capacity": capacity,
        "leak_s": leak_s,
    }
    values.update(fields)
    return BucketRule(**values)


def _detector(*rules: BucketRule, window: float = 300.0, evidence: int = 3) -> Detector:
    return Detector.build(DetectionParams(rules=list(rules), max_out_of_order_s=window, evidence_samples=evidence))


@pytest.mark.parametrize("capacity", [1, 2, 5, 40])
def test_overflow_is_more_than_capacity(capacity: int) -> None:
    """A bucket holding exactly ``capacity`` tokens is full, one more overflows (CrowdSec semantics)."""
    detect = _detector(_rule(capacity))
    _, alerts = run(detect, every(capacity, 0, lambda i, t: ssh(t)))
    assert alerts == []
    _, alerts = run(detect, every(capacity + 1, 0, lambda i, t: ssh(t)))
    assert [alert["count"] for alert in alerts] == [capacity + 1]


# (seconds between 4 events, alerts) for capacity 3, leak 10 s: the level at the 4th is 4 - 3 * gap / 10
LEAK_CASES: list[tuple[float, int]] = [
    (0.0, 1),  # 4 at once: 4 > 3
    (3.3, 1),  # 4 - 0.99 = 3.01 > 3
    (3.4, 0),  # 4 - 1.02 = 2.98: leaked just enough
    (10.0, 0),  # one per leak period: never more than 1
]


@pytest.mark.parametrize(("gap", "expected"), LEAK_CASES)
def test_tokens_leak_continuously_in_event_time(gap: float, expected: int) -> None:
    """One token leaks every leak_s seconds, continuously (CrowdSec's leakspeed), never below empty."""
    _, alerts = run(_detector(_rule(3, 10.0)), every(4, gap, lambda i, t: ssh(t)))
    assert len(alerts) == expected


def test_the_alert_record_has_exactly_the_contract_fields() -> None:
    """Schema, rule metadata, subject, ISO times, count, distinct, source (present keys only), evidence."""
    detect = _detector(_rule(2, 10.0, technique="T1110", distinct="user"), evidence=2)
    observations = [
        Observation(SUBJECT, T0 + 0.4, "ssh", ("ssh.invalid_user",), user="u-a", ssh_outcome="invalid_user",
                    prefix="198.51.100.0/24", scope="public", country="NL", asn=64500),
        Observation(SUBJECT, T0 + 1.0, "ssh", ("ssh.invalid_user",), user="u-a", ssh_outcome="invalid_user"),
        Observation(SUBJECT, T0 + 2.0, "ssh", ("ssh.invalid_user",), user="u-b", ssh_outcome="invalid_user"),
        Observation(SUBJECT, T0 + 3.7, "ssh", ("ssh.invalid_user",), user="u-c", ssh_outcome="invalid_user",
                    prefix="198.51.100.0/24", scope="public", country="NL", asn=64500, as_org="Example"),
    ]  # fmt: skip
    _, alerts = run(detect, observations)
    assert alerts == [
        {
            "schema": "abuse/1",
            "kind": "alert",
            "rule": "test.rule",
            "category": "test",
            "severity": "low",
            "technique": "T1110",
            "subject": SUBJECT,
            "time": "2024-05-01T12:00:03Z",
            "first_seen": "2024-05-01T12:00:00Z",
            "last_seen": "2024-05-01T12:00:03Z",
            "count": 4,  # matching events, the repeated user included
            "distinct": 3,  # tokens poured: u-a, u-b, u-c
            "source": {"prefix": "198.51.100.0/24", "scope": "public", "geo": {"country": "NL", "asn": 64500,
                                                                             "as_org": "Example"}},
            "evidence": [
                {"time": "2024-05-01T12:00:02Z", "ssh_outcome": "invalid_user", "signals": ["ssh.invalid_user"]},
                {"time": "2024-05-01T12:00:03Z", "ssh_outcome": "invalid_user", "signals": ["ssh.invalid_user"]},
            ],
        }
    ]  # fmt: skip


def test_an_alert_without_technique_or_source_omits_them() -> None:
    """No "technique" key for a rule without one; no "source" when the observation has no context."""
    detect = _detector(_rule(1, 10.0, match=MatchSpec(kinds=["http"])))
    _, alerts = run(detect, [http(0, "/a.php", 404), http(1, "/b.php", 404)])
    assert "technique" not in alerts[0]
    assert "source" not in alerts[0]
    assert alerts[0]["evidence"][-1] == {"time": "2024-05-01T12:00:01Z", "method": "GET", "path": "/b.php",
                                         "status": 404}  # fmt: skip


def test_evidence_paths_are_cut_and_samples_capped() -> None:
    """Evidence keeps at most evidence_samples samples, each path at most MAX_EVIDENCE_PATH characters."""
    detect = _detector(_rule(5, 10.0, match=MatchSpec(kinds=["http"])), evidence=2)
    _, alerts = run(detect, every(6, 0, lambda i, t: http(t, "/" + "x" * 5000, 404)))
    assert len(alerts[0]["evidence"]) == 2
    assert all(len(sample["path"]) == MAX_EVIDENCE_PATH for sample in alerts[0]["evidence"])
    _, alerts = run(_detector(_rule(1, 10.0), evidence=0), every(2, 0, lambda i, t: ssh(t)))
    assert alerts[0]["evidence"] == []


def test_quiet_period_allows_one_alert_then_a_new_one_after_it() -> None:
    """A non-stop attack alerts once per quiet period (CrowdSec blackhole), measured in event time."""
    detect = _detector(_rule(3, 10.0, quiet_s=300.0))
    _, alerts = run(detect, every(1000, 1.0, lambda i, t: ssh(t)))  # one failure a second for 1000 s
    times = [datetime.fromisoformat(alert["time"]).timestamp() - T0 for alert in alerts]
    # the 4th event overflows (t=3 s); the bucket refills after each quiet period ends
    assert times == [3.0, 306.0, 609.0, 912.0]


def test_quiet_zero_starts_a_new_bucket_at_once() -> None:
    """quiet_s = 0: the bucket restarts empty after each alert."""
    _, alerts = run(_detector(_rule(1, 100.0, quiet_s=0.0)), every(6, 0, lambda i, t: ssh(t)))
    assert [alert["count"] for alert in alerts] == [2, 2, 2]


def test_distinct_values_pour_once_per_bucket_life() -> None:
    """A repeated value is counted but pours nothing; once the bucket empties, values count again."""
    detect = _detector(_rule(2, 10.0, distinct="user"))
    repeated = [ssh(t, user="u-a") for t in (0, 1, 2, 3)] + [ssh(4, user="u-b")]
    state, alerts = run(detect, repeated)
    assert alerts == []
    assert state is not None
    assert (state["b"]["test.rule"]["n"], state["b"]["test.rule"]["k"]) == (5, 2)
    # 100 s later the bucket has drained: u-a and u-b are new again, and u-c makes 3 > 2
    _, alerts = run(detect, [*repeated, ssh(100, user="u-a"), ssh(101, user="u-b"), ssh(102, user="u-c")])
    assert [(alert["count"], alert["distinct"]) for alert in alerts] == [(3, 3)]


def test_distinct_set_is_capped() -> None:
    """A long-lived distinct bucket remembers at most distinct_cap(rule) digests (oldest forgotten)."""
    rule = _rule(1000, 0.001, distinct="user")  # never overflows, never drains between events
    state, _ = run(_detector(rule), every(500, 0.0, lambda i, t: ssh(t, user=f"u-{i}")))
    assert state is not None
    assert len(state["b"]["test.rule"]["d"]) == distinct_cap(rule)


def test_suppressed_rule_ends_its_bucket_silently() -> None:
    """An overflow while a suppressing rule has state is silent but still starts the quiet period."""
    main = _rule(10, 10.0, id="test.main", match=MatchSpec(ssh_outcomes=["failed"]))
    fallback = _rule(2, 10.0, id="test.fallback", match=MatchSpec(ssh_outcomes=["auth_failure"]),
                     suppressed_by=["test.main"])  # fmt: skip
    detect = _detector(main, fallback)
    state, alerts = run(detect, [ssh(0, "failed"), *every(3, 1, lambda i, t: ssh(t, "auth_failure"))])
    assert alerts == []
    assert state is not None
    assert "test.fallback" in state["q"]
    _, alerts = run(detect, every(3, 1, lambda i, t: ssh(t, "auth_failure")))  # no "Failed" lines: it speaks
    assert [alert["rule"] for alert in alerts] == ["test.fallback"]


def test_rules_alert_in_rule_order_for_one_observation() -> None:
    """One observation that overflows several buckets yields their alerts in configuration order."""
    detect = _detector(_rule(1, 10.0, id="test.b"), _rule(1, 10.0, id="test.a"))
    assert detect.rule_ids == ("test.b", "test.a")
    _, alerts = run(detect, every(2, 0, lambda i, t: ssh(t)))
    assert [alert["rule"] for alert in alerts] == ["test.b", "test.a"]


# --------------------------------------------------------------------------------------------- event time


def test_out_of_order_event_counts_as_in_time_order() -> None:
    """An event arriving late (within the window) completes a burst exactly as in time order."""
    detect = _detector(_rule(3, 10.0))
    burst = [ssh(0), ssh(0.5), ssh(1.0), ssh(1.5)]
    later = ssh(60.0)
    # time order: the burst overflows at 1.5 s; arrival order: part of the burst, the later event, the rest
    _, in_order = run(detect, [*burst, later])
    _, shuffled = run(detect, [burst[0], burst[2], later, burst[1], burst[3]])
    assert [a["time"] for a in in_order] == [a["time"] for a in shuffled] == ["2024-05-01T12:00:01Z"]


def test_out_of_order_event_does_not_inflate_a_drained_bucket() -> None:
    """Events far apart in time stay apart whatever their arrival order (no token without its leak)."""
    detect = _detector(_rule(1, 10.0))
    _, alerts = run(detect, [ssh(200), ssh(100), ssh(0)])  # reversed, each 100 s apart
    assert alerts == []


def test_late_events_are_ignored_and_counted() -> None:
    """An event older than latest - max_out_of_order_s changes nothing but the late counter."""
    detect = _detector(_rule(1, 1000.0), window=60.0)
    state, _ = run(detect, [ssh(1000)])
    after, alerts = detect(state, ssh(900))  # 100 s older than the latest: late
    assert alerts == []
    assert after == {**state, "late": 1}  # type: ignore[dict-item]


def test_pending_times_are_bounded_and_late_insertions_fall_back_to_the_anchor() -> None:
    """Beyond MAX_PENDING events in the window the oldest fold early; an older event then pours at the anchor."""
    detect = _detector(_rule(10_000, 1.0))  # never overflows
    state, _ = run(detect, every(MAX_PENDING + 40, 0.1, lambda i, t: ssh(t)))
    assert state is not None
    bucket = state["b"]["test.rule"]
    assert len(bucket["pt"]) == len(bucket["pl"]) == MAX_PENDING
    anchor, anchor_level = bucket["at"], bucket["al"]
    state, _ = detect(state, ssh(0.05))  # older than the anchor, within the window
    assert state is not None
    after = state["b"]["test.rule"]
    # counted as a token at the anchor's time, without leak (then folded again: the window is full)
    assert (after["at"], after["al"]) == (anchor, anchor_level + 1)


def test_buckets_drop_once_drained_at_the_cutoff() -> None:
    """A drained bucket stays while an accepted event could still see it non-empty, then goes."""
    detect = _detector(_rule(5, 10.0), window=60.0)
    state, _ = run(detect, [ssh(0)])
    state, _ = detect(state, http(50))  # matches nothing (the rule counts ssh), moves time on
    assert state is not None
    assert state["b"]  # cutoff -10 s: an event at -5 s would still find the bucket at 0.5
    state, _ = detect(state, http(80))
    # cutoff 20 s: drained since 10 s, and nothing accepted can be older; only the subject's latest time is
    # kept (so that older events stay late), until the stream-time sweep drops it
    assert state == {"v": 1, "t": T0 + 80, "b": {}, "q": {}}
    assert detect.expire(state, T0 + 80) is None


def test_an_old_event_after_the_state_drained_is_still_late() -> None:
    """Found by the quiet-period property test: once a subject's buckets and quiet periods were pruned, an
    event from before the window used to start afresh and could alert again inside a quiet period."""
    detect = _detector(_rule(1, 5.0, quiet_s=300.0), window=300.0)
    state, first = run(detect, [ssh(0), ssh(0), http(1000)])  # the alert, then time moves on: all pruned
    assert len(first) == 1
    again = []
    for obs in (ssh(210), ssh(210)):  # inside the quiet period, and older than the window
        state, alerts = detect(state, obs)
        again += alerts
    assert again == []
    assert state is not None
    assert state.get("late") == 2


def test_expire_drops_what_the_stream_time_has_passed() -> None:
    """expire(now) prunes as of the stream's latest time; older events are then late for the subject."""
    detect = _detector(_rule(5, 10.0, quiet_s=100.0), window=60.0)
    state, _ = run(detect, every(3, 1, lambda i, t: ssh(t)))
    assert detect.expire(state, T0 + 30) is not None  # cutoff -30 s: the bucket may still matter
    assert detect.expire(state, T0 + 100) is None  # drained long before the cutoff
    assert detect.expire(None, T0) is None
    state, _ = run(detect, every(6, 0, lambda i, t: ssh(t)))  # an alert: quiet until 100 s
    kept = detect.expire(state, T0 + 120)
    assert kept is not None
    assert kept["t"] == T0 + 120
    assert detect(kept, ssh(50))[0] == {**kept, "late": 1}  # older than now - window: late
    assert detect.expire(state, T0 + 161) is None  # the quiet period ended before the cutoff


def test_unknown_state_version_and_removed_rules_are_discarded() -> None:
    """State written by another version starts afresh; buckets of rules no longer configured go."""
    detect = _detector(_rule(5, 10.0))
    state, _ = detect({"v": 99, "junk": True}, ssh(0))
    assert state is not None
    assert state["v"] == 1
    assert set(state["b"]) == {"test.rule"}
    foreign = {**state, "b": {**state["b"], "gone.rule": state["b"]["test.rule"]}}
    state, _ = detect(foreign, ssh(1))
    assert state is not None
    assert set(state["b"]) == {"test.rule"}
    assert detect.expire({"v": 0}, T0) is None


def test_a_non_finite_time_changes_nothing() -> None:
    """NaN or infinite times cannot be placed in event time: the state is returned unchanged."""
    detect = _detector(_rule(1, 10.0))
    state, _ = run(detect, [ssh(0)])
    for bad in (math.nan, math.inf):
        assert detect(state, Observation(SUBJECT, bad, "ssh", ssh_outcome="failed")) == (state, [])


def test_state_is_per_subject_and_never_changed_in_place(detector: Detector) -> None:
    """The caller keys state by subject; a call returns a new state and leaves its input intact."""
    states: dict[str, dict[str, Any]] = {}
    alerts = []
    for i in range(6):
        for subject in (SUBJECT, OTHER):
            obs = Observation(subject, T0 + i, "ssh", ("ssh.auth_failed",), ssh_outcome="failed")
            before = copy.deepcopy(states.get(subject))
            state, fired_now = detector(states.get(subject), obs)
            assert states.get(subject) == before
            assert state is not None
            states[subject] = state
            alerts += fired_now
    assert sorted((a["subject"], a["rule"]) for a in alerts) == sorted(
        (s, r) for s in (SUBJECT, OTHER) for r in ("ssh.bruteforce", "ssh.persistent_bruteforce")
    )


# --------------------------------------------------------------------------------------------- config


def test_default_params_are_valid_and_ordered() -> None:
    """The defaults validate, every rule cites a source, and rule_ids follow the configuration."""
    params = DetectionParams()
    assert Detector.build(params).rule_ids == tuple(rule.id for rule in DEFAULT_RULES)
    assert len(set(Detector.build(params).rule_ids)) == len(DEFAULT_RULES)
    for rule in DEFAULT_RULES:
        assert "(" in rule.description, f"{rule.id} must cite its source scenario"


def test_policy_file_loads_the_detection_defaults() -> None:
    """The shipped policy validates with the detector's defaults."""
    from config import load_policy

    assert load_policy().detection == DetectionParams()


# (model, fields, fragment of the error message). One comment per row says what it rejects.
CONFIG_ERRORS: list[tuple[type[BaseModel], dict[str, Any], str]] = [
    (MatchSpec, {"signals_any": ["http.sqlinjection"]}, "unknown signal rule id(s) http.sqlinjection; valid: "),
    (MatchSpec, {"kinds": ["smtp"]}, "unknown kind(s) smtp; valid: http, ssh"),
    (MatchSpec, {"ssh_outcomes": ["failure"]}, "unknown ssh outcome(s) failure; valid: failed"),
    (MatchSpec, {"methods": ["GET /"]}, "invalid method(s) 'GET /'"),
    (MatchSpec, {"status": [99]}, "outside 100..599"),
    (MatchSpec, {"status_min": 500, "status_max": 400}, "status_min must not exceed status_max"),
    (MatchSpec, {"path_globs": ["admin*"]}, "must start with '/' or a wildcard"),
    (MatchSpec, {"kinds": []}, "kinds must not be empty"),  # an empty any-of would match nothing
    (MatchSpec, {"statics": True}, "Extra inputs are not permitted"),  # a typo is not ignored
    (BucketRule, {"id": "Bruteforce"}, "dotted lower_snake_case"),
    (BucketRule, {"id": "http.sqli"}, "is a per-record signal id"),
    (BucketRule, {"capacity": 0}, "greater than or equal to 1"),
    (BucketRule, {"leak_s": 0}, "greater than 0"),
    (BucketRule, {"technique": "1110"}, "MITRE ATT&CK technique id"),
    (BucketRule, {"distinct": "ip"}, "'path', 'user', 'status' or 'signal'"),
    (BucketRule, {"severity": "critical"}, "'low', 'medium' or 'high'"),
]


@pytest.mark.parametrize(("model", "fields", "message"), CONFIG_ERRORS)
def test_invalid_settings_are_rejected_with_a_message_naming_them(
    model: type[BaseModel], fields: dict[str, Any], message: str
) -> None:
    """Configuration errors stop start-up, and the message names the bad value and the valid ones."""
    base: dict[str, Any] = {}
    if model is BucketRule:
        base = _rule().model_dump()
    with pytest.raises(ValidationError) as info:
        model.model_validate({**base, **fields})
    assert message in str(info.value)


def test_signal_errors_list_every_valid_id() -> None:
    """The unknown-signal message lists the whole registry, so the fix is on screen."""
    with pytest.raises(ValidationError) as info:
        MatchSpec(signals_any=["nope"])
    assert all(rule in str(info.value) for rule in RULES)


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([_rule(), _rule()], "duplicate rule id(s): test.rule"),  # two buckets with one id
        ([_rule(suppressed_by=["test.other"])], "suppressed_by names unknown rule id(s) test.other"),
        ([_rule(suppressed_by=["test.rule"])], "cannot be suppressed by itself"),
    ],
)
def test_rule_sets_are_checked_as_a_whole(rules: list[BucketRule], message: str) -> None:
    """Rule ids are unique and suppressed_by names configured rules other than itself."""
    with pytest.raises(ValidationError) as info:
        DetectionParams(rules=rules)
    assert message in str(info.value)


# (path, glob, matches). One comment per row says what it shows.
GLOB_CASES: list[tuple[str | None, list[str], bool]] = [
    ("/wp-login.php", ["/wp-login.php"], True),  # exact
    ("/WP-Login.PHP", ["/wp-login.php"], True),  # case-insensitive
    ("/blog/wp-login.php", ["*/wp-login.php"], True),  # '*' crosses '/'
    ("/wp-login.php.bak", ["/wp-login.php"], False),  # anchored at the end
    (None, ["/*"], False),  # no path: no match
]


@pytest.mark.parametrize(("path", "globs", "matches"), GLOB_CASES)
def test_path_globs_match_the_templated_path(path: str | None, globs: list[str], matches: bool) -> None:
    """path_globs match case-insensitively on the whole templated path; exclude_path_globs invert it."""
    rule = _rule(1, 10.0, match=MatchSpec(kinds=["http"], path_globs=globs))
    assert bool(run(_detector(rule), [http(0, path), http(0, path)])[1]) is matches
    rule = _rule(1, 10.0, match=MatchSpec(kinds=["http"], exclude_path_globs=globs))
    assert bool(run(_detector(rule), [http(0, path), http(0, path)])[1]) is not matches


# (observation fields, spec, matches). One comment per row says what it shows.
MATCH_CASES: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    ({"method": "POST"}, {"methods": ["POST"]}, True),  # any-of list
    ({"method": "post"}, {"methods": ["POST"]}, False),  # methods are exact: lower-case is another token
    ({"status": 404}, {"status_min": 400, "status_max": 499}, True),  # inclusive range
    ({"status": None}, {"status_min": 400}, False),  # no status: outside any range
    ({"bot": True}, {"bot": True}, True),  # the reduced user agent says bot
    ({"bot": False}, {"bot": True}, False),
    ({"path": "/app.JS"}, {"static": True}, True),  # extension, any case
    ({"path": "/.git/config"}, {"static": False}, True),  # a hidden file is not a static asset
    ({"signals": ("http.xss", "http.sqli")}, {"signals_any": ["http.sqli"]}, True),  # any one signal
    ({"signals": ("http.xss", "http.sqli"), "method": "GET"}, {"signals_any": ["http.sqli"], "methods": ["POST"]},
     False),  # all conditions must hold
]  # fmt: skip


@pytest.mark.parametrize(("fields", "spec", "matches"), MATCH_CASES)
def test_match_conditions_all_hold_and_lists_are_any_of(
    fields: dict[str, Any], spec: dict[str, Any], matches: bool
) -> None:
    """Every given condition must hold; a list condition is satisfied by any of its values."""
    obs = Observation(**{"subject": SUBJECT, "time": T0, "kind": "http", **fields})
    detect = _detector(_rule(1, 10.0, match=MatchSpec(kinds=["http"], **spec)))
    assert bool(run(detect, [obs, obs])[1]) is matches


def test_is_static_reads_the_last_segment_extension() -> None:
    """Static means a known asset extension on the last segment, not a dot anywhere."""
    assert is_static("/a.b/c.css")
    assert not is_static("/a.css/c")
    assert not is_static("/")
    assert not is_static("/.css")


def test_module_docstring_examples_hold() -> None:
    """The known answers in the module's docstrings are doctests and stay true."""
    assert doctest.testmod(transforms.detect).failed == 0


# --------------------------------------------------------------------------------------------- properties

_SIGNALS = st.lists(st.sampled_from(sorted(RULES)), max_size=3, unique=True).map(tuple)
_PATHS = st.one_of(
    st.none(),
    st.sampled_from(["/", "/a", "/b.php", "/.env", "/img/x.png", "/admin/"]),
    st.text(min_size=1, max_size=800).map(lambda s: "/" + s),
)


@st.composite
def _observations(draw: st.DrawFn) -> list[Observation]:
    """A subject's observations: mostly moving forward, sometimes jumping back (out of order or late)."""
    n = draw(st.integers(min_value=1, max_value=80))
    t = T0
    out = []
    for _ in range(n):
        t += draw(st.one_of(st.floats(0, 2), st.floats(-400, 0), st.floats(0, 700)))
        kind = draw(st.sampled_from(["ssh", "http"]))
        out.append(
            Observation(
                SUBJECT,
                t,
                kind,
                draw(_SIGNALS),
                method=draw(st.sampled_from(["GET", "POST", None])),
                status=draw(st.sampled_from([200, 401, 403, 404, 400, None])),
                path=draw(_PATHS),
                user=draw(st.sampled_from([None, "u-a", "u-b", "u-c", "u-d", "u-e", "u-f", "u-g"])),
                ssh_outcome=draw(st.sampled_from(["failed", "invalid_user", "auth_failure", "other", None])),
                bot=draw(st.booleans()),
                prefix="203.0.113.0/24",
            )
        )
    return out


def _hot_params() -> DetectionParams:
    """The default rules with tiny thresholds, so that random sequences overflow often."""
    rules = [rule.model_copy(update={"capacity": 1 + len(rule.id) % 3, "leak_s": 5.0}) for rule in DEFAULT_RULES]
    return DetectionParams(rules=rules, evidence_samples=3)


_PARAMS = {"default": DetectionParams(), "hot": _hot_params()}
_DETECTORS = {name: Detector.build(params) for name, params in _PARAMS.items()}


def _state_bound(params: DetectionParams) -> int:
    """Bytes of the largest state the limits allow (a generous per-item estimate)."""
    per_rule = [
        400 + 2 * MAX_PENDING * 26 + distinct_cap(rule) * 13 + params.evidence_samples * (MAX_EVIDENCE_PATH * 6 + 400)
        for rule in params.rules
    ]
    return 200 + sum(per_rule)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(observations=_observations(), which=st.sampled_from(sorted(_DETECTORS)))
def test_state_stays_bounded_under_any_observation_sequence(observations: list[Observation], which: str) -> None:
    """Whatever arrives, the state holds at most one bucket per rule, each within its limits."""
    detect, params = _DETECTORS[which], _PARAMS[which]
    caps = {rule.id: distinct_cap(rule) for rule in params.rules}
    state: dict[str, Any] | None = None
    for obs in observations:
        state, _ = detect(state, obs)
        if state is None:
            continue
        assert set(state["b"]) <= set(caps)
        assert set(state["q"]) <= set(caps)
        for rule_id, bucket in state["b"].items():
            assert len(bucket["pt"]) == len(bucket["pl"]) <= MAX_PENDING
            assert len(bucket.get("d", ())) <= caps[rule_id]
            assert len(bucket["e"]) <= params.evidence_samples
            assert all(len(sample.get("path", "")) <= MAX_EVIDENCE_PATH for sample in bucket["e"])
        assert len(orjson.dumps(state)) <= _state_bound(params)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(observations=_observations(), which=st.sampled_from(sorted(_DETECTORS)))
def test_an_alert_is_emitted_at_most_once_per_quiet_period(observations: list[Observation], which: str) -> None:
    """Per rule, alerts come in event-time order and at least quiet_s apart, whatever the arrival order."""
    detect = _DETECTORS[which]
    quiet = {rule.id: rule.quiet_s for rule in DEFAULT_RULES}
    _, alerts = run(detect, observations)
    for rule_id, quiet_s in quiet.items():
        times = [datetime.fromisoformat(a["time"]).timestamp() for a in alerts if a["rule"] == rule_id]
        assert all(later - earlier >= quiet_s for earlier, later in itertools.pairwise(times))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(observations=_observations(), split=st.integers(min_value=0, max_value=80))
def test_state_round_trips_through_orjson(observations: list[Observation], split: int) -> None:
    """The state survives a changelog round trip exactly, and the detector continues from it identically."""
    detect = _DETECTORS["hot"]
    head, tail = observations[:split], observations[split:]
    state, _ = run(detect, head)
    restored = orjson.loads(orjson.dumps(state))
    assert restored == state
    direct: list[Any] = []
    replayed: list[Any] = []
    for obs in tail:
        state, fired_a = detect(state, obs)
        restored, fired_b = detect(orjson.loads(orjson.dumps(restored)), obs)
        direct.append((state, fired_a))
        replayed.append((restored, fired_b))
    assert direct == replayed


def _reorder_rules() -> list[BucketRule]:
    """Non-distinct rules of several shapes (distinct sets follow arrival order, so they are left out)."""
    return [
        _rule(capacity, leak, id=f"test.c{capacity}_l{int(leak)}", quiet_s=10_000.0)
        for capacity, leak in ((1, 5.0), (3, 10.0), (5, 10.0), (10, 60.0), (4, 120.0))
    ]


_REORDER = _detector(*_reorder_rules(), window=300.0)


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(0, 40), min_size=1, max_size=MAX_PENDING),
    delays=st.data(),
)
def test_alerting_rules_do_not_depend_on_arrival_order_within_the_window(gaps: list[float], delays: Any) -> None:
    """Any arrival order that keeps every event within max_out_of_order_s alerts the same rules as time order."""
    times = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    # Arrival order: by time plus a delay below the window, so no event is late when it arrives.
    delay = delays.draw(st.lists(st.floats(0, 299.0), min_size=len(times), max_size=len(times)))
    arrival = sorted(range(len(times)), key=lambda i: times[i] + delay[i])
    _, ordered = run(_REORDER, [ssh(t) for t in times])
    _, shuffled = run(_REORDER, [ssh(times[i]) for i in arrival])
    assert {a["rule"] for a in shuffled} == {a["rule"] for a in ordered}


# ---------------------------------------------------------------------------------- folded repeats, failures


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 900),
            st.integers(1, 30),
            st.sampled_from(["failed", "invalid_user", "auth_failure", "disconnect"]),
            st.sampled_from(["u-a", "u-b", None]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_a_folded_repeat_counts_as_that_many_observations(lines: list[tuple[int, int, str, str | None]]) -> None:
    """One observation with repeat=N gives the state and alerts of N identical observations (distinct rules and
    suppressed_by included: found a difference when drained buckets were not pruned between repeats)."""
    detector = Detector.build(DetectionParams())
    lines.sort(key=lambda line: line[0])
    folded = [dataclasses.replace(ssh(t, outcome, user), repeat=n) for t, n, outcome, user in lines]
    expanded = [ssh(t, outcome, user) for t, n, outcome, user in lines for _ in range(n)]
    assert run(detector, folded) == run(detector, expanded)


def test_a_thousand_fold_repeat_raises_each_alert_once(detector: Detector) -> None:
    """'message repeated 1000 times' raises each brute-force rule once, not a thousand alerts."""
    _, alerts = run(detector, [dataclasses.replace(ssh(0), repeat=1000)])
    rules = [alert["rule"] for alert in alerts]
    assert sorted(rules) == ["ssh.bruteforce", "ssh.persistent_bruteforce", "ssh.slow_bruteforce"]


def test_observe_skips_an_observation_the_detector_cannot_handle(detector: Detector) -> None:
    """A bad observation is counted and skipped; the subject's other observations still count."""
    bad = dataclasses.replace(ssh(2), signals=object())  # type: ignore[arg-type]
    state, alerts, failed = detector.observe(None, [ssh(0), ssh(1), bad, *every(5, 1, lambda i, t: ssh(t), 3)])
    assert failed == 1
    assert fired(alerts, "ssh.bruteforce") == 1
    assert state == run(detector, [ssh(0), ssh(1), *every(5, 1, lambda i, t: ssh(t), 3)])[0]
