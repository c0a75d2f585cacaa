"""One log line per kind of repeated message per interval, with a count, instead of thousands.

While a broker is down, aiokafka logs "Unable connect to node with id %s" and "Unable to update metadata from
%s" on every retry: a 29 s outage wrote about 124,000 lines (issue 11), burying anything else the worker said.
``RepeatLimitFilter`` groups records by logger, level and message template (plus the arguments, with the
numbers that change between retries, such as durations and object addresses, made alike, while node ids and
``host:port`` stay, so that each broker and each reason keeps its own line). The first record of a group
passes; repeats within the interval are counted and held back; once per interval a group that held something
back writes one line ``... (repeated 4,213 times in the last 30 s)``. Only warnings and errors are limited (the
flood is made of them): an info line, such as faust's "Stopping..." of each service, always passes.

A record of a kind not seen in the current interval always passes at once: nothing new is dropped, nothing is
delayed. The filter is thread-safe and keeps at most ``max_groups`` groups (least recently seen dropped first,
with its count written out).

PyPI's ``log-rate-limit`` was considered: it groups by message text or code line, and reports what it skipped
only on the next record of the same stream, so the count of an outage that has ended is never written.
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

# Parts of an argument that change from one retry to the next without making it a different kind of message.
# Node ids, ports and dotted quads are kept: they tell one broker from another.
_VOLATILE = re.compile(
    r"0x[0-9a-fA-F]+"  # object addresses in reprs ("<Future at 0x7f...>")
    r"|(?<![\d.])\d+\.\d+(?![\d.])"  # durations, rates ("retrying in 0.25 s"); not a dotted quad
    r"|\b\d{6,}\b"  # offsets, timestamps, correlation ids; not a port (at most 5 digits)
)
_MESSAGE_CHARS = 1000  # a group keeps its first message for the summary line, cut to this length
_SUMMARY = "log_limits_summary"  # attribute marking the filter's own summary records, which always pass
_DECIDED = "_log_limits_pass"  # the decision, cached on the record: one filter may sit on several handlers


def _normalize(text: str) -> str:
    return _VOLATILE.sub("#", text)


@dataclass
class _Group:
    name: str
    levelno: int
    message: str  # the first record's message, for the summary line
    window_start: float
    suppressed: int = 0


class RepeatLimitFilter(logging.Filter):
    """Let the first record of each kind through per ``interval_s``; count the repeats and report them once."""

    def __init__(
        self,
        interval_s: float,
        *,
        min_level: int = logging.WARNING,
        max_groups: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0 (to disable the limit, do not install the filter)")
        if max_groups < 1:
            raise ValueError("max_groups must be >= 1")
        self.interval_s = interval_s
        self.min_level = min_level
        self.max_groups = max_groups
        self._clock = clock
        self._groups: OrderedDict[tuple[object, ...], _Group] = OrderedDict()
        self._lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level:
            return True
        decided = getattr(record, _DECIDED, None)
        if decided is not None:
            return bool(decided)
        if getattr(record, _SUMMARY, False):
            return True
        try:
            key = self._key(record)
        except Exception:  # an argument whose str() fails: never drop a record because it cannot be grouped
            return True
        now = self._clock()
        evicted: list[_Group] = []
        with self._lock:
            group = self._groups.get(key)
            if group is None:
                group = _Group(record.name, record.levelno, _message(record), now)
                self._groups[key] = group
                while len(self._groups) > self.max_groups:
                    evicted.append(self._groups.popitem(last=False)[1])
                passed = True
            elif now - group.window_start < self.interval_s:
                self._groups.move_to_end(key)
                group.suppressed += 1
                passed = False
            else:  # a new interval: this record passes, carrying the count of the one before
                self._groups.move_to_end(key)
                if group.suppressed:
                    record.msg = f"{record.msg} ({_repeated(group.suppressed, now - group.window_start)})"
                group.window_start, group.suppressed = now, 0
                passed = True
        setattr(record, _DECIDED, passed)
        self._emit([g for g in evicted if g.suppressed], now)
        if not passed:
            self._start_flusher()
        return passed

    def flush(self) -> None:
        """Write the count of every group whose interval is over (all of them at exit); forget idle groups."""
        self._flush(final=False)

    def close(self) -> None:
        """Stop the background flusher and write every pending count."""
        self._stop.set()
        self._flush(final=True)

    def _flush(self, *, final: bool) -> None:
        now = self._clock()
        due: list[_Group] = []
        with self._lock:
            for key, group in list(self._groups.items()):
                if not final and now - group.window_start < self.interval_s:
                    continue
                if group.suppressed:
                    due.append(_Group(group.name, group.levelno, group.message, group.window_start, group.suppressed))
                    group.window_start, group.suppressed = now, 0
                else:  # quiet for a whole interval: its next record passes anyway, so the group is not needed
                    del self._groups[key]
        self._emit(due, now)

    def _emit(self, groups: list[_Group], now: float) -> None:
        # Outside the lock: handlers take their own locks, and a handler may log (to this filter) itself.
        for group in groups:
            summary = logging.makeLogRecord(
                {
                    "name": group.name,
                    "levelno": group.levelno,
                    "levelname": logging.getLevelName(group.levelno),
                    "msg": "%s (%s)",
                    "args": (group.message, _repeated(group.suppressed, now - group.window_start)),
                    _SUMMARY: True,
                }
            )
            logging.getLogger(group.name).handle(summary)

    def _start_flusher(self) -> None:
        # Started on the first held-back record only: a command that never repeats itself runs no thread.
        if self._flusher is not None:
            return
        with self._lock:
            if self._flusher is not None:
                return
            self._flusher = threading.Thread(target=self._run_flusher, name="log-repeat-flusher", daemon=True)
        self._flusher.start()

    def _run_flusher(self) -> None:
        # A few checks per interval, so that a count is written soon after its interval ends even when the
        # repeats have stopped (the outage is over) and no record of the group comes to carry it.
        while not self._stop.wait(max(0.2, self.interval_s / 4)):
            self.flush()

    def _key(self, record: logging.LogRecord) -> tuple[object, ...]:
        args = record.args
        if isinstance(args, tuple):
            rendered: object = tuple(_normalize(str(a)) for a in args)
        else:
            rendered = _normalize(str(args)) if args else None
        error = type(record.exc_info[1]).__name__ if record.exc_info and record.exc_info[1] else None
        return (record.name, record.levelno, str(record.msg), rendered, error)


def _message(record: logging.LogRecord) -> str:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: the record still passes, the logging module reports it
        message = str(record.msg)
    return message[:_MESSAGE_CHARS]


def _repeated(count: int, elapsed_s: float) -> str:
    return f"repeated {count:,} time{'s' if count != 1 else ''} in the last {max(1, round(elapsed_s)):,} s"


_installed: RepeatLimitFilter | None = None


def install_repeat_limit(interval_s: float) -> RepeatLimitFilter | None:
    """Put one ``RepeatLimitFilter`` on every handler of the root logger (none when ``interval_s`` is 0).

    Call again after something replaced the root handlers (faust's worker does, when it starts): the same filter,
    with its counts, goes onto the new handlers.
    """
    global _installed
    if interval_s <= 0:
        return None
    if _installed is None or _installed.interval_s != interval_s:
        if _installed is not None:
            _installed.close()
        _installed = RepeatLimitFilter(interval_s)
        atexit.register(_installed.close)
    for handler in logging.getLogger().handlers:
        if _installed not in handler.filters:
            handler.addFilter(_installed)
    return _installed


def reinstall_repeat_limit() -> None:
    """Put the installed filter (if any) on root handlers that do not have it yet."""
    if _installed is not None:
        install_repeat_limit(_installed.interval_s)
