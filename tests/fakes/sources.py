"""Test doubles for sources: a scripted event list, and a replay that says when it starts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from mrm_edge.runtime.sources.base import ArraySource, Event, Source


class ScriptedSource(Source):
    """Test double: yields a fixed list of events (for malformed chunks and restarts)."""

    name = "scripted"

    def __init__(self, events: list[Event]) -> None:
        super().__init__()
        self.script = events

    def events(self) -> Iterator[Event]:
        for e in self.script:
            if self.closed:
                return
            yield e


class StartSignallingSource(ArraySource):
    """Test double: an :class:`ArraySource` that sets ``started`` when its replay begins
    (so a test can act on a run that is really going, e.g. send it a signal)."""

    def __init__(self, started: threading.Event, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started = started

    def events(self) -> Iterator[Event]:
        self.started.set()
        yield from super().events()
