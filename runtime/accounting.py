"""Every window accounted for (docs/monitor.md#every-window-is-accounted-for): each one ends
classified, rejected or dropped, post-processed, counted (``Tally``) and handed to the sinks
under one lock, so a sink sees results in delivery order.

A stream's end is final only once its last window has a result: ``mark_ending`` records it
and it is delivered, with the alarms still on closed, when the stream's in-flight count
reaches zero — so events of one stream are never reordered around its end.

Latency is window-complete-to-result (``Window.ready_time`` → delivery to the sinks).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from mrm_edge.runtime.postprocess import Postprocessor
from mrm_edge.runtime.sinks.base import BackendSwitch, DroppedWindow, StreamEvent
from mrm_edge.runtime.sinks.fanout import SinkFanout
from mrm_edge.runtime.sinks.summary import Summary, Tally
from mrm_edge.runtime.sources.base import SourceProblem
from mrm_edge.runtime.stream.preprocess import Resync, StreamPreprocessor, Window


@dataclass(frozen=True)
class InFlight:
    """A window on its way to the backend: the window and its stream segment."""

    window: Window
    segment: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.window.stream_id, self.segment)


@dataclass(frozen=True)
class _Ending:
    """A stream's end, waiting for its in-flight windows."""

    at: int  # samples the stream had at the model's rate
    rate: int
    reason: str  # the source's reason, "stopped" or "failed"
    cause: str  # why open alarms close: "stream ended", "monitor stopped", ...


class Accounting:
    """Outcomes of windows and streams, delivered once each (see the module docstring).
    Thread-safe."""

    def __init__(
        self,
        post: Postprocessor,
        tally: Tally,
        sinks: SinkFanout,
        on_end: Callable[[str, str, int], None] | None = None,
    ) -> None:
        """``on_end(stream id, reason, dropped windows)``: called once a stream's end has been
        delivered to the sinks (``Source.stream_finished``)."""
        self.post = post
        self.tally = tally
        self.sinks = sinks
        self.windows_produced: Counter[str] = Counter()
        """Windows each stream's preprocessors produced (the accounting's ground truth)."""
        self._track_lock = threading.Lock()
        self._in_flight: Counter[tuple[str, int]] = Counter()
        self._ending: dict[tuple[str, int], _Ending] = {}
        self._dropped: Counter[tuple[str, int]] = Counter()
        self._on_end = on_end
        # Post-processing, tally and sinks: one at a time, in order.
        self._emit_lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ sinks' lifetime

    def close(self, summary: Summary | None) -> None:
        """Close the sinks (the monitor's one run ends once); their close errors join
        ``summary.errors``."""
        with self._emit_lock:
            self._closed = True
        self.sinks.close(summary)
        if summary is not None:
            summary.errors += self.sinks.close_errors

    # ------------------------------------------------------------------ windows

    def produced(self, window: Window) -> None:
        self.windows_produced[window.stream_id] += 1

    def admit(self, item: InFlight) -> None:
        """``item`` goes to the batcher: its stream's end waits for its result."""
        with self._track_lock:
            self._in_flight[item.key] += 1

    def classified(self, item: InFlight, probs: np.ndarray) -> None:
        w = item.window
        with self._emit_lock:
            if not self._closed:
                latency = (time.monotonic() - w.ready_time) * 1e3
                result, events = self.post.classified(w, probs, latency, item.segment)
                self.tally.classified(w.stream_id, latency, result.alarms)
                self.sinks.deliver("window", result)
                for ev in events:
                    self.tally.alarm(w.stream_id, ev.state, result.alarms)
                    self.sinks.deliver("alarm", ev)
        self._done([item])

    def failed(self, item: InFlight, reason: str) -> None:
        """An in-flight window the backend chain could not classify."""
        self.rejected(item.window, item.segment, reason)
        self._done([item])

    def rejected(self, w: Window, segment: int, reason: str | None = None) -> None:
        """A window rejected with ``reason`` (None: the window's own quality / gap reason)."""
        with self._emit_lock:
            if self._closed:
                return
            latency = (time.monotonic() - w.ready_time) * 1e3
            result = self.post.rejected(w, latency, segment, reason)
            self.tally.rejected(w.stream_id, result.reason_kinds, result.alarms)
            self.sinks.deliver("window", result)

    def resynchronised(self, resync: Resync, segment: int) -> None:
        """A stream's jump over the resync limit: its given-up windows count as rejected
        (kind "resync") in one step, and one stream event says so."""
        sid = resync.stream_id
        self.windows_produced[sid] += resync.windows
        with self._emit_lock:
            if self._closed:
                return
            alarms = self.post.stream(sid, segment).active()
            self.tally.rejected(sid, ("resync",), alarms, n=resync.windows)
            self.sinks.deliver("stream", StreamEvent(sid, "resync", resync.reason, segment))

    def dropped(self, items: list[InFlight], cause: str) -> None:
        with self._emit_lock:
            for it in items:
                w = it.window
                self._dropped[it.key] += 1
                self.tally.dropped(w.stream_id, cause)
                if not self._closed:
                    self.sinks.deliver(
                        "dropped",
                        DroppedWindow(
                            w.stream_id,
                            w.start,
                            w.sampling_rate,
                            w.data.shape[0],
                            cause,
                            it.segment,
                        ),
                    )
        self._done(items)

    # ------------------------------------------------------------------ other events

    def stream_event(self, event: StreamEvent) -> None:
        with self._emit_lock:
            if not self._closed:
                self.sinks.deliver("stream", event)

    def source_problem(self, event: SourceProblem) -> None:
        self.tally.source_problem(event.kind)
        with self._emit_lock:
            if not self._closed:
                self.sinks.deliver("source_problem", event)

    def backend_switch(self, switch: BackendSwitch) -> None:
        event = self.tally.backend_switch(switch)
        with self._emit_lock:
            if not self._closed:
                self.sinks.deliver("backend_switch", event)

    # ------------------------------------------------------------------ stream ends

    def mark_ending(
        self, sid: str, segment: int, pre: StreamPreprocessor, reason: str, cause: str
    ) -> None:
        """Record the stream's end; it is delivered once its in-flight windows are done."""
        end = _Ending(pre.buffer.sample_count, pre.sampling_rate, reason, cause)
        with self._track_lock:
            self._ending[(sid, segment)] = end
        self.finish_ended()

    def finish_ended(self) -> None:
        """Deliver the end of every ended stream whose windows all have results."""
        with self._track_lock:
            ready = [k for k in self._ending if self._in_flight[k] <= 0]
            done = [(k, self._ending.pop(k)) for k in ready]
        for (sid, segment), end in done:
            self._deliver_end(sid, segment, end)

    def forget_in_flight(self) -> None:
        """After the worker (or after giving up on it): no window is in flight any more, so
        every stream end still waiting is delivered now."""
        with self._track_lock:
            self._in_flight.clear()
        self.finish_ended()

    def _done(self, items: Iterable[InFlight]) -> None:
        """These items have their results; a stream whose last window this was ends now,
        before the rest of the batch (which may hold its restarted segment) is delivered."""
        items = list(items)
        with self._track_lock:
            for it in items:
                self._in_flight[it.key] -= 1
            ending = any(self._in_flight[it.key] <= 0 and it.key in self._ending for it in items)
        if ending:
            self.finish_ended()

    def _deliver_end(self, sid: str, segment: int, end: _Ending) -> None:
        with self._emit_lock:
            if self._closed:
                return
            for ev in self.post.end_stream(sid, end.at, end.rate, segment, end.cause):
                self.tally.alarm(sid, ev.state, ())
                self.sinks.deliver("alarm", ev)
            if end.reason != "failed":
                self.tally.stream_ended(sid, end.reason)
                self.sinks.deliver("stream", StreamEvent(sid, "end", end.reason, segment))
            dropped = self._dropped.pop((sid, segment), 0)
        if self._on_end is not None:  # outside the lock: the source may take its time
            self._on_end(sid, end.reason, dropped)
