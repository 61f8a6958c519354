"""A real TCP session: a sender subprocess streams real records over loopback to the
monitor, and every window's probabilities equal offline inference on the same window."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from mrm_edge.runtime.backends import OnnxRuntimeBackend
from mrm_edge.runtime.engine import Monitor
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.sinks.jsonl import JsonlSink
from mrm_edge.runtime.sources.tcp import TcpSource

from mrm_edge.data.signal import resample
from mrm_edge.records import read_recording

WINDOW, HOP, RATE = 1000, 100, 100


def test_sender_subprocess_to_monitor_over_loopback(
    tiny_onnx_model: Path, ptbxl_root: Path, cpsc_root: Path, tmp_path: Path
) -> None:
    records = [ptbxl_root / "records500/00000/00001_hr.hea", cpsc_root / "A1988.mat"]
    model = DeployedModel.load(tiny_onnx_model)
    log = tmp_path / "events.jsonl"
    backend = OnnxRuntimeBackend(model.onnx["fp32"].path, providers=["CPUExecutionProvider"])
    with backend, TcpSource(host="127.0.0.1", port=0) as source:
        mon = Monitor(model, backend, source, sinks=[JsonlSink(log)], hop_s=1.0)
        result: dict = {}
        runner = threading.Thread(target=lambda: result.update(summary=mon.run()))
        runner.start()
        sender = subprocess.run(
            [
                sys.executable,
                "-m",
                "mrm_edge.runtime.sender",
                "--host",
                "127.0.0.1",
                "--port",
                str(source.port),
                "--speed",
                "max",
                "-q",
                *map(str, records),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sender.returncode == 0, sender.stderr
        # Both devices said END; wait until the monitor has seen both streams end.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = [json.loads(s) for s in log.read_text().splitlines()] if log.exists() else []
            ended = {d["stream"] for d in lines if d["type"] == "stream" and d["event"] == "end"}
            if ended == {"00001_hr", "A1988"}:
                break
            time.sleep(0.2)
        mon.stop("test done")
        runner.join(timeout=60)
        assert not runner.is_alive()
        summary = result["summary"]
        assert summary.dropped == 0
        lines = [json.loads(s) for s in log.read_text().splitlines()]
        windows = [d for d in lines if d["type"] == "window"]
        for path in records:
            rec = read_recording(path)
            offline = resample(rec.signal, rec.sampling_rate, RATE)  # [12, n] at 100 Hz
            n = (offline.shape[1] - WINDOW) // HOP + 1
            got = sorted((d for d in windows if d["stream"] == rec.name), key=lambda d: d["start"])
            assert [d["start"] for d in got] == [k * HOP for k in range(n)], rec.name
            cut = np.stack([offline[:, k * HOP : k * HOP + WINDOW] for k in range(n)])
            expect = backend.infer(np.ascontiguousarray(cut, dtype=np.float32))
            ok = [d for d in got if d["status"] == "ok"]
            assert len(ok) >= n // 2  # A1988 has a real lead-off in V6: those windows reject
            for d in ok:
                k = d["start"] // HOP
                p = np.array([d["probabilities"][lab] for lab in model.labels])
                np.testing.assert_allclose(p, expect[k], atol=1e-5, err_msg=f"{rec.name}[{k}]")
