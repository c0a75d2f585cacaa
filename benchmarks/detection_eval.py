"""Detection quality on public labelled data: precision, recall, alerts and time to detect.

    python -m benchmarks.detection_eval [--limit N] [--seed S] [--no-write]

Every input goes through the real :class:`~transforms.process.RecordProcessor` (the shipped policy, a
fixed test keyring) as the raw bytes a server would have logged; the stateful parts feed its
observations to :class:`transforms.detect.Detector`, one state per subject, as ``pipeline.filemode``
does. Prints one table and writes it to ``benchmarks/results/detection.md`` and ``.json``.

Data: ``$PSEUDO_SHARED_DATA`` (default ``<repo>/../shared/data``); absent sets are skipped. ``--limit``
samples at most N items per labelled class (fixed seed) and reads the first N lines of each log: for a
quick run and for the tests; the committed results are from a full run. Throughput is not measured
here (see ``benchmarks.filemode_throughput``).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import orjson

from benchmarks import datasets as ds
from config import load_policy
from tests.transforms.keyfixtures import fixed_keyring
from transforms.errors import RecordError
from transforms.ip import parse_ip
from transforms.keyring import Purpose
from transforms.process import Outcome, RecordProcessor, Route
from transforms.pseudonymize import Pseudonymizer
from transforms.signals import RULES

RESULTS_DIR = ds.ROOT / "benchmarks" / "results"
SCHEMA = "detection-eval/1"

# A request counts as flagged when one of these per-record rules fires: every HTTP rule except the ones
# that judge who is asking rather than what (bad_bot_ua: crawlers) or need the server's answer, which
# the labelled sets do not have (admin_probe: a 403/404 on an admin path; auth_failure: a 401/403).
UNCOUNTED_RULES = frozenset({"http.bad_bot_ua", "http.admin_probe", "http.auth_failure"})
FLAG_RULES = frozenset(rule for rule in RULES if rule.startswith("http.") and rule not in UNCOUNTED_RULES)

# Per-request sets have no client, time or response: one documentation address, a fixed time, and
# status 200 for every request (normal and anomalous alike), so only the request decides.
REQUEST_IP = "203.0.113.7"
REQUEST_TIME = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
REQUEST_STATUS = 200

# CSIC "attack syntax" in a fully decoded request target (a definition of the subset, not a detector).
_ATTACK_SYNTAX = re.compile(r"[<>'\"`;(){}|$\\\x00\r\n]|--|\.\./|/\*")

# CRS families (the rule file's number) -> name, and the rule(s) of ours that are meant to catch them.
CRS_FAMILIES: dict[str, tuple[str, frozenset[str]]] = {
    "911": ("method enforcement", frozenset({"http.protocol_abuse"})),
    "913": ("scanner detection", frozenset({"http.scanner_ua"})),
    "920": ("protocol enforcement", frozenset({"http.protocol_abuse"})),
    "921": ("protocol attack", frozenset({"http.protocol_abuse"})),
    "922": ("multipart attack", frozenset()),
    "930": ("LFI", frozenset({"http.path_traversal", "http.sensitive_file"})),
    "931": ("RFI", frozenset({"http.rfi"})),
    "932": ("RCE", frozenset({"http.cmdi", "http.shellshock"})),
    "933": ("PHP injection", frozenset()),
    "934": ("generic (Node, SSRF, Perl...)", frozenset()),
    "941": ("XSS", frozenset({"http.xss"})),
    "942": ("SQLi", frozenset({"http.sqli"})),
    "943": ("session fixation", frozenset()),
    "944": ("Java / Log4Shell", frozenset({"http.jndi"})),
}
# Header values found in at least this share of all CRS tests are boilerplate (Host: localhost, the
# default Accept...); any other header value but User-Agent and Referer is not in an access log.
CRS_BOILERPLATE_SHARE = 0.004
CRS_LOGGED_HEADERS = frozenset({"user-agent", "referer"})

HTTPPARAMS_LABELS = ("sqli", "xss", "cmdi", "path-traversal")

# fail2ban filter files -> table row. Error-log filters read lines our parser does not take (it reads
# access logs and sshd syslog): they are counted as unreadable, not silently dropped.
FAIL2BAN_GROUPS = (("sshd", ("sshd",)), ("apache-*", ("apache-",)), ("nginx-*", ("nginx-",)))


# --------------------------------------------------------------------------------------------- results


@dataclass
class Ratio:
    hits: int
    total: int

    @property
    def rate(self) -> float | None:
        return self.hits / self.total if self.total else None

    def __str__(self) -> str:
        if not self.total:
            return "-"
        return f"{self.hits}/{self.total} = {_pct(self.hits / self.total)}"


@dataclass
class Row:
    """One line of the table. ``detected`` is recall or match rate on ``positives``; ``false_pos`` is the
    false-positive rate on ``negatives``; baselines are the literal pattern-list detector."""

    benchmark: str
    subset: str
    detected: Ratio | None = None
    baseline: Ratio | None = None
    false_pos: Ratio | None = None
    baseline_false_pos: Ratio | None = None
    alerts: int | None = None
    ttd_s: tuple[float, float] | None = None  # median, p90 over alerted sources
    note: str = ""

    def precision(self, ours: bool = True) -> float | None:
        """Precision of this row's positives against its negatives (depends on the sets' class ratio)."""
        detected, false_pos = (self.detected, self.false_pos) if ours else (self.baseline, self.baseline_false_pos)
        if detected is None or false_pos is None:
            return None
        flagged = detected.hits + false_pos.hits
        return detected.hits / flagged if flagged else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"benchmark": self.benchmark, "subset": self.subset}
        for name in ("detected", "baseline", "false_pos", "baseline_false_pos"):
            value = getattr(self, name)
            out[name] = None if value is None else {**asdict(value), "rate": value.rate}
        out["precision"] = self.precision()
        out["baseline_precision"] = self.precision(ours=False)
        out["alerts"] = self.alerts
        out["ttd_s"] = None if self.ttd_s is None else {"median": self.ttd_s[0], "p90": self.ttd_s[1]}
        out["note"] = self.note
        return out


@dataclass
class Section:
    name: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    seconds: float = 0.0


def _pct(rate: float) -> str:
    return f"{100 * rate:.2f}%" if rate < 0.01 and rate > 0 else f"{100 * rate:.1f}%"


def _duration(seconds: float) -> str:
    if abs(seconds) < 120:
        return f"{seconds:.0f} s"
    if abs(seconds) < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _quantiles(values: Sequence[float]) -> tuple[float, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, max(0, round(0.9 * len(ordered)) - 1))]
    return statistics.median(ordered), p90


# --------------------------------------------------------------------------------------------- harness


class Harness:
    """The processor, the baseline and the pseudonymizer used to attribute events, built once."""

    def __init__(self, shared: Path) -> None:
        self.shared = shared
        self.keyring = fixed_keyring()
        self.processor = RecordProcessor.build(load_policy(), self.keyring)
        self.security = Pseudonymizer(self.keyring, Purpose.SECURITY)
        self.patterns = [pattern for name in ds.BASELINE_LISTS for pattern in ds.read_pattern_list(shared / name)]

    def rules(self, line: bytes, ingest: datetime = REQUEST_TIME) -> set[str]:
        """The per-record rules that fire on one log line."""
        return {record["rule"] for record in self.processor(line, ingest).abuse}

    def flagged(self, line: bytes) -> bool:
        return not self.rules(line).isdisjoint(FLAG_RULES)

    def baseline(self, raw_url: str) -> bool:
        """The literal pattern-list detector: any list line as a case-sensitive substring of the raw URL."""
        return any(pattern in raw_url for pattern in self.patterns)

    def subject_of(self, source: str, unix: float) -> str:
        """The security pseudonym that the processor gives ``source`` (an address or a host name)."""
        try:
            return self.security.ip(parse_ip(source).packed, unix)
        except RecordError:
            return self.security.hostname(source, unix)


def request_line(request: bytes, user_agent: bytes | None, referer: bytes | None = None) -> bytes:
    return ds.combined_line(
        ip=REQUEST_IP,
        time=REQUEST_TIME,
        request=request,
        status=REQUEST_STATUS,
        user_agent=user_agent,
        referer=referer,
    )


# --------------------------------------------------------------------------------------------- 1. CSIC


def _decoded(target: bytes) -> str:
    """A CSIC target percent-decoded until it stops changing (CSIC encodes in Latin-1)."""
    text = target.decode("latin-1")
    for _ in range(5):
        decoded = unquote_plus(text, encoding="latin-1")
        if decoded == text:
            break
        text = decoded
    return text


def evaluate_csic(h: Harness, limit: int | None, seed: int) -> Section:
    section = Section("csic2010")
    normal = ds.read_csic(h.shared / ds.CSIC_NORMAL)
    anomalous = ds.read_csic(h.shared / ds.CSIC_ANOMALOUS)
    # Visibility: an anomalous request whose access-log view (method, target with query, user agent) is
    # byte-identical to some normal request's cannot be told apart in an access log: its anomaly sits in
    # the body (or headers the log does not keep). Decided on the full sets, before any sampling.
    normal_views = {(r.method, r.target, r.user_agent) for r in normal}
    normal_paths = {r.target.partition(b"?")[0] for r in normal}

    def subset_of(r: ds.CsicRequest) -> str:
        if (r.method, r.target, r.user_agent) in normal_views:
            return "hidden_body" if r.body else "hidden_other"
        if _ATTACK_SYNTAX.search(_decoded(r.target)):
            return "attack_syntax"
        if r.target.partition(b"?")[0] not in normal_paths:
            return "unseen_path"
        return "tampered_value"

    population = Counter(subset_of(r) for r in anomalous)
    normal_s = ds.sample(normal, limit, seed)
    anomalous_s = ds.sample(anomalous, limit, seed)

    def run(requests: Iterable[ds.CsicRequest]) -> list[tuple[ds.CsicRequest, set[str], bool]]:
        return [
            (r, h.rules(request_line(r.request_line, r.user_agent)), h.baseline(r.target.decode("latin-1")))
            for r in requests
        ]

    normal_runs = run(normal_s)
    anomalous_runs = run(anomalous_s)
    fp = Ratio(sum(not rules.isdisjoint(FLAG_RULES) for _, rules, _ in normal_runs), len(normal_runs))
    fp_base = Ratio(sum(base for _, _, base in normal_runs), len(normal_runs))

    groups: dict[str, list[tuple[ds.CsicRequest, set[str], bool]]] = defaultdict(list)
    for item in anomalous_runs:
        subset = subset_of(item[0])
        groups["all"].append(item)
        if not subset.startswith("hidden"):
            groups["visible"].append(item)
        groups[subset].append(item)
    labels = {
        "all": "anomalous: all",
        "visible": "anomalous: access-log visible",
        "attack_syntax": "visible: attack syntax",
        "unseen_path": "visible: unseen path (file probes)",
        "tampered_value": "visible: tampered value only",
        "hidden_body": "hidden: anomaly in POST body",
    }
    for key, label in labels.items():
        items = groups.get(key, [])
        section.rows.append(
            Row(
                "CSIC 2010",
                label,
                detected=Ratio(sum(not rules.isdisjoint(FLAG_RULES) for _, rules, _ in items), len(items)),
                baseline=Ratio(sum(base for _, _, base in items), len(items)),
                false_pos=fp,
                baseline_false_pos=fp_base,
            )
        )
    fired_normal = Counter(rule for _, rules, _ in normal_runs for rule in rules)
    fired_anomalous = {
        key: dict(Counter(rule for _, rules, _ in items for rule in rules).most_common())
        for key, items in groups.items()
    }
    section.details = {
        "population": {"normal": len(normal), "anomalous": len(anomalous), "anomalous_by_subset": dict(population)},
        "evaluated": {"normal": len(normal_s), "anomalous": len(anomalous_s)},
        "rules_fired_on_normal": dict(fired_normal.most_common()),
        "rules_fired_on_anomalous": fired_anomalous,
        "missed_examples": _examples(
            (
                r.target.decode("latin-1")
                for r, rules, _ in groups.get("attack_syntax", [])
                if rules.isdisjoint(FLAG_RULES)
            ),
            12,
        ),
        "false_positive_examples": _examples(
            (r.target.decode("latin-1") for r, rules, _ in normal_runs if not rules.isdisjoint(FLAG_RULES)), 12
        ),
    }
    return section


def _examples(items: Iterable[str], count: int, width: int = 160) -> list[str]:
    out: list[str] = []
    for item in items:
        if item not in out:
            out.append(item[:width])
        if len(out) >= count:
            break
    return out


# --------------------------------------------------------------------------------------------- 2. HttpParams


def evaluate_httpparams(h: Harness, limit: int | None, seed: int) -> Section:
    section = Section("httpparams")
    rows = ds.read_httpparams(h.shared / ds.HTTPPARAMS)
    by_label: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_label[row["attack_type"]].append(row["payload"])

    def run(payloads: Sequence[str]) -> list[tuple[str, set[str], bool]]:
        out = []
        for payload in payloads:
            # A form field submitted by GET: the value URL-encoded (form encoding, '+' for a space).
            target = "/search?q=" + quote_plus(payload)
            line = request_line(f"GET {target} HTTP/1.1".encode("ascii"), b"Mozilla/5.0")
            out.append((payload, h.rules(line), h.baseline(target)))
        return out

    norm = run(ds.sample(by_label["norm"], limit, seed))
    fp = Ratio(sum(not rules.isdisjoint(FLAG_RULES) for _, rules, _ in norm), len(norm))
    fp_base = Ratio(sum(base for _, _, base in norm), len(norm))
    all_attacks: list[tuple[str, set[str], bool]] = []
    missed: dict[str, list[str]] = {}
    fired: dict[str, dict[str, int]] = {}
    for label in HTTPPARAMS_LABELS:
        items = run(ds.sample(by_label[label], limit, seed))
        all_attacks.extend(items)
        section.rows.append(
            Row(
                "HttpParams",
                label,
                detected=Ratio(sum(not rules.isdisjoint(FLAG_RULES) for _, rules, _ in items), len(items)),
                baseline=Ratio(sum(base for _, _, base in items), len(items)),
                false_pos=fp,
                baseline_false_pos=fp_base,
            )
        )
        missed[label] = _examples((p for p, rules, _ in items if rules.isdisjoint(FLAG_RULES)), 10)
        fired[label] = dict(Counter(rule for _, rules, _ in items for rule in rules).most_common())
    section.rows.append(
        Row(
            "HttpParams",
            "all attacks vs norm",
            detected=Ratio(sum(not rules.isdisjoint(FLAG_RULES) for _, rules, _ in all_attacks), len(all_attacks)),
            baseline=Ratio(sum(base for _, _, base in all_attacks), len(all_attacks)),
            false_pos=fp,
            baseline_false_pos=fp_base,
        )
    )
    section.details = {
        "population": dict(Counter(row["attack_type"] for row in rows)),
        "rules_fired": fired,
        "rules_fired_on_norm": dict(Counter(rule for _, rules, _ in norm for rule in rules).most_common()),
        "missed_examples": missed,
        "false_positive_examples": _examples((p for p, rules, _ in norm if not rules.isdisjoint(FLAG_RULES)), 10),
    }
    return section


# --------------------------------------------------------------------------------------------- 3. CRS


def _crs_request(test: dict[str, Any]) -> tuple[bytes, bytes | None, bytes | None]:
    """Request line, user agent and referer of a CRS test, as bytes (go-ftw defaults: /, HTTP/1.1)."""

    def encode(text: str) -> bytes:
        return text.encode("utf-8", "surrogateescape")

    uri = test["uri"] if test["uri"] is not None else "/"
    version = test["version"] or "HTTP/1.1"
    request = encode(f"{test['method']} {uri} {version}")
    agent = test["user_agent"]
    referer = test["referer"]
    return request, None if agent is None else encode(agent), None if referer is None else encode(referer)


def evaluate_crs(h: Harness, limit: int | None, seed: int) -> Section:
    section = Section("crs")
    tests = ds.read_jsonl(h.shared / ds.CRS_TESTS)
    pairs = Counter((name.lower(), str(value)) for t in tests for name, value in t["headers"].items())
    boilerplate = {pair for pair, count in pairs.items() if count >= CRS_BOILERPLATE_SHARE * len(tests)}

    def visible(test: dict[str, Any]) -> bool:
        """The request's payload can only be in what an access log keeps: method, URI, UA, Referer."""
        if test["body"] or test["raw_request"] is not None:
            return False
        return all(
            name.lower() in CRS_LOGGED_HEADERS or (name.lower(), str(value)) in boilerplate
            for name, value in test["headers"].items()
        )

    by_family: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for test in tests:
        family = test["family"].split("-")[1]
        if test["label"] == "expect_hit":
            by_family[family]["hit_visible" if visible(test) else "hit_hidden"].append(test)
        elif test["label"] == "expect_no_hit" and test["raw_request"] is None:
            by_family[family]["no_hit"].append(test)

    def run(items: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], set[str], bool]]:
        out = []
        for test in items:
            request, agent, referer = _crs_request(test)
            raw_url = request.split(b" ")[1].decode("utf-8", "surrogateescape") if b" " in request else ""
            out.append((test, h.rules(request_line(request, agent, referer)), h.baseline(raw_url)))
        return out

    totals: dict[str, list[tuple[dict[str, Any], set[str], bool]]] = defaultdict(list)
    family_detail: dict[str, Any] = {}
    response_tests = 0
    for family in sorted(by_family):
        if family not in CRS_FAMILIES:
            response_tests += sum(len(v) for v in by_family[family].values())
            continue
        name, own_rules = CRS_FAMILIES[family]
        hits = run(ds.sample(by_family[family]["hit_visible"], limit, seed))
        quiet = run(ds.sample(by_family[family]["no_hit"], limit, seed))
        totals["hits"].extend(hits)
        totals["quiet"].extend(quiet)
        own = sum(not rules.isdisjoint(own_rules) for _, rules, _ in hits) if own_rules else None
        hidden = len(by_family[family]["hit_hidden"])
        note = f"{hidden} hit tests need body/headers"
        if own is not None and hits:
            note += f"; own rule {own}/{len(hits)}"
        section.rows.append(
            Row(
                "CRS regression",
                f"{family} {name}",
                detected=Ratio(sum(not rules.isdisjoint(FLAG_RULES) for _, rules, _ in hits), len(hits)),
                baseline=Ratio(sum(base for _, _, base in hits), len(hits)),
                false_pos=Ratio(sum(not rules.isdisjoint(FLAG_RULES) for _, rules, _ in quiet), len(quiet)),
                baseline_false_pos=Ratio(sum(base for _, _, base in quiet), len(quiet)),
                note=note,
            )
        )
        family_detail[family] = {
            "hit_visible": len(by_family[family]["hit_visible"]),
            "hit_hidden": hidden,
            "no_hit": len(by_family[family]["no_hit"]),
            "own_rules": sorted(own_rules),
            "own_rule_hits": own,
            "rules_fired_on_hits": dict(Counter(r for _, rules, _ in hits for r in rules).most_common()),
            "rules_fired_on_no_hit": dict(Counter(r for _, rules, _ in quiet for r in rules).most_common()),
            "missed_examples": _examples(
                (f"{t['rule_id']}: {t['uri']}" for t, rules, _ in hits if rules.isdisjoint(FLAG_RULES)), 6
            ),
            "false_positive_examples": _examples(
                (f"{t['rule_id']}: {t['uri']}" for t, rules, _ in quiet if not rules.isdisjoint(FLAG_RULES)), 6
            ),
        }
    hits, quiet = totals["hits"], totals["quiet"]
    section.rows.append(
        Row(
            "CRS regression",
            "all request families",
            detected=Ratio(sum(not rules.isdisjoint(FLAG_RULES) for _, rules, _ in hits), len(hits)),
            baseline=Ratio(sum(base for _, _, base in hits), len(hits)),
            false_pos=Ratio(sum(not rules.isdisjoint(FLAG_RULES) for _, rules, _ in quiet), len(quiet)),
            baseline_false_pos=Ratio(sum(base for _, _, base in quiet), len(quiet)),
            note=f"{response_tests} response-side tests (95x/98x) not observable",
        )
    )
    section.details = {
        "population": {
            "tests": len(tests),
            "by_label": dict(Counter(t["label"] for t in tests)),
            "boilerplate_header_values": sorted(f"{n}: {v[:60]}" for n, v in boilerplate),
        },
        "families": family_detail,
    }
    return section


# --------------------------------------------------------------------------------------------- 4. fail2ban


def _label_time(text: str | None) -> datetime:
    if not text:
        return REQUEST_TIME
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return REQUEST_TIME
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)) + timedelta(days=1)


def evaluate_fail2ban(h: Harness, limit: int | None, seed: int) -> Section:
    section = Section("fail2ban")
    labels = ds.sample(ds.read_jsonl(h.shared / ds.FAIL2BAN_LABELS), limit, seed)
    per_file: dict[str, Counter[str]] = defaultdict(Counter)
    missed: dict[str, list[str]] = defaultdict(list)
    fired_wrong: dict[str, list[str]] = defaultdict(list)
    for label in labels:
        line = label["log_line"].encode("utf-8", "surrogateescape")
        outcome = h.processor(line, _label_time(label["time"]))
        readable = outcome.route is not Route.QUARANTINE and bool(outcome.observations)
        fired = bool(outcome.abuse)
        tally = per_file[label["file"]]
        if label["match"]:
            tally["must_match"] += 1
            tally["readable"] += readable
            host = label["host"]
            attributed = fired and (
                host is None
                or any(
                    record["subject"] == h.subject_of(host, obs.time)
                    for record in outcome.abuse
                    for obs in outcome.observations
                )
            )
            tally["matched"] += attributed
            tally["matched_other_source"] += fired and not attributed
            if not attributed:
                missed[label["file"]].append(label["log_line"][:200])
        else:
            tally["must_not"] += 1
            tally["fired"] += fired
            if fired:
                fired_wrong[label["file"]].append(label["log_line"][:200])
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for name, tally in per_file.items():
        group = next((g for g, prefixes in FAIL2BAN_GROUPS if name.startswith(prefixes)), "other (auth filters)")
        groups[group].update(tally)
    for group in [g for g, _ in FAIL2BAN_GROUPS] + ["other (auth filters)"]:
        if group not in groups:
            continue
        totals = groups[group]
        section.rows.append(
            Row(
                "fail2ban lines",
                group,
                detected=Ratio(totals["matched"], totals["must_match"]),
                false_pos=Ratio(totals["fired"], totals["must_not"]),
                note=f"{totals['must_match'] - totals['readable']} must-match lines give no event "
                "(error logs and other formats the parser does not read)",
            )
        )
    section.details = {
        "per_file": {name: dict(tally) for name, tally in sorted(per_file.items())},
        "missed_examples": {name: lines[:4] for name, lines in sorted(missed.items())},
        "must_not_match_fired": {name: lines[:4] for name, lines in sorted(fired_wrong.items())},
    }
    return section


# --------------------------------------------------------------------------------------------- stateful


def load_detector() -> tuple[Any, str | None]:
    """The stateful detector with its default parameters, or ``None`` and why (it is written in parallel)."""
    try:
        from transforms.detect import DetectionParams, Detector

        return Detector.build(DetectionParams()), None
    except Exception as exc:  # any failure means "not usable yet": report it, run the rest
        return None, f"transforms.detect not usable ({type(exc).__name__})"


_IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")
_RHOST = re.compile(r"rhost=(\S+)")
_FROM = re.compile(r"\b(?:from|for|with|by|host=|client) \[?([0-9A-Fa-f:.]+[0-9A-Fa-f])\]?")
_LEADING = re.compile(r"^(?:\S+:\d+ )?([0-9A-Fa-f:.]+)\s")


def line_source(line: str) -> str | None:
    """The client a log line names, read independently of the product's parser (ground truth)."""
    if (match := _LEADING.match(line)) and (source := _as_ip(match.group(1))):
        return source
    if match := _RHOST.search(line):
        return _as_ip(match.group(1)) or match.group(1).lower()
    for match in _FROM.finditer(line):
        if source := _as_ip(match.group(1)):
            return source
    if match := _IPV4.search(line):
        return _as_ip(match.group(1))
    return None


def _as_ip(text: str) -> str | None:
    try:
        return parse_ip(text).text
    except RecordError:
        return None


def normalize_source(text: str) -> str:
    return _as_ip(text) or text.lower()


def _alert_time(alert: dict[str, Any]) -> float | None:
    value = alert.get("time")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


@dataclass
class StreamRun:
    """What one pass of a log through processor and detector produced, attributed to sources."""

    lines: int = 0
    observations: int = 0
    events: Counter[str] = field(default_factory=Counter)  # per-record rules
    alerts: list[dict[str, Any]] = field(default_factory=list)
    first_seen: dict[str, float] = field(default_factory=dict)  # subject -> earliest event time
    source_of: dict[str, str] = field(default_factory=dict)  # subject -> source (from the line)
    events_by_source: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    misattributed: int = 0  # observations whose subject is not the pseudonym of the line's source

    def alerted_sources(self, rules: Iterable[str] | None = None) -> dict[str, list[dict[str, Any]]]:
        wanted = None if rules is None else set(rules)
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for alert in self.alerts:
            if wanted is None or alert.get("rule") in wanted:
                out[self.source_of.get(alert.get("subject", ""), "?")].append(alert)
        return out

    def time_to_detect(self, rules: Iterable[str] | None = None) -> dict[str, float]:
        """Alerted subject -> its first alert's event time minus its first event's (seconds)."""
        wanted = None if rules is None else set(rules)
        first_alert: dict[str, float] = {}
        for alert in self.alerts:
            at = _alert_time(alert)
            subject = alert.get("subject")
            if at is None or subject not in self.first_seen or (wanted is not None and alert.get("rule") not in wanted):
                continue
            first_alert[subject] = min(first_alert.get(subject, at), at)
        return {subject: at - self.first_seen[subject] for subject, at in first_alert.items()}


def stream(h: Harness, detector: Any, lines: Iterable[bytes], ingest: datetime) -> StreamRun:
    """Run log lines in file order (as they would arrive) through the processor and the detector."""
    result = StreamRun()
    states: dict[str, Any] = {}
    for line in lines:
        result.lines += 1
        outcome: Outcome = h.processor(line, ingest)
        result.events.update(record["rule"] for record in outcome.abuse)
        source = line_source(line.decode("utf-8", "replace"))
        if source is not None:
            result.events_by_source[source].update(record["rule"] for record in outcome.abuse)
        for observation in outcome.observations:
            result.observations += 1
            subject = observation.subject
            if subject not in result.first_seen or observation.time < result.first_seen[subject]:
                result.first_seen[subject] = observation.time
            if source is not None:
                result.source_of.setdefault(subject, source)
                result.misattributed += subject != h.subject_of(source, observation.time)
            state, alerts = detector(states.get(subject), observation)
            if state is None:
                states.pop(subject, None)
            else:
                states[subject] = state
            result.alerts.extend(alerts)
    return result


# --------------------------------------------------------------------------------------------- 5. CrowdSec

# CrowdSec scenario (without its author) -> (table row, detector rules that reproduce it). An empty set
# means the detector has no equivalent rule: any alert on the expected source counts.
_SSH_BF = "ssh brute force"
_SSH_PROBE = "ssh pre-auth probing"
_HTTP_SCAN = "http probing / scans"
_HTTP_FILES = "http sensitive files / backdoors"
_HTTP_INJECT = "http traversal / SQLi / XSS probing"
_HTTP_BF = "http login brute force"
_HTTP_DOS = "http DoS"
_SINGLE = "single-request exploits (CVE, proxy)"
_UNREAD = "formats not read / test scenarios"
CROWDSEC_SCENARIOS: dict[str, tuple[str, frozenset[str]]] = {
    # CrowdSec's ssh-bf also counts bad banners; the detector gives those their own rule (preauth_scan).
    "ssh-bf": (_SSH_BF, frozenset({"ssh.bruteforce", "ssh.bruteforce_fallback", "ssh.preauth_scan"})),
    "ssh-bf_user-enum": (_SSH_BF, frozenset({"ssh.user_enum"})),
    "ssh-slow-bf": (_SSH_BF, frozenset({"ssh.slow_bruteforce"})),
    "ssh-time-based-bf": (_SSH_BF, frozenset({"ssh.persistent_bruteforce", "ssh.slow_bruteforce"})),
    "ssh-time-based-bf_user-enum": (_SSH_BF, frozenset({"ssh.user_enum"})),
    "ssh-bad-keyexchange-bf": (_SSH_PROBE, frozenset({"ssh.preauth_scan"})),
    "ssh-refused-conn": (_SSH_PROBE, frozenset({"ssh.preauth_scan"})),
    "ssh-cve-2024-6387": (_SSH_PROBE, frozenset({"ssh.preauth_scan"})),
    "http-probing": (_HTTP_SCAN, frozenset({"http.probing", "http.protocol_probing"})),
    "http-admin-interface-probing": (_HTTP_SCAN, frozenset({"http.admin_probing"})),
    "http-sap-interface-probing": (_HTTP_SCAN, frozenset({"http.admin_probing"})),
    "http-wordpress-scan": (_HTTP_SCAN, frozenset()),
    "http-wordpress_user-enum": (_HTTP_SCAN, frozenset()),
    "http-technology-probing": (_HTTP_SCAN, frozenset()),
    "http-cve-probing": (_HTTP_SCAN, frozenset()),
    "http-bad-user-agent": (_HTTP_SCAN, frozenset({"http.bad_user_agent"})),
    "http-sensitive-files": (_HTTP_FILES, frozenset({"http.sensitive_files"})),
    "http-wordpress_wpconfig": (_HTTP_FILES, frozenset({"http.sensitive_files"})),
    "http-backdoors-attempts": (_HTTP_FILES, frozenset({"http.backdoor_probing"})),
    "http-path-traversal-probing": (_HTTP_INJECT, frozenset({"http.traversal_probing"})),
    "http-sqli-probbing-detection": (_HTTP_INJECT, frozenset({"http.sqli_probing"})),
    "http-xss-probbing": (_HTTP_INJECT, frozenset({"http.xss_probing"})),
    "http-bf-wordpress_bf": (_HTTP_BF, frozenset({"http.login_bruteforce"})),
    "http-generic-bf": (_HTTP_BF, frozenset({"http.login_bruteforce"})),
    "http-generic-401-bf": (_HTTP_BF, frozenset({"http.login_bruteforce"})),
    "http-apiscp-bf": (_HTTP_BF, frozenset({"http.login_bruteforce"})),
    "http-dos-bypass-cache": (_HTTP_DOS, frozenset({"http.flood", "http.crawl"})),
    "http-dos-random-uri": (_HTTP_DOS, frozenset({"http.flood", "http.crawl"})),
    "http-dos-swithcing-ua": (_HTTP_DOS, frozenset()),
    "http-dos-invalid-http-versions": (_HTTP_DOS, frozenset({"http.protocol_probing"})),
    "http-open-proxy": (_SINGLE, frozenset()),
    "http-w00tw00t": (_SINGLE, frozenset()),
    "apache_log4j2_cve-2021-44228": (_SINGLE, frozenset()),
    "http-cve-2021-41773": (_SINGLE, frozenset()),
    "http-cve-2021-42013": (_SINGLE, frozenset()),
    "f5-big-ip-cve-2020-5902": (_SINGLE, frozenset()),
    "fortinet-cve-2018-13379": (_SINGLE, frozenset()),
    "grafana-cve-2021-43798": (_SINGLE, frozenset()),
    "jira_cve-2021-26086": (_SINGLE, frozenset()),
    "pulse-secure-sslvpn-cve-2019-11510": (_SINGLE, frozenset()),
    "spring4shell_cve-2022-22965": (_SINGLE, frozenset()),
    "thinkphp-cve-2018-20062": (_SINGLE, frozenset()),
    "vmware-cve-2022-22954": (_SINGLE, frozenset()),
    "zoneminder_cve-2022-39285": (_SINGLE, frozenset()),
    "zoneminder_cve-2022-39290": (_SINGLE, frozenset()),
    "zoneminder_cve-2022-39291": (_SINGLE, frozenset()),
    "http-cve-2025-0108": (_SINGLE, frozenset()),
    "endlessh-bf": (_UNREAD, frozenset()),
    "sympa_ww-http-scan": (_UNREAD, frozenset()),
    "http-generic-test": (_UNREAD, frozenset()),
    "ssh-generic-test": (_UNREAD, frozenset()),
}
CROWDSEC_INGEST = datetime(2025, 12, 31, tzinfo=UTC)


def evaluate_crowdsec(h: Harness, limit: int | None, seed: int) -> Section:
    section = Section("crowdsec")
    detector, why = load_detector()
    if detector is None:
        section.skipped = why
        return section
    folder = h.shared / ds.CROWDSEC_DIR
    expected = ds.read_crowdsec_expected(folder)
    tests = sorted({row["test"] for row in expected})
    tests = ds.sample(tests, limit, seed)
    per_family: dict[str, Counter[str]] = defaultdict(Counter)
    delays: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)  # family -> (test, subject) -> delay
    detail: dict[str, Any] = {}
    for test in tests:
        run_ = stream(h, detector, ds.crowdsec_fixture_lines(folder, test), CROWDSEC_INGEST)
        rows = [row for row in expected if row["test"] == test]
        matched_alerts: set[int] = set()
        outcomes = []
        for row in rows:
            scenario = row["alert_scenario"].split("/", 1)[1]
            family, rules = CROWDSEC_SCENARIOS.get(scenario, ("unmapped", frozenset()))
            sources = {normalize_source(source.strip()) for source in row["alert_source_ips"].split(";")}
            hits = [
                index
                for index, alert in enumerate(run_.alerts)
                if run_.source_of.get(alert.get("subject", "")) in sources and (not rules or alert.get("rule") in rules)
            ]
            matched_alerts.update(hits)
            per_record = any(run_.events_by_source.get(source) for source in sources)
            tally = per_family[family]
            tally["expected"] += 1
            tally["reproduced"] += bool(hits)
            tally["per_record"] += per_record
            outcomes.append(
                {
                    "scenario": scenario,
                    "source": row["alert_source_ips"],
                    "reproduced": bool(hits),
                    "per_record_event": per_record,
                }
            )
            for subject, delay in run_.time_to_detect(rules or None).items():
                if run_.source_of.get(subject) in sources:
                    delays[family][(test, subject)] = delay
        family = CROWDSEC_SCENARIOS.get(rows[0]["alert_scenario"].split("/", 1)[1], ("unmapped", frozenset()))[0]
        per_family[family]["alerts"] += len(run_.alerts)
        per_family[family]["unexpected"] += len(run_.alerts) - len(matched_alerts)
        detail[test] = {
            "lines": run_.lines,
            "observations": run_.observations,
            "expected": outcomes,
            "alerts": dict(Counter(str(a.get("rule")) for a in run_.alerts)),
            "per_record_events": dict(run_.events),
        }
    for family in sorted(per_family):
        tally = per_family[family]
        section.rows.append(
            Row(
                "CrowdSec fixtures (unit tests)",
                family,
                detected=Ratio(tally["reproduced"], tally["expected"]),
                alerts=tally["alerts"],
                ttd_s=_quantiles(list(delays[family].values())),
                note=f"per-record event on {tally['per_record']}/{tally['expected']} expected sources; "
                f"{tally['unexpected']} alerts not expected",
            )
        )
    section.details = {"tests": detail}
    return section


# --------------------------------------------------------------------------------------------- 6. loghub sshd

_SYSLOG_TIME = re.compile(r"^([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)")
_MONTHS = {
    month: number
    for number, month in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}
_REPEATED = re.compile(r"message repeated (\d+) times")
FAIL2BAN_MAXRETRY, FAIL2BAN_FINDTIME_S = 5, 600


def _syslog_seconds(line: str, year: int) -> float | None:
    match = _SYSLOG_TIME.match(line)
    if match is None:
        return None
    month, day, hh, mm, ss = match.groups()
    return datetime(year, _MONTHS[month], int(day), int(hh), int(mm), int(ss), tzinfo=UTC).timestamp()


def _failure_truth(lines: Sequence[bytes], failure: re.Pattern[str], year: int) -> dict[str, list[float]]:
    """source -> event times of its failed attempts (a "message repeated N times" line counts N)."""
    failures: dict[str, list[float]] = defaultdict(list)
    for raw in lines:
        line = raw.decode("utf-8", "replace")
        if not failure.search(line) or (source := line_source(line)) is None:
            continue
        at = _syslog_seconds(line, year)
        repeated = _REPEATED.search(line)
        failures[source].extend([at if at is not None else 0.0] * (int(repeated.group(1)) if repeated else 1))
    return failures


def _bursting(times: Sequence[float]) -> bool:
    """fail2ban's default: maxretry failures within findtime."""
    ordered = sorted(times)
    return any(
        ordered[i + FAIL2BAN_MAXRETRY - 1] - ordered[i] <= FAIL2BAN_FINDTIME_S
        for i in range(len(ordered) - FAIL2BAN_MAXRETRY + 1)
    )


LOGHUB = (
    # name, file, failure pattern, year the syslog lines are dated to, ingest time
    ("loghub OpenSSH_2k", ds.OPENSSH_LOG, re.compile(r"Failed password"), 2023, datetime(2024, 1, 15, tzinfo=UTC)),
    (
        "loghub Linux_2k",
        ds.LINUX_LOG,
        re.compile(r"sshd\(pam_unix\)\[\d+\]: authentication failure"),
        2005,
        datetime(2005, 12, 31, tzinfo=UTC),
    ),
)


def evaluate_loghub(h: Harness, limit: int | None, seed: int) -> Section:
    section = Section("loghub")
    detector, why = load_detector()
    if detector is None:
        section.skipped = why
        return section
    for name, relative, failure, year, ingest in LOGHUB:
        path = h.shared / relative
        if not path.exists():
            continue
        lines = ds.read_lines(path)[:limit] if limit else ds.read_lines(path)
        truth = _failure_truth(lines, failure, year)
        run_ = stream(h, detector, lines, ingest)
        alerted = run_.alerted_sources()
        all_sources = set(run_.source_of.values())
        ttd = run_.time_to_detect()
        bursting = {source for source, times in truth.items() if _bursting(times)}
        # Negatives: sources with no failed login at all (probes, disconnects); both rows share them.
        negatives = all_sources - set(truth)
        for subset, positives in (
            ("sources with failed logins", set(truth)),
            (f"sources with >= {FAIL2BAN_MAXRETRY} failures in {FAIL2BAN_FINDTIME_S // 60} min", bursting),
        ):
            section.rows.append(
                Row(
                    name,
                    subset,
                    detected=Ratio(len(positives & set(alerted)), len(positives)),
                    false_pos=Ratio(len(negatives & set(alerted)), len(negatives)),
                    alerts=sum(len(alerted.get(s, [])) for s in positives),
                    ttd_s=_quantiles([t for subject, t in ttd.items() if run_.source_of.get(subject) in positives]),
                    note=f"{len(run_.alerts)} alerts in all; {run_.misattributed} observations misattributed",
                )
            )
        section.details[name] = {
            "lines": run_.lines,
            "observations": run_.observations,
            "sources": len(all_sources),
            "failure_sources": {s: len(t) for s, t in sorted(truth.items(), key=lambda kv: -len(kv[1]))},
            "not_alerted": sorted(set(truth) - set(alerted)),
            "alerted_sources_without_failures": sorted(negatives & set(alerted)),
            "alerts_by_rule": dict(Counter(str(a.get("rule")) for a in run_.alerts)),
            "per_record_events": dict(run_.events),
        }
    return section


# --------------------------------------------------------------------------------------------- 7. Elastic


def evaluate_elastic(h: Harness, limit: int | None, seed: int) -> Section:
    section = Section("elastic")
    detector, why = load_detector()
    lines = ds.read_lines(h.shared / ds.ELASTIC_LOG)
    lines = lines[:limit] if limit else lines
    ingest = datetime(2015, 5, 19, tzinfo=UTC)
    if detector is None:
        section.skipped = why
        return section
    run_ = stream(h, detector, lines, ingest)
    per_k = 1000 / max(run_.lines, 1)
    alerted = run_.alerted_sources()
    sources = set(run_.source_of.values())
    by_rule = Counter(str(a.get("rule")) for a in run_.alerts)
    section.rows.append(
        Row(
            "Elastic Apache (benign)",
            "stateful alerts",
            false_pos=Ratio(len(alerted), len(sources)),
            alerts=len(run_.alerts),
            ttd_s=_quantiles(list(run_.time_to_detect().values())),
            note=f"{len(run_.alerts) * per_k:.2f} per 1,000 requests: "
            + ", ".join(f"{rule} {count * per_k:.2f}" for rule, count in by_rule.most_common()),
        )
    )
    section.rows.append(
        Row(
            "Elastic Apache (benign)",
            "per-record events",
            note=f"{sum(run_.events.values()) * per_k:.1f} per 1,000 requests: "
            + ", ".join(f"{rule} {count * per_k:.1f}" for rule, count in run_.events.most_common()),
        )
    )
    section.details = {
        "lines": run_.lines,
        "sources": len(sources),
        "alerts_by_rule": dict(by_rule),
        "alerted_sources": len(alerted),
        "per_record_events": dict(run_.events),
        "misattributed": run_.misattributed,
    }
    return section


SECTIONS: dict[str, Callable[[Harness, int | None, int], Section]] = {
    "csic2010": evaluate_csic,
    "httpparams": evaluate_httpparams,
    "crs": evaluate_crs,
    "fail2ban": evaluate_fail2ban,
    "crowdsec": evaluate_crowdsec,
    "loghub": evaluate_loghub,
    "elastic": evaluate_elastic,
}
SECTION_DATA = {
    "csic2010": (ds.CSIC_NORMAL, ds.CSIC_ANOMALOUS),
    "httpparams": (ds.HTTPPARAMS,),
    "crs": (ds.CRS_TESTS,),
    "fail2ban": (ds.FAIL2BAN_LABELS,),
    "crowdsec": (ds.CROWDSEC_DIR,),
    "loghub": (ds.OPENSSH_LOG, ds.LINUX_LOG),
    "elastic": (ds.ELASTIC_LOG,),
}


# --------------------------------------------------------------------------------------------- reporting


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ds.ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ds.ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        commit += " (uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
    }


def run(
    *, limit: int | None = None, seed: int = 2010, sections: Sequence[str] | None = None, command: str = ""
) -> dict[str, Any]:
    """Run the benchmark; returns the result document (not written). ``None`` data folder: all skipped."""
    shared = ds.shared_dir()
    started = time.perf_counter()
    chosen = list(sections) if sections is not None else list(SECTIONS)
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    harness = Harness(shared) if shared is not None else None
    done: list[Section] = []
    for name in chosen:
        missing = [rel for rel in SECTION_DATA.get(name, ()) if shared is None or not (shared / rel).exists()]
        if harness is None or missing:
            done.append(Section(name, skipped=f"shared data absent: {', '.join(missing) or 'data folder'}"))
            continue
        t0 = time.perf_counter()
        section = SECTIONS[name](harness, limit, seed)
        section.seconds = round(time.perf_counter() - t0, 2)
        done.append(section)
    return {
        "schema": SCHEMA,
        "command": command,
        "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "data": os.path.relpath(shared, ds.ROOT) if shared is not None else None,
        "limit": limit,
        "seed": seed,
        "flag_rules": sorted(FLAG_RULES),
        "uncounted_rules": sorted(UNCOUNTED_RULES),
        "seconds": round(time.perf_counter() - started, 1),
        "sections": [
            {
                "name": s.name,
                "skipped": s.skipped,
                "seconds": s.seconds,
                "rows": [row.to_json() for row in s.rows],
                "details": s.details,
            }
            for s in done
        ],
    }


def _cell(ratio: dict[str, Any] | None) -> str:
    if ratio is None:
        return ""
    return str(Ratio(ratio["hits"], ratio["total"]))


def _precision_cell(row: dict[str, Any]) -> str:
    ours, base = row["precision"], row["baseline_precision"]
    if ours is None and base is None:
        return ""
    return " / ".join("-" if p is None else _pct(p) for p in (ours, base))


def render_markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    scope = "full sets" if doc["limit"] is None else f"at most {doc['limit']} items per class, seed {doc['seed']}"
    lines = [
        "# Detection quality",
        "",
        f"Command: `{doc['command']}`  ",
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['platform']}; commit {m['commit']}  ",
        f"Generated {doc['generated']} in {doc['seconds']} s; data: `$PSEUDO_SHARED_DATA` ({scope})",
        "",
        "| benchmark | subset | detected (ours) | baseline | false positives (ours) | baseline FP "
        "| precision ours / base | alerts | TTD median / p90 | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for section in doc["sections"]:
        if section["skipped"]:
            lines.append(f"| {section['name']} | skipped: {section['skipped']} | | | | | | | | |")
            continue
        for row in section["rows"]:
            ttd = row["ttd_s"]
            cells = [
                row["benchmark"],
                row["subset"],
                _cell(row["detected"]),
                _cell(row["baseline"]),
                _cell(row["false_pos"]),
                _cell(row["baseline_false_pos"]),
                _precision_cell(row),
                "" if row["alerts"] is None else str(row["alerts"]),
                "" if ttd is None else f"{_duration(ttd['median'])} / {_duration(ttd['p90'])}",
                row["note"].replace("|", "\\|"),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *NOTES]
    return "\n".join(lines) + "\n"


NOTES = [
    "How to read it:",
    "",
    "- *detected*: recall on the positives (attacks, must-match lines, expected alerts, attacking sources); "
    "*false positives*: share of the negatives (normal requests, must-not-match lines, sources that did not "
    "attack) that fired. Precision uses the row's positives and negatives as evaluated, so it depends on "
    "their ratio. Per-request rows have no time to detect: the one request is the detection.",
    "- A request counts as *flagged* when an attack rule fires: every `http.*` rule except `http.bad_bot_ua` "
    "(who asks, not what), `http.admin_probe` and `http.auth_failure` (they need the response status, "
    "which the labelled sets lack). fail2ban rows count any rule.",
    "- *baseline*: a literal pattern-list detector: any line of CrowdSec's `sqli_probe_patterns.txt`, "
    "`xss_probe_patterns.txt`, `path_traversal.txt` as a case-sensitive substring of the raw, undecoded URL.",
    "- Requests are written as Apache `combined` lines (request line and headers escaped as `mod_log_config` "
    "does) and read by the real parser and processor (shipped policy, fixed test keyring): no POST body, no "
    "cookies, no other headers. Per-request sets have no client, time or response: one address, one time, "
    "status 200 for all.",
    "- CSIC 2010: absolute-URIs are cut to origin form. *Visible* = the access-log view (method, target with "
    "query, user agent) differs from every normal request's; the rest are POSTs whose anomaly is only in the "
    "body. Visible splits into *attack syntax* (fully decoded target has one of "
    "`` < > ' \" ` ; ( ) { } | $ \\ ``, NUL, CR, LF, `--`, `../`, `/*`), *unseen path* (a path no normal "
    "request uses: backup/config file probes) and *tampered value* (the rest: renamed parameters, stray "
    "`/`, odd values, and keyword-only SQL such as `AND 1=1`).",
    "- HttpParams: each value sent as `GET /search?q=<value>`, form-encoded (`+` for a space).",
    "- CRS: per rule file; recall on `expect_hit` tests whose payload is visible in an access log (no body, "
    "no raw request, and no header other than User-Agent/Referer with a value found in fewer than 0.4% of "
    "all tests); false positives on `expect_no_hit` tests, an upper bound: such a test only says that its "
    "own rule must stay quiet, and some are attacks that another CRS rule catches. *own rule* = the rule of "
    "ours meant for that family (none for 922/933/934/943).",
    "- fail2ban: per annotated line, *detected* = some per-record event fired and was attributed to the "
    "labelled host (its security pseudonym).",
    "- CrowdSec fixtures were written to pass CrowdSec's own rules: a unit test of the re-implemented "
    "scenarios, not an independent benchmark. An expected alert is *reproduced* when the detector alerts on "
    "that source with a rule mapped to the scenario (any rule where it has no equivalent); single-request "
    "CVE scenarios are answered by per-record events, counted in the note.",
    "- loghub: ground truth read from the raw lines (not the product's parser): sources with a failed login "
    "(`Failed password`, or pam_unix `authentication failure` in Linux_2k), the subset with fail2ban's "
    "default of 5 failures in 10 minutes, and as negatives the sources with no failed login.",
    "- Elastic: the log is mostly benign (bad-bot crawlers and one admin prober, see the data README); every "
    "source with an alert counts as a false positive.",
    "- Stateful rows run each log in file order through the detector, one state per subject, as the file "
    "mode does. Time to detect: event time of a source's first alert minus its first event.",
]


def write_results(doc: dict[str, Any], out_dir: Path = RESULTS_DIR) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "detection.md", out_dir / "detection.json"
    md.write_text(render_markdown(doc), encoding="utf-8")
    js.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n")
    return md, js


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="at most N items per class / N lines per log")
    parser.add_argument("--seed", type=int, default=2010, help="sampling seed (with --limit)")
    parser.add_argument("--sections", nargs="*", choices=list(SECTIONS), default=None)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    command = " ".join(["python -m benchmarks.detection_eval", *(sys.argv[1:] if argv is None else argv)])
    doc = run(limit=args.limit, seed=args.seed, sections=args.sections, command=command)
    print(render_markdown(doc))
    if not args.no_write:
        for path in write_results(doc, args.out):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
