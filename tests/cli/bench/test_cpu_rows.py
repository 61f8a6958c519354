"""The bench's CPU rows beside ONNX Runtime: OpenVINO (FP32, INT8 files, BF16 where the CPU
has it), PyTorch's other modes (BF16 autocast, torch.compile), speed-ups against eager FP32
and against PyTorch's best, and the streaming section on auto's pick. Real runtimes on the
shipped model. (The CPU's GEMM peaks and each row's fraction of them:
tests/benchmarks/test_roofline.py.)"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mrm_edge.artifacts import SHIPPED_MODEL_DIR
from mrm_edge.cli.bench.common import Result, add_speedups
from mrm_edge.cli.bench.variants import plan

EXE = str(Path(sys.executable).with_name("mrm-edge"))
HAS_OV = importlib.util.find_spec("openvino") is not None
HAS_TORCH = importlib.util.find_spec("torch") is not None


def bf16_here() -> tuple[bool, str]:
    from mrm_edge.cli.bench.torch_cpu import torch_bf16_refusal

    why = torch_bf16_refusal()
    return why is None, why or ""


def row(backend: str, precision: str, batch: int, wps: float) -> Result:
    return Result(backend, precision, "cpu", batch, wps, {"p50": 1.0, "p90": 1.0, "p99": 1.0}, 3)


def test_speedups_against_eager_fp32_and_pytorchs_best() -> None:
    rows = add_speedups(
        [
            row("torch", "fp32", 32, 24.0),
            row("torch", "bf16", 32, 75.0),
            row("torch-compile", "fp32", 32, 30.0),
            row("openvino", "int8-sym", 32, 150.0),
            row("onnxruntime", "int8", 1, 40.0),
        ]
    )
    ov = rows[3]
    assert ov.speedup_vs_torch_fp32 == pytest.approx(150 / 24)
    assert ov.speedup_vs_best_torch == pytest.approx(2.0) and ov.best_torch == "torch bf16"
    assert rows[0].speedup_vs_best_torch == pytest.approx(24 / 75)
    assert rows[4].speedup_vs_best_torch is None  # no PyTorch row at batch 1: not claimed


def test_bf16_and_missing_runtimes_are_skipped_with_the_reason() -> None:
    todo = plan(["torch", "onnxruntime", "openvino"], ["fp32", "int8-sym", "bf16"])
    skipped = {(s["backend"], s["precision"]): s["reason"] for s in todo.skipped}
    assert "ONNX Runtime's CPU provider has no BF16 path" in skipped["onnxruntime", "bf16"]
    has, why = bf16_here()
    if has:
        assert ("openvino", "bf16") in todo.variants and ("torch", "bf16") in todo.variants
    else:
        assert skipped["openvino", "bf16"] == why and skipped["torch", "bf16"] == why
        assert "no native BF16" in why
    assert ("torch", "int8-sym") not in todo.variants  # PyTorch rows: FP32 (+ BF16) only
    if HAS_OV:
        assert {("openvino", "fp32"), ("openvino", "int8-sym")} <= set(todo.variants)
    assert plan(["torch-compile"], ["int8"]).variants == (
        [("torch-compile", "fp32")] if HAS_TORCH else []
    )


@pytest.mark.skipif(
    not HAS_OV, reason="OpenVINO is not installed: pip install 'mrm-edge[openvino]'"
)
def test_bench_openvino_rows_with_fraction_of_peak(tmp_path: Path) -> None:
    from tests.benchmarks.test_roofline import roofline

    out = tmp_path / "bench.json"
    r = subprocess.run(
        [
            EXE, "bench", "--model", str(SHIPPED_MODEL_DIR), "--backends", "onnxruntime,openvino",
            "--precisions", "int8-sym,bf16", "--batch-sizes", "2", "--warmup", "1",
            "--repeats", "3", "--no-accuracy", "--no-streaming", "--json", str(out),
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    rows = {(x["backend"], x["precision"]): x for x in doc["results"]}
    assert {("onnxruntime", "int8-sym"), ("openvino", "int8-sym")} <= set(rows)
    doc = roofline(out, tmp_path / "roofline.json").doc
    rows = {(x["backend"], x["precision"]): x for x in doc["results"]}
    peaks = doc["machine"]["cpu_peak_gflops"]
    assert peaks["openvino"]["int8"] > 0 and peaks["onnxruntime"]["int8"] > 0
    # A BF16 CPU (AVX-512 BF16 or AMX) also runs the bf16 row, measured against its own peak.
    for (backend, precision), x in rows.items():
        kind = "bf16" if precision == "bf16" else "int8"
        assert x["gflops"] > 0 and f"{kind} GEMM peak (measured)" in x["peak_basis"]
        peak = peaks[backend][kind]
        if x["gflops"] <= peak:  # a fraction of a peak the row did not exceed
            assert 0 < x["fraction_of_peak"] <= 1
            assert x["fraction_of_peak"] == pytest.approx(x["gflops"] / peak)
        else:  # the GEMM probe fell below the model: reported as no valid peak, not > 100 %
            assert x["fraction_of_peak"] is None and "no valid peak" in x["peak_basis"]
    assert doc["machine"]["versions"]["openvino"]
    skipped = {(s["backend"], s["precision"]) for s in doc["skipped"]}
    assert ("onnxruntime", "bf16") in skipped
    assert ("openvino", "bf16") in skipped or ("openvino", "bf16") in rows
    assert "batch 2: fastest CPU row" in r.stdout


def test_streaming_runs_on_autos_cpu_pick() -> None:
    from mrm_edge.runtime.model import DeployedModel

    from mrm_edge.cli.bench.auto_variant import auto_cpu_variant

    deployed = DeployedModel.load(SHIPPED_MODEL_DIR)
    backend, variant, why = auto_cpu_variant(deployed)  # the suite runs probe-off
    assert (backend, variant) == ("onnxruntime", "int8")
    assert why.startswith("onnxruntime CPU int8 (model.int8.onnx): ")


def test_torch_bf16_autocast_refused_without_bf16_else_close_to_fp32() -> None:
    from mrm_edge.runtime.backends import BackendUnavailable

    from mrm_edge.cli.bench.torch_cpu import TorchAutocastBackend

    has, _ = bf16_here()
    backend = TorchAutocastBackend(SHIPPED_MODEL_DIR)
    if not has:
        with pytest.raises(BackendUnavailable, match="torch bf16: this CPU has no native BF16"):
            backend.activate()
        return
    if not HAS_TORCH:
        pytest.skip("torch is not installed (the `train` extra)")
    import numpy as np
    from mrm_edge.runtime.backends import TorchBackend

    from mrm_edge.card import ModelCard
    from mrm_edge.data.synthetic import make_windows

    x = make_windows(ModelCard.load(SHIPPED_MODEL_DIR), 4)
    with backend, TorchBackend(SHIPPED_MODEL_DIR) as ref:
        assert float(np.abs(backend.infer(x) - ref.infer(x)).max()) <= 2e-2
