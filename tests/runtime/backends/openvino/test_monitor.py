"""The OpenVINO backend through the real Monitor: every window's probabilities equal the same
backend offline on the same window, cut from the signal resampled offline, at the backend's
own tolerance (f32 1e-5; INT8 5e-3, since its kernels round differently per batch shape)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.app import open_monitor, run_monitor
from mrm_edge.runtime.backends.openvino.backend import OpenVinoBackend
from mrm_edge.runtime.config import MonitorConfig
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.sinks.jsonl import JsonlSink
from mrm_edge.runtime.sources.base import ArraySource

from mrm_edge.data.signal import resample
from mrm_edge.data.synthetic import make_patients, synthesize

RATE, WINDOW, HOP = 100, 1000, 100


@pytest.mark.parametrize(("file", "atol"), [("model.onnx", 1e-5), ("model.int8-sym.onnx", 5e-3)])
def test_streaming_equals_offline(shipped: Path, tmp_path: Path, file: str, atol: float) -> None:
    records = {
        p.patient_id: (np.ascontiguousarray(synthesize(p, 13.0, 500).T), 500)
        for p in make_patients(3, 11)
    }
    model = DeployedModel.load(shipped)
    log = tmp_path / "events.jsonl"
    source = ArraySource(records, chunk_seconds=[0.3, 1.1, 0.7], speed=None)
    with OpenVinoBackend(shipped / file) as backend:
        config = MonitorConfig(hop_s=1.0)
        with open_monitor(model, source, config, backend, sinks=[JsonlSink(log)]) as mon:
            summary = mon.run()
        assert summary.ok and summary.dropped == 0 and summary.classified == 3 * 4
        windows = [
            d for d in map(json.loads, log.read_text().splitlines()) if d["type"] == "window"
        ]
        for sid, (x, fs) in records.items():
            offline = resample(x.T, fs, RATE)  # [12, n]
            got = sorted((d for d in windows if d["stream"] == sid), key=lambda d: d["start"])
            assert [d["start"] for d in got] == [k * HOP for k in range(4)]
            cut = np.stack([offline[:, k * HOP : k * HOP + WINDOW] for k in range(4)])
            expect = backend.infer(np.ascontiguousarray(cut, dtype=np.float32))
            for k, d in enumerate(got):
                p = np.array([d["probabilities"][lab] for lab in model.card.labels])
                np.testing.assert_allclose(p, expect[k], atol=atol, err_msg=f"{sid}[{k}]")


def test_run_monitor_on_requested_openvino(shipped: Path) -> None:
    recs = {
        p.patient_id: (np.ascontiguousarray(synthesize(p, 11.0, 100).T), 100)
        for p in make_patients(2, 0)
    }
    summary = run_monitor(
        shipped, ArraySource(recs, speed=None), backend="openvino", precision="int8", sinks=[]
    )
    assert summary.ok and summary.classified == 2 * 2
    assert summary.backend.startswith("openvino on cpu, int8")
