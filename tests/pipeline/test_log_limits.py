"""The repeat limit: one line per kind of message per interval, with the count of what it held back."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from pipeline import log_limits
from pipeline.log_limits import RepeatLimitFilter

CONNECT = "Unable connect to node with id %s: %s"
METADATA = "Unable to update metadata from %s"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


@pytest.fixture
def setup() -> Iterator[tuple[RepeatLimitFilter, Capture, Clock]]:
    """A logger of its own with a capturing handler behind a 30 s repeat limit on a fake clock."""
    clock = Clock()
    limit = RepeatLimitFilter(30, clock=clock)
    handler = Capture()
    handler.addFilter(limit)
    logger = logging.getLogger("aiokafka.test_log_limits")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield limit, handler, clock
    limit.close()
    logger.removeHandler(handler)


def log() -> logging.Logger:
    return logging.getLogger("aiokafka.test_log_limits")


def refused(port: int) -> OSError:
    return ConnectionRefusedError(111, f"Connect call failed ('127.0.0.1', {port})")


def test_repeats_collapse_to_the_first_line(setup: tuple[RepeatLimitFilter, Capture, Clock]) -> None:
    """Within the interval only the first of 5,000 identical errors is written."""
    _, handler, clock = setup
    for _ in range(5000):
        log().error(CONNECT, 1, refused(29092))
        clock.now += 0.001
    assert handler.lines == [f"ERROR aiokafka.test_log_limits: {CONNECT % (1, refused(29092))}"]


def test_next_interval_carries_the_exact_count(setup: tuple[RepeatLimitFilter, Capture, Clock]) -> None:
    """The first repeat after the interval passes, with the number held back and the time it covers."""
    _, handler, clock = setup
    for _ in range(4214):
        log().error(METADATA, [1])
    clock.now += 30
    log().error(METADATA, [1])
    assert handler.lines == [
        "ERROR aiokafka.test_log_limits: Unable to update metadata from [1]",
        "ERROR aiokafka.test_log_limits: Unable to update metadata from [1] (repeated 4,213 times in the last 30 s)",
    ]


def test_flush_writes_the_count_when_the_repeats_have_stopped(
    setup: tuple[RepeatLimitFilter, Capture, Clock],
) -> None:
    """After an outage nothing comes to carry the count: the interval's end writes it on its own."""
    limit, handler, clock = setup
    for _ in range(10):
        log().error(METADATA, [1])
    clock.now += 10
    limit.flush()
    assert len(handler.lines) == 1  # the interval is not over yet
    clock.now += 20
    limit.flush()
    assert handler.lines[1] == (
        "ERROR aiokafka.test_log_limits: Unable to update metadata from [1] (repeated 9 times in the last 30 s)"
    )
    clock.now += 30
    limit.flush()  # nothing held back since: no line, and the idle group is forgotten
    assert len(handler.lines) == 2
    assert not limit._groups
    log().error(METADATA, [1])
    assert handler.lines[2] == "ERROR aiokafka.test_log_limits: Unable to update metadata from [1]"


def test_the_background_flusher_writes_the_count_on_a_real_clock() -> None:
    """Without any further record, the count appears about one interval after the first line."""
    limit = RepeatLimitFilter(0.3)
    handler = Capture()
    handler.addFilter(limit)
    logger = logging.getLogger("aiokafka.test_log_limits.flusher")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for _ in range(3):
            logger.error(METADATA, [1])
        done = threading.Event()
        for _ in range(50):
            if len(handler.lines) == 2:
                done.set()
                break
            threading.Event().wait(0.05)
        assert done.is_set(), handler.lines
        assert handler.lines[1].endswith("(repeated 2 times in the last 1 s)")
    finally:
        limit.close()
        logger.removeHandler(handler)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((CONNECT, 1, refused(29092)), (CONNECT, 2, refused(29094))),  # another broker
        ((CONNECT, 1, refused(29092)), (METADATA, [1])),  # another reason
        ((METADATA, [1]), (METADATA, [1, 2])),  # other nodes
        (("Fetch failed at offset %s", 5), ("Fetch failed at offset %s", 6)),  # small numbers stay apart
    ],
)
def test_each_broker_and_reason_gets_its_line(
    setup: tuple[RepeatLimitFilter, Capture, Clock], first: tuple[object, ...], second: tuple[object, ...]
) -> None:
    """Interleaved floods of two kinds write one line each in an interval."""
    _, handler, _ = setup
    for _ in range(100):
        log().error(*first)  # type: ignore[arg-type]
        log().error(*second)  # type: ignore[arg-type]
    assert len(handler.lines) == 2


def test_volatile_numbers_do_not_make_a_new_kind(setup: tuple[RepeatLimitFilter, Capture, Clock]) -> None:
    """Durations, object addresses and long ids change on every retry; the message is still the same kind."""
    _, handler, _ = setup
    for i in range(100):
        log().warning("Retrying in %s s: %s (offset %s)", 0.1 * i + 0.05, f"<Future at {hex(0x7F00 + i)}>", 10**7 + i)
    assert len(handler.lines) == 1


def test_levels_and_loggers_are_kept_apart(setup: tuple[RepeatLimitFilter, Capture, Clock]) -> None:
    """The same text as a warning, as an error, and from another logger: three kinds."""
    _, handler, _ = setup
    other = logging.getLogger("aiokafka.test_log_limits.other")
    for _ in range(10):
        log().warning(METADATA, [1])
        log().error(METADATA, [1])
        other.error(METADATA, [1])
    assert len(handler.lines) == 3


def test_info_lines_are_not_limited(setup: tuple[RepeatLimitFilter, Capture, Clock]) -> None:
    """faust says "Stopping..." once per service: info lines pass however often they repeat."""
    _, handler, _ = setup
    for _ in range(5):
        log().info("[^--Fetcher]: Stopping...")
    assert len(handler.lines) == 5


def test_a_single_repeat_is_counted_in_the_singular(setup: tuple[RepeatLimitFilter, Capture, Clock]) -> None:
    _, handler, clock = setup
    for _ in range(2):
        log().warning(METADATA, [1])
    clock.now += 30
    log().warning(METADATA, [1])
    assert handler.lines[1].endswith("[1] (repeated 1 time in the last 30 s)")


def test_lines_that_do_not_repeat_pass_untouched(setup: tuple[RepeatLimitFilter, Capture, Clock]) -> None:
    """A stream of distinct lines is written whole and unchanged, in order."""
    _, handler, _ = setup
    expected = []
    for i in range(50):
        log().warning("stats: %s records, %s alerts, topic %s", i * 1000, i, f"logs.raw-{i}")
        expected.append(f"WARNING aiokafka.test_log_limits: stats: {i * 1000} records, {i} alerts, topic logs.raw-{i}")
    assert handler.lines == expected


def test_one_filter_on_two_handlers_decides_once(setup: tuple[RepeatLimitFilter, Capture, Clock]) -> None:
    """A record seen by two handlers counts once and goes to both (or neither)."""
    limit, first, clock = setup
    second = Capture()
    second.addFilter(limit)
    log().addHandler(second)
    try:
        for _ in range(5):
            log().error(METADATA, [1])
        clock.now += 30
        log().error(METADATA, [1])
        assert first.lines == second.lines
        assert first.lines[1].endswith("(repeated 4 times in the last 30 s)")
    finally:
        log().removeHandler(second)


def test_memory_is_bounded_and_evicted_counts_are_written(setup: tuple[RepeatLimitFilter, Capture, Clock]) -> None:
    """At most max_groups kinds are kept; the least recently seen goes first, with its count written."""
    _, handler, clock = setup
    limit = RepeatLimitFilter(30, max_groups=3, clock=clock)
    handler.filters = [limit]
    for _ in range(4):
        log().error(METADATA, ["oldest"])
    for node in range(100):
        log().error(METADATA, [node])
    assert len(limit._groups) == 3
    counts = [line for line in handler.lines if "repeated" in line]
    assert counts == [
        "ERROR aiokafka.test_log_limits: Unable to update metadata from ['oldest'] (repeated 3 times in the last 1 s)"
    ]
    assert len(handler.lines) == 1 + 1 + 100  # oldest, its count, one line per node


def test_threads_lose_no_count(setup: tuple[RepeatLimitFilter, Capture, Clock]) -> None:
    """Eight threads logging the same error: one line now, and every repeat counted in the next."""
    limit, handler, clock = setup

    def flood() -> None:
        for _ in range(2000):
            log().error(METADATA, [1])

    threads = [threading.Thread(target=flood) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    clock.now += 30
    limit.flush()
    assert handler.lines[1].endswith(f"(repeated {8 * 2000 - 1:,} times in the last 30 s)")


def test_a_record_that_cannot_be_grouped_passes(setup: tuple[RepeatLimitFilter, Capture, Clock]) -> None:
    """An argument whose str() fails is not a reason to drop the record."""
    limit, _, _ = setup

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    record = logging.makeLogRecord({"name": "x", "msg": "%s", "args": (Broken(),), "levelno": logging.ERROR})
    again = logging.makeLogRecord({"name": "x", "msg": "%s", "args": (Broken(),), "levelno": logging.ERROR})
    assert limit.filter(record)
    assert limit.filter(again)  # the same kind, twice: still not held back


def test_install_puts_the_filter_on_every_root_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """install adds one filter to the root handlers; reinstall puts it on handlers that replaced them; 0 is off."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [Capture(), Capture()])
    monkeypatch.setattr(log_limits, "_installed", None)
    assert log_limits.install_repeat_limit(0) is None
    assert all(not h.filters for h in root.handlers)
    limit = log_limits.install_repeat_limit(30)
    assert limit is not None
    assert all(h.filters == [limit] for h in root.handlers)
    log_limits.install_repeat_limit(30)
    assert all(h.filters == [limit] for h in root.handlers)  # not twice
    monkeypatch.setattr(root, "handlers", [Capture()])  # faust's worker replaces them
    log_limits.reinstall_repeat_limit()
    assert root.handlers[0].filters == [limit]
    limit.close()


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        RepeatLimitFilter(0)
