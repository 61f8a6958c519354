"""Test doubles for sinks: a sink that stops the monitor after a number of window results,
one that is slow to take them, and one that counts results and drops per stream."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from mrm_edge.runtime.sinks.base import Sink

if TYPE_CHECKING:
    from mrm_edge.runtime.engine import Monitor


class StopAfter(Sink):
    """Test double: stops the monitor once it has seen ``n`` window results (deterministic,
    unlike a timer: the first chunk pays for imports). Set ``mon`` before the run."""

    def __init__(self, n: int, drain: bool = True) -> None:
        self.n, self.drain, self.seen = n, drain, 0
        self.mon: Monitor | None = None

    def window(self, result: Any) -> None:
        self.seen += 1
        if self.seen == self.n and self.mon is not None:
            self.mon.stop("test stop", drain=self.drain)


class SlowSink(Sink):
    """Test double: a sink that takes ``delay_s`` per window result (a slow consumer on the
    delivery side: the engine delivers from the inference thread)."""

    def __init__(self, delay_s: float, queue_capacity: int | None = None) -> None:
        self.delay_s = delay_s
        if queue_capacity is not None:
            # The fanout's per-sink queue (runtime/sinks/fanout.py): a small one makes the
            # producer wait as soon as this sink falls behind by that many records.
            self.queue_capacity = queue_capacity

    def window(self, result: Any) -> None:
        time.sleep(self.delay_s)


class StreamCountingSink(Sink):
    """Test double: counts every window result and drop per stream (``counts``) and the
    drops alone (``dropped_n``)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.dropped_n = 0

    def window(self, result: Any) -> None:
        self.counts[result.stream_id] += 1

    def dropped(self, record: Any) -> None:
        self.counts[record.stream_id] += 1
        self.dropped_n += 1
