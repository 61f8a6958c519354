"""One run's sinks behind the ``Sink`` interface: each record goes to every sink, in order.

A sink that raises is reported to ``on_error`` (the monitor stops the run: the event log is a
contract, and a monitor silently without it is worse than a stopped one) and the remaining
sinks still get the record. ``open`` is all or nothing: if one sink fails to open, those
already opened are closed again and the error propagates. ``close`` closes every sink in the
reverse order of opening and returns the one-line errors instead of raising.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from mrm_edge.runtime.sinks.base import BackendSwitch, DroppedWindow, RunInfo, Sink, StreamEvent

from mrm_edge.data.errors import first_line

if TYPE_CHECKING:
    from mrm_edge.runtime.postprocess import AlarmEvent, WindowResult
    from mrm_edge.runtime.sinks.summary import Summary
    from mrm_edge.runtime.sources.base import SourceProblem

__all__ = ["SinkFanout"]


class SinkFanout(Sink):
    """Every record to every sink of ``sinks`` (see the module docstring)."""

    def __init__(self, sinks: Sequence[Sink], on_error: Callable[[str], None]) -> None:
        self.sinks: list[Sink] = list(sinks)
        self.on_error = on_error
        self.close_errors: list[str] = []

    def _each(self, deliver: Callable[[Sink], None]) -> None:
        for sink in self.sinks:
            try:
                deliver(sink)
            except Exception as e:
                self.on_error(f"sink {type(sink).__name__} failed: {first_line(e)}")

    def open(self, info: RunInfo) -> None:
        opened: list[Sink] = []
        try:
            for sink in self.sinks:
                sink.open(info)
                opened.append(sink)
        except BaseException:
            for sink in reversed(opened):
                with contextlib.suppress(Exception):
                    sink.close(None)
            raise

    def window(self, result: WindowResult) -> None:
        self._each(lambda sink: sink.window(result))

    def alarm(self, event: AlarmEvent) -> None:
        self._each(lambda sink: sink.alarm(event))

    def dropped(self, record: DroppedWindow) -> None:
        self._each(lambda sink: sink.dropped(record))

    def stream(self, event: StreamEvent) -> None:
        self._each(lambda sink: sink.stream(event))

    def backend_switch(self, event: BackendSwitch) -> None:
        self._each(lambda sink: sink.backend_switch(event))

    def source_problem(self, event: SourceProblem) -> None:
        self._each(lambda sink: sink.source_problem(event))

    def close(self, summary: Summary | None) -> None:
        """Close every sink (last opened first); their errors land in ``close_errors``."""
        for sink in reversed(self.sinks):
            try:
                sink.close(summary)
            except Exception as e:
                self.close_errors.append(
                    f"sink {type(sink).__name__} failed to close: {first_line(e)}"
                )
