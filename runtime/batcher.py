"""Dynamic batching of ready windows across streams, as Triton's: a batch leaves when
``max_batch`` items wait or the oldest has waited ``max_delay_ms`` (0: never hold one back);
docs/monitor.md (Batcher knobs). ``max_queue`` bounds memory, and ``overload`` says what a
full queue does with a new item: ``"drop-oldest"`` evicts the oldest (fresh data wins, a
live monitor's choice), ``"drop-newest"`` refuses the new one, ``"block"`` makes the
producer wait for room, up to its timeout. No item is lost silently: ``stats`` counts each,
and ``offer`` returns the one drop-oldest evicted, so the caller can report it. FIFO across
streams; thread-safe (producers ``offer``, a worker ``get_batch``es); ``clock`` is
injectable for deterministic tests.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Generic, Literal, TypeVar, get_args

T = TypeVar("T")
OverloadPolicy = Literal["drop-oldest", "drop-newest", "block"]


@dataclass
class BatcherStats:
    """Counters (items, except ``batches``). Invariants, at any moment:
    ``submitted == enqueued + dropped_newest`` and
    ``enqueued == dispatched + dropped_oldest + pending``."""

    submitted: int = 0
    """``offer`` calls."""
    enqueued: int = 0
    """Items accepted into the queue."""
    dispatched: int = 0
    """Items handed out in batches."""
    dropped_oldest: int = 0
    """Waiting items evicted to make room (``drop-oldest``)."""
    dropped_newest: int = 0
    """Items refused: queue full (``drop-newest``, ``block`` after its timeout) or closed."""
    batches: int = 0
    """Batches handed out."""
    max_depth: int = 0
    """Most items ever waiting at once."""
    pending: int = 0
    """Items waiting now."""

    @property
    def dropped(self) -> int:
        return self.dropped_oldest + self.dropped_newest


@dataclass(frozen=True)
class Offer(Generic[T]):
    """What ``offer`` did with an item."""

    queued: bool
    """The item is in the queue (False: refused, counted in ``dropped_newest``)."""
    evicted: T | None = None
    """The waiting item drop-oldest evicted to make room for it, if any."""


class DynamicBatcher(Generic[T]):
    """Bounded FIFO of items that hands them out in batches (see the module docstring)."""

    def __init__(
        self,
        max_batch: int,
        max_delay_ms: float,
        max_queue: int,
        overload: OverloadPolicy = "drop-oldest",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("max_batch", max_batch), ("max_queue", max_queue)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DynamicBatcher: {name} must be an integer >= 1, got {value!r}")
        if max_queue < max_batch:
            raise ValueError(
                f"DynamicBatcher: max_queue ({max_queue}) must be >= max_batch ({max_batch})"
            )
        if (
            isinstance(max_delay_ms, bool)
            or not isinstance(max_delay_ms, (int, float))
            or not 0 <= max_delay_ms < float("inf")
        ):
            raise ValueError(
                f"DynamicBatcher: max_delay_ms must be a number >= 0 ms, got {max_delay_ms!r}"
            )
        if overload not in get_args(OverloadPolicy):
            raise ValueError(
                f"DynamicBatcher: overload must be one of {', '.join(get_args(OverloadPolicy))}, "
                f"got {overload!r}"
            )
        self.max_batch = max_batch
        self.max_delay_s = max_delay_ms / 1000.0
        self.max_queue = max_queue
        self.overload = overload
        self.clock = clock
        self._queue: deque[tuple[float, T]] = deque()  # (enqueue time, item)
        self._stats = BatcherStats()
        self._closed = False
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # items arrived, left or closed

    # ------------------------------------------------------------------ producer side

    def offer(self, item: T, timeout: float | None = None) -> Offer[T]:
        """Offer ``item``: whether it was queued (refused items are counted in
        ``dropped_newest``) and which waiting item drop-oldest evicted for it. Under
        ``"block"``, waits up to ``timeout`` s (None: no limit) for room; other policies
        never wait."""
        with self._changed:
            self._stats.submitted += 1
            if self._closed:
                self._stats.dropped_newest += 1
                return Offer(False)
            evicted: T | None = None
            if len(self._queue) >= self.max_queue:
                if self.overload == "drop-newest":
                    self._stats.dropped_newest += 1
                    return Offer(False)
                if self.overload == "drop-oldest":
                    evicted = self._queue.popleft()[1]
                    self._stats.dropped_oldest += 1
                else:
                    room = self._changed.wait_for(
                        lambda: self._closed or len(self._queue) < self.max_queue, timeout
                    )
                    if not room or self._closed:
                        self._stats.dropped_newest += 1
                        return Offer(False)
            self._queue.append((self.clock(), item))
            self._stats.enqueued += 1
            self._stats.max_depth = max(self._stats.max_depth, len(self._queue))
            self._changed.notify_all()
            return Offer(True, evicted)

    def close(self) -> None:
        """No more items: waiting producers are refused; ``get_batch`` hands out what is
        left without waiting for the delay, then returns None."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    # ------------------------------------------------------------------ consumer side

    def get_batch(self, timeout: float | None = None) -> list[T] | None:
        """Wait until a batch is due and return it; None after ``timeout`` s (None: no
        limit) or once closed and empty."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                batch = self._take(self.clock())
                if batch is not None:
                    return batch
                if self._closed:
                    return None
                wait = self._until_due(self.clock())
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._changed.wait(wait)

    def take_all(self) -> list[T]:
        """Every waiting item at once, whatever ``max_batch`` (counted as dispatched): for a
        consumer that gives up on its worker and must still account for what was queued."""
        with self._changed:
            items = [item for _, item in self._queue]
            self._queue.clear()
            if items:
                self._stats.dispatched += len(items)
                self._stats.batches += 1
            self._changed.notify_all()
            return items

    # ------------------------------------------------------------------ state

    @property
    def stats(self) -> BatcherStats:
        """A snapshot of the counters."""
        with self._changed:
            return replace(self._stats, pending=len(self._queue))

    def __len__(self) -> int:
        with self._changed:
            return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def _until_due(self, now: float) -> float | None:
        if not self._queue:
            return None
        if len(self._queue) >= self.max_batch or self._closed:
            return 0.0
        return max(0.0, self._queue[0][0] + self.max_delay_s - now)

    def _take(self, now: float) -> list[T] | None:
        """Pop a batch if due (call with the lock held)."""
        due = self._until_due(now)
        if due is None or due > 0:
            return None
        n = min(self.max_batch, len(self._queue))
        batch = [self._queue.popleft()[1] for _ in range(n)]
        self._stats.dispatched += n
        self._stats.batches += 1
        self._changed.notify_all()  # room for blocked producers
        return batch
