"""The JSONL event log: keys, flush per line, strict JSON, a stream left open, bad paths."""

from __future__ import annotations

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


def test_jsonl_bad_path_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot write the event log") as e:
        JsonlSink(tmp_path / "missing-dir" / "events.jsonl")
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- the run's record is kept


def test_an_existing_log_is_refused_in_one_line_and_appended_on_request(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"type":"summary","from":"last run"}\n{"type":"start","cut mid-')
    before = path.read_bytes()
    with pytest.raises(ValueError, match="refusing to overwrite") as e:
        JsonlSink(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert path.read_bytes() == before  # not touched
    (tmp_path / "link.jsonl").symlink_to(path)
    with pytest.raises(ValueError, match="refusing to overwrite"):
        JsonlSink(tmp_path / "link.jsonl")
    sink = JsonlSink(path, append=True)
    sink.open(info())
    sink.close(summary())
    text = path.read_bytes()
    assert text.startswith(before + b"\n")  # the old partial line is left, ended
    new = [json.loads(s) for s in text[len(before) + 1 :].decode().splitlines()]
    assert [d["type"] for d in new] == ["start", "summary"]


def test_a_device_file_is_written_as_it_is() -> None:
    sink = JsonlSink("/dev/null")  # exists, but is not a file a run could overwrite
    sink.open(info())
    sink.close(summary())
    assert sink.not_written == 0  # the start and summary lines, both written


def test_full_disk_costs_records_never_whole_lines_and_writing_resumes(tmp_path: Path) -> None:
    """On a real 64 KiB tmpfs: a record that does not fit is not written (a line cut by ENOSPC
    is truncated off again), one notice says so, every later record retries, and once space
    returns a log_gap line counts the loss and a second notice says writing resumed."""
    from dataclasses import replace

    from tests.tmpfs import fill, small_tmpfs

    notices: list[str] = []
    with small_tmpfs(tmp_path / "disk") as disk:
        path = disk / "events.jsonl"
        sink = JsonlSink(path)
        sink.open(replace(info(), notify=notices.append))
        filler = fill(disk)  # the log's own last page keeps ~3.5 KiB free: partial writes
        big = replace(rejected_result(), reason="x" * 6000)  # bigger than what is left
        for _ in range(3):
            sink.window(rejected_result())  # these fit in the log's last page ...
        for _ in range(5):
            sink.window(big)  # ... these do not: each is cut, then truncated off
        lost_before = sink.not_written
        size_full = path.stat().st_size
        assert len(notices) == 1 and "No space left on device" in notices[0]
        assert str(path) in notices[0]
        filler.unlink()
        sink.window(ok_result(start=900))
        s = summary()
        sink.close(s)
        raw = path.read_bytes()
    assert raw.endswith(b"\n") and size_full <= len(raw)
    lines = [json.loads(x) for x in raw.decode().splitlines()]  # strict JSON, whole lines
    kinds = [d["type"] for d in lines]
    assert kinds[0] == "start" and kinds[-3:] == ["log_gap", "window", "summary"]
    assert lost_before >= 5 and lines[-3]["not_written"] == lost_before == sink.not_written
    assert "No space" in lines[-3]["reason"] and lines[-2]["start"] == 900
    assert lines[-1]["events_not_written"] == lost_before == s.events_not_written
    assert any("record(s) not written" in e for e in s.errors)
    assert len(notices) == 2 and "writing again" in notices[1]


def test_a_flapping_disk_is_announced_once_per_quiet_period(tmp_path: Path) -> None:
    """Full, free, full again within QUIET_S: every gap gets its log_gap line, but only the
    first is announced; a gap after the quiet period is announced again."""
    from dataclasses import replace

    from mrm_edge.runtime.sinks.jsonl import QUIET_S

    from tests.tmpfs import fill, small_tmpfs

    now = [1000.0]
    notices: list[str] = []
    with small_tmpfs(tmp_path / "disk") as disk:
        sink = JsonlSink(disk / "events.jsonl", clock=lambda: now[0])
        sink.open(replace(info(), notify=notices.append))
        for later in (0.0, 1.0, QUIET_S + 1):  # each: full, a lost record, space back, written
            now[0] += later  # seconds since the previous gap ended
            filler = fill(disk)
            sink.window(replace(rejected_result(), reason="x" * 5000))
            filler.unlink()
            sink.window(ok_result())
        sink.close(summary())
        lines = [json.loads(s) for s in (disk / "events.jsonl").read_text().splitlines()]
    assert [d["not_written"] for d in lines if d["type"] == "log_gap"] == [1, 1, 1]
    assert sink.not_written == 3 and lines[-1]["events_not_written"] == 3
    # Gap 1 and its end are announced; gap 2, 1 s later, is not; gap 3, past QUIET_S, is.
    assert ["No space" in n for n in notices] == [True, False, True, False]
    assert ["writing again" in n for n in notices] == [False, True, False, True]
