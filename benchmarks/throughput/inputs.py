"""The benchmark input: the project's traffic generator at its default (realistic) mix, with the real logs in
``../shared/data/logs`` (Apache access, OpenSSH) interleaved when present, and the latency markers.

Every system reads the same records: one input topic, pre-filled once, each system with its own consumer group.

**Latency markers.** The paced producer writes its send time (microseconds since the epoch) into each HTTP
record's response-size field (Apache ``%b``, ECS ``http.response.body.bytes``) and uses the same instant as the
Kafka message timestamp (CreateTime). The policy copies that field into every analytics record
(``http.bytes``), so the latency probe reads, from each analytics record it receives, when its input was
produced: no join, and the same for every system whatever timestamp it puts on its outputs. The record is
otherwise unchanged, so it costs the processor what it would have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from benchmarks import datasets
from pipeline.traffic import TrafficMix, generate

GENERATOR_RATE = 50.0  # event-time spacing of generated records (the generator's default)
REAL_LOGS = (datasets.ELASTIC_LOG, datasets.OPENSSH_LOG)
MARKER_FLOOR = 10**15  # a marker (microseconds since 1970) is larger than any real response size here

_APACHE_SIZE = re.compile(rb'(?<!\\)" \d{3} (\d+|-) ')
_ECS_SIZE = re.compile(rb'"body":\{"bytes":(\d+)')

Template = tuple[bytes, bytes] | bytes  # (before, after) the size field, or a record that carries no marker

# Where the input's event times end: 11:45 UTC, two days before the run. With the k-anonymous release on, the
# worker holds analytics rows in event-time windows (an hour; hour and day aggregates) and releases a window
# when event time passes its end by max_delay_s, or when its input has been idle for a few seconds and the window
# ended max_delay_s ago by the wall clock. Input that ended "now" (as this harness used to write) left the
# current hour and day open for up to a day: nothing to wait for. A backlog of two days ago is released whole by
# the idle close, so the run ends when the release stage has released (and committed) everything it read. The
# 15 minutes of generated traffic before 11:45 (50,000 records) sit in one release window and one day.
BACKLOG_END = time(11, 45)
BACKLOG_DAYS = 2


def backlog_end(now: datetime) -> datetime:
    """The event time the benchmark input ends at (every record's Kafka timestamp too), for a run at ``now``."""
    day = (now.astimezone(UTC) - timedelta(days=BACKLOG_DAYS)).date()
    return datetime.combine(day, BACKLOG_END, tzinfo=UTC)


@dataclass(frozen=True)
class InputSet:
    records: list[bytes]
    composition: dict[str, Any]


def build_input(events: int, *, seed: int = 7, real_share: float = 0.1, end: datetime | None = None) -> InputSet:
    """``events`` records: generated ones, with up to ``real_share`` of them real log lines spread evenly.

    Generated event times end at ``end`` (default: now). Real lines keep their own times (the Elastic days of
    May 2015 are within the policy's plausible age): with the release on, their windows close as soon as the
    generated traffic moves event time past them, so the stream releases small old windows during the run."""
    real: list[bytes] = []
    sources: dict[str, int] = {}
    shared = datasets.shared_dir()
    if shared is not None:
        for relative in REAL_LOGS:
            path = shared / relative
            if path.is_file():
                lines = datasets.read_lines(path)
                real += lines
                sources[relative] = len(lines)
    budget = min(len(real), int(events * real_share))
    real = datasets.sample(real, budget, seed) if budget < len(real) else real
    generated_count = events - len(real)
    # Event times end at ``end`` (a backlog), none "in the future" for the worker.
    start = (end or datetime.now(UTC)) - timedelta(seconds=generated_count / GENERATOR_RATE)
    generated = list(generate(generated_count, seed=seed, start=start, events_per_second=GENERATOR_RATE))
    records: list[bytes] = []
    if real:
        step = events / len(real)
        slots = {int(i * step) for i in range(len(real))}
        real_iter, gen_iter = iter(real), iter(generated)
        records = [next(real_iter) if i in slots else next(gen_iter) for i in range(events)]
    else:
        records = generated
    composition = {
        "events": events,
        "generated": generated_count,
        "generator": {"seed": seed, "mix": TrafficMix().__dict__, "json_share": 0.3},
        "real_lines": len(real),
        "event_time_end": (end or start + timedelta(seconds=generated_count / GENERATOR_RATE)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "real_sources": sources or None,
        "mean_bytes": round(sum(map(len, records)) / max(1, len(records)), 1),
    }
    return InputSet(records, composition)


def marker_templates(records: list[bytes]) -> list[Template]:
    """Each record split around its response-size field, or the record itself when it has none."""
    out: list[Template] = []
    for record in records:
        match = _ECS_SIZE.search(record) if record[:1] == b"{" else _APACHE_SIZE.search(record)
        out.append((record[: match.start(1)], record[match.end(1) :]) if match else record)
    return out
