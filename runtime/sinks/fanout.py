"""One run's sinks: each record goes to every sink, in order, each sink on its own thread
behind its own bounded queue (docs/monitor.md#sink-delivery). Why: the engine delivers under
its emit lock, so a sink called there (a stalled terminal, a disk that hangs) would throttle
the source thread and every other sink; here a delivery is an append to each queue."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mrm_edge.runtime.sinks.base import RunInfo, Sink

from mrm_edge.errors import first_line

if TYPE_CHECKING:
    from mrm_edge.runtime.sinks.summary import Summary
    from mrm_edge.runtime.sources.base import Chunk


LOSSLESS_QUEUE = 65_536
"""Records a lossless sink may fall behind before the producer waits (~1 min of a
1,000-window/s run)."""
LOSSY_QUEUE = 4_096
"""Records a display sink may fall behind before its oldest window/waveform is discarded."""
CLOSE_TIMEOUT_S = 10.0
_SKIPPABLE = frozenset({"window", "waveform"})  # what a lossy sink may lose


class _SinkWorker:
    """One sink's queue and thread (see the module docstring)."""

    def __init__(self, sink: Sink, on_error: Callable[[str], None]) -> None:
        self.sink = sink
        self.on_error = on_error
        self.lossy = getattr(sink, "delivery", "lossless") == "lossy"
        self.capacity = int(getattr(sink, "queue_capacity", 0) or 0) or (
            LOSSY_QUEUE if self.lossy else LOSSLESS_QUEUE
        )
        self.name = type(sink).__name__
        self._busy = False  # a record is being delivered
        self._queue: deque[tuple[str, Any]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        # Delivery counters: records delivered, the most queued at once, and those a full
        # lossy queue discarded.
        self.delivered = 0
        self.max_queued = 0
        self.overflow = 0
        self._thread = threading.Thread(target=self._loop, name=f"sink-{self.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, kind: str, record: Any) -> None:
        with self._cond:
            if self._closing:
                return
            if len(self._queue) >= self.capacity and kind != "notice":  # notices are rare
                if self.lossy:
                    if not self._make_room(kind):
                        return
                else:
                    while len(self._queue) >= self.capacity and not self._closing:
                        self._cond.wait(0.1)
            self._queue.append((kind, record))
            self.max_queued = max(self.max_queued, len(self._queue))
            self._cond.notify_all()

    def _make_room(self, incoming: str) -> bool:
        """A full lossy queue: discard its oldest skippable record (True: append the
        incoming one). With none queued, a skippable incoming record is the one lost
        (False); a state change is appended anyway (they are few: a stream's events)."""
        for i, (kind, _) in enumerate(self._queue):
            if kind in _SKIPPABLE:
                del self._queue[i]
                self.overflow += 1
                return True
        if incoming in _SKIPPABLE:
            self.overflow += 1
            return False
        return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return  # closing and drained
                kind, record = self._queue.popleft()
                self._busy = True
                self._cond.notify_all()  # room for a waiting producer
            try:
                getattr(self.sink, kind)(record)
                self.delivered += 1
            except Exception as e:
                self.on_error(f"sink {self.name} failed: {first_line(e)}")
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def wait_drained(self, deadline: float) -> None:
        """Until nothing is queued or being delivered, or ``deadline`` (still taking)."""
        with self._cond:
            while (self._queue or self._busy) and time.monotonic() < deadline:
                self._cond.wait(0.05)

    def stop_taking(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def finish(self, deadline: float) -> bool:
        """After ``stop_taking``: False if what was queued is not delivered by ``deadline``."""
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()


class SinkFanout:
    """Every record to every sink of ``sinks`` (see the module docstring)."""

    def __init__(self, sinks: Sequence[Sink], on_error: Callable[[str], None]) -> None:
        self.sinks: list[Sink] = list(sinks)
        self.on_error = on_error
        self.close_errors: list[str] = []
        self.workers: list[_SinkWorker] = []
        self._waveform: list[_SinkWorker] = []
        self._early_notices: list[str] = []  # raised while the sinks were opening
        self._lock = threading.Lock()
        self._closed = False
        self._open_sinks: list[Sink] | None = None  # set when the queues are done (close)
        self._delivered = 0  # records handed to the workers (a change: someone still talks)

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
            self._closed = True
            raise
        self.workers = [_SinkWorker(sink, self.on_error) for sink in self.sinks]
        self._waveform = [w for w in self.workers if getattr(w.sink, "wants_waveform", False)]
        for worker in self.workers:
            worker.start()
        with self._lock:
            early, self._early_notices = self._early_notices, []
        for text in early:
            self.deliver("notice", text)

    @property
    def wants_waveform(self) -> bool:
        """Whether any sink takes raw chunks (the engine skips the tap otherwise)."""
        return bool(self._waveform)

    def waveform(self, chunk: Chunk) -> None:
        for worker in self._waveform:
            worker.put("waveform", chunk)

    def deliver(self, kind: str, record: Any) -> None:
        """``record`` to the ``Sink`` method ``kind`` ("window", "alarm", ...) of every sink."""
        self._delivered += 1
        for worker in self.workers:
            worker.put(kind, record)

    def notice(self, text: str) -> None:
        with self._lock:
            if not self.workers:  # a sink's open() raised it: deliver once all are open
                self._early_notices.append(text)
                return
            # Once the queues are done, the sinks close one at a time, last opened first; a
            # notice then (a result courier giving up its last delivery) goes straight to
            # those not closed yet: none of them is receiving anything else.
            direct = None if self._open_sinks is None else list(self._open_sinks)
        if direct is None:
            self.deliver("notice", text)
            return
        for sink in direct:
            with contextlib.suppress(Exception):
                sink.notice(text)

    def close(self, summary: Summary | None) -> None:
        """Flush every queue, then close every sink (last opened first); their errors land
        in ``close_errors``."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        # The engine has stopped, but a sink draining its last records may still raise a
        # notice (a full outbox): every queue drains while still taking, until a pass in
        # which no record was handed out, and only then stops taking.
        while time.monotonic() < deadline:
            before = self._delivered
            for worker in self.workers:
                worker.wait_drained(deadline)
            if self._delivered == before:
                break
        stuck: set[int] = set()
        for worker in self.workers:  # each drains on its own thread, in parallel
            worker.stop_taking()
        for worker in self.workers:
            if not worker.finish(deadline):
                stuck.add(id(worker.sink))
                self.close_errors.append(
                    f"sink {worker.name} did not drain within {CLOSE_TIMEOUT_S:g} s "
                    f"({len(worker._queue)} record(s) left)"
                )
        with self._lock:
            self._open_sinks = [s for s in self.sinks if id(s) not in stuck]
        for sink in reversed(self.sinks):
            if id(sink) in stuck:
                continue  # its thread is still inside a call: closing it under it is unsafe
            with self._lock:
                self._open_sinks.remove(sink)  # closing: no notice from now on
            try:
                sink.close(summary)
            except Exception as e:
                self.close_errors.append(
                    f"sink {type(sink).__name__} failed to close: {first_line(e)}"
                )
