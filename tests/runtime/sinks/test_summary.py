"""The tally and the summary: counts, percentiles, bounded latency sample, empty runs."""

from __future__ import annotations

import itertools
import json
import tracemalloc

import pytest
from mrm_edge.runtime.sinks.summary import RESERVOIR, Tally


def test_tally_counts_percentiles_and_summary_text() -> None:
    now = [100.0]
    t = Tally(clock=lambda: now[0])
    for i in range(100):
        t.classified("a", float(i + 1), ())
    t.rejected("b", ("flat lead",), ())
    t.rejected("b", ("samples missing", "flat lead"), ())
    t.dropped("a", "overload (drop-oldest)")
    t.batch(50, 0.5)
    t.batch(50, 0.5, failed=True)
    t.alarm("a", "on", ("MI",))
    t.stream_ended("a", "end of record")
    t.stream_failed("c", "ValueError: bad chunk")
    now[0] = 110.0
    s = t.summary(model="m", backend="b", backend_reason="r", source="src", stopped_by="x")
    assert (s.windows, s.classified, s.rejected, s.dropped) == (103, 100, 2, 1)
    assert s.rejected_by_reason == {"flat lead": 1, "samples missing + flat lead": 1}
    assert s.latency_ms["p50"] == pytest.approx(50.5) and s.latency_ms["max"] == 100.0
    assert s.latency_ms["p99"] == pytest.approx(99.01)
    assert s.throughput_wps == pytest.approx(10.0) and s.inference_wps == pytest.approx(100.0)
    assert s.mean_batch == 50 and s.backend_errors == 1 and s.alarms == {"on": 1, "off": 0}
    assert s.per_stream["a"]["windows"] == 101 and s.per_stream["a"]["ended"] == "end of record"
    assert s.errors == ["stream c: ValueError: bad chunk"] and not s.ok
    text = "\n".join(s.lines())
    assert "classified 100, rejected 2 (flat lead 1" in text and "p99 99.0" in text
    json.dumps(s.to_dict())  # JSON-able as it is
    live = t.live()
    assert live.streams == 3 and live.streams_live == 1  # a ended, c failed


def test_tally_latency_sample_is_bounded() -> None:
    ticks = itertools.count(0.0, 10.0)  # 10 s apart: the live view's recent window stays short
    t = Tally(clock=lambda: next(ticks))
    for i in range(RESERVOIR):
        t.classified("a", float(i % 100), ())
    # Once the sample is full, more latencies cost no memory: the sample stays bounded.
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(1000):
        t.classified("a", float(i % 100), ())
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes for 1000 more latencies"
    s = t.summary(model="m", backend="b", backend_reason="r", source="s", stopped_by="x")
    assert s.classified == RESERVOIR + 1000 and 40 <= s.latency_ms["p50"] <= 60


def test_empty_summary() -> None:
    s = Tally().summary(model="m", backend="b", backend_reason="r", source="s", stopped_by="x")
    assert s.latency_ms["p50"] is None and s.mean_batch is None and s.inference_wps is None
    assert "p50 –" in "\n".join(s.lines())
