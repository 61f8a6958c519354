"""What every bench row shares: the :class:`Result` row, the machine facts, the timing loop
and its summary, the input windows, the speed-ups and the JSON document."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mrm_edge.stats import percentiles_ms

Log = Callable[[str], None]


def quiet(_: str) -> None:
    """A :data:`Log` that says nothing."""


@dataclass
class Result:
    backend: str
    precision: str
    device: str
    batch_size: int
    throughput: float  # windows per second (median)
    latency_ms: dict[str, float]  # p50 / p90 / p99 of one call
    repeats: int
    speedup_vs_torch_fp32: float | None = None
    timing: str = "host wall clock (perf_counter) around a synchronous call"
    h2d_ms: dict[str, float] | None = None  # host-to-device copy, apart (GPU rows only)
    d2h_ms: dict[str, float] | None = None  # device-to-host copy of the output (GPU rows)
    end_to_end_ms: dict[str, float] | None = None  # copies + compute per call (GPU rows)
    speedup_vs_torch_cuda_fp32: float | None = None  # GPU rows: vs PyTorch eager FP32, same GPU
    max_abs_dp_vs_cpu_fp32: float | None = None  # GPU rows: output vs ONNX Runtime CPU FP32
    speedup_vs_best_torch: float | None = None  # CPU rows: vs the fastest PyTorch CPU row
    best_torch: str | None = None  # which PyTorch row that is (e.g. "torch bf16")
    compile_s: float | None = None  # torch.compile rows: compile time, not in throughput


def machine() -> dict[str, Any]:
    """CPU, cores, Python, platform, library versions and the date of this run."""
    from mrm_edge.runtime.cpu_timing import cpu_model_name, installed_versions

    cpu = cpu_model_name() or platform.processor() or platform.machine()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": installed_versions(
            ("mrm-edge", "torch", "onnxruntime", "onnxruntime-gpu", "openvino", "numpy", "tensorrt")
        ),
        "date": time.strftime("%Y-%m-%d"),
    }


def time_calls(fn: Callable[[], Any], warmup: int, repeats: int) -> np.ndarray:
    """Seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t0
    return times


def summarise(name: str, precision: str, device: str, batch: int, times: np.ndarray) -> Result:
    """A row from per-call seconds: throughput = batch / median; p50/p90/p99 in ms."""
    ms = times * 1e3
    return Result(
        backend=name,
        precision=precision,
        device=device,
        batch_size=batch,
        throughput=float(batch / np.median(times)),
        latency_ms=percentiles_ms(ms),
        repeats=len(times),
    )


def infer_all(backend: Any, x: np.ndarray, batch: int = 32) -> np.ndarray:
    """An active ``backend``'s output on every window of ``x``, ``batch`` at a time."""
    parts = [backend.infer(np.ascontiguousarray(x[i : i + batch])) for i in range(0, len(x), batch)]
    return np.concatenate([np.asarray(p) for p in parts])


def cpu_reference(onnx: Any, x: np.ndarray) -> np.ndarray:
    """ONNX Runtime CPU on ``onnx`` over every window of ``x``: the FP32 reference that GPU,
    served and reduced-precision outputs are compared with."""
    from mrm_edge.runtime.backends.onnxruntime import CPU, OnnxRuntimeBackend

    with OnnxRuntimeBackend(onnx, providers=[CPU]) as backend:
        return infer_all(backend, x)


def max_abs_dp(out: np.ndarray, reference: np.ndarray | None) -> float | None:
    """A GPU row's last output against ONNX Runtime CPU FP32 on the same windows."""
    if reference is None:
        return None
    return float(np.max(np.abs(np.asarray(out, np.float32) - reference[: len(out)])))


def add_speedups(results: list[Result]) -> list[Result]:
    """Set each row's speed-up against PyTorch eager FP32 (CPU) at the same batch size, each
    CPU row's against the fastest PyTorch CPU row there (eager FP32, BF16 autocast,
    torch.compile: PyTorch's best), and each GPU row's against PyTorch eager FP32 on the
    same GPU (torch-cuda fp32)."""

    def base(backend: str) -> dict[int, float]:
        return {
            r.batch_size: r.throughput
            for r in results
            if r.backend == backend and r.precision == "fp32"
        }

    cpu, gpu = base("torch"), base("torch-cuda")
    best: dict[int, Result] = {}
    for r in results:
        top = best.get(r.batch_size)
        is_torch = r.backend in ("torch", "torch-compile") and r.device == "cpu"
        if is_torch and (top is None or r.throughput > top.throughput):
            best[r.batch_size] = r
    for r in results:
        if r.batch_size in cpu:
            r.speedup_vs_torch_fp32 = r.throughput / cpu[r.batch_size]
        if r.device == "cpu" and r.batch_size in best:
            top = best[r.batch_size]
            r.speedup_vs_best_torch = r.throughput / top.throughput
            r.best_torch = f"{top.backend} {top.precision}"
        if r.device.startswith("cuda") and r.batch_size in gpu:
            r.speedup_vs_torch_cuda_fp32 = r.throughput / gpu[r.batch_size]
    return results


def to_json(
    results: list[Result], machine_extra: dict[str, Any] | None = None, **sections: Any
) -> dict[str, Any]:
    """The bench's JSON: machine facts (plus ``machine_extra``: the GPU), the rows, and the
    other ``sections``."""
    return {
        "machine": {**machine(), **(machine_extra or {})},
        "results": [asdict(r) for r in results],
        **sections,
    }
