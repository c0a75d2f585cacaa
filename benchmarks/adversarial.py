"""Cost of adversarial records relative to benign records of the same size, measured side by side.

    python -m benchmarks.adversarial [--sizes N ...] [--repeat N] [--before PATH] [--no-write] [--out PATH]

Each record is a full Apache ``combined`` line that goes through the real
:class:`~transforms.process.RecordProcessor` (shipped policy, fixed test keyring): parse, signals,
pseudonymize, minimize. A *family* is one hostile shape (``ATOMS``: long runs of a metacharacter, of
``%0a``, ``%25`` chains, ``../``, ``${``, many segments or parameters...) filling one field (``POSITIONS``:
URL path, query, user agent, referrer) to a given size; its *ratio* is its cost per record over the cost
of a benign record with a field of the same size in the same position, timed in the same run (the
minimum of ``--repeat`` runs of each). Every record carries a serial number in each field, so no cache or
memo answers for it. Sizes stay within the shipped policy's ``max_record_bytes`` (64 KiB per line).

Prints a table (worst ratio first) and writes ``benchmarks/results/adversarial.json``. ``--before PATH``
adds the ratios of an earlier run (e.g. the same command on an older checkout) to the table and the
JSON, as ``before``.

Goal (issue 8): no family costs more than 20x a benign record of the same size.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks.datasets import combined_line
from benchmarks.provenance import machine

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "adversarial.json"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
GOAL = 20.0

# name -> the text repeated to fill a field, as a client sends it (mod_log_config escapes what it must).
ATOMS: dict[str, str] = {
    "newline": "\n",
    "crlf": "\r\n",
    "%0a": "%0a",
    "%0d%0a": "%0d%0a",
    "%25 chain": "%25",
    "%2525": "%2525",
    "space": " ",
    "plus": "+",
    "tab": "\t",
    "single quote": "'",
    "double quote": '"',
    "backtick": "`",
    "../": "../",
    "..%2f": "..%2f",
    "${": "${",
    "$(": "$(",
    "<": "<",
    "(": "(",
    "() {": "() {",
    ";": ";",
    "|": "|",
    "&": "&",
    "=": "=",
    "?": "?",
    "*": "*",
    "[": "[",
    "/": "/",
    "backslash": "\\",
    ":": ":",
    "#": "#",
    "--": "--",
    "/*": "/*",
    "segments": "a/",
    "parameters": "a=1&",
    "%": "%",
    "%u": "%u",
    "%c0%ae": "%c0%ae",
    "=http://": "=http://",
    "0x2e": "0x2e",
    "; id": ";%0aid",
    "union select": "union select ",
    "or 1=1": "' or 1=1 ",
    "nul": "%00",
    "glob": "/[e]t*/",
    "on=": "'onx=",
    "high bytes": "%c3%a9",
}
POSITIONS = ("path", "query", "user_agent", "referrer")
# Benign filler per position: what a long but ordinary field looks like.
BENIGN = {
    "path": "assets/img/",
    "query": "utm_source=newsletter&page=2&",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) ",
    "referrer": "blog/2024/05/hello-world/",
}
DEFAULT_SIZES = (2048, 8192, 32768, 60000)
# Room left on the line for the rest of the record (address, time, method, status, the other fields).
_LINE_SLACK = 1024


def fill(atom: str, size: int) -> str:
    """``atom`` repeated to exactly ``size`` characters."""
    return (atom * (size // len(atom) + 1))[:size]


def record(position: str, content: str, serial: int) -> bytes:
    """An Apache combined line whose ``position`` field holds ``content``; ``serial`` makes it unique."""
    path, query, agent, referrer = (
        f"/r{serial}/index.html",
        "",
        f"Mozilla/5.0 (r{serial})",
        f"https://example.org/r{serial}",
    )
    if position == "path":
        path = f"/r{serial}/{content}"
    elif position == "query":
        query = f"?r={serial}&q={content}"
    elif position == "user_agent":
        agent = f"Mozilla/5.0 (r{serial}) {content}"
    else:
        referrer = f"https://example.org/r{serial}/{content}"
    request = f"GET {path}{query} HTTP/1.1".encode("utf-8", "surrogateescape")
    return combined_line(
        ip="203.0.113.9", time=T0, request=request, status=200, user_agent=agent.encode(), referer=referrer.encode()
    )


def build_processor() -> Callable[[bytes], Any]:
    """The shipped policy's processor with the tests' fixed keyring, as ``detection_eval`` builds it."""
    from config import load_policy
    from tests.transforms.keyfixtures import fixed_keyring
    from transforms.process import RecordProcessor

    processor = RecordProcessor.build(load_policy(), fixed_keyring())
    ingest = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)
    return lambda raw: processor(raw, ingest)


class Timer:
    """Times records through one processor; a fresh serial for every call, so nothing is remembered."""

    def __init__(self, process: Callable[[bytes], Any]) -> None:
        self._process = process
        self._serial = 0

    def seconds(self, position: str, content: str, repeat: int) -> float:
        """The minimum over ``repeat`` runs of one record's processing time."""
        best = float("inf")
        for _ in range(repeat):
            self._serial += 1
            line = record(position, content, self._serial)
            start = time.perf_counter()
            self._process(line)
            best = min(best, time.perf_counter() - start)
        return best


def _fits(position: str, content: str) -> bool:
    return len(record(position, content, 10**9)) <= 65536 - _LINE_SLACK


def _field_size(atom: str, position: str, size: int) -> int:
    """``size``, or less when the escaped line would pass the policy's 64 KiB record limit."""
    while size > 256 and not _fits(position, fill(atom, size)):
        size = size * 9 // 10
    return size


def run(sizes: tuple[int, ...], repeat: int) -> dict[str, Any]:
    timer = Timer(build_processor())
    timer.seconds("path", "warm-up", 3)
    rows: list[dict[str, Any]] = []
    for position in POSITIONS:
        for size in sizes:
            for name, atom in ATOMS.items():
                actual = _field_size(atom, position, size)
                benign = timer.seconds(position, fill(BENIGN[position], actual), repeat)
                hostile = timer.seconds(position, fill(atom, actual), repeat)
                rows.append(
                    {
                        "family": name,
                        "position": position,
                        "size": actual,
                        "benign_us": round(benign * 1e6, 1),
                        "us": round(hostile * 1e6, 1),
                        "ratio": round(hostile / benign, 2),
                    }
                )
    rows.sort(key=lambda row: -row["ratio"])
    return {
        "schema": "adversarial/1",
        "command": "python -m benchmarks.adversarial",
        "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "sizes": list(sizes),
        "repeat": repeat,
        "goal_ratio": GOAL,
        "worst": rows[0],
        "over_goal": sum(row["ratio"] > GOAL for row in rows),
        "rows": rows,
    }


def _key(row: dict[str, Any]) -> tuple[str, str, int]:
    return row["family"], row["position"], row["size"]


def render(result: dict[str, Any], top: int) -> str:
    before = {_key(row): row for row in result.get("before", {}).get("rows", [])}
    lines = [
        f"{'family':<14} {'position':<10} {'size':>6} {'benign us':>10} {'us':>10} {'ratio':>8}"
        + (f" {'before':>9}" if before else ""),
    ]
    for row in result["rows"][:top]:
        old = before.get(_key(row))
        lines.append(
            f"{row['family']:<14} {row['position']:<10} {row['size']:>6} {row['benign_us']:>10.1f} {row['us']:>10.1f}"
            f" {row['ratio']:>7.2f}x" + (f" {old['ratio']:>8.1f}x" if old else (" " * 10 if before else ""))
        )
    worst = result["worst"]
    lines.append(
        f"worst: {worst['family']} in {worst['position']} at {worst['size']} chars: {worst['ratio']}x a benign record"
        f" ({result['over_goal']} of {len(result['rows'])} families over {GOAL:g}x)"
    )
    if before:
        old_worst = result["before"]["worst"]
        lines.append(
            f"before ({result['before']['machine']['commit']}): worst {old_worst['family']} in {old_worst['position']}"
            f" at {old_worst['size']} chars: {old_worst['ratio']}x ({result['before']['over_goal']} over {GOAL:g}x)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="field sizes (chars)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per record; the minimum counts")
    parser.add_argument("--before", type=Path, help="an earlier adversarial.json to compare with")
    parser.add_argument("--top", type=int, default=25, help="table rows to print (worst first)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = run(tuple(args.sizes), args.repeat)
    if args.before is not None:
        previous = orjson.loads(args.before.read_bytes())
        result["before"] = {key: previous[key] for key in ("machine", "generated", "worst", "over_goal", "rows")}
    print(render(result, args.top))
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
