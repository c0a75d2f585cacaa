"""Privacy and utility of the analytics release, before and after the k-anonymous release (issue 9).

``python -m benchmarks.privacy_eval`` runs the file mode on the shared Elastic access log (2015-05-17/18)
with one fresh keyring: BEFORE (the policy with ``analytics.release`` and aggregates off: the ``analytics/1``
per-record release with daily pseudonyms), AFTER with the shipped policy (k = 5) and AFTER with k = 10, and each
AFTER again with differential privacy on the aggregates (``analytics.aggregates.dp``: the policy's commented
example, or ``--dp``). Each release goes through :func:`pipeline.privacy_report.privacy_report`, scored with
ground truth built from the raw log and the keyring: each raw line's address, user agent and time give the pseudonym its
record carries (the same :class:`~transforms.pseudonymize.Pseudonymizer` calls as the pipeline), so the
linking attacks know which of their links are right. Only the benchmark holds that truth; the attacks see the
release alone.

Decisions where the issue is silent:
- the identity an attack tries to re-link is the source address (a unit of ``analytics/1`` is address + user
  agent; linking two of them from the same address counts as right);
- found/right are scored on human units (no raw user agent of the unit is a bot for
  :class:`~transforms.useragent.UserAgentReducer`); every unit is a candidate;
- the abuse join counts every abuse event (human or not): the goal is about events, not visitors;
- utility truth is the BEFORE release itself (one record per input record, exact country, browser, device and
  daily visitor pseudonym), so every AFTER figure is an error against what was there to count;
- DP noise is random (OpenDP draws from the operating system, no seed), so a DP variant's utility is the mean
  over ``--dp-runs`` file-mode runs (its worst run is kept beside it); the per-record release does not depend on
  DP, so its privacy figures are those of one run. The error that contribution bounding alone causes (pre-noise)
  is computed from the BEFORE records with the same bound, to tell bias from noise.

Writes ``benchmarks/results/privacy.json`` and ``privacy.md``. Exits 0 with a message when the shared data
is absent.
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
import sys
import tempfile
import tomllib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks import datasets as ds
from benchmarks.provenance import machine
from pipeline.privacy_report import GroundTruth, Release, k_distribution, privacy_report

SCHEMA = "privacy-eval/1"
RESULTS = ds.ROOT / "benchmarks" / "results"
POLICY = ds.ROOT / "config" / "policy.toml"
GEO_CITY = "geo/dbip-country/dbip-country.mmdb"
GEO_ASN = "geo/ip-location-db-asn/ip-location-db-asn.mmdb"
DAY = 86_400
# The row "unique in their day on prefix + geo + user agent".
NETWORK_AND_DEVICE = ("client.prefix", "geo", "user_agent")
UTILITY_DIMENSIONS = ("country", "browser", "device")
# Goals of issue 9 on the shared days (human visitors).
GOALS = {
    "link_right_max": 0.20,
    "link_found_max": 0.05,
    "abuse_unique_max": 0.05,
    "visitors_error_max": 0.02,
    "released_min": 0.80,
}


@dataclass(frozen=True)
class Variant:
    """One run of the file mode: its policy text and how its release is read."""

    name: str
    policy: str
    unit: str
    window_s: int
    k: int
    time_granularity_s: float | None
    dp: bool = False


def _set_in_table(text: str, table: str, key: str, value: str) -> str:
    """Set ``key = value`` in one ``[table]`` of the policy text (the table must hold the key already)."""
    pattern = re.compile(rf"(^\[{re.escape(table)}\]\n(?:(?!^\[).*\n)*?){re.escape(key)} = [^\n]*", re.MULTILINE)
    changed, count = pattern.subn(rf"\g<1>{key} = {value}", text, count=1)
    if count != 1:
        raise ValueError(f"policy has no {key} in [{table}]")
    return changed


def policy_dp_example(policy_text: str) -> str | None:
    """The ``dp = {...}`` settings the policy shows, commented out, in ``[analytics.aggregates]`` (None: none)."""
    found = re.search(r"^\[analytics\.aggregates\]\n(?:(?!^\[).*\n)*?#\s*dp = (\{[^\n]*\})", policy_text, re.MULTILINE)
    return found.group(1) if found else None


def variants(policy_text: str, ks: Iterable[int], dp: str | None = None) -> list[Variant]:
    """BEFORE and one AFTER per k, and with ``dp`` (a TOML inline table) one AFTER with DP per k; only BEFORE
    when the policy has no release section yet."""
    if "[analytics.release]" not in policy_text:
        return [Variant("before", policy_text, "client.visitor", DAY, 5, 60.0)]
    before = _set_in_table(policy_text, "analytics.release", "enabled", "false")
    if "[analytics.aggregates]" in before:
        before = _set_in_table(before, "analytics.aggregates", "enabled", "false")
    found = [Variant("before", before, "client.visitor", DAY, 5, 60.0)]
    window = re.search(r"^\[analytics\.release\]\n(?:(?!^\[).*\n)*?window_s = (\d+)", policy_text, re.MULTILINE)
    window_s = int(window.group(1)) if window else 3600
    ks = list(ks)
    for k in ks:
        text = _set_in_table(policy_text, "analytics.release", "k", str(k))
        found.append(Variant(f"after k={k}", text, "client.pseudonym", window_s, k, None))
    if dp is not None and "[analytics.aggregates]" in policy_text:
        for k in ks:
            text = _set_in_table(policy_text, "analytics.release", "k", str(k))
            text = text.replace("[analytics.aggregates]\n", f"[analytics.aggregates]\ndp = {dp}\n", 1)
            found.append(Variant(f"after k={k} DP", text, "client.pseudonym", window_s, k, None, dp=True))
    return found


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def run_variant(variant: Variant, log: Path, keys: Path, work: Path, shared: Path) -> dict[str, Any]:
    """The file mode over the log with the variant's policy; returns the release's files as records."""
    from config.settings import Settings
    from pipeline.filemode import process_files
    from pipeline.runtime import build_runtime

    policy_path = work / f"{variant.name.replace(' ', '_').replace('=', '')}.toml"
    policy_path.write_text(variant.policy)
    out = policy_path.with_suffix("")
    settings = Settings.from_env(geo_city_db=shared / GEO_CITY, geo_asn_db=shared / GEO_ASN)
    runtime = build_runtime(settings, keys_path=keys, policy_path=policy_path)
    summary = process_files(runtime, [str(log)], out, ingest_time=datetime(2015, 5, 20, tzinfo=UTC))
    return {
        "summary": summary,
        "analytics": _jsonl(out / "analytics.jsonl"),
        "abuse": _jsonl(out / "abuse.jsonl"),
        "aggregates": _jsonl(out / "aggregates.jsonl"),
        "policy": runtime.policy,
        "keyring": runtime.keyring,
    }


def ground_truth(lines: Iterable[bytes], policy: Any, keyring: Any, variant: Variant) -> GroundTruth:
    """Which address and which kind of client stands behind each released pseudonym (from the raw log)."""
    from transforms.errors import RecordError
    from transforms.ip import parse_ip
    from transforms.keyring import Purpose
    from transforms.model import EventKind
    from transforms.parse import build_parser
    from transforms.pseudonymize import Pseudonymizer
    from transforms.useragent import UserAgentReducer

    parse = build_parser(policy.parse)
    lifetime = variant.window_s if variant.window_s < DAY else None
    analytics = Pseudonymizer(keyring, Purpose.ANALYTICS, lifetime_s=lifetime)
    security = Pseudonymizer(keyring, Purpose.SECURITY)
    is_bot = UserAgentReducer()
    source: dict[str, str] = {}
    bot: dict[str, bool] = defaultdict(bool)
    subjects: dict[str, str] = {}
    ingest = datetime(2015, 5, 20, tzinfo=UTC)
    for line in lines:
        try:
            events = parse(line, ingest)
        except RecordError:
            continue
        for event in events:
            try:
                ip = parse_ip(event.source_ip)
            except RecordError:
                continue
            unix = event.time.timestamp()
            subjects[security.ip(ip.packed, unix)] = ip.text
            if event.kind is not EventKind.HTTP:
                continue
            if variant.unit == "client.visitor":
                unit = analytics.visitor(ip.packed, event.user_agent, unix)
            else:
                unit = analytics.ip(ip.packed, unix)
            source[unit] = ip.text
            bot[unit] |= is_bot(event.user_agent).bot
    identity = {unit: address for unit, address in source.items() if not bot[unit]}
    return GroundTruth(identity=identity, source=source, abuse_source=subjects)


# --- utility -----------------------------------------------------------------------------------------------------

Cells = dict[tuple[str, str | None, Any], tuple[int, int]]  # (day, dimension or None, value) -> (pageviews, visitors)


def true_counts(records: Iterable[Mapping[str, Any]]) -> Cells:
    """Daily pageviews and distinct visitors in total and per dimension, from a per-record release with visitors."""
    pageviews: Counter[tuple[str, str | None, Any]] = Counter()
    visitors: dict[tuple[str, str | None, Any], set[str]] = defaultdict(set)
    for record in records:
        day = str(record.get("time", ""))[:10]
        visitor = (record.get("client") or {}).get("visitor")
        values = {
            "country": (record.get("geo") or {}).get("country"),
            "browser": (record.get("user_agent") or {}).get("browser"),
            "device": (record.get("user_agent") or {}).get("device"),
        }
        for cell in [(day, None, None), *((day, name, value) for name, value in values.items() if value is not None)]:
            pageviews[cell] += 1
            if visitor is not None:
                visitors[cell].add(visitor)
    return {cell: (n, len(visitors[cell])) for cell, n in pageviews.items()}


def released_counts(rows: Iterable[Mapping[str, Any]]) -> Cells:
    """The daily cells of an aggregate release (a day window's single-dimension and all-traffic rows)."""
    cells: Cells = {}
    for row in rows:
        window = row.get("window") or {}
        start, end = str(window.get("start", "")), str(window.get("end", ""))
        if start[11:19] != "00:00:00" or start[:10] == end[:10] or end[11:19] != "00:00:00":
            continue  # not a whole day
        dimensions = row.get("dimensions") or {}
        if len(dimensions) > 1:
            continue
        name, value = next(iter(dimensions.items())) if dimensions else (None, None)
        if name is None or name in UTILITY_DIMENSIONS:
            cells[(start[:10], name, value)] = (int(row["pageviews"]), int(row["visitors"]))
    return cells


def bounding_error(records: Iterable[Mapping[str, Any]], max_pageviews: int) -> dict[str, Any]:
    """Daily pageviews lost to the DP bound alone (each visitor counts at most ``max_pageviews`` a day), pre-noise.

    The all-traffic row holds one cell per visitor, so visitors lose nothing there; per dimension cells, the
    ``max_cells`` bound also applies (not computed here).
    """
    per_visitor: Counter[tuple[str, str]] = Counter()
    for record in records:
        visitor = (record.get("client") or {}).get("visitor")
        if visitor is not None:
            per_visitor[(str(record.get("time", ""))[:10], visitor)] += 1
    days = sorted({day for day, _ in per_visitor})
    errors = []
    for day in days:
        counts = [n for (d, _), n in per_visitor.items() if d == day]
        errors.append((sum(min(n, max_pageviews) for n in counts) - sum(counts)) / sum(counts))
    return {"days": days, "pageviews_error": errors, "max_pageviews": max_pageviews}


def dp_threshold(variant: Variant) -> int | None:
    """The noisy visitor count a dimension cell must reach under the variant's DP settings (None: no sets)."""
    from transforms.noise import CellSelection, DifferentialPrivacy, build_window_noise

    aggregates = tomllib.loads(variant.policy)["analytics"]["aggregates"]
    noises = build_window_noise(DifferentialPrivacy(**aggregates["dp"]), len(aggregates["dimensions"]), variant.k)
    selection = noises[-1].visitors
    return selection.threshold if isinstance(selection, CellSelection) else None


def mean_utility(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of several :func:`utility` results (noisy releases): signed errors per day, worst-day errors
    (mean, and the worst run), and per dimension coverage and MARE."""

    def mean(values: Iterable[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.fmean(present) if present else None

    out: dict[str, Any] = {"days": runs[0]["days"], "runs": len(runs)}
    for measure in ("pageviews", "visitors"):
        out[f"{measure}_error"] = [mean(day) for day in zip(*(r[f"{measure}_error"] for r in runs), strict=True)]
        worst = [r[f"{measure}_max_abs_error"] for r in runs]
        out[f"{measure}_max_abs_error"] = mean(worst)
        out[f"{measure}_max_abs_error_worst_run"] = None if None in worst else max(worst)
    for name in UTILITY_DIMENSIONS:
        out[name] = {key: mean(r[name][key] for r in runs) for key in runs[0][name]}
    return out


def daily_noise(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """What the day windows' all-traffic rows state about their noise (the same for every day)."""
    for row in rows:
        window = row.get("window") or {}
        start, end = str(window.get("start", "")), str(window.get("end", ""))
        if row.get("dimensions") == {} and start[:10] != end[:10] and "noise" in row:
            return dict(row["noise"])
    return None


def utility(truth: Cells, released: Cells) -> dict[str, Any]:
    """Error of the released daily counts against the truth: totals, and per dimension coverage and MARE."""
    days = sorted({day for day, name, _ in truth if name is None})
    out: dict[str, Any] = {"days": days}
    for position, measure in enumerate(("pageviews", "visitors")):
        errors = []
        for day in days:
            true = truth[(day, None, None)][position]
            got = released.get((day, None, None))
            errors.append(None if got is None else (got[position] - true) / true)
        out[f"{measure}_error"] = errors
        out[f"{measure}_max_abs_error"] = None if None in errors else max(abs(e) for e in errors if e is not None)
    for name in UTILITY_DIMENSIONS:
        cells = [cell for cell in truth if cell[1] == name]
        total = sum(truth[c][0] for c in cells)
        shown = [c for c in cells if c in released]
        entry: dict[str, Any] = {
            "cells": len(cells),
            "released_cells": len(shown),
            "pageviews_share_released": sum(truth[c][0] for c in shown) / total if total else None,
        }
        for position, measure in enumerate(("pageviews", "visitors")):
            relative = [abs(released[c][position] - truth[c][position]) / truth[c][position] for c in shown]
            entry[f"{measure}_mare"] = sum(relative) / len(relative) if relative else None
        out[name] = entry
    return out


# --- the run -------------------------------------------------------------------------------------------------------


def evaluate(variant: Variant, lines: list[bytes], log: Path, keys: Path, work: Path, shared: Path) -> dict[str, Any]:
    """One variant: its file-mode run, its privacy report with ground truth, and what it releases."""
    run = run_variant(variant, log, keys, work, shared)
    truth = ground_truth(lines, run["policy"], run["keyring"], variant)
    report = privacy_report(
        run["analytics"],
        run["abuse"],
        run["aggregates"],
        run["summary"],
        unit=variant.unit,
        window_s=variant.window_s,
        k=variant.k,
        time_granularity_s=variant.time_granularity_s,
        truth=truth,
    )
    release = Release.read(
        run["analytics"],
        unit=variant.unit,
        window_s=variant.window_s,
        time_granularity_s=variant.time_granularity_s,
    )
    units = [u.value for u in release.units()]
    summary = run["summary"]
    return {
        "variant": variant.name,
        "unit": variant.unit,
        "window_s": variant.window_s,
        "k": variant.k,
        "summary": summary,
        "report": report,
        "k_network_and_device": k_distribution(release, NETWORK_AND_DEVICE),
        "single_address_prefixes": single_address_prefixes(release, truth),
        "truth_coverage": sum(u in truth.source for u in units) / len(units) if units else None,
        "human_units": sum(u in truth.identity for u in units),
        "released_per_record": len(run["analytics"]) / summary["input"] if summary.get("input") else None,
        "analytics": run["analytics"],
        "aggregates": run["aggregates"],
    }


def single_address_prefixes(release: Release, truth: GroundTruth) -> dict[str, Any]:
    """Released prefixes (per window) behind which a single source address stands."""
    behind: dict[tuple[int, Any], set[str]] = defaultdict(set)
    for u in release.units():
        for record in u.records:
            prefix = (record.get("client") or {}).get("prefix")
            if prefix is not None and u.value in truth.source:
                behind[(u.window, prefix)].add(truth.source[u.value])
    single = sum(1 for addresses in behind.values() if len(addresses) == 1)
    return {"prefixes": len(behind), "single": single, "share": single / len(behind) if behind else None}


def run(
    *,
    limit: int | None = None,
    seed: int = 1,
    ks: Iterable[int] = (5, 10),
    dp: str | None = None,
    dp_runs: int = 20,
    command: str = "",
) -> dict[str, Any]:
    """Every variant on the shared Elastic log (``limit`` lines drawn evenly with ``seed``, all by default);
    DP variants (``dp``: a TOML inline table, default the policy's commented example) ``dp_runs`` times."""
    from pipeline.keystore import write_keyring
    from transforms.keyring import generate_keyring

    shared = ds.shared_dir()
    if shared is None:
        raise FileNotFoundError("shared data folder absent")
    log = shared / ds.ELASTIC_LOG
    lines = [line for line in log.read_bytes().splitlines() if line.strip()]
    lines = ds.sample(lines, limit, seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="privacy-eval-") as tmp:
        work = Path(tmp)
        keys = work / "keys.json"
        write_keyring(generate_keyring(valid_from=datetime(2015, 1, 1, tzinfo=UTC)), keys)
        sliced = work / "input.log"
        sliced.write_bytes(b"".join(line + b"\n" for line in lines))
        policy_text = POLICY.read_text()
        dp = dp if dp is not None else policy_dp_example(policy_text)
        for variant in variants(policy_text, ks, dp):
            result = evaluate(variant, lines, sliced, keys, work, shared)
            if variant.dp:
                result["dp"] = tomllib.loads(f"dp = {dp}")["dp"]
                result["dp_threshold"] = dp_threshold(variant)
                result["noise_runs"] = [result.pop("aggregates")] + [
                    run_variant(variant, sliced, keys, work, shared)["aggregates"] for _ in range(dp_runs - 1)
                ]
            results.append(result)
    before_records = results[0]["analytics"]
    truth_cells = true_counts(before_records)
    for result in results:
        records, aggregates = result.pop("analytics"), result.pop("aggregates", None)
        if result["variant"] == "before":
            result["utility"] = utility(truth_cells, true_counts(records))  # an analyst counts the per-record release
        elif "noise_runs" in result:
            noise_runs = result.pop("noise_runs")
            result["noise"] = daily_noise(noise_runs[0])
            result["bounding"] = bounding_error(before_records, result["dp"]["max_pageviews"])
            result["utility"] = mean_utility([utility(truth_cells, released_counts(r)) for r in noise_runs])
        else:
            result["utility"] = utility(truth_cells, released_counts(aggregates or []))
    return {
        "schema": SCHEMA,
        "command": command,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "data": ds.ELASTIC_LOG,
        "lines": len(lines),
        "limit": limit,
        "seed": seed,
        "goals": GOALS,
        "dp_runs": dp_runs,
        "variants": results,
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _attack(result: dict[str, Any], name: str) -> str:
    attack = result["report"]["linking"][name]
    if attack["found"] is None and attack["right"] is None:
        return f"{attack['links']} links, no returning human"
    return (
        f"{_pct(attack['found'])} found, {_pct(attack['right'])} right, {_pct(attack['relinked'])} re-linked "
        f"({attack['scored_links']} links, {attack['returning']} returning)"
    )


def table_rows(doc: dict[str, Any]) -> list[tuple[str, list[str], str]]:
    """(measure, one cell per variant, goal) rows of the closing table."""
    results = doc["variants"]

    def row(label: str, cell: Any, goal: str = "") -> tuple[str, list[str], str]:
        return label, [cell(r) for r in results], goal

    def kd(r: dict[str, Any]) -> dict[str, Any]:
        return r["report"]["k_distribution"]

    def util(r: dict[str, Any], name: str, key: str) -> str:
        return _pct(r["utility"][name][key])

    def worst_day(r: dict[str, Any], measure: str) -> str:
        shown = _pct(r["utility"][f"{measure}_max_abs_error"])
        if "runs" not in r["utility"]:
            return shown
        worst = _pct(r["utility"][f"{measure}_max_abs_error_worst_run"])
        return f"{shown} mean, {worst} worst of {r['utility']['runs']} runs"

    def dp_cell(r: dict[str, Any], cell: Any) -> str:
        return cell(r) if "dp" in r else "off"

    rows = [
        row("unit / window", lambda r: f"{r['unit']} / {r['window_s']} s"),
        row("re-link by the released prefix alone", lambda r: _attack(r, "prefix"), "<= 5% found, <= 20% right"),
        row("re-link by country + ASN + browser/major + OS + device", lambda r: _attack(r, "device"), "same"),
        row("same, ties broken by paths", lambda r: _attack(r, "device_paths"), "same"),
        row("prefix, linked only where one earlier unit matches", lambda r: _attack(r, "prefix_unique"), "same"),
        row("country + ... + device, only where one matches", lambda r: _attack(r, "device_unique"), "same"),
        row(
            "units with k = 1 / k < 5 (all released QIs)",
            lambda r: f"{_pct(kd(r)['k1']['units'])} / {_pct(kd(r)['k_below_5']['units'])}",
            "none below the policy's k",
        ),
        row("min k of a released profile", lambda r: str(kd(r)["min_k"]), ">= k"),
        row(
            "units with k = 1 on prefix + geo + user agent",
            lambda r: (
                f"{_pct(r['k_network_and_device']['k1']['units'])} (k < 5: "
                f"{_pct(r['k_network_and_device']['k_below_5']['units'])})"
            ),
        ),
        row(
            "QI tuples held by one unit of their window (records)",
            lambda r: _pct(r["report"]["uniqueness"]["share"]),
        ),
        row(
            "abuse events joining exactly one analytics unit (right)",
            lambda r: (
                f"{_pct(r['report']['abuse_join']['exactly_one_share'])} "
                f"({r['report']['abuse_join']['exactly_one_right']} of {r['report']['abuse_join']['events']})"
            ),
            "<= 5%",
        ),
        row("(time, prefix) cells holding one unit", lambda r: _pct(r["report"]["single_unit_cells"]["share"])),
        row(
            "released prefixes behind a single address, per window",
            lambda r: _pct(r["single_address_prefixes"]["share"]),
        ),
        row("records released per record", lambda r: _pct(r["released_per_record"]), ">= 80%"),
        row("suppressed (summary)", lambda r: _pct(r["report"]["levels"]["suppressed_share"])),
        row(
            "DP: epsilon, delta per window; per visitor at most (pageviews per cell, cells per set)",
            lambda r: dp_cell(
                r,
                lambda d: (
                    f"{d['dp']['epsilon']:g}, {d['dp'].get('delta', 1e-6):g}; "
                    f"({d['dp']['max_pageviews']}, {d['dp']['max_cells']})"
                ),
            ),
        ),
        row(
            "DP: noise scale of a day's all-traffic row (pageviews / visitors)",
            lambda r: dp_cell(
                r, lambda d: f"{d['noise']['scale']['pageviews']:.4g} / {d['noise']['scale']['visitors']:.4g}"
            ),
        ),
        row(
            "DP: noisy visitors a dimension cell needs (OpenDP threshold)",
            lambda r: dp_cell(r, lambda d: str(d["dp_threshold"])),
        ),
        row(
            "DP: daily pageviews error of the bound alone (pre-noise, worst day)",
            lambda r: dp_cell(r, lambda d: _pct(max(d["bounding"]["pageviews_error"], key=abs))),
        ),
        row("daily pageviews, worst error (total)", lambda r: worst_day(r, "pageviews"), "exact without DP"),
        row("daily unique visitors, worst error (total)", lambda r: worst_day(r, "visitors"), "<= 2% without DP"),
    ]
    for name in UTILITY_DIMENSIONS:
        rows.append(
            row(
                f"per {name}: pageviews in released cells / MARE pageviews / MARE visitors",
                lambda r, n=name: (
                    f"{util(r, n, 'pageviews_share_released')} / {util(r, n, 'pageviews_mare')} / "
                    f"{util(r, n, 'visitors_mare')}"
                ),
            )
        )
    return rows


def render_markdown(doc: dict[str, Any]) -> str:
    names = [r["variant"] for r in doc["variants"]]
    lines = [
        "# Privacy of the analytics release: before and after (issue 9)",
        "",
        f"`{doc['command'] or 'python -m benchmarks.privacy_eval'}` on `{doc['data']}` ({doc['lines']} lines), "
        f"commit {doc['machine']['commit']}, {doc['generated']}.",
        "Attacks see only the release; found/right are scored on human units with ground truth from the raw log and "
        "the keys (identity = source address). Right = expected share of links correct (1/candidates when the true "
        "unit is among them); found = share of returning human units that get any link; re-linked = share linked to "
        "their own earlier unit. Utility truth = the BEFORE per-record release; AFTER counts come from the day rows of "
        "aggregates.jsonl. DP columns: the aggregates with `analytics.aggregates.dp` (transforms/noise.py); noise is "
        f"random, so their utility figures are means over {doc.get('dp_runs', 1)} runs (MARE and shares: mean over "
        "runs); their per-record release is the same as without DP.",
        "",
        "| measure | " + " | ".join(names) + " | goal |",
        "|---|" + "---|" * len(names) + "---|",
    ]
    for label, cells, goal in table_rows(doc):
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {goal} |")
    lines.append("")
    for result in doc["variants"]:
        levels = result["report"]["levels"]["fields"]
        shown = "; ".join(
            f"{name}: " + ", ".join(f"{label} {_pct(share)}" for label, share in shares.items() if share)
            for name, shares in levels.items()
        )
        lines.append(f"- {result['variant']}: levels of released records: {shown}")
    return "\n".join(lines) + "\n"


def write_results(doc: dict[str, Any], folder: Path = RESULTS) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / "privacy.md", folder / "privacy.json"
    md.write_text(render_markdown(doc))
    js.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n")
    return md, js


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.privacy_eval", description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, help="use this many log lines, drawn evenly (default: all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--k", type=int, action="append", help="an AFTER run with this k (default: 5 and 10)")
    parser.add_argument(
        "--dp",
        help="DP settings of the DP variants, a TOML inline table (default: the policy's commented example)",
    )
    parser.add_argument("--dp-runs", type=int, default=20, help="runs of each DP variant (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default: %(default)s)")
    args = parser.parse_args(argv)
    if ds.shared_dir() is None:
        print("privacy_eval: shared data not present (../shared/data or $PSEUDO_SHARED_DATA); skipped")
        return 0
    logging.basicConfig(level=logging.WARNING)
    command = "python -m benchmarks.privacy_eval " + " ".join(argv if argv is not None else sys.argv[1:])
    doc = run(
        limit=args.limit,
        seed=args.seed,
        ks=args.k or (5, 10),
        dp=args.dp,
        dp_runs=max(1, args.dp_runs),
        command=command.strip(),
    )
    md, js = write_results(doc, args.out)
    print(md.read_text())
    print(f"privacy_eval: wrote {md} and {js}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
