"""GPU rows of `mrm-edge bench` (mrm_edge.bench_gpu).

TensorRT runs against the TEST DOUBLES (FakeTensorRT + FakeCudaRuntime, tests/fakes): a real
engine-building and engine-lookup path, real ONNX graphs executed by the fake engine through
ONNX Runtime, fake device memory and streams. The fake device clock makes every copy or
kernel cost a fixed, label-dependent time, so the assertions below check WHICH work lies
between the timing events (plumbing), never how fast anything is.

ONNX Runtime CUDA: only its refusals run here (this onnxruntime has no CUDA provider; a
session that falls back to the CPU is a real session). The real-GPU tests at the bottom are
skipped without CUDA and have never run on this project's machines.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.backends.cuda import api as cuda_api
from mrm_edge.runtime.backends.cuda import resources as cu

from mrm_edge.artifacts import SHIPPED_MODEL_DIR
from mrm_edge.cli.bench.common import Result, add_speedups, to_json
from mrm_edge.cli.bench.flops import add_flops
from mrm_edge.cli.bench.gpu import GpuUnavailable, bench_onnxruntime_cuda, bench_tensorrt
from mrm_edge.cli.bench.gpu_run import run_gpu
from mrm_edge.cli.bench.peak import peak_for
from tests.fakes.tensorrt import FakeCudaRuntime, FakeDeviceProp, FakeTensorRT
from tests.runtime.test_model import make_model_dir

EXE = str(Path(sys.executable).parent / "mrm-edge")
SHIPPED = SHIPPED_MODEL_DIR
PROFILE = (1, 8, 16)
# Fake device time per op (ms), by kind: distinct so that each interval is identifiable.
COST = {"HostToDevice": 0.5, "trt exec": 2.0, "DeviceToHost": 0.125}


def op_ms(label: str) -> float:
    return next((ms for key, ms in COST.items() if label.startswith(key)), 1000.0)


def _has_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _has_ort_cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


NO_CUDA = "no CUDA device here (the project's machines have no GPU): never executed"


@pytest.fixture
def rig(tmp_path: Path):
    """A model directory (card + FP32/FP16 ONNX with sidecars) holding an FP16 engine built
    by the real builder code through the fakes, for the fake GPU."""
    from mrm_edge.export.tensorrt.builder import build_or_load
    from mrm_edge.export.tensorrt.plan import BuildOptions
    from mrm_edge.runtime.backends.tensorrt.capability import probe_gpu, probe_tensorrt

    d = make_model_dir(tmp_path / "m", precisions=("fp32", "fp16"))
    cudart = FakeCudaRuntime(op_ms=op_ms)
    trt = FakeTensorRT("10.3.0", cuda=cudart)  # executes the embedded ONNX with ORT
    gpu, _ = probe_gpu(0, cudart)
    build_or_load(
        d / "model.fp16.onnx", d, BuildOptions("fp16", PROFILE), gpu, probe_tensorrt(trt), trt
    )
    return d, trt, cudart


def cpu_reference(d: Path, n: int) -> np.ndarray:
    from mrm_edge.card import ModelCard
    from mrm_edge.cli.bench.common import input_windows
    from mrm_edge.cli.bench.gpu_run import _cpu_reference

    ref = _cpu_reference(d, input_windows(ModelCard.load(d), n))
    assert ref is not None
    return ref


def test_tensorrt_rows_time_each_interval_apart_and_skip_batches_outside_the_profile(
    rig,
) -> None:
    d, trt, cudart = rig
    live = cudart.live()
    rows, skipped = bench_tensorrt(
        d, "fp16", [1, 8, 32], warmup=1, repeats=3, reference=cpu_reference(d, 32),
        trt=trt, cudart=cudart,
    )  # fmt: skip
    assert [r.batch_size for r in rows] == [1, 8]
    (s,) = skipped
    assert (s["backend"], s["precision"], s["batch_size"]) == ("tensorrt", "fp16", 32)
    assert "outside the engine's profile 1..16" in s["reason"] and "--batch" in s["reason"]
    for r in rows:
        assert (r.backend, r.precision, r.device, r.repeats) == ("tensorrt", "fp16", "cuda:0", 3)
        assert "CUDA events" in r.timing and "pinned" in r.timing
        # The compute interval holds exactly the enqueue; the copies are reported apart.
        assert r.latency_ms == {"p50": 2.0, "p90": 2.0, "p99": 2.0}
        assert r.h2d_ms["p50"] == 0.5 and r.d2h_ms["p50"] == 0.125
        assert r.end_to_end_ms["p50"] == pytest.approx(2.625)
        assert r.throughput == pytest.approx(r.batch_size / 2e-3)
        # The engine computed the real FP16 graph on the real input: close to ORT CPU FP32.
        assert 0 <= r.max_abs_dp_vs_cpu_fp32 < 1e-2
    engine = trt.engines[-1]
    shapes = [shape for _, _, shape in engine.executions]
    assert shapes == [(1, 12, 1000)] * 4 + [(8, 12, 1000)] * 4  # warmup + repeats per batch
    assert cudart.live() == live  # buffers, stream and events freed


def test_tensorrt_without_an_engine_for_this_gpu_says_how_to_build_one(rig) -> None:
    d, _, _ = rig
    other = FakeCudaRuntime([FakeDeviceProp(b"NVIDIA H100 80GB HBM3", 9, 0)])
    with pytest.raises(GpuUnavailable) as e:
        bench_tensorrt(d, "fp16", [1], trt=FakeTensorRT("10.3.0", cuda=other), cudart=other)
    msg = str(e.value)
    assert "no engine for NVIDIA H100 80GB HBM3 / TensorRT 10.3.0" in msg
    assert "built for Fake GPU" in msg and "mrm-edge export --model" in msg and "\n" not in msg
    _, trt, cudart = rig
    with pytest.raises(GpuUnavailable, match=r"tensorrt int8: .*none built.*--int8"):
        bench_tensorrt(d, "int8", [1], trt=trt, cudart=cudart)


def test_tensorrt_an_engine_the_backend_refuses_is_a_skip_with_its_reason(rig) -> None:
    d, trt, cudart = rig
    (engine,) = d.glob("*.engine")
    engine.write_bytes(engine.read_bytes() + b"!")
    with pytest.raises(GpuUnavailable, match=r"^tensorrt fp16: .*SHA-256 differs") as e:
        bench_tensorrt(d, "fp16", [1], trt=trt, cudart=cudart)
    assert "\n" not in str(e.value)
    assert cudart.live() == {k: 0 for k in cudart.live()}  # nothing left allocated


def test_elapsed_time_needs_timing_events_that_have_completed() -> None:
    cudart = cuda_api.as_cuda_api(FakeCudaRuntime(op_ms=op_ms))
    with (
        cu.Stream(cudart) as s,
        cu.Event(cudart) as plain,
        cu.Event(cudart, timing=True) as a,
        cu.Event(cudart, timing=True) as b,
    ):
        a.record(s)
        b.record(s)
        with pytest.raises(cuda_api.CudaError, match="cudaEventElapsedTime: cudaErrorNotReady"):
            cudart.event_elapsed_ms(a.raw, b.raw)  # recorded, not yet run: the host did not wait
        b.synchronize()
        assert cudart.event_elapsed_ms(a.raw, b.raw) == 0.0
        plain.record(s)
        plain.synchronize()
        with pytest.raises(cuda_api.CudaError, match="cudaErrorInvalidResourceHandle"):
            cudart.event_elapsed_ms(a.raw, plain.raw)  # created with cudaEventDisableTiming


@pytest.mark.skipif(_has_ort_cuda(), reason="this onnxruntime has the CUDA provider")
def test_onnxruntime_cuda_is_refused_without_the_provider(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    with pytest.raises(GpuUnavailable, match=r"has no CUDAExecutionProvider.*onnxruntime-gpu"):
        bench_onnxruntime_cuda(d, "fp32", [1])


@pytest.mark.skipif(_has_ort_cuda(), reason="this onnxruntime has the CUDA provider")
def test_onnxruntime_cuda_refuses_a_session_that_fell_back_to_the_cpu(
    tmp_path: Path, monkeypatch
) -> None:
    import onnxruntime as ort

    # Claim the provider exists: this build then creates a real session that silently runs
    # on the CPU, which is exactly what must not be timed as a GPU row.
    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    d = make_model_dir(tmp_path / "m")
    with pytest.raises(GpuUnavailable, match=r"fell back to \['CPUExecutionProvider'\]"):
        bench_onnxruntime_cuda(d, "fp32", [1])
    with pytest.raises(GpuUnavailable, match="int8: not benchmarked"):
        bench_onnxruntime_cuda(d, "int8", [1])


@pytest.mark.skipif(_has_cuda(), reason="a CUDA device is present")
def test_run_gpu_rows_and_skips_with_reasons_then_flops_and_json(rig) -> None:
    d, trt, cudart = rig
    run = run_gpu(
        d, ["torch-cuda", "onnxruntime-cuda", "tensorrt"], ["fp16", "int8"], [1, 32],
        warmup=0, repeats=3, trt=trt, cudart=cudart,
    )  # fmt: skip
    assert [(r.backend, r.precision, r.batch_size) for r in run.results] == [
        ("tensorrt", "fp16", 1)
    ]
    why = {(s["backend"], s["precision"], s.get("batch_size")): s["reason"] for s in run.skipped}
    assert set(why) == {
        ("torch-cuda", None, None),
        ("onnxruntime-cuda", None, None),
        ("tensorrt", "fp16", 32),
        ("tensorrt", "int8", None),
    }
    assert "CUDA" in why["torch-cuda", None, None]
    assert "mrm-edge export" in why["tensorrt", "int8", None]
    # No PyTorch CUDA here: the peak is not measured, and the JSON says so.
    assert (
        run.machine["gpu_peak_tflops"] is None
        and "peak not measured" in run.machine["gpu_peak_note"]
    )
    rows = add_flops(add_speedups(run.results), 120)
    (r,) = rows
    assert r.gflops == pytest.approx(120 * r.throughput / 1e9)
    assert r.fraction_of_peak is None and r.speedup_vs_torch_cuda_fp32 is None
    doc = json.loads(json.dumps(to_json(rows, run.machine, skipped=run.skipped)))
    row = doc["results"][0]
    for key in ("h2d_ms", "d2h_ms", "end_to_end_ms", "latency_ms", "gflops", "timing"):
        assert row[key] is not None, key
    assert doc["machine"]["gpu_peak_tflops"] is None and doc["machine"]["cores"] >= 1


def test_fraction_of_peak_uses_the_peak_of_the_rows_precision() -> None:
    lat = {"p50": 1.0, "p90": 1.0, "p99": 1.0}
    rows = [
        Result("torch-cuda", "fp32", "cuda:0", 256, 1000.0, lat, 10),
        Result("tensorrt", "fp16", "cuda:0", 256, 8000.0, lat, 10),
        Result("tensorrt", "int8", "cuda:0", 256, 9000.0, lat, 10),
        Result("onnxruntime", "fp32", "cpu", 256, 100.0, lat, 10),
    ]
    peaks = {"fp32": 50.0, "tf32": 400.0, "fp16": 800.0}
    add_flops(add_speedups(rows), 10**9, peaks)  # 1 GFLOP per window
    gpu32, trt16, trt8, cpu = rows
    assert gpu32.gflops == 1000.0 and gpu32.fraction_of_peak == pytest.approx(1000 / 400e3)
    assert trt16.fraction_of_peak == pytest.approx(8000 / 800e3)
    assert "no INT8 peak" in trt8.peak_basis and trt8.fraction_of_peak == pytest.approx(9 / 800)
    assert cpu.gflops == 100.0 and cpu.fraction_of_peak is None  # no CPU peak measured
    assert trt16.speedup_vs_torch_cuda_fp32 == 8.0 and cpu.speedup_vs_torch_cuda_fp32 is None
    assert peak_for("fp16", {})[0] is None


def test_cli_bench_gpu_backends_skipped_with_reasons_and_cpu_rows_carry_gflops(
    tmp_path: Path,
) -> None:
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [
            EXE, "bench", "--model", str(SHIPPED), "--backends",
            "onnxruntime,torch-cuda,onnxruntime-cuda,tensorrt", "--precisions", "fp32",
            "--batch-sizes", "1", "--warmup", "0", "--repeats", "3", "--no-accuracy",
            "--no-streaming", "--json", str(out),
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["flops"]["per_window"] > 1e9 and "Conv" in doc["flops"]["by_op"]
    rows = doc["results"]
    assert {(x["backend"], x["batch_size"]) for x in rows} >= {("onnxruntime", 1)}
    for x in rows:
        assert x["gflops"] == pytest.approx(doc["flops"]["per_window"] * x["throughput"] / 1e9)
    skipped = {s["backend"]: s["reason"] for s in doc["skipped"]}
    if not _has_cuda():
        assert "torch-cuda" in skipped and "CUDA" in skipped["torch-cuda"]
    if not _has_ort_cuda():
        assert "CUDAExecutionProvider" in skipped["onnxruntime-cuda"]
    assert skipped.get("tensorrt") or any(x["backend"] == "tensorrt" for x in rows)
    ort_row = next(x for x in rows if x["backend"] == "onnxruntime")
    assert f"{ort_row['gflops']:.1f}" in r.stdout  # the table's GFLOP/s column


# ---------------------------------------------------------------- real GPU (never run here)


@pytest.mark.skipif(not _has_cuda(), reason=NO_CUDA)
def test_real_gpu_torch_cuda_rows_and_peak(tmp_path: Path) -> None:
    from mrm_edge.cli.bench.peak import measure_gpu_peak
    from mrm_edge.cli.bench.torch_cuda import bench_torch_cuda

    ref = cpu_reference(SHIPPED, 8)
    rows = bench_torch_cuda(SHIPPED, ["fp32", "fp16"], [1, 8], 1, 3, reference=ref)
    assert {(r.precision, r.batch_size) for r in rows} == {
        ("fp32", 1), ("fp32", 8), ("fp16", 1), ("fp16", 8),
    }  # fmt: skip
    for r in rows:
        assert r.throughput > 0 and r.h2d_ms["p50"] > 0 and r.d2h_ms["p50"] > 0
        assert r.end_to_end_ms["p50"] >= r.latency_ms["p50"]
        assert r.max_abs_dp_vs_cpu_fp32 < (1e-3 if r.precision == "fp32" else 2e-2)
    peaks = measure_gpu_peak(n=2048, repeats=3)
    assert peaks["fp16"] > 0 and peaks["fp32"] > 0 and peaks["gpu"]


@pytest.mark.skipif(not _has_ort_cuda(), reason="no CUDAExecutionProvider: never executed")
def test_real_gpu_onnxruntime_cuda_rows() -> None:
    ref = cpu_reference(SHIPPED, 8)
    rows = bench_onnxruntime_cuda(SHIPPED, "fp32", [1, 8], 1, 3, reference=ref)
    assert [r.batch_size for r in rows] == [1, 8]
    for r in rows:
        assert r.device == "cuda:0" and r.h2d_ms["p50"] > 0 and r.d2h_ms["p50"] > 0
        assert r.max_abs_dp_vs_cpu_fp32 < 1e-3
