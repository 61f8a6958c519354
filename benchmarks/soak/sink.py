"""The soak's sink: every window's outcome per stream and per quarter of simulated time, a
bounded latency sample per quarter, and resident-memory samples."""

from __future__ import annotations

import math
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from mrm_edge.runtime.sinks.base import Sink

from mrm_edge.stats import Reservoir

if TYPE_CHECKING:
    from mrm_edge.runtime.postprocess import WindowResult
    from mrm_edge.runtime.sinks.base import DroppedWindow, RunInfo, StreamEvent
    from mrm_edge.runtime.sinks.summary import Summary

__all__ = ["RESERVOIR_PER_QUARTER", "SoakSink", "rss_bytes"]

RESERVOIR_PER_QUARTER = 20_000
_MAX_RSS_SAMPLES = 4096
_PROGRESS_EVERY_S = 0.25  # progress callbacks are throttled to this


def rss_bytes() -> tuple[int | None, str]:
    """Resident memory now and where it came from: ``/proc/self/statm`` (Linux, current),
    else ``resource.getrusage`` (peak, not current), else None."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"), "/proc/self/statm"
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # ru_maxrss is in bytes on macOS, kilobytes elsewhere.
        return (peak if sys.platform == "darwin" else peak * 1024), "getrusage (peak)"
    except (ImportError, OSError):
        return None, "unavailable"


class SoakSink(Sink):
    """Counts every window's outcome per stream and per quarter of simulated time, keeps a
    bounded latency sample per quarter and samples RSS (a thread, every ``rss_interval_s``,
    plus at each quarter boundary and at the end). Implements the runtime's Sink protocol
    (the engine calls it under one lock; only the RSS list is shared with the thread)."""

    def __init__(
        self,
        *,
        seconds: float,
        window_s: float,
        expected_total: int,
        rss_interval_s: float = 1.0,
        progress: Callable[[int, int], None] | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = float(seconds)
        self.window_s = float(window_s)
        self.expected_total = expected_total
        self.progress = progress
        self.clock = clock
        self.rss_interval_s = float(rss_interval_s)
        rng = random.Random(seed)
        self.per_stream: dict[str, Counter[str]] = {}
        self.rejected_by_reason: Counter[str] = Counter()
        self.dropped_by_cause: Counter[str] = Counter()
        self.stream_errors: list[str] = []
        self.quarter_counts = [Counter() for _ in range(4)]
        self.latency = [Reservoir(RESERVOIR_PER_QUARTER, rng) for _ in range(4)]
        self.accounted = 0
        self.sim_s = 0.0  # the latest window end seen: how far the simulated run has come
        self.rss: list[tuple[float, float, int]] = []  # (wall s, simulated s, bytes)
        self.rss_marks: dict[str, int] = {}  # "start", "q1".."q3", "last", "close" -> bytes
        self.rss_source = "unavailable"
        self._quarter_seen = 0
        self._rss_lock = threading.Lock()
        self._rss_every = self.rss_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = clock()
        self._last_progress = -math.inf
        self._closed = False

    # ------------------------------------------------------------------ helpers

    def quarter(self, end_s: float) -> int:
        """0..3: which quarter of the window-end span ``[window, seconds]`` ``end_s`` is in."""
        span = self.seconds - self.window_s
        if span <= 0:
            return 0
        return min(3, max(0, int(4 * (end_s - self.window_s) / span)))

    def quarter_bounds(self, q: int) -> tuple[float, float]:
        span = self.seconds - self.window_s
        return self.window_s + span * q / 4, self.window_s + span * (q + 1) / 4

    def sample_rss(self, mark: str | None = None) -> int | None:
        value, self.rss_source = rss_bytes()
        if value is None:
            return None
        with self._rss_lock:
            self.rss.append((self.clock() - self._t0, self.sim_s, value))
            if len(self.rss) > _MAX_RSS_SAMPLES:
                # Bounded: keep every other sample, sample half as often from now on.
                self.rss = self.rss[::2]
                self._rss_every *= 2
            if mark is not None:
                self.rss_marks[mark] = value
        return value

    def _sampler(self) -> None:
        while not self._stop.wait(self._rss_every):
            self.sample_rss()

    def _count(self, sid: str, kind: str, end_s: float) -> int:
        c = self.per_stream.get(sid)
        if c is None:
            c = self.per_stream[sid] = Counter()
        c[kind] += 1
        self.accounted += 1
        q = self.quarter(end_s)
        self.quarter_counts[q][kind] += 1
        if end_s > self.sim_s:
            self.sim_s = end_s
        # The first window of a later quarter: the previous one is over (RSS "after q").
        while self._quarter_seen < q:
            self._quarter_seen += 1
            self.sample_rss(f"q{self._quarter_seen}")
        if self.accounted == self.expected_total:
            # The run's end, before the engine's teardown (summary, sinks) adds its own.
            self.sample_rss("last")
        if self.progress is not None:
            now = self.clock()
            if now - self._last_progress >= _PROGRESS_EVERY_S:
                self._last_progress = now
                self.progress(self.accounted, self.expected_total)
        return q

    # ------------------------------------------------------------------ Sink protocol

    def open(self, info: RunInfo) -> None:
        self._t0 = self.clock()
        self.sample_rss("start")
        self._thread = threading.Thread(target=self._sampler, name="soak-rss", daemon=True)
        self._thread.start()

    def window(self, result: WindowResult) -> None:
        if result.ok:
            q = self._count(result.stream_id, "classified", result.end_s)
            self.latency[q].add(result.latency_ms)
        else:
            self._count(result.stream_id, "rejected", result.end_s)
            self.rejected_by_reason[" + ".join(result.reason_kinds) or "other"] += 1

    def dropped(self, record: DroppedWindow) -> None:
        self._count(record.stream_id, "dropped", record.end_s)
        self.dropped_by_cause[record.cause] += 1

    def stream(self, event: StreamEvent) -> None:
        if event.kind == "error":
            self.stream_errors.append(f"stream {event.stream_id}: {event.detail}")

    def close(self, summary: Summary | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self.sample_rss("close")
        if self.progress is not None:
            self.progress(self.accounted, self.expected_total)
