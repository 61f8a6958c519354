"""The JSONL event log: keys, flush per line, strict JSON, a stream left open, bad paths."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from mrm_edge.runtime.postprocess import AlarmEvent
from mrm_edge.runtime.sinks.base import DroppedWindow, StreamEvent
from mrm_edge.runtime.sinks.jsonl import JsonlSink

from tests.runtime.sinks.records import LABELS, info, ok_result, rejected_result, summary


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
