"""The roofline of a bench run (python -m benchmarks.roofline): the measured peaks, and each
row's achieved GFLOP/s and fraction of its peak (the FLOP count: tests/export/test_cost.py)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks.roofline.flops import add_flops
from benchmarks.roofline.peaks import peak_for
from mrm_edge.artifacts import SHIPPED_MODEL_DIR
from mrm_edge.cli.bench.common import Result, add_speedups
from mrm_edge.cli.bench.peaks import cpu_peak_for, measure_cpu_peaks

SHIPPED = SHIPPED_MODEL_DIR
ROOT = Path(__file__).resolve().parents[2]
HAS_OV = importlib.util.find_spec("openvino") is not None


def roofline(bench_json: Path, out: Path, *args: str) -> SimpleNamespace:
    """``python -m benchmarks.roofline`` on a bench's JSON, from the repository root: the
    document it wrote and its stdout."""
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.roofline", str(bench_json), "--json", str(out), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return SimpleNamespace(doc=json.loads(out.read_text()), stdout=r.stdout)


def test_cpu_peaks_are_measured_per_runtime() -> None:
    runtimes = ["onnxruntime", *(["openvino"] if HAS_OV else [])]
    peaks = measure_cpu_peaks(runtimes, bf16=False, n=256, repeats=2)
    assert peaks["errors"] == {}
    assert peaks["onnxruntime"]["fp32"] > 0 and peaks["onnxruntime"]["int8"] > 0
    value, basis = cpu_peak_for("onnxruntime", "int8", peaks)
    assert (
        value == peaks["onnxruntime"]["int8"] and basis == "onnxruntime int8 GEMM peak (measured)"
    )
    assert cpu_peak_for("torch", "fp32", peaks) == (None, "torch fp32 GEMM peak (measured)")
    if HAS_OV:
        assert cpu_peak_for("openvino", "int8-sym", peaks)[0] == peaks["openvino"]["int8"]


def test_a_row_above_its_measured_peak_gets_no_fraction() -> None:
    """A GEMM probe slower than the model is no peak: no fraction above 100 % is printed."""
    lat = {"p50": 1.0, "p90": 1.0, "p99": 1.0}
    below = asdict(Result("onnxruntime", "int8", "cpu", 32, 50.0, lat, 5))
    above = asdict(Result("onnxruntime", "int8", "cpu", 32, 300.0, lat, 5))
    add_flops([below, above], 10**9, cpu_peaks={"onnxruntime": {"int8": 100.0}})
    assert below["fraction_of_peak"] == pytest.approx(0.5)
    assert below["peak_basis"] == "onnxruntime int8 GEMM peak (measured)"
    assert above["gflops"] == 300.0 and above["fraction_of_peak"] is None
    assert "100 GFLOP/s, below this row (no valid peak)" in above["peak_basis"]


def test_fraction_of_peak_uses_the_peak_of_the_rows_precision() -> None:
    lat = {"p50": 1.0, "p90": 1.0, "p99": 1.0}
    rows = [
        Result("torch-cuda", "fp32", "cuda:0", 256, 1000.0, lat, 10),
        Result("tensorrt", "fp16", "cuda:0", 256, 8000.0, lat, 10),
        Result("tensorrt", "int8", "cuda:0", 256, 9000.0, lat, 10),
        Result("onnxruntime", "fp32", "cpu", 256, 100.0, lat, 10),
    ]
    peaks = {"fp32": 50.0, "tf32": 400.0, "fp16": 800.0}
    docs = add_flops([asdict(r) for r in add_speedups(rows)], 10**9, peaks)  # 1 GFLOP/window
    gpu32, trt16, trt8, cpu = docs
    assert gpu32["gflops"] == 1000.0
    assert gpu32["fraction_of_peak"] == pytest.approx(1000 / 400e3)
    assert trt16["fraction_of_peak"] == pytest.approx(8000 / 800e3)
    assert "no INT8 peak" in trt8["peak_basis"]
    assert trt8["fraction_of_peak"] == pytest.approx(9 / 800)
    assert cpu["gflops"] == 100.0 and cpu["fraction_of_peak"] is None  # no CPU peak measured
    assert trt16["speedup_vs_torch_cuda_fp32"] == 8.0
    assert cpu["speedup_vs_torch_cuda_fp32"] is None
    assert peak_for("fp16", {})[0] is None


def _has_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _has_cuda(), reason="no CUDA device here: never executed")
def test_real_gpu_peak() -> None:
    from benchmarks.roofline.peaks import measure_gpu_peak

    peaks = measure_gpu_peak(n=2048, repeats=3)
    assert peaks["fp16"] > 0 and peaks["fp32"] > 0 and peaks["gpu"]
