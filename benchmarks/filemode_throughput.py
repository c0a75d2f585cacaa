"""File-mode throughput on a real access log: events/second of the whole pipeline, no Kafka.

    python -m benchmarks.filemode_throughput [LOG ...] [--repeat N] [--geo]

Runs `pipeline.filemode.process_files` (parse, validate, signals, pseudonymize, minimize, serialize,
write) over the input N times and prints the best and median rates, with the machine it ran on.
Default input: ../shared/data/logs/elastic-apache-access/apache_logs_2015-05-17_18.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import orjson

from benchmarks.provenance import machine
from config.settings import Settings
from pipeline.filemode import process_files
from pipeline.keystore import write_keyring
from pipeline.runtime import build_runtime
from transforms.keyring import generate_keyring

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PSEUDO_SHARED_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_LOG = SHARED / "logs" / "elastic-apache-access" / "apache_logs_2015-05-17_18"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*", default=[str(DEFAULT_LOG)])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--geo", action="store_true", help="use the shared DB-IP country + ASN databases")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keyring.json"
        write_keyring(generate_keyring(), keys)
        env: dict[str, str] = {}
        if args.geo:
            env["PSEUDO_GEO_CITY_DB"] = str(SHARED / "geo" / "dbip-country" / "dbip-country.mmdb")
            env["PSEUDO_GEO_ASN_DB"] = str(SHARED / "geo" / "ip-location-db-asn" / "ip-location-db-asn.mmdb")
        runtime = build_runtime(Settings.from_env(env), keys_path=keys)
        lines = sum(Path(path).read_bytes().count(b"\n") for path in args.inputs)
        rates = []
        summary: dict[str, object] = {}
        for _ in range(args.repeat):
            start = time.perf_counter()
            summary = process_files(runtime, args.inputs, Path(tmp) / "out")
            rates.append(lines / (time.perf_counter() - start))
    result = {
        "machine": machine(),
        "input_lines": lines,
        "geo": args.geo,
        "events_per_s_best": round(max(rates)),
        "events_per_s_median": round(statistics.median(rates)),
        "summary": summary,
    }
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
