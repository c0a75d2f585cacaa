"""Token detection: generated secrets caught, real path segments left alone.

Run ``.venv/bin/python -m benchmarks.token_detection`` (``--per-family N``, ``--seed S``, ``--out PATH``).
It writes ``benchmarks/results/token_detection.json`` and prints a summary.

**Detection.** For each family of generated secrets (AWS access key ids, UUIDs, hex and base64url
tokens of 16-64 characters, JWTs, 32-character lower-case+digit and 20-character upper-case+digit
tokens, session ids in the PHP, Java, ASP.NET and Django formats, API keys with a vendor prefix), the
secret is planted where a client can put text that an output keeps, and run through the real code:

- ``path_segment``: ``/api/<secret>/items`` through :class:`~transforms.url.UrlMinimizer`;
- ``inside_segment``: ``/files/report-<secret>.pdf`` (a token inside a kept segment);
- ``query_value``: ``/s?utm_content=<secret>`` (an allow-listed parameter, scrubbed);
- ``free_text``: ``"id <secret> here"`` through :class:`~transforms.scrub.TextScrubber`;
- ``referrer_label``: ``https://<secret>.example.com/`` through :func:`~transforms.url.referrer_host`
  (only for secrets that are valid host labels).

A secret is caught when no output contains it (compared case-insensitively: a host is lower-cased).

**False positives.** Every distinct request-path segment of the real access logs under
``../shared/data/logs`` (and, reported apart, of the access lines in the CrowdSec and fail2ban test
fixtures) is templated as a one-segment path. A segment is *flagged* when it becomes a random-id
placeholder (``{token}``, ``{hex}``, ``{uuid}``, whole or inside the segment); ``{id}`` (digit runs),
``{ip}``, ``{email}`` and ``{long}`` are other rules, counted but not flagged. A flagged segment is a
false positive unless it is in :data:`REVIEWED_MACHINE_GENERATED`: segments read by hand and found to be
machine-generated (content hashes, random test ids), which a token rule is right to replace. The false
positive rate is false positives / distinct segments; the top examples are listed.

``--bigram-table`` prints the letter-bigram table of :mod:`transforms.scrub` as counted on this
interpreter's standard library (the table in the module was counted on CPython 3.11).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import random
import re
import string
import sysconfig
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from benchmarks.datasets import ROOT, shared_dir
from transforms.scrub import TextScrubber
from transforms.url import UrlMinimizer, referrer_host

RESULTS = ROOT / "benchmarks" / "results" / "token_detection.json"
PRIMARY_LOGS = ("logs",)
FIXTURE_LOGS = ("labelled/crowdsec-hub-test-fixtures/logs", "labelled/fail2ban-testlogs/logs")
RANDOM_PLACEHOLDERS = ("{token}", "{hex}", "{uuid}")
OTHER_PLACEHOLDERS = ("{id}", "{ip}", "{email}", "{long}", "{jwt}", "{card}", "{secret}")
# Real segments read by hand: machine-generated, so replacing them is right (not a false positive).
REVIEWED_MACHINE_GENERATED = frozenset(
    {
        # Google Fonts file names: base64url content hashes.
        "xjAJXh38I15wypJXxuGMBp0EAVxt0G0biEntp43Qt6E.ttf",
        "cJZKeOuBrn4kERxqtaUH3aCWcynf_cDxXwCLxiixG1c.ttf",
        "PRmiXeptR36kaC0GEAetxp_TkvowlIOtbR7ePgFOpF4.ttf",
        "k3k702ZOKiLJc3WVjuplzInF5uFdDttMLvmWuJdhhgs.ttf",
        # CrowdSec's hub test: a random per-run id.
        "crowdsec-test-NtktlJHV4TfBSK3wvlhiOBnl",
    }
)
_REQUEST_RE = re.compile(r'"(?:GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH|PROPFIND|TRACE|CONNECT) (\S+)')

_B32 = string.ascii_uppercase + "234567"
_B64URL = string.ascii_letters + string.digits + "-_"
_LOWER_DIGITS = string.ascii_lowercase + string.digits
_UPPER_DIGITS = string.ascii_uppercase + string.digits


def _draw(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jwt(rng: random.Random) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": str(rng.getrandbits(40)), "iat": rng.getrandbits(31), "sid": _draw(rng, _B64URL, 12)}
    return f"{header}.{_b64url(json.dumps(claims).encode())}.{_b64url(rng.randbytes(32))}"


def _session_id(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return _draw(rng, "0123456789abcdefghijklmnopqrstuv", 26)  # PHP 7.1+ (5 bits per character)
    if kind == 1:
        return _draw(rng, "0123456789abcdef", 32)  # PHP before 7.1
    if kind == 2:
        return _draw(rng, "0123456789ABCDEF", 32)  # Java JSESSIONID
    if kind == 3:
        return _draw(rng, "abcdefghijklmnopqrstuvwxyz012345", 24)  # ASP.NET_SessionId
    return _draw(rng, _LOWER_DIGITS, 32)  # Django sessionid


def _api_key(rng: random.Random) -> str:
    prefix = rng.choice(["sk_live_", "pk_test_", "ghp_", "xoxb-", "glpat-"])
    return prefix + _draw(rng, string.ascii_letters + string.digits, rng.randint(20, 36))


FAMILIES: dict[str, Callable[[random.Random], str]] = {
    "aws_key_id": lambda rng: rng.choice(["AKIA", "ASIA"]) + _draw(rng, _B32, 16),
    "uuid": lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    "hex_16_64": lambda rng: _draw(rng, "0123456789abcdef", rng.randint(16, 64)),
    "base64url_16_64": lambda rng: _draw(rng, _B64URL, rng.randint(16, 64)),
    "base64url_16": lambda rng: _draw(rng, _B64URL, 16),
    "jwt": _jwt,
    "lower_digit_32": lambda rng: _draw(rng, _LOWER_DIGITS, 32),
    "lower_digit_16": lambda rng: _draw(rng, _LOWER_DIGITS, 16),
    "upper_digit_20": lambda rng: _draw(rng, _UPPER_DIGITS, 20),
    "session_id": _session_id,
    "api_key": _api_key,
}
_HOST_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _placements() -> dict[str, Callable[[str], str | None]]:
    """Placement name -> function returning every output text the secret could reach (None: not applicable)."""
    paths = UrlMinimizer(query_allowlist=())
    queries = UrlMinimizer(query_allowlist=["utm_*"])
    scrub = TextScrubber()

    def path_segment(secret: str) -> str:
        return str(paths(f"/api/{quote(secret, safe='')}/items")[0])

    def inside_segment(secret: str) -> str:
        return str(paths(f"/files/report-{quote(secret, safe='')}.pdf")[0])

    def query_value(secret: str) -> str:
        return json.dumps(queries(f"/s?utm_content={quote(secret, safe='')}"))

    def free_text(secret: str) -> str:
        return scrub(f"id {secret} here")

    def referrer_label(secret: str) -> str | None:
        if not _HOST_LABEL_RE.fullmatch(secret):
            return None
        return str(referrer_host(f"https://{secret}.example.com/path"))

    return {
        "path_segment": path_segment,
        "inside_segment": inside_segment,
        "query_value": query_value,
        "free_text": free_text,
        "referrer_label": referrer_label,
    }


def detection(per_family: int, seed: int) -> dict[str, dict[str, Any]]:
    """Per family and placement: secrets tried, caught, the rate and a few that were missed."""
    rng = random.Random(seed)
    placements = _placements()
    out: dict[str, dict[str, Any]] = {}
    for family, make in FAMILIES.items():
        secrets = [make(rng) for _ in range(per_family)]
        per_placement: dict[str, Any] = {}
        for name, place in placements.items():
            tried = caught = 0
            missed: list[str] = []
            for secret in secrets:
                output = place(secret)
                if output is None:
                    continue
                tried += 1
                if secret.lower() not in output.lower():
                    caught += 1
                elif len(missed) < 5:
                    missed.append(secret)
            if tried:
                per_placement[name] = {"tried": tried, "caught": caught, "rate": caught / tried, "missed": missed}
        out[family] = per_placement
    return out


def _segments(root: Path, folders: tuple[str, ...]) -> Counter[str]:
    """Raw request-path segments (as logged, before decoding) of every access-log request line found."""
    counts: Counter[str] = Counter()
    for folder in folders:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            text = path.read_text(errors="replace")
            for match in _REQUEST_RE.finditer(text):
                target = match.group(1).partition("?")[0].partition("#")[0]
                if not target.startswith("/"):
                    continue
                counts.update(seg for seg in target.split("/") if seg)
    return counts


def false_positives(segments: Counter[str]) -> dict[str, Any]:
    """How the path templater treats real segments: flagged, false positives, placeholder counts."""
    minimize = UrlMinimizer(query_allowlist=(), cache_size=0)
    flagged: Counter[str] = Counter()
    placeholders: Counter[str] = Counter()
    for segment, count in segments.items():
        templated = str(minimize("/" + segment)[0])[1:]
        for placeholder in (*RANDOM_PLACEHOLDERS, *OTHER_PLACEHOLDERS):
            if placeholder in templated:
                placeholders[placeholder] += 1
        if any(p in templated for p in RANDOM_PLACEHOLDERS):
            flagged[segment] = count
    false = Counter({s: c for s, c in flagged.items() if unquote(s) not in REVIEWED_MACHINE_GENERATED})
    distinct = len(segments)
    return {
        "distinct_segments": distinct,
        "occurrences": sum(segments.values()),
        "flagged": len(flagged),
        "flag_rate": len(flagged) / distinct if distinct else math.nan,
        "false_positives": len(false),
        "false_positive_rate": len(false) / distinct if distinct else math.nan,
        "false_positive_occurrence_rate": (sum(false.values()) / sum(segments.values()) if segments else math.nan),
        "placeholder_segments": dict(sorted(placeholders.items())),
        "top_false_positives": [
            {"segment": s, "templated": str(minimize("/" + s)[0])[1:], "count": c} for s, c in false.most_common(15)
        ],
        "top_flagged_reviewed": [s for s, _ in flagged.most_common() if unquote(s) in REVIEWED_MACHINE_GENERATED],
    }


def bigram_table() -> Iterator[str]:
    """The rows of :mod:`transforms.scrub`'s letter-bigram table, counted on this interpreter's stdlib."""
    word = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
    counts: Counter[str] = Counter()
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        for w in word.findall(path.read_text(errors="replace")):
            w = w.lower()
            if len(w) < 2:
                continue
            prev = "^"
            for ch in w:
                counts[prev + ch] += 1
                prev = ch
            counts[prev + "$"] += 1
    digits = string.digits + string.ascii_lowercase
    for prev in "^" + string.ascii_lowercase:
        columns = string.ascii_lowercase + "$"
        total = sum(counts[prev + nxt] for nxt in columns) + len(columns)
        yield "".join(digits[min(35, round(-2 * math.log2((counts[prev + nxt] + 1) / total)))] for nxt in columns)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--per-family", type=int, default=2000, help="generated secrets per family")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--bigram-table", action="store_true", help="print the bigram table and exit")
    args = parser.parse_args(argv)
    if args.bigram_table:
        for row in bigram_table():
            print(f'    "{row}",')
        return 0
    root = shared_dir()
    result: dict[str, Any] = {
        "command": "python -m benchmarks.token_detection",
        "per_family": args.per_family,
        "seed": args.seed,
        "detection": detection(args.per_family, args.seed),
    }
    if root is None:
        result["real_segments"] = None
        print("shared data not found: false positives not measured")
    else:
        result["real_segments"] = {
            "logs": false_positives(_segments(root, PRIMARY_LOGS)),
            "test_fixtures": false_positives(_segments(root, FIXTURE_LOGS)),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    _print_summary(result)
    return 0


def _print_summary(result: dict[str, Any]) -> None:
    placements = list(_placements())
    print(f"{'family':<18}" + "".join(f"{p:>16}" for p in placements))
    for family, per in result["detection"].items():
        cells = "".join(f"{per[p]['rate']:>16.2%}" if p in per else f"{'-':>16}" for p in placements)
        print(f"{family:<18}{cells}")
    for name, fp in (result["real_segments"] or {}).items():
        print(
            f"\nreal segments ({name}): {fp['distinct_segments']} distinct, flagged {fp['flagged']} "
            f"({fp['flag_rate']:.2%}), false positives {fp['false_positives']} ({fp['false_positive_rate']:.2%} of "
            f"distinct, {fp['false_positive_occurrence_rate']:.2%} of occurrences)"
        )
        for row in fp["top_false_positives"]:
            print(f"  {row['count']:>5}  {row['segment']}  ->  {row['templated']}")


if __name__ == "__main__":
    raise SystemExit(main())
