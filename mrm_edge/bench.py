"""Model-level throughput and latency: PyTorch eager FP32 (the baseline) against the
exported variants on the backends available here.

Method: the same real-looking input for every variant (synthetic 12-lead ECG at
the model's rate, or windows the caller passes); per batch size, ``warmup``
untimed calls, then ``repeats`` timed calls; the figures are the median latency
(throughput = batch / median) and the p50/p90/p99 of the per-call latencies.
Host wall-clock time (``perf_counter``) around a synchronous call: on the CPU
this is the whole cost. Device-side timing with CUDA events, and the streaming
capacity, are the full ``mrm-edge bench``'s job (issue 5).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

VARIANT_FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}


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


def machine() -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            d: version(d)
            for d in ("mrm-edge", "torch", "onnxruntime", "onnxruntime-gpu", "numpy", "tensorrt")
        },
        "date": time.strftime("%Y-%m-%d"),
    }


def time_calls(fn: Callable[[], Any], warmup: int, repeats: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    times = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t0
    return times


def summarise(name: str, precision: str, device: str, batch: int, times: np.ndarray) -> Result:
    ms = times * 1e3
    return Result(
        backend=name,
        precision=precision,
        device=device,
        batch_size=batch,
        throughput=float(batch / np.median(times)),
        latency_ms={
            q: float(np.percentile(ms, p)) for q, p in (("p50", 50), ("p90", 90), ("p99", 99))
        },
        repeats=len(times),
    )


def input_windows(card, n: int, seed: int = 0) -> np.ndarray:
    from mrm_edge.export.pipeline import synthetic_windows

    return synthetic_windows(card, n, seed).x


def bench_model(
    model_dir: Path,
    variants: list[tuple[str, str]],
    batch_sizes: list[int],
    warmup: int = 3,
    repeats: int = 10,
    log: Callable[[str], None] = lambda s: None,
) -> list[Result]:
    """Run every (backend, precision) in ``variants`` at every batch size.

    backend: ``torch`` or ``onnxruntime``; precision: ``fp32``/``fp16``/``int8``.
    """
    from mrm_edge.card import ModelCard

    card = ModelCard.load(model_dir)
    x_all = input_windows(card, max(batch_sizes))
    results: list[Result] = []
    for backend, precision in variants:
        infer, device, close = _runner(model_dir, backend, precision)
        try:
            for b in batch_sizes:
                x = np.ascontiguousarray(x_all[:b])
                times = time_calls(lambda x=x, f=infer: f(x), warmup, repeats)
                r = summarise(backend, precision, device, b, times)
                results.append(r)
                log(f"{backend} {precision} batch {b}: {r.throughput:.1f} windows/s")
        finally:
            close()
    base = {
        r.batch_size: r.throughput
        for r in results
        if r.backend == "torch" and r.precision == "fp32"
    }
    for r in results:
        if r.batch_size in base:
            r.speedup_vs_torch_fp32 = r.throughput / base[r.batch_size]
    return results


def _runner(model_dir: Path, backend: str, precision: str):
    if backend == "torch":
        if precision != "fp32":
            raise ValueError("torch runs FP32 on the CPU; FP16 needs CUDA")
        import torch

        from mrm_edge.checkpoint import inference_model, load_model_dir

        net, card = load_model_dir(model_dir, "cpu")
        model = inference_model(net, card)

        def infer(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return model(torch.from_numpy(x)).numpy()

        return infer, "cpu", lambda: None
    if backend == "onnxruntime":
        from mrm_edge.runtime.backends.onnxruntime import OnnxRuntimeBackend

        path = Path(model_dir) / VARIANT_FILES[precision]
        if not path.is_file():
            raise ValueError(f"{path}: not exported (run `mrm-edge export` first)")
        be = OnnxRuntimeBackend(path, providers=["CPUExecutionProvider"])
        be.activate()
        return be.infer, "cpu", be.deactivate
    raise ValueError(f"unknown backend {backend!r}; expected torch or onnxruntime")


def to_json(results: list[Result]) -> dict[str, Any]:
    return {"machine": machine(), "results": [asdict(r) for r in results]}


__all__ = ["Result", "bench_model", "machine", "to_json"]
