"""DynamicBatcher: size and delay triggers, overload policies, conservation, FIFO."""

from __future__ import annotations

import threading
import time

import pytest
from mrm_edge.runtime.batcher import DynamicBatcher, Offer

from tests.fakes.clock import FakeClock


def due(b: DynamicBatcher) -> list | None:
    """The batch due now, without waiting."""
    return b.get_batch(timeout=0)


def test_dispatches_when_max_batch_items_wait() -> None:
    clock = FakeClock()
    b = DynamicBatcher(max_batch=3, max_delay_ms=1000, max_queue=10, clock=clock)
    for i in range(4):
        assert b.offer(i).queued
        assert due(b) == ([0, 1, 2] if i == 2 else None)
    assert len(b) == 1
    clock.t += 0.999
    assert due(b) is None
    clock.t += 0.001  # the remaining item's deadline: 1 s after it came
    assert due(b) == [3]


def test_dispatches_a_partial_batch_once_the_oldest_waited_max_delay() -> None:
    clock = FakeClock(100.0)
    b = DynamicBatcher(max_batch=8, max_delay_ms=5, max_queue=10, clock=clock)
    assert due(b) is None
    b.offer("a")
    clock.t = 100.003
    b.offer("b")
    assert due(b) is None
    clock.t = 100.0049
    assert due(b) is None
    clock.t = 100.005
    assert due(b) == ["a", "b"]  # the oldest's deadline, not the newest's
    assert b.stats.batches == 1 and b.stats.dispatched == 2


def test_zero_delay_never_holds_an_item_back() -> None:
    b = DynamicBatcher(max_batch=4, max_delay_ms=0, max_queue=4, clock=FakeClock())
    b.offer(1)
    assert due(b) == [1]


def test_fifo_across_streams() -> None:
    b = DynamicBatcher(max_batch=4, max_delay_ms=0, max_queue=100, clock=FakeClock())
    order = [(s, k) for k in range(5) for s in ("bed-1", "bed-2", "bed-3")]
    for item in order:
        b.offer(item)
    out = []
    while (batch := due(b)) is not None:
        assert len(batch) <= 4
        out += batch
    assert out == order


def test_drop_oldest_evicts_and_counts() -> None:
    b = DynamicBatcher(max_batch=2, max_delay_ms=50, max_queue=4, overload="drop-oldest",
                       clock=FakeClock())  # fmt: skip
    assert all(b.offer(i).queued for i in range(6))
    s = b.stats
    assert (s.submitted, s.enqueued, s.dropped_oldest, s.dropped_newest) == (6, 6, 2, 0)
    assert s.pending == 4 and s.max_depth == 4
    assert due(b) == [2, 3] and due(b) == [4, 5]


def test_offer_names_the_item_drop_oldest_evicted() -> None:
    b = DynamicBatcher(max_batch=2, max_delay_ms=50, max_queue=2, overload="drop-oldest",
                       clock=FakeClock())  # fmt: skip
    assert [b.offer(i) for i in range(2)] == [Offer(True), Offer(True)]
    assert b.offer(2) == Offer(True, evicted=0) and b.offer(3) == Offer(True, evicted=1)
    assert due(b) == [2, 3]


def test_offer_under_drop_newest_and_after_close_evicts_nothing() -> None:
    b = DynamicBatcher(max_batch=1, max_delay_ms=50, max_queue=1, overload="drop-newest",
                       clock=FakeClock())  # fmt: skip
    assert b.offer("a") == Offer(True) and b.offer("b") == Offer(False)
    b.close()
    assert b.offer("c") == Offer(False) and b.stats.dropped_newest == 2


def test_take_all_hands_out_everything_waiting() -> None:
    b = DynamicBatcher(max_batch=2, max_delay_ms=1000, max_queue=10, clock=FakeClock())
    for i in range(5):
        b.offer(i)
    assert b.take_all() == [0, 1, 2, 3, 4] and len(b) == 0 and b.take_all() == []
    s = b.stats
    assert s.enqueued == s.dispatched + s.dropped_oldest + s.pending == 5


def test_drop_newest_refuses_and_counts() -> None:
    b = DynamicBatcher(max_batch=2, max_delay_ms=50, max_queue=4, overload="drop-newest",
                       clock=FakeClock())  # fmt: skip
    assert [b.offer(i).queued for i in range(6)] == [True] * 4 + [False] * 2
    s = b.stats
    assert (s.submitted, s.enqueued, s.dropped_oldest, s.dropped_newest) == (6, 4, 0, 2)
    assert due(b) == [0, 1] and due(b) == [2, 3]


def test_block_waits_for_room_then_gives_up_after_its_timeout() -> None:
    b = DynamicBatcher(max_batch=2, max_delay_ms=0, max_queue=2, overload="block")
    b.offer(0)
    b.offer(1)
    t0 = time.monotonic()
    assert b.offer(2, timeout=0.05).queued is False
    assert time.monotonic() - t0 >= 0.05 and b.stats.dropped_newest == 1
    # With a consumer making room, the blocked put goes through.
    threading.Timer(0.05, b.get_batch).start()
    assert b.offer(3, timeout=5.0).queued is True
    assert b.get_batch(timeout=1.0) == [3]


def test_get_batch_waits_for_the_delay_and_times_out_when_idle() -> None:
    b = DynamicBatcher(max_batch=10, max_delay_ms=30, max_queue=10)
    assert b.get_batch(timeout=0.02) is None
    b.offer("x")
    t0 = time.monotonic()
    assert b.get_batch(timeout=2.0) == ["x"]
    assert 0.02 <= time.monotonic() - t0 < 1.0


def test_close_flushes_what_is_left_then_ends() -> None:
    b = DynamicBatcher(max_batch=10, max_delay_ms=60_000, max_queue=10)
    b.offer(1)
    b.offer(2)
    b.close()
    assert b.offer(3).queued is False and b.stats.dropped_newest == 1
    assert b.get_batch() == [1, 2] and b.get_batch() is None


@pytest.mark.parametrize("overload", ["drop-oldest", "drop-newest", "block"])
def test_conservation_under_concurrent_producers_and_a_consumer(overload: str) -> None:
    """4 producers, 1 slow consumer, a small queue: every item offered is dispatched exactly
    once or counted as dropped; the counters balance; each stream's items stay in order."""
    b = DynamicBatcher(max_batch=8, max_delay_ms=1, max_queue=16, overload=overload)
    n_producers, per_producer = 4, 400
    got: list[tuple[int, int]] = []

    def produce(p: int) -> None:
        for k in range(per_producer):
            b.offer((p, k), timeout=None)

    def consume() -> None:
        while (batch := b.get_batch()) is not None:
            got.extend(batch)
            time.sleep(0.002)  # much slower than the producers: the queue overflows

    consumer = threading.Thread(target=consume)
    producers = [threading.Thread(target=produce, args=(p,)) for p in range(n_producers)]
    consumer.start()
    for t in producers:
        t.start()
    for t in producers:
        t.join(timeout=30)
    b.close()
    consumer.join(timeout=30)
    assert not consumer.is_alive()

    s = b.stats
    total = n_producers * per_producer
    assert s.submitted == total == s.enqueued + s.dropped_newest
    assert s.enqueued == s.dispatched + s.dropped_oldest + s.pending and s.pending == 0
    assert s.dispatched == len(got) == len(set(got))
    assert s.dispatched + s.dropped == total
    assert s.max_depth <= 16
    for p in range(n_producers):
        ks = [k for q, k in got if q == p]
        assert ks == sorted(ks)
    if overload == "block":
        assert s.dropped == 0
    else:
        assert s.dropped > 0  # the scenario really overloads the queue


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch": 0}, "max_batch must be an integer >= 1"),
        ({"max_queue": 2}, r"max_queue \(2\) must be >= max_batch \(4\)"),
        ({"max_delay_ms": -1}, "max_delay_ms must be a number >= 0 ms"),
        ({"overload": "drop-random"}, "overload must be one of drop-oldest, drop-newest, block"),
    ],
)
def test_bad_settings_are_named(kwargs: dict, message: str) -> None:
    settings = {"max_batch": 4, "max_delay_ms": 5.0, "max_queue": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        DynamicBatcher(**settings)
