"""The run's record through the real ``mrm-edge monitor`` (issue 20, finding 7): an existing
``--events`` file is refused in one line or appended to with ``--events-append``, and a disk
that fills up mid-run (a real 64 KiB tmpfs the test mounts) costs event-log records, never
the monitoring: the terminal and the station say so at once, the file holds only whole JSON
lines, the summary counts what was lost, and writing resumes when space returns.

The device is a real MRME byte stream piped into ``--source stdin``, so the test decides
when each part of the signal arrives; its signal is a real PTB-XL record. The shipped model
runs on ONNX Runtime.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.sources.framing import FrameEncoder

from mrm_edge.artifacts import default_model_dir
from mrm_edge.records import read_recording
from tests.eventlog import wait_until
from tests.tmpfs import fill, small_tmpfs

pytestmark = pytest.mark.realdata

EXE = str(Path(sys.executable).parent / "mrm-edge")
MONITOR = [EXE, "monitor", "--model", str(default_model_dir()), "--backend", "onnxruntime"]
DEVICE = [*MONITOR, "--source", "stdin", "--no-ui", "--hop", "1"]


def signal(ptbxl_root: Path, seconds: int) -> np.ndarray:
    """A real record tiled to ``seconds`` s: [samples, 12] float32 mV at 100 Hz."""
    x = read_recording(ptbxl_root / "records100/00000/00001_lr.hea").signal.T
    return np.tile(x, (-(-seconds * 100 // len(x)), 1))[: seconds * 100].astype(np.float32)


def test_an_existing_event_log_is_refused_in_one_line(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"type":"summary","from":"yesterday"}\n')
    r = subprocess.run(
        [*MONITOR, "--streams", "1", "--duration", "1", "--no-ui", "--events", str(events)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and str(events) in errors[0] and "--events-append" in errors[0]
    assert events.read_text() == '{"type":"summary","from":"yesterday"}\n'


def test_events_append_adds_a_run_after_the_old_one(ptbxl_root: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    enc = FrameEncoder("bed-1", 100)
    stream = enc.hello() + enc.data(signal(ptbxl_root, 12)) + enc.end()
    for _ in range(2):
        r = subprocess.run(
            [*DEVICE, "--events", str(events), "--events-append"],
            input=stream,
            capture_output=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr.decode()
    kinds = [json.loads(s)["type"] for s in events.read_text().splitlines()]
    assert kinds.count("start") == 2 and kinds.count("summary") == 2
    assert kinds.index("summary") < kinds.index("start", 1)  # run 2 after run 1, whole


def test_a_full_disk_costs_records_not_the_monitoring(ptbxl_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("uvicorn", reason="the station needs: pip install 'mrm-edge[web]'")
    x = signal(ptbxl_root, 50)  # 41 windows at a 1 s hop
    with small_tmpfs(tmp_path / "disk") as disk:
        filler = fill(disk)
        events = disk / "events.jsonl"
        proc = subprocess.Popen(
            [*DEVICE, "--events", str(events), "--web", "127.0.0.1:0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=False,
        )
        err: list[str] = []
        reader = threading.Thread(
            target=lambda: err.extend(line.decode() for line in proc.stderr), daemon=True
        )
        reader.start()
        try:
            wait_until(lambda: any("central station" in s for s in err), 120, "the station")
            url = re.search(r"http://\S+", next(s for s in err if "central station" in s))[0]

            def header() -> dict:
                with urllib.request.urlopen(f"{url.rstrip('/')}/api/state", timeout=5) as r:
                    return json.load(r)["header"]

            enc = FrameEncoder("bed-1", 100)
            proc.stdin.write(enc.hello() + enc.data(x[:3000]))  # 30 s: 21 windows
            proc.stdin.flush()
            # At once, while the disk is still full: one terminal line and the station.
            wait_until(lambda: any("No space left" in s for s in err), 60, "a terminal notice")
            wait_until(lambda: "No space left" in header().get("notice", ""), 30, "the notice")
            # Monitoring goes on: the first 21 windows get their results.
            wait_until(
                lambda: header().get("classified", 0) + header().get("rejected", 0) >= 21,
                60,
                "21 windows classified on a full disk",
            )
            filler.unlink()  # space returns
            proc.stdin.write(enc.data(x[3000:]))
            proc.stdin.flush()
            wait_until(lambda: "writing again" in header().get("notice", ""), 60, "the resume")
            proc.stdin.write(enc.end())
            proc.stdin.close()
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        reader.join(10)
        raw = events.read_bytes()
    stderr = "".join(err)
    assert "Traceback" not in stderr
    notices = [s for s in err if s.startswith("notice:")]
    assert len(notices) == 2, stderr  # one when it filled, one when writing resumed
    assert "No space left on device" in notices[0] and "writing again" in notices[1]
    assert re.search(r"windows 41: classified 41", stderr), stderr  # nothing was lost there
    assert proc.returncode == 1  # the run's record is incomplete: not a clean exit
    assert raw.endswith(b"\n")
    lines = [json.loads(s) for s in raw.decode().splitlines()]  # whole, strict JSON lines only
    gaps = [d for d in lines if d["type"] == "log_gap"]
    assert len(gaps) == 1 and lines[0] is gaps[0]  # the start line itself was lost
    lost = gaps[0]["not_written"]
    # start, stream start, the disk-full notice, the first 21 windows (and any alarms)
    assert lost >= 24
    windows = [d for d in lines if d["type"] == "window"]
    assert windows and windows[-1]["start_s"] == 40.0  # written again after space returned
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["events_not_written"] == lost
    assert summary["classified"] == 41 and len(windows) + lost - 3 <= 41
    notices = [d["text"] for d in lines if d["type"] == "notice"]
    assert len(notices) == 1 and "writing again" in notices[0]  # the first was in the gap
    # The summary is wrapped at the terminal's width, a long path anywhere in it: compare
    # without whitespace.
    flowed = "".join(stderr.split())
    assert "".join(f"error: event log {events}: {lost} record(s) not written".split()) in flowed
