"""Sinks: the JSONL event log (keys, flush per line, strict JSON), the live view (rich),
the tally and the summary."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from mrm_edge.runtime.postprocess import AlarmEvent, WindowResult
from mrm_edge.runtime.sinks.base import DroppedWindow, RunInfo, StreamEvent
from mrm_edge.runtime.sinks.jsonl import JsonlSink
from mrm_edge.runtime.sinks.live import LiveView
from mrm_edge.runtime.sinks.summary import RESERVOIR, Summary, Tally

LABELS = ("CD", "HYP", "MI", "NORM", "STTC")


def info(stats=None) -> RunInfo:
    return RunInfo(
        model="tiny",
        labels=LABELS,
        thresholds=dict.fromkeys(LABELS, 0.5),
        sampling_rate=100,
        window_s=10.0,
        hop_s=1.0,
        backend="onnxruntime on cpu, int8",
        backend_reason="because",
        source="array",
        knobs={"max_batch": 32},
        stats=stats,
    )


def ok_result(start: int = 300, stream: str = "p1") -> WindowResult:
    p = dict(zip(LABELS, (0.1, 0.2, 0.7, 0.05, 0.123456789), strict=True))
    return WindowResult(
        stream_id=stream,
        start=start,
        sampling_rate=100,
        window_samples=1000,
        status="ok",
        reason="",
        latency_ms=12.3456,
        probabilities=p,
        smoothed=p,
        positive=("MI",),
        alarms=("MI",),
    )


def rejected_result() -> WindowResult:
    return WindowResult(
        stream_id="p2",
        start=0,
        sampling_rate=100,
        window_samples=1000,
        status="rejected",
        reason="lead V6 flat for 10.0 s (peak-to-peak < 0.01 mV)",
        latency_ms=0.2,
        reason_kinds=("flat lead",),
        bad_leads=("V6",),
    )


def summary() -> Summary:
    t = Tally()
    t.classified("p1", 10.0, ())
    t.rejected("p2", ("flat lead",), ())
    t.dropped("p1", "overload (drop-oldest)")
    return t.summary(
        model="tiny", backend="b", backend_reason="r", source="array", stopped_by="source ended"
    )


def test_jsonl_lines_and_contract_keys(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(path)
    sink.open(info())
    sink.stream(StreamEvent("p1", "start", "500 Hz"))
    sink.window(ok_result())
    # Flushed per line: readable by another process before close.
    assert len(path.read_text().splitlines()) == 3
    sink.window(rejected_result())
    sink.alarm(AlarmEvent("p1", "MI", "on", 300, 100, 0.71, 0.5))
    sink.alarm(AlarmEvent("p1", "MI", "off", 900, 100, float("nan"), 0.5, "stream ended"))
    sink.dropped(DroppedWindow("p1", 400, 100, 1000, "overload (drop-oldest)"))
    sink.close(summary())
    sink.close(summary())  # idempotent
    lines = [json.loads(s) for s in path.read_text().splitlines()]  # strict JSON throughout
    assert [d["type"] for d in lines] == [
        "start",
        "stream",
        "window",
        "window",
        "alarm",
        "alarm",
        "dropped",
        "summary",
    ]
    ok, rej = lines[2], lines[3]
    assert ok["stream"] == "p1" and ok["start"] == 300 and ok["status"] == "ok"
    assert ok["start_s"] == 3.0 and ok["end_s"] == 13.0
    assert ok["probabilities"]["STTC"] == 0.123457 and ok["positive"] == ["MI"]
    assert ok["positive_basis"] == "smoothed" and ok["latency_ms"] == 12.346
    assert "reason" not in ok
    assert rej["status"] == "rejected" and rej["probabilities"] is None
    assert rej["reason"].startswith("lead V6 flat") and rej["bad_leads"] == ["V6"]
    assert lines[4]["state"] == "on" and lines[4]["start_s"] == 3.0
    assert lines[5]["probability"] is None and lines[5]["cause"] == "stream ended"
    assert lines[6]["cause"] == "overload (drop-oldest)" and lines[6]["end_s"] == 14.0
    s = lines[-1]
    assert (s["classified"], s["rejected"], s["dropped"], s["windows"]) == (1, 1, 1, 3)
    assert lines[0]["labels"] == list(LABELS) and lines[0]["backend_reason"] == "because"
    sink.window(ok_result())  # after close: ignored, not an error
    assert len(path.read_text().splitlines()) == 8


def test_jsonl_to_a_stream_leaves_it_open() -> None:
    buf = io.StringIO()
    sink = JsonlSink(buf)
    sink.window(ok_result())
    sink.close(None)
    assert not buf.closed and len(buf.getvalue().splitlines()) == 1


def test_jsonl_bad_path_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot write the event log") as e:
        JsonlSink(tmp_path / "missing-dir" / "events.jsonl")
    assert "\n" not in str(e.value)


def test_live_view_draws_rows_and_stops() -> None:
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=160, force_terminal=False)
    t = Tally(queue_depth=lambda: 3)
    view = LiveView(console, refresh_per_second=4)
    view.open(info(stats=t.live))
    view.stream(StreamEvent("p1", "start"))
    view.window(ok_result())
    t.classified("p1", 12.0, ("MI",))
    view.window(rejected_result())
    view.alarm(AlarmEvent("p1", "MI", "on", 300, 100, 0.7, 0.5))
    view.stream(StreamEvent("p2", "end", "end of record"))
    view.close(None)
    view.close(None)  # idempotent
    text = out.getvalue()
    assert "MI 0.70" in text and "rejected: lead V6 flat" in text
    assert "queue 3" in text and "ended (end of record)" in text
    assert "p50 12 ms" in text
    with pytest.raises(ValueError, match="refresh_per_second"):
        LiveView(console, refresh_per_second=10)


def test_live_view_caps_rows() -> None:
    from rich.console import Console

    out = io.StringIO()
    view = LiveView(Console(file=out, width=120), max_rows=2)
    view.open(info())
    for i in range(5):
        view.window(ok_result(stream=f"s{i}"))
    view.close(None)
    assert "3 more stream(s)" in out.getvalue()


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
    t = Tally()
    for i in range(RESERVOIR + 1000):
        t.classified("a", float(i % 100), ())
    assert len(t._latencies) == RESERVOIR
    s = t.summary(model="m", backend="b", backend_reason="r", source="s", stopped_by="x")
    assert s.classified == RESERVOIR + 1000 and 40 <= s.latency_ms["p50"] <= 60


def test_empty_summary() -> None:
    s = Tally().summary(model="m", backend="b", backend_reason="r", source="s", stopped_by="x")
    assert s.latency_ms["p50"] is None and s.mean_batch is None and s.inference_wps is None
    assert "p50 –" in "\n".join(s.lines())
