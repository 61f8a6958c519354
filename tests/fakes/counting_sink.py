"""The trivial sink: counts the windows it is given and keeps the summary.

What adding a sink takes: this one module (a :class:`Sink` built from ``SinkSettings``)
plus one ``register_sink(name, factory)`` line; ``run_monitor(sinks=[..., name])`` then
reaches it without another edit (tests/runtime/sinks/test_registry.py).
"""

from __future__ import annotations

from typing import Any

from mrm_edge.runtime.sinks.base import Sink
from mrm_edge.runtime.sinks.registry import SinkSettings


class CountingSink(Sink):
    """Test double: counts the window results it receives (``windows``) and keeps the
    first summary it is closed with (``summary``)."""

    def __init__(self, settings: SinkSettings) -> None:
        self.windows = 0
        self.summary = None

    def window(self, result: Any) -> None:
        self.windows += 1

    def close(self, summary: Any) -> None:
        self.summary = self.summary or summary
