"""The models shipped under models/: the paper model and the edge model distilled from it.
Each directory loads whole (every file verified, none refused), its exported files held the
export's gates, its cost is recorded, and the streaming monitor gives what the same backend
gives offline on real records. The TensorRT-RTX parse/build tests take both directories too
(tests/export/tensorrt/test_rtx.py, tests/export/int8/test_tensorrt_parser.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.export.gates import FP16_AUC_TOLERANCE_PT, INT8_AUC_TOLERANCE_PT
from mrm_edge.runtime.app import open_monitor
from mrm_edge.runtime.backends import OnnxRuntimeBackend
from mrm_edge.runtime.config import MonitorConfig
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.sinks.jsonl import JsonlSink
from mrm_edge.runtime.sources.base import ArraySource

from mrm_edge.artifacts import EDGE_MODEL_DIR, ONNX_FILES, SHIPPED_MODEL_DIR
from mrm_edge.data.signal import resample
from mrm_edge.records import read_recording

SHIPPED_MODELS = pytest.mark.parametrize(
    "model_dir", [SHIPPED_MODEL_DIR, EDGE_MODEL_DIR], ids=["paper", "edge"]
)
RATE, WINDOW, HOP = 100, 1000, 100


@SHIPPED_MODELS
def test_the_directory_loads_whole_and_its_files_held_their_gates(model_dir: Path) -> None:
    model = DeployedModel.load(model_dir)
    assert model.refused == {} and model.weights is not None
    assert set(model.onnx) == set(ONNX_FILES)
    assert model.gflop_per_window is not None and model.gflop_per_window > 0
    fp16 = model.onnx["fp16"].sidecar["accuracy"]
    assert abs(fp16["auc_delta_pt"]) <= FP16_AUC_TOLERANCE_PT
    assert "held-out windows" in fp16["data"]  # gated on real labelled ECG, not synthetic
    for variant in ("int8", "int8-sym"):
        acc = model.onnx[variant].sidecar["accuracy"]
        assert acc["passed"] and acc["auc_drop_pt"] <= INT8_AUC_TOLERANCE_PT, variant
        assert acc["n_heldout"] == 64 and "held-out windows" in acc["message"]


def test_the_edge_model_is_the_distilled_student_of_the_paper_model() -> None:
    edge = json.loads((EDGE_MODEL_DIR / "card.json").read_text())
    paper = json.loads((SHIPPED_MODEL_DIR / "card.json").read_text())
    recipe = edge["training"]["distillation"]
    assert recipe["teacher"]["weights_sha256"] == paper["weights"]["sha256"]
    assert (recipe["temperature"], recipe["alpha"]) == (2.0, 1.0)
    assert edge["preset"] == "edge" and edge["architecture"]["width"] == 32
    assert edge["labels"] == paper["labels"] and edge["leads"] == paper["leads"]
    assert edge["sampling_rate"] == paper["sampling_rate"]
    cost = DeployedModel.load(EDGE_MODEL_DIR).gflop_per_window
    assert cost <= DeployedModel.load(SHIPPED_MODEL_DIR).gflop_per_window / 3  # the bar


@pytest.mark.realdata
@pytest.mark.slow
@SHIPPED_MODELS
@pytest.mark.parametrize(("variant", "atol"), [("fp32", 1e-5), ("int8", 1e-5)])
def test_streaming_equals_offline_on_real_records(
    model_dir: Path, variant: str, atol: float, ptbxl_root: Path, cpsc_root: Path, tmp_path: Path
) -> None:
    """Real records at 500 Hz through the Monitor (uneven chunks, 1 s hop): every classified
    window's probabilities equal the same backend on the window cut from the record resampled
    offline; none missing or doubled (quality rejections: tests/runtime/test_engine.py)."""
    paths = [
        ptbxl_root / "records500/00000/00001_hr.hea",
        ptbxl_root / "records500/00000/00003_hr.hea",
        *sorted(cpsc_root.glob("A19*.mat")),  # 10 to 54 s each
    ]
    records = {}
    for p in paths:
        rec = read_recording(p)
        records[p.stem] = (np.ascontiguousarray(rec.signal.T), rec.sampling_rate)
    model = DeployedModel.load(model_dir)
    log = tmp_path / "events.jsonl"
    source = ArraySource(records, chunk_seconds=[0.3, 1.7, 0.9], speed=None)
    backend = OnnxRuntimeBackend(model.onnx[variant].path, providers=["CPUExecutionProvider"])
    config = MonitorConfig(hop_s=1.0)
    with backend:
        with open_monitor(model, source, config, backend, sinks=[JsonlSink(log)]) as monitor:
            summary = monitor.run()
        assert summary.ok and summary.dropped == 0
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        windows = [d for d in lines if d["type"] == "window"]
        checked = 0
        for sid, (x, fs) in records.items():
            offline = resample(x.T, fs, RATE)  # [12, n]
            got = sorted((d for d in windows if d["stream"] == sid), key=lambda d: d["start"])
            n = (offline.shape[1] - WINDOW) // HOP + 1
            assert len(got) == n and [d["start"] for d in got] == [k * HOP for k in range(n)]
            cut = np.stack([offline[:, k * HOP : k * HOP + WINDOW] for k in range(n)])
            expect = backend.infer(np.ascontiguousarray(cut, dtype=np.float32))
            for k, d in enumerate(got):
                if d["status"] != "ok":  # a quality rejection (noise, a flat lead): its reason
                    assert d["status"] == "rejected" and d["reason"], d
                    continue
                p = np.array([d["probabilities"][lab] for lab in model.card.labels])
                np.testing.assert_allclose(p, expect[k], atol=atol, err_msg=f"{sid}[{k}]")
                checked += 1
    assert checked >= 100
