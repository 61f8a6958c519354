"""Physically impossible signals through the real ``mrm-edge monitor`` (issue 20, finding 6):
a device that sends float32 samples around 1e29 mV, or a lead of +Inf, gets its windows
rejected with the reason (``implausible amplitude`` / ``non-finite samples``), never
classified and never alarmed, and nothing numpy says reaches the terminal.

The device is a real MRME byte stream (``FrameEncoder``) piped into ``--source stdin``; its
signal is a real PTB-XL record (scaled, or with one lead replaced). The shipped model runs on
ONNX Runtime, so no training is needed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.sources.framing import FrameEncoder

from mrm_edge.artifacts import default_model_dir
from mrm_edge.data.dataset import LEADS
from mrm_edge.records import read_recording

pytestmark = pytest.mark.realdata

EXE = str(Path(sys.executable).parent / "mrm-edge")
RECORD = "records100/00000/00001_lr.hea"


def monitor_device(samples: np.ndarray, events: Path) -> subprocess.CompletedProcess:
    """One device session of ``samples`` [n, 12] float32 mV at 100 Hz through the CLI."""
    enc = FrameEncoder("bed-7", 100, "float32")
    stream = enc.hello() + enc.data(samples) + enc.end()
    args = ["--model", str(default_model_dir()), "--backend", "onnxruntime", "--source", "stdin"]
    return subprocess.run(
        [EXE, "monitor", *args, "--no-ui", "--hop", "1", "--events", str(events)],
        input=stream,
        capture_output=True,
        timeout=300,
    )


def real_signal(ptbxl_root: Path, seconds: int = 30) -> np.ndarray:
    """A real record tiled to ``seconds`` s: [samples, 12] float32 mV at 100 Hz."""
    x = read_recording(ptbxl_root / RECORD).signal.T
    return np.tile(x, (-(-seconds * 100 // len(x)), 1))[: seconds * 100].astype(np.float32)


def records(events: Path, kind: str) -> list[dict]:
    lines = [json.loads(s) for s in events.read_text().splitlines()]
    return [d for d in lines if d["type"] == kind]


def test_samples_near_1e29_mv_are_rejected_never_alarmed(ptbxl_root: Path, tmp_path: Path) -> None:
    x = real_signal(ptbxl_root) * np.float32(1e29)
    assert np.isfinite(x).all() and np.abs(x).max() > 1e29  # float32 holds it: finite data
    events = tmp_path / "events.jsonl"
    r = monitor_device(x, events)
    assert r.returncode == 0, r.stderr.decode()
    windows = records(events, "window")
    assert len(windows) == 21  # (30 s − 10 s) / 1 s + 1
    for w in windows:
        assert w["status"] == "rejected" and w["probabilities"] is None
        assert "implausible amplitude" in w["reason_kinds"]
        assert "beyond ±50 mV" in w["reason"] and set(w["bad_leads"]) == set(LEADS)
    assert records(events, "alarm") == []
    summary = records(events, "summary")[0]
    assert summary["classified"] == 0 and summary["rejected"] == 21
    assert "Warning" not in r.stderr.decode()


def test_an_inf_lead_is_rejected_and_the_terminal_stays_clean(
    ptbxl_root: Path, tmp_path: Path
) -> None:
    x = real_signal(ptbxl_root)
    x[:, LEADS.index("V3")] = np.inf
    events = tmp_path / "events.jsonl"
    r = monitor_device(x, events)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "Warning" not in err and "invalid value" not in err and "overflow" not in err
    windows = records(events, "window")
    assert len(windows) == 21
    for w in windows:
        assert w["status"] == "rejected" and w["bad_leads"] == ["V3"]
        assert w["reason_kinds"] == ["non-finite samples"]
    assert records(events, "alarm") == []
    # The same record without the Inf lead is classified: the rejection is the lead's doing.
    clean = tmp_path / "clean.jsonl"
    assert monitor_device(real_signal(ptbxl_root), clean).returncode == 0
    assert {w["status"] for w in records(clean, "window")} == {"ok"}


@pytest.mark.parametrize("value", [np.inf, np.nan, 3e38])
def test_the_station_strip_takes_impossible_samples_without_a_warning(value: float) -> None:
    """The central station decimates raw chunks for its strips on its own thread."""
    import warnings

    from mrm_edge.runtime.sources.base import Chunk
    from mrm_edge.runtime.web.state import StationState

    x = np.random.default_rng(0).normal(0, 0.5, (500, 12)).astype(np.float32)
    x[100:300, 4] = value
    state = StationState()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for chunk in np.split(x, 5):
            state.waveform(Chunk("bed", chunk, 500))
    assert "bed" in state.beds_summary()
