"""GPU rows of `mrm-edge bench` (mrm_edge.cli.bench.gpu, gpu_run, torch_cuda).

TensorRT runs against the TEST DOUBLES (FakeTensorRT + FakeCudaRuntime, tests/fakes): a real
engine-building and engine-lookup path, real ONNX graphs executed by the fake engine through
ONNX Runtime, fake device memory and streams. The fake device clock makes every copy or
kernel cost a fixed, label-dependent time, so the assertions below check WHICH work lies
between the timing events (plumbing), never how fast anything is.

ONNX Runtime CUDA (the monitor's OnnxRuntimeBackend): only its refusals run here (this
onnxruntime has no CUDA provider; a session that falls back to the CPU is a real session).
The real-GPU tests at the bottom are skipped without CUDA and have never run on this
project's machines.
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
from mrm_edge.runtime.facts import probe_machine

from mrm_edge.artifacts import SHIPPED_MODEL_DIR
from mrm_edge.cli.bench.common import add_speedups, to_json
from mrm_edge.cli.bench.gpu import GpuUnavailable, bench_gpu_backend
from mrm_edge.cli.bench.gpu_run import run_gpu
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
    from mrm_edge.cli.bench import common
    from mrm_edge.data.synthetic import make_windows

    return common.cpu_reference(d / "model.onnx", make_windows(ModelCard.load(d), n))


def test_tensorrt_rows_time_each_interval_apart_and_skip_batches_outside_the_profile(
    rig,
) -> None:
    d, trt, cudart = rig
    live = cudart.live()
    rows, skipped = bench_gpu_backend(
        "tensorrt", d, "fp16", [1, 8, 32], warmup=1, repeats=3, reference=cpu_reference(d, 32),
        facts=probe_machine(trt, cudart),
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
    facts = probe_machine(FakeTensorRT("10.3.0", cuda=other), other)
    with pytest.raises(GpuUnavailable) as e:
        bench_gpu_backend("tensorrt", d, "fp16", [1], facts=facts)
    msg = str(e.value)
    assert "no engine for NVIDIA H100 80GB HBM3 / TensorRT 10.3.0" in msg
    assert "built for Fake GPU" in msg and "mrm-edge export --model" in msg and "\n" not in msg
    _, trt, cudart = rig
    with pytest.raises(GpuUnavailable, match=r"tensorrt int8: .*none built.*--int8"):
        bench_gpu_backend("tensorrt", d, "int8", [1], facts=probe_machine(trt, cudart))


def test_tensorrt_an_engine_the_backend_refuses_is_a_skip_with_its_reason(rig) -> None:
    d, trt, cudart = rig
    (engine,) = d.glob("*.engine")
    engine.write_bytes(engine.read_bytes() + b"!")
    with pytest.raises(GpuUnavailable, match=r"^tensorrt fp16: .*SHA-256 differs") as e:
        bench_gpu_backend("tensorrt", d, "fp16", [1], facts=probe_machine(trt, cudart))
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
    no_provider = r"CUDAExecutionProvider not in this onnxruntime build.*onnxruntime-gpu"
    with pytest.raises(GpuUnavailable, match=no_provider):
        bench_gpu_backend("onnxruntime-cuda", d, "fp32", [1])


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
    fell_back = r"initialise CUDAExecutionProvider \(running on \['CPUExecutionProvider'\]"
    with pytest.raises(GpuUnavailable, match=fell_back):
        bench_gpu_backend("onnxruntime-cuda", d, "fp32", [1])
    with pytest.raises(GpuUnavailable, match="int8: not benchmarked"):
        bench_gpu_backend("onnxruntime-cuda", d, "int8", [1])


@pytest.mark.skipif(_has_cuda(), reason="a CUDA device is present")
def test_run_gpu_rows_and_skips_with_reasons_then_json(rig, tmp_path: Path) -> None:
    d, trt, cudart = rig
    from mrm_edge.cli.bench.variants import plan

    facts = probe_machine(trt, cudart)  # as the command: plan's skips, then the GPU rows
    todo = plan(["torch-cuda", "onnxruntime-cuda", "tensorrt"], ["fp16", "int8"], facts)
    run = run_gpu(d, todo.gpu_backends, ["fp16", "int8"], [1, 32], warmup=0, repeats=3, facts=facts)
    run.skipped = todo.skipped + run.skipped
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
    rows = add_speedups(run.results)
    assert rows[0].speedup_vs_torch_cuda_fp32 is None
    doc = json.loads(json.dumps(to_json(rows, run.machine, skipped=run.skipped)))
    row = doc["results"][0]
    for key in ("h2d_ms", "d2h_ms", "end_to_end_ms", "latency_ms", "timing"):
        assert row[key] is not None, key
    assert doc["machine"]["cores"] >= 1 and "gpu" not in doc["machine"]  # no PyTorch CUDA
    # Its roofline: no PyTorch CUDA here, so the GPU peak is not measured, and it says so.
    from tests.benchmarks.test_roofline import roofline

    bench_json = tmp_path / "bench.json"
    bench_json.write_text(json.dumps(doc))
    doc = roofline(bench_json, tmp_path / "roofline.json", "--model", str(d)).doc
    (row,) = doc["results"]
    assert row["gflops"] == pytest.approx(doc["flops"]["per_window"] * row["throughput"] / 1e9)
    assert row["fraction_of_peak"] is None
    machine = doc["machine"]
    assert machine["gpu_peak_tflops"] is None and "peak not measured" in machine["gpu_peak_note"]


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
    rows = doc["results"]
    assert {(x["backend"], x["batch_size"]) for x in rows} >= {("onnxruntime", 1)}
    skipped = {s["backend"]: s["reason"] for s in doc["skipped"]}
    if not _has_cuda():
        assert "torch-cuda" in skipped and "CUDA" in skipped["torch-cuda"]
    if not _has_ort_cuda():
        assert "CUDAExecutionProvider" in skipped["onnxruntime-cuda"]
    assert skipped.get("tensorrt") or any(x["backend"] == "tensorrt" for x in rows)
    # Its roofline (python -m benchmarks.roofline): FLOPs per window, GFLOP/s per row.
    from tests.benchmarks.test_roofline import roofline

    done = roofline(out, tmp_path / "roofline.json", "--no-peaks")
    doc = done.doc
    assert doc["flops"]["per_window"] > 1e9 and "Conv" in doc["flops"]["by_op"]
    for x in doc["results"]:
        assert x["gflops"] == pytest.approx(doc["flops"]["per_window"] * x["throughput"] / 1e9)
    ort_row = next(x for x in doc["results"] if x["backend"] == "onnxruntime")
    assert f"{ort_row['gflops']:.1f}" in done.stdout  # the table's GFLOP/s column


# ---------------------------------------------------------------- real GPU (never run here)


@pytest.mark.skipif(not _has_cuda(), reason=NO_CUDA)
def test_real_gpu_torch_cuda_rows(tmp_path: Path) -> None:
    from mrm_edge.cli.bench.torch_cuda import bench_torch_cuda

    ref = cpu_reference(SHIPPED, 8)
    rows = [
        r
        for p in ("fp32", "fp16")
        for r in bench_torch_cuda(SHIPPED, p, [1, 8], 1, 3, reference=ref)
    ]
    assert {(r.precision, r.batch_size) for r in rows} == {
        ("fp32", 1), ("fp32", 8), ("fp16", 1), ("fp16", 8),
    }  # fmt: skip
    for r in rows:
        assert r.throughput > 0 and r.h2d_ms["p50"] > 0 and r.d2h_ms["p50"] > 0
        assert r.end_to_end_ms["p50"] >= r.latency_ms["p50"]
        assert r.max_abs_dp_vs_cpu_fp32 < (1e-3 if r.precision == "fp32" else 2e-2)


@pytest.mark.skipif(not _has_ort_cuda(), reason="no CUDAExecutionProvider: never executed")
def test_real_gpu_onnxruntime_cuda_rows() -> None:
    ref = cpu_reference(SHIPPED, 8)
    rows, _ = bench_gpu_backend("onnxruntime-cuda", SHIPPED, "fp32", [1, 8], 1, 3, reference=ref)
    assert [r.batch_size for r in rows] == [1, 8]
    for r in rows:
        assert r.device == "cuda:0" and "OnnxRuntimeBackend.infer" in r.timing
        assert r.max_abs_dp_vs_cpu_fp32 < 1e-3
