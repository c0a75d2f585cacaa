"""``python -m benchmarks.release_window [SOURCES ...]``: CPU to generalize one release window, by its size.

Closing a window runs the level search of transforms/release.py over every source (unit) of the window; this
measures it on synthetic hours (seeded: 1-8 records per source, 7 countries, 10,000 /24 prefixes, six paths
plus a hundred templated ones, four statuses) with the shipped policy, in this process.
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any

from config import load_policy
from transforms.release import ReleaseRow, ReleaseStage

HOUR_START = 1_431_856_800.0  # 2015-05-17T10:00:00Z
PATHS = ["/", "/docs/a", "/docs/b", "/blog/x", "/img/1.png"]


def _record(rng: random.Random, unit: int) -> dict[str, Any]:
    return {
        "schema": "analytics/1",
        "time": f"2015-05-17T10:{rng.randrange(60):02d}:00Z",
        "time_quality": "event",
        "client": {
            "pseudonym": f"a-u{unit}",
            "visitor": f"a-v{unit}-{rng.randrange(2)}",
            "prefix": f"10.{rng.randrange(50)}.{rng.randrange(200)}.0/24",
            "scope": "public",
        },
        "geo": {"country": rng.choice(["DE", "FR", "US", "BR", "IN", "CN", "GB"]), "asn": 64500 + unit % 7},
        "http": {
            "method": "GET",
            "url": {
                "path": rng.choice(["/", "/docs/a", "/docs/b", "/blog/x", "/img/1.png", f"/p/{rng.randrange(100)}"])
            },
            "status": rng.choice([200, 200, 304, 404]),
            "bytes": 100 + unit % 5000,
        },
        "user_agent": {"browser": "Firefox", "browser_major": str(unit % 3), "os": "Linux", "device": "desktop"},
    }


def measure(sources: int, seed: int = 1) -> dict[str, Any]:
    policy = load_policy()
    stage = ReleaseStage(policy.analytics.release, policy.analytics.aggregates)
    rng = random.Random(seed)
    rows = 0
    for unit in range(sources):
        for _ in range(rng.choice([1, 1, 1, 2, 3, 8])):
            record = _record(rng, unit)
            stage.add(ReleaseRow.of(record, f"v{unit}", HOUR_START + rng.uniform(0, 3599), "client.pseudonym"))
            rows += 1
    started = time.process_time()
    closed = stage.close_all()
    seconds = time.process_time() - started
    released = next(w.stats for w in closed if w.stats is not None)
    return {"sources": sources, "records": rows, "cpu_s": round(seconds, 2), "suppressed": released.suppressed}


def main(argv: list[str]) -> int:
    for sources in [int(a) for a in argv] or [1000, 5000, 20000]:
        result = measure(sources)
        print(
            f"{result['sources']:>7} sources, {result['records']:>7} records: {result['cpu_s']:6.2f} s CPU to close "
            f"(release and aggregates), {result['suppressed']} records suppressed"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
