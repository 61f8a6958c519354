"""Sink delivery: one thread and bounded queue per sink, so a slow sink slows neither the
producer (the engine's source / inference threads) nor the other sinks; lossless sinks (the
event log) still get every record, in order; lossy ones (displays) skip windows, counted,
never alarms or stream events."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
from mrm_edge.runtime.config import MonitorConfig
from mrm_edge.runtime.postprocess import AlarmEvent
from mrm_edge.runtime.sinks.base import Sink, StreamEvent
from mrm_edge.runtime.sinks.fanout import SinkFanout

from .records import info, ok_result


class Recorder(Sink):
    """Records what it gets; ``delay`` seconds per record (a slow sink)."""

    def __init__(self, delay: float = 0.0, delivery: str = "lossless", capacity: int = 0):
        self.delay = delay
        self.delivery = delivery  # type: ignore[misc]
        self.queue_capacity = capacity
        self.got: list[tuple[str, object]] = []
        self.closed_with: list[object] = []
        self.threads: set[str] = set()

    def _take(self, kind: str, record: object) -> None:
        if self.delay:
            time.sleep(self.delay)
        self.threads.add(threading.get_ident())
        self.got.append((kind, record))

    def window(self, result):
        self._take("window", result)

    def alarm(self, event):
        self._take("alarm", event)

    def stream(self, event):
        self._take("stream", event)

    def close(self, summary):
        self.closed_with.append(summary)


def _alarm(i: int) -> AlarmEvent:
    return AlarmEvent("p1", "MI", "on" if i % 2 == 0 else "off", i * 100, 100, 0.7, 0.5)


def _feed(fanout: SinkFanout, n: int) -> float:
    began = time.monotonic()
    for i in range(n):
        fanout.deliver("window", ok_result(start=i * 100))
    return time.monotonic() - began


def test_a_slow_sink_slows_neither_the_producer_nor_the_other_sinks():
    slow, fast = Recorder(delay=0.02, delivery="lossy"), Recorder()
    fanout = SinkFanout([slow, fast], on_error=pytest.fail)
    fanout.open(info())
    spent = _feed(fanout, 200)  # the slow sink alone would need 200 x 20 ms = 4 s
    assert spent < 0.5
    deadline = time.monotonic() + 5
    while len(fast.got) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(fast.got) == 200 and len(slow.got) < 100  # fast kept up while slow lagged
    fanout.close(None)
    assert len(slow.got) == 200  # close flushes (its queue never overflowed)
    assert (
        slow.threads.isdisjoint(fast.threads)
        and threading.get_ident() not in slow.threads | fast.threads
    )


def test_a_lossless_sink_gets_every_record_in_order_even_when_its_queue_fills():
    log = Recorder(delay=0.001, capacity=8)  # tiny queue: the producer has to wait
    fanout = SinkFanout([log], on_error=pytest.fail)
    fanout.open(info())
    for i in range(100):
        fanout.deliver("window", ok_result(start=i * 100))
        if i % 10 == 0:
            fanout.deliver("alarm", _alarm(i))
    fanout.close(None)
    starts = [r.start for k, r in log.got if k == "window"]
    assert starts == [i * 100 for i in range(100)]
    assert [k for k, _ in log.got].count("alarm") == 10
    assert log.got[0][0] == "window" and log.got[1][0] == "alarm"  # order across kinds kept
    stats = fanout.workers[0]  # its delivery counters
    assert stats.overflow == 0 and stats.delivered == 110 and stats.max_queued <= 9


def test_a_lossy_sink_skips_windows_counted_and_never_state_changes():
    display = Recorder(delay=0.01, delivery="lossy", capacity=4)
    fanout = SinkFanout([display], on_error=pytest.fail)
    fanout.open(info())
    for i in range(100):
        fanout.deliver("window", ok_result(start=i * 100))
        if i % 25 == 0:
            fanout.deliver("alarm", _alarm(i))
            fanout.deliver("stream", StreamEvent(f"s{i}", "start"))
    fanout.close(None)
    stats = fanout.workers[0]
    windows = [r for k, r in display.got if k == "window"]
    assert stats.overflow > 0 and len(windows) + stats.overflow == 100
    assert [k for k, _ in display.got].count("alarm") == 4
    assert [k for k, _ in display.got].count("stream") == 4
    assert [w.start for w in windows] == sorted(w.start for w in windows)  # still in order


def test_a_failing_sink_is_reported_and_keeps_receiving():
    class Boom(Recorder):
        def window(self, result):
            super().window(result)
            if result.start == 100:
                raise RuntimeError("disk full\nsecond line")

    errors: list[str] = []
    boom, other = Boom(), Recorder()
    fanout = SinkFanout([boom, other], on_error=errors.append)
    fanout.open(info())
    _feed(fanout, 3)
    fanout.close("the summary")
    assert errors == ["sink Boom failed: RuntimeError: disk full"]
    assert len(boom.got) == len(other.got) == 3
    assert boom.closed_with == other.closed_with == ["the summary"]


def test_close_flushes_then_closes_in_reverse_order_of_opening():
    order: list[str] = []

    class Named(Recorder):
        def __init__(self, name: str):
            super().__init__(delay=0.005)
            self.name = name

        def close(self, summary):
            order.append(f"{self.name}:{len(self.got)}")

    a, b = Named("a"), Named("b")
    fanout = SinkFanout([a, b], on_error=pytest.fail)
    fanout.open(info())
    _feed(fanout, 20)
    fanout.close(None)
    fanout.close(None)  # twice is harmless
    assert order == ["b:20", "a:20"]


def test_notices_a_sink_raises_while_draining_or_closing_reach_the_others():
    """A result sink's last records (stored at the streams' ends) and its courier's last
    attempt (at its close) may each raise a notice: the event log, still open, gets both."""

    class Raising(Recorder):
        def window(self, result):
            super().window(result)
            run_info.notify("from the last record")

        def close(self, summary):
            run_info.notify("from close")

    class Notes(Recorder):
        def notice(self, text):
            self.got.append(("notice", text))

    log, outbox = Notes(), Raising()
    fanout = SinkFanout([log, outbox], on_error=pytest.fail)
    run_info = replace(info(), notify=fanout.notice)
    fanout.open(run_info)
    fanout.deliver("window", ok_result(start=0))
    fanout.close(None)
    assert [r for k, r in log.got if k == "notice"] == ["from the last record", "from close"]


def test_open_is_all_or_nothing():
    class BadOpen(Recorder):
        def open(self, info):
            raise ValueError("cannot open")

    good = Recorder()
    fanout = SinkFanout([good, BadOpen()], on_error=pytest.fail)
    with pytest.raises(ValueError, match="cannot open"):
        fanout.open(info())
    assert good.closed_with == [None]


def test_waveform_goes_only_to_sinks_that_want_it():
    class Strip(Recorder):
        wants_waveform = True

        def waveform(self, chunk):
            self._take("waveform", chunk)

    strip, log = Strip(), Recorder()
    fanout = SinkFanout([strip, log], on_error=pytest.fail)
    fanout.open(info())
    assert fanout.wants_waveform
    fanout.waveform("chunk")
    fanout.close(None)
    assert strip.got == [("waveform", "chunk")] and log.got == []


def test_a_sink_that_never_drains_is_reported_at_close(monkeypatch):
    import mrm_edge.runtime.sinks.fanout as fanout_mod

    monkeypatch.setattr(fanout_mod, "CLOSE_TIMEOUT_S", 0.3)
    stuck = Recorder(delay=5.0)
    fanout = SinkFanout([stuck], on_error=pytest.fail)
    fanout.open(info())
    _feed(fanout, 3)
    began = time.monotonic()
    fanout.close(None)
    assert time.monotonic() - began < 2
    assert fanout.close_errors and "did not drain within 0.3 s" in fanout.close_errors[0]
    assert stuck.closed_with == []  # not closed under its own running call


def test_engine_delivery_keeps_the_event_log_complete_behind_a_slow_display(tmp_path):
    """Through the real Monitor: a display sink that takes 50 ms per window beside the JSONL
    event log; the log still holds every window, and the run is not slowed to the display."""
    pytest.importorskip("onnxruntime")
    import json

    from mrm_edge.runtime.app import run_monitor
    from mrm_edge.runtime.sinks.registry import register_sink
    from mrm_edge.runtime.sources.synthetic import SyntheticSource

    from mrm_edge.artifacts import default_model_dir

    slow = Recorder(delay=0.05, delivery="lossy", capacity=16)
    register_sink("slow-test-display", lambda settings: slow)
    events = tmp_path / "events.jsonl"
    summary = run_monitor(
        default_model_dir(),
        SyntheticSource(2, fs=100, seconds=40, speed=None),
        MonitorConfig(hop_s=2.0),
        events_path=events,
        sinks=["jsonl", "slow-test-display"],
        backend="onnxruntime",
        precision="int8",
    )
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    windows = [x for x in lines if x["type"] == "window"]
    assert summary.ok and summary.windows == len(windows) == summary.classified > 30
    assert lines[-1]["type"] == "summary"
    got = [r for k, r in slow.got if k == "window"]
    assert 0 < len(got) <= len(windows)


def test_notices_reach_every_sink_even_from_open_and_never_wait() -> None:
    """A sink may raise a notice while it opens (before the queues run) and from its own
    thread while its own lossless queue is full: both reach every sink, nothing blocks."""
    release = threading.Event()

    class Noisy(Recorder):
        def open(self, info):
            info.notify("disk full at open")

        def window(self, result):
            release.wait(30)  # stuck: its queue of 1 fills up behind it
            self._take("window", result)

        def notice(self, text):
            self._take("notice", text)

    class Listener(Recorder):
        def notice(self, text):
            self._take("notice", text)

    noisy, listener = Noisy(capacity=1), Listener()
    fanout = SinkFanout([noisy, listener], on_error=lambda message: None)
    fanout.open(replace(info(), notify=fanout.notice))
    fanout.deliver("window", ok_result(start=0))  # taken by the stuck thread
    fanout.deliver("window", ok_result(start=100))  # fills its queue
    began = time.monotonic()
    fanout.notice("still full")  # must not wait for the stuck sink
    waited = time.monotonic() - began
    release.set()
    fanout.close(None)
    assert waited < 1.0  # generous: a wait for room would last until release (30 s)
    for sink in (noisy, listener):
        assert [r for k, r in sink.got if k == "notice"] == ["disk full at open", "still full"]
