"""Goals, and the three result files: ``latest.json``, ``throughput.md``, ``throughput.png``.

``latest.json`` is ``{"machine": {...}, "systems": [{"system", "events_per_s", "cpu_s_per_million",
"peak_rss_mb", "p50_ms_at_50pct", "p99_ms_at_50pct", ...extra}, ...], ...extra}``. A value that could not be
measured (``limit`` has no Kafka latency, a failed system) is ``null``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

REQUIRED = ("system", "events_per_s", "cpu_s_per_million", "peak_rss_mb", "p50_ms_at_50pct", "p99_ms_at_50pct")


@dataclass(frozen=True)
class Goal:
    name: str
    target: str
    value: Callable[[dict[str, dict[str, Any]], dict[str, Any]], float | None]  # (rows by system, document)
    ok: Callable[[float], bool]


def _ratio(a: str, b: str) -> Callable[[dict[str, dict[str, Any]], dict[str, Any]], float | None]:
    def value(rows: dict[str, dict[str, Any]], _: dict[str, Any]) -> float | None:
        top, bottom = rows.get(a, {}).get("events_per_s"), rows.get(b, {}).get("events_per_s")
        return round(top / bottom, 3) if top and bottom else None

    return value


GOALS = (
    Goal("product/limit throughput", ">= 0.25", _ratio("product", "limit"), lambda v: v >= 0.25),
    Goal("product/aiokafka throughput", ">= 0.5", _ratio("product", "aiokafka"), lambda v: v >= 0.5),
    Goal("product/quixstreams throughput", ">= 1", _ratio("product", "quixstreams"), lambda v: v >= 1.0),
    Goal("product/faust-naive throughput", ">= 3", _ratio("product", "faust-naive"), lambda v: v >= 3.0),
    Goal(
        "product p99 latency at 50% of its max (ms)",
        "< 100",
        lambda rows, _: rows.get("product", {}).get("p99_ms_at_50pct"),
        lambda v: v < 100,
    ),
    Goal(
        "product peak RSS (MB)", "< 300", lambda rows, _: rows.get("product", {}).get("peak_rss_mb"), lambda v: v < 300
    ),
    Goal(
        "product 2 processes / 1 process (4 partitions)",
        ">= 1.6",
        lambda _, doc: (doc.get("product_scaling") or {}).get("ratio"),
        lambda v: v >= 1.6,
    ),
    Goal(
        "product release on / release off throughput (issue 9)",
        ">= 0.85",
        lambda _, doc: (doc.get("product_release") or {}).get("ratio"),
        lambda v: v >= 0.85,
    ),
    Goal(
        "same, CPU-bound: CPU per event off / on (issue 9)",
        ">= 0.85",
        lambda _, doc: (doc.get("product_release") or {}).get("cpu_ratio"),
        lambda v: v >= 0.85,
    ),
)


def evaluate_goals(doc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = {row["system"]: row for row in doc["systems"]}
    out = []
    for goal in GOALS:
        value = goal.value(rows, doc)
        out.append(
            {
                "goal": goal.name,
                "target": goal.target,
                "value": value,
                "pass": None if value is None else goal.ok(value),
            }
        )
    return out


def ratios(doc: dict[str, Any]) -> dict[str, float | None]:
    rows = {row["system"]: row for row in doc["systems"]}
    return {f"product/{name}": _ratio("product", name)(rows, doc) for name in rows if name != "product"}


def check_document(doc: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless ``doc`` has the promised shape (used by the harness's test too)."""
    if not isinstance(doc.get("machine"), dict) or not isinstance(doc.get("systems"), list):
        raise ValueError("document needs a 'machine' object and a 'systems' list")
    for row in doc["systems"]:
        missing = [key for key in REQUIRED if key not in row]
        if missing:
            raise ValueError(f"system row {row.get('system')!r} lacks {missing}")
        if row["system"] not in ("limit", "aiokafka", "quixstreams", "faust-naive", "product"):
            raise ValueError(f"unknown system {row['system']!r}")
        for key in REQUIRED[1:]:
            value = row[key]
            if value is not None and not (isinstance(value, int | float) and value >= 0):
                raise ValueError(f"{row['system']}.{key} must be a number >= 0 or null, got {value!r}")


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return str(value)


def markdown(doc: dict[str, Any]) -> str:
    machine = doc["machine"]
    config = doc["config"]
    lines = [
        "# Streaming throughput: the product's worker against plain clients and other frameworks",
        "",
        f"`{doc['command']}` — {doc['generated']}, {doc['duration_s']} s. Machine: {machine['cpu']}, "
        f"{machine['cores']} cores, {machine['memory_gb']} GB, Python {machine['python']}; load average "
        f"{machine['load_avg_start']} at start, {machine.get('load_avg_end')} at end; commit "
        f"`{(machine.get('commit') or '?')[:10]}`{' (uncommitted changes)' if machine.get('worktree_dirty') else ''}.",
        "",
        f"Input: {config['events']:,} records ({config['input']['generated']:,} from `pipeline.traffic.generate` at "
        f"its default mix, {config['input']['real_lines']:,} real log lines), the same for every system; "
        f"{config['partitions']} partitions; one broker ({machine['broker']['version'] or 'Kafka'}). "
        f"Geo: {config['geo']['city_db'] or 'no city DB'} + {config['geo']['asn_db'] or 'no ASN DB'}.",
        "",
        "| system | events/s | CPU s / M events | peak RSS MB | broker CPU share | p50 / p99 ms @25% | "
        "p50 / p99 ms @50% | p50 / p99 ms @75% |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in doc["systems"]:
        if row.get("error"):
            error = row["error"].replace("|", "/").replace("\n", " ")[-160:]
            lines.append(f"| {row['system']} | failed: {error} | | | | | | |")
            continue
        share = row.get("broker_cpu_share")
        cells = [
            row["system"],
            _fmt(row["events_per_s"]),
            _fmt(row["cpu_s_per_million"], 1),
            _fmt(row["peak_rss_mb"]),
            "–" if share is None else f"{share:.0%}",
        ]
        for pct in (25, 50, 75):
            p50, p99 = row.get(f"p50_ms_at_{pct}pct"), row.get(f"p99_ms_at_{pct}pct")
            cells.append("–" if p50 is None else f"{_fmt(p50, 1)} / {_fmt(p99, 1)}")
        lines.append("| " + " | ".join(cells) + " |")
    rows = {row["system"]: row for row in doc["systems"]}
    bare = rows.get("product", {}).get("without_detection")
    if bare and bare.get("events_per_s"):
        versus = [
            f"×{_fmt(bare['events_per_s'] / rows[name]['events_per_s'], 2)} of `{name}`"
            for name in ("limit", "aiokafka", "quixstreams", "faust-naive")
            if rows.get(name, {}).get("events_per_s")
        ]
        lines += [
            "",
            f"**product with detection off** (`[detection] enabled = false`: the same work as the other systems): "
            f"{_fmt(bare['events_per_s'])} events/s, {_fmt(bare['cpu_s_per_million'], 1)} CPU s/M"
            + (f", {', '.join(versus)}." if versus else "."),
        ]
    scaling = doc.get("product_scaling")
    if scaling and "ratio" in scaling:
        two = scaling["two_process"]
        runs = ""
        if scaling.get("two_process_runs"):
            runs = (
                f" (means of two runs each: {', '.join(_fmt(v) for v in scaling['two_process_runs'])} vs "
                f"{', '.join(_fmt(v) for v in scaling['one_process_runs'])})"
            )
        ceiling = scaling.get("cpu_bound_ceiling")
        lines += [
            "",
            f"**product, 2 worker processes** on the same {scaling['partitions']}-partition input: "
            f"{_fmt(scaling['two_process_events_per_s'])} events/s vs {_fmt(scaling['one_process_events_per_s'])} "
            f"with one (×{_fmt(scaling['ratio'], 2)}){runs}, {_fmt(two['cpu_s_per_million'], 1)} CPU s/M, peak RSS "
            f"per process {two['peak_rss_mb_per_process']} MB, broker CPU share "
            f"{_fmt((two.get('broker_cpu_share') or 0) * 100)}%."
            + (
                f" If CPU were the only limit, this machine ({doc['machine'].get('cores')} cores shared with the "
                f"broker) would allow at most ×{_fmt(ceiling, 2)}."
                if ceiling
                else ""
            ),
        ]
    lines += release_markdown(doc.get("product_release"))
    limit = next((r for r in doc["systems"] if r["system"] == "limit" and r.get("with_detector")), None)
    if limit:
        wd = limit["with_detector"]
        lines += [
            "",
            f"`limit` with the product's stateful detector added (observations serialized, detector run): "
            f"{_fmt(wd['events_per_s'])} events/s, {_fmt(wd['cpu_s_per_million'], 1)} CPU s/M.",
        ]
    lines += ["", "## Goals (from this run)", "", "| goal | target | value | result |", "|---|---|---:|---|"]
    for goal in doc["goals"]:
        result = "n/a" if goal["pass"] is None else ("PASS" if goal["pass"] else "FAIL")
        lines.append(f"| {goal['goal']} | {goal['target']} | {_fmt(goal['value'], 2)} | {result} |")
    lines += [
        "",
        "## Method",
        "",
        "* **events/s**: N records written to a fresh input topic once the system's consumer groups are Stable with "
        "all its processes (each system its own groups), N divided by the time between the first and the last "
        "output record's broker append time (output topics are `LogAppendTime`); start-up and group join are "
        "outside the window. `limit` is one timed pass in memory.",
        "* **CPU s / M events**: user + system CPU of the system's process(es) inside that window (psutil, sampled "
        "every 0.1 s), per million input records. **broker CPU share**: the broker JVM's CPU over the same window, "
        "as a share of broker + system.",
        "* **peak RSS**: the kernel's `VmHWM` of the process (largest process for 2 workers), over the throughput "
        "and latency runs.",
        "* **latency**: a fresh process on a fresh input topic, warmed up until its first output; a paced producer "
        "(5 ms linger, counted in the latency) sends at 25/50/75 % of the rate that system reached above, "
        f"{config['latency_seconds_per_rate']} s each (first second left out); the probe takes receive time "
        "minus produce time for each analytics record (the produce time travels in the record's response-size "
        "field, which the policy copies to `http.bytes`).",
        "* Every system runs the same `RecordProcessor` and the same routing and serialization; only `product` also "
        "runs the stateful detector (observations through a repartition topic, detector state in `memory://`), "
        "as shipped; it is measured once more with `[detection] enabled = false`, the others' work.",
        "* **The k-anonymous release** (shipped on): the input is a backlog (event times end "
        f"{config.get('input_timestamp', 'two days before the run')}, also its Kafka timestamp), so the product's "
        "release stage releases every window once its input has been idle `PSEUDO_RELEASE_IDLE_CLOSE_S`; the run is "
        "done when the release group has committed its whole topic. The product's events/s runs up to the later of "
        "its ingest's last output and the release stage's last output less that idle wait (closing counted, waiting "
        "not); its CPU is counted to the last output, less the quietest stretch of the wait's length after the "
        "release topic's last row. Its latency probe reads the release topic (a released record leaves when its "
        "window closes, an hour and more by design). The baselines write the routing's release rows to their "
        "analytics topic: the product's ingest work, without a release stage.",
        "* `aiokafka`, `quixstreams` and `product` produce with lz4 and 5 ms linger; `faust-naive` uses faust's "
        "defaults. All are at-least-once (commit after produce).",
    ]
    for note in doc.get("notes", []):
        lines.append(f"* Note: {note}")
    return "\n".join(lines) + "\n"


def release_markdown(release: dict[str, Any] | None) -> list[str]:
    """The side-by-side of the product with the k-anonymous release on and off, and its window state."""
    if not release:
        return []
    if release.get("error"):
        return ["", f"**product, release on vs off**: failed: {release['error'][-300:]}"]
    lines = [
        "",
        "**product, k-anonymous release on (shipped) vs off** (`[analytics.release]` and `[analytics.aggregates]` "
        f"disabled), alternating {' '.join(release['order'])} on the same input:",
        "",
        "| release | events/s (mean) | runs | CPU s / M events | peak RSS MB |",
        "|---|---:|---|---:|---:|",
        f"| on | {_fmt(release['on_events_per_s'])} | {', '.join(_fmt(v) for v in release['on_runs'])} | "
        f"{_fmt(release['on_cpu_s_per_million'], 1)} | {_fmt(release['on_peak_rss_mb'])} |",
        f"| off | {_fmt(release['off_events_per_s'])} | {', '.join(_fmt(v) for v in release['off_runs'])} | "
        f"{_fmt(release['off_cpu_s_per_million'], 1)} | {_fmt(release['off_peak_rss_mb'])} |",
        "",
        f"On / off: ×{_fmt(release['ratio'], 3)} in events/s, ×{_fmt(release.get('cpu_ratio'), 3)} in CPU per event "
        "(off / on: the events/s ratio of a worker bound by its one core) (goal ≥ 0.85). With the release on, "
        "events/s runs up to the release "
        "stage's last output less its idle wait (closing the windows counted); the ingest and detector alone "
        f"reached {_fmt(release['on_ingest_events_per_s'])} events/s, and the release stage finished "
        f"{', '.join(_fmt(v, 2) for v in release['release_after_ingest_s'])} s after them. Peak RSS on − off: "
        f"{_fmt(release['rss_difference_mb'], 1)} MB.",
    ]
    summary = release.get("on_summary")
    if summary:
        lines[-1] += (
            f" The worker held {_fmt(summary['analytics_held'])} analytics rows, released "
            f"{_fmt(summary['analytics_records'])} and suppressed {_fmt(summary['analytics_suppressed'])} "
            f"({_fmt(summary['analytics_late'])} late) in {_fmt(summary['release_windows'])} windows, and wrote "
            f"{_fmt(summary['aggregate_rows'])} aggregate rows (`/summary` of the first run with the release on)."
        )
    state = release.get("window_state")
    if state:
        held = state["held"]
        sizes = state["sizes"]
        lines += [
            "",
            f"Window state (`benchmarks.throughput.window_state`: the input's {_fmt(held['rows'])} release rows fed, "
            f"poll by poll, to one `ReleaseStage` in its own process): {_fmt(held['open_records'])} rows of "
            f"{_fmt(held['units'])} units held at the end ({_fmt(held['windows'])} windows over the run, "
            f"{_fmt(held['daily_visitors'])} daily visitors), {_fmt(state['traced_mb'], 1)} MB traced "
            f"({_fmt(state['traced_bytes_per_row'])} bytes a row; peak {_fmt(state['traced_peak_mb'], 1)} MB). "
            "Adding and closing, per million rows, as the window grows:",
            "",
            "| rows | units | decode + add s / M rows | closes on the way s / M | final close s / M | released | "
            "suppressed |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {_fmt(z['rows'])} | {_fmt(z['units'])} | {_fmt(z['add_s_per_million'], 1)} | "
            f"{_fmt(z.get('closes_on_the_way_s_per_million'), 1)} | {_fmt(z['close_s_per_million'], 1)} | "
            f"{_fmt(z['released'])} | {_fmt(z['suppressed'])} |"
            for z in sizes
        ]
        lines += [
            "",
            f"Closing the last window and serializing its released records peaked at "
            f"{_fmt(state.get('close_traced_peak_mb'), 1)} MB traced (the records exist as dicts and as bytes at "
            "once).",
        ]
    return lines


def plot(doc: dict[str, Any], path: Path) -> bool:
    """Write the PNG; returns False (and writes nothing) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [r for r in doc["systems"] if r.get("events_per_s") is not None]
    bare = next((r.get("without_detection") for r in rows if r["system"] == "product"), None)
    if bare and bare.get("events_per_s"):  # throughput and CPU only: its latency is not measured
        rows = [*rows, {**bare, "system": "product\n(detection off)"}]
    names = [r["system"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    colors = ["#888888" if n == "limit" else "#d62728" if n.startswith("product") else "#1f77b4" for n in names]
    ax = axes[0]
    bars = ax.bar(names, [r["events_per_s"] for r in rows], color=colors)
    ax.bar_label(bars, fmt="{:,.0f}", fontsize=8)
    ax.set_title("sustained throughput (events/s)")
    ax = axes[1]
    system_cpu = [r["cpu_s_per_million"] or 0 for r in rows]
    broker_cpu = [r.get("broker_cpu_s_per_million") or 0 for r in rows]
    ax.bar(names, system_cpu, color=colors)
    ax.bar(names, broker_cpu, bottom=system_cpu, color="#bbbbbb", label="broker (same window)")
    ax.set_title("CPU seconds per million events (system + broker)")
    ax.legend(fontsize=8)
    ax = axes[2]
    kafka_rows = [r for r in rows if r.get("p50_ms_at_50pct") is not None]
    width = 0.8 / max(1, len(kafka_rows))
    for i, row in enumerate(kafka_rows):
        xs = [p + (i - (len(kafka_rows) - 1) / 2) * width for p in range(3)]
        p99 = [row.get(f"p99_ms_at_{pct}pct") or 0 for pct in (25, 50, 75)]
        p50 = [row.get(f"p50_ms_at_{pct}pct") or 0 for pct in (25, 50, 75)]
        ax.bar(xs, p99, width, alpha=0.45, color=f"C{i}")
        ax.bar(xs, p50, width, color=f"C{i}", label=row["system"])
    ax.set_xticks(range(3), ["25% of max", "50% of max", "75% of max"])
    ax.set_yscale("log")
    ax.axhline(100, color="k", lw=0.8, ls="--")
    ax.set_title("end-to-end latency ms (solid p50, light p99)")
    ax.legend(fontsize=8)
    for ax in axes[:2]:
        ax.tick_params(axis="x", labelrotation=20)
    machine = doc["machine"]
    fig.suptitle(
        f"{doc['config']['events']:,} events, {doc['config']['partitions']} partitions, {machine['cores']} cores, "
        f"load {machine['load_avg_start']}, {doc['generated']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_results(doc: dict[str, Any], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "latest.json", "md": out / "throughput.md"}
    paths["json"].write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    paths["md"].write_text(markdown(doc))
    png = out / "throughput.png"
    if plot(doc, png):
        paths["png"] = png
    return paths
