"""`pseudonymizer worker` start-up, with the faust worker, runtime and broker replaced by recorders."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pipeline.app
import pipeline.runtime
import pipeline.topics
from config.settings import TopicSpec
from pipeline import cli


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[tuple[str, Any]]]:
    """Runs nothing real; returns what start-up did, in order."""
    events: list[tuple[str, Any]] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def ensure_topics(bootstrap: str, specs: list[TopicSpec], **options: object) -> list[str]:
        events.append(("topics", [spec.name for spec in specs]))
        return []

    class Worker:
        def __init__(self, app: object, **options: object) -> None:
            pass

        def execute_from_commandline(self) -> None:
            events.append(("worker", None))

    def new_event_loop(choice: str) -> asyncio.AbstractEventLoop:
        loops.append(asyncio.new_event_loop())
        return loops[-1]

    monkeypatch.setattr(pipeline.runtime, "build_runtime", lambda settings, **_: settings)
    monkeypatch.setattr(pipeline.topics, "ensure_topics", ensure_topics)
    monkeypatch.setattr(pipeline.app, "create_app", lambda runtime: events.append(("app", runtime.data_dir)))
    monkeypatch.setattr(cli, "_worker_class", lambda: Worker)
    monkeypatch.setattr(cli, "_new_event_loop", new_event_loop)
    monkeypatch.setenv("PSEUDO_DATA_DIR", str(tmp_path / "fresh-checkout" / "var" / "worker"))
    yield events
    for loop in loops:
        loop.close()
    asyncio.set_event_loop(None)


def test_the_worker_creates_its_data_dir_with_missing_parents(started: list[tuple[str, Any]]) -> None:
    """The default data dir (var/worker) does not exist in a fresh checkout; faust would only make its last folder."""
    assert cli.main(["worker"]) == 0
    ((_, data_dir),) = [event for event in started if event[0] == "app"]
    assert Path(data_dir).is_dir()


def test_the_worker_creates_its_topics_before_it_consumes(started: list[tuple[str, Any]]) -> None:
    assert cli.main(["worker"]) == 0
    assert [kind for kind, _ in started] == ["topics", "app", "worker"]
