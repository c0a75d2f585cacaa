"""What pipeline/detector.py relies on in faust, checked without a broker: these break if faust changes."""

from __future__ import annotations

import inspect

import faust

from pipeline.detector import _naming_events


class _Event:
    """Stands for a faust event: the setter keeps a weak reference to it."""


def test_faust_streams_still_have_the_private_current_event_setter() -> None:
    # The detector names each event of a batch as the stream's current one, so that the table's RocksDB store
    # reads and writes the event's partition (pipeline/detector.py, _naming_events).
    assert callable(getattr(faust.Stream, "_set_current_event", None))
    assert hasattr(faust.Stream, "current_event")


def test_naming_events_puts_the_streams_own_current_event_back() -> None:
    app = faust.App("test-naming-events", broker="memory://", store="memory://")
    stream = app.stream([], loop=None)
    sentinel = _Event()
    stream._set_current_event(sentinel)  # type: ignore[arg-type]
    with _naming_events(stream) as name:
        other = _Event()
        name(other)  # type: ignore[arg-type]
        assert stream.current_event is other
    assert stream.current_event is sentinel


def test_take_events_acks_a_batch_only_after_the_agent_handled_it() -> None:
    # StreamDetector.handle sends alerts and state before it returns; faust must not ack (and so commit) the
    # batch's observation messages before that, or a crash in between would lose them.
    source = inspect.getsource(faust.Stream.take_events)
    yielded = source.index("yield list(events)")
    assert source.index("await self.ack(event)", yielded) > yielded
    assert "self.enable_acks = False" in source
