"""``python -m benchmarks.throughput``: run the streaming benchmark and write the result files."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from pathlib import Path

from benchmarks.throughput.harness import ROOT, SYSTEMS, Options, run
from benchmarks.throughput.report import check_document, evaluate_goals, ratios, write_results

# Sized for a full run of about 4 minutes on a 2-core machine, and so that the product's throughput run ends
# within its first minute (at 1cea992..55cf9ac its 60 s detector-expiry timer crashes the worker).
DEFAULT_EVENTS = 50_000
QUICK_EVENTS = 600


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput",
        description=__import__("benchmarks.throughput", fromlist=["__doc__"]).__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, help=f"input records (default {DEFAULT_EVENTS}; --quick: {QUICK_EVENTS})")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated, from: " + ", ".join(SYSTEMS))
    parser.add_argument("--quick", action="store_true", help="tiny input, short latency phases, no 2-process run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="folder for the results")
    parser.add_argument("--bootstrap", help="reuse a running broker (host:port) instead of starting one")
    parser.add_argument("--keep-broker", action="store_true", help="leave the broker this run started running")
    parser.add_argument(
        "--keep-work", action="store_true", help="keep the work folder (logs, input, keyring) and the topics"
    )
    parser.add_argument("--latency-seconds", type=float, help="seconds at each paced rate (default 8; --quick: 1)")
    parser.add_argument("--no-scaling", action="store_true", help="skip the product's 2-process run")
    parser.add_argument(
        "--release-pairs",
        type=int,
        help="product runs with the k-anonymous release on and off, alternating, in pairs (default 2; --quick: 1; "
        "0 skips them)",
    )
    parser.add_argument(
        "--guarantee-pairs",
        type=int,
        default=0,
        help="product runs with PSEUDO_PROCESSING_GUARANTEE at_least_once and exactly_once, alternating, in pairs, "
        "each with its latency (default 0: none)",
    )
    parser.add_argument(
        "--profile-product",
        type=Path,
        metavar="DIR",
        help="run the product's throughput process(es) under cProfile (slower!) and write the stats into DIR",
    )
    parser.add_argument("--note", action="append", default=[], help="a remark recorded in the results (repeatable)")
    parser.add_argument(
        "--product-env",
        action="append",
        default=[],
        metavar="PSEUDO_NAME=VALUE",
        help="a setting for the product's worker only, to measure a tuning knob (repeatable; recorded as a note)",
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--port", type=int, default=29092, help="port of the broker this run starts")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    events = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    if events < 100:
        parser.error("--events must be at least 100")
    return Options(
        events=events,
        systems=systems,
        out=args.out,
        latency_seconds=args.latency_seconds or (1.0 if args.quick else 8.0),
        quick=args.quick,
        bootstrap=args.bootstrap,
        keep_broker=args.keep_broker,
        keep_work=args.keep_work,
        partitions=args.partitions,
        scaling=not (args.no_scaling or args.quick),
        release_pairs=(1 if args.quick else 2) if args.release_pairs is None else max(0, args.release_pairs),
        seed=args.seed,
        port=args.port,
        controller_port=args.port + 1,
        profile_dir=args.profile_product,
        product_env=tuple(_setting(item) for item in args.product_env),
        guarantee_pairs=max(0, args.guarantee_pairs),
        notes=tuple(args.note) + tuple(f"product setting: {item}" for item in args.product_env),
        command=shlex.join(["python", "-m", "benchmarks.throughput", *(sys.argv[1:] if argv is None else argv)]),
    )


def _setting(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name.startswith("PSEUDO_"):
        raise SystemExit(f"--product-env takes PSEUDO_NAME=VALUE, not {item!r}")
    return name, value


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)

    def log(message: str) -> None:
        print(f"[bench] {message}", file=sys.stderr, flush=True)

    doc = asyncio.run(run(options, log))
    doc["ratios"] = ratios(doc)
    doc["goals"] = evaluate_goals(doc)
    check_document(doc)
    paths = write_results(doc, options.out)
    print((options.out / "throughput.md").read_text())
    for goal in doc["goals"]:
        result = "n/a " if goal["pass"] is None else ("PASS" if goal["pass"] else "FAIL")
        print(f"{result}  {goal['goal']}: {goal['value']} (target {goal['target']})")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    failed = any(row.get("error") for row in doc["systems"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
