"""Model-level throughput and latency: PyTorch eager FP32 (the baseline) against the
exported variants on the backends available here.

Method: the same real-looking input for every variant (synthetic 12-lead ECG at
the model's rate, or windows the caller passes); per batch size, ``warmup``
untimed calls, then ``repeats`` timed calls; the figures are the median latency
(throughput = batch / median) and the p50/p90/p99 of the per-call latencies.
Host wall-clock time (``perf_counter``) around a synchronous call: on the CPU
this is the whole cost.

Accuracy agreement (:func:`accuracy`): every variant against PyTorch eager FP32 on the
same real windows (held-out labelled windows with ``--data``, else synthetic ones): max
|Δp|, label agreement at the card's thresholds, and macro-AUC where labels exist.

GPU backends (``torch-cuda``, ``onnxruntime-cuda``, ``tensorrt``) are probed
(:func:`gpu_unavailable`); when unavailable they are reported under ``skipped`` with the
reason. Only ``torch-cuda`` has a timing path (:func:`bench_torch_cuda`: FP32 and FP16
autocast, CUDA events, host-to-device copy timed apart), and it is NOT EXECUTED on this
project's machine (no GPU). ONNX Runtime CUDA and TensorRT are always skipped, saying so.
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
    timing: str = "host wall clock (perf_counter) around a synchronous call"
    h2d_ms: dict[str, float] | None = None  # host-to-device copy, apart (GPU rows only)


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
    return add_speedups(results)


def add_speedups(results: list[Result]) -> list[Result]:
    """Set each row's speed-up against PyTorch eager FP32 (CPU) at the same batch size."""
    base = {
        r.batch_size: r.throughput
        for r in results
        if r.backend == "torch" and r.precision == "fp32"
    }
    for r in results:
        if r.batch_size in base:
            r.speedup_vs_torch_fp32 = r.throughput / base[r.batch_size]
    return results


def _percentiles_ms(ms: np.ndarray) -> dict[str, float]:
    return {q: float(np.percentile(ms, p)) for q, p in (("p50", 50), ("p90", 90), ("p99", 99))}


def bench_torch_cuda(
    model_dir: Path,
    precisions: list[str],
    batch_sizes: list[int],
    warmup: int = 3,
    repeats: int = 10,
    log: Callable[[str], None] = lambda s: None,
) -> list[Result]:
    """PyTorch eager on CUDA: FP32, and FP16 by autocast.

    NOT EXECUTED on this project's machine (no GPU): written to the torch.cuda API
    documentation, never run. Timing: CUDA events on the current stream; the model's
    device time is the figure (throughput = batch / median), the host-to-device copy of
    the batch (pinned memory, non-blocking) is timed apart in ``h2d_ms``.
    """
    import torch

    from mrm_edge.card import ModelCard
    from mrm_edge.checkpoint import inference_model, load_model_dir

    card = ModelCard.load(model_dir)
    net, _ = load_model_dir(model_dir, "cuda")
    model = inference_model(net, card).to("cuda").eval()
    x_all = input_windows(card, max(batch_sizes))
    results: list[Result] = []
    for precision in precisions:
        if precision not in ("fp32", "fp16"):
            continue  # INT8 is an ONNX/TensorRT variant
        for b in batch_sizes:
            host = torch.from_numpy(np.ascontiguousarray(x_all[:b])).pin_memory()
            dev = torch.empty(host.shape, dtype=host.dtype, device="cuda")

            def step(host=host, dev=dev, precision=precision) -> tuple[float, float]:
                e0, e1, e2 = (torch.cuda.Event(enable_timing=True) for _ in range(3))
                e0.record()
                dev.copy_(host, non_blocking=True)
                e1.record()
                with (
                    torch.inference_mode(),
                    torch.autocast("cuda", dtype=torch.float16, enabled=precision == "fp16"),
                ):
                    model(dev)
                e2.record()
                e2.synchronize()
                return e0.elapsed_time(e1), e1.elapsed_time(e2)

            for _ in range(warmup):
                step()
            ms = np.array([step() for _ in range(repeats)])  # [repeats, (h2d, compute)]
            r = summarise("torch-cuda", precision, "cuda:0", b, ms[:, 1] / 1e3)
            r.timing = "CUDA events: model device time; host-to-device copy apart (h2d_ms)"
            r.h2d_ms = _percentiles_ms(ms[:, 0])
            results.append(r)
            log(f"torch-cuda {precision} batch {b}: {r.throughput:.1f} windows/s")
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


CPU_BACKENDS = ("torch", "onnxruntime")
GPU_BACKENDS = ("torch-cuda", "onnxruntime-cuda", "tensorrt")


def check_backends(names: list[str]) -> None:
    """One-line ValueError for a backend name the bench does not know."""
    known = CPU_BACKENDS + GPU_BACKENDS
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(
            f"--backends: unknown backend(s) {', '.join(map(repr, bad))}; "
            f"expected a comma-separated list of {', '.join(known)}"
        )
    if not names:
        raise ValueError("--backends: empty list")


def check_precisions(names: list[str]) -> None:
    bad = [n for n in names if n not in VARIANT_FILES]
    if bad or not names:
        raise ValueError(
            f"--precisions: unknown precision(s) {', '.join(map(repr, bad)) or '(none)'}; "
            f"expected a comma-separated list of {', '.join(VARIANT_FILES)}"
        )


def gpu_unavailable(backend: str) -> str | None:
    """Why the GPU ``backend`` is not benchmarked here, or None (torch-cuda with a CUDA
    device: :func:`bench_torch_cuda`). ONNX Runtime CUDA and TensorRT timing is not
    implemented in this version, so they always have a reason."""
    import importlib.util

    def has(mod: str) -> bool:
        try:
            return importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):
            return False

    if backend == "torch-cuda":
        if not has("torch"):
            return "torch is not installed"
        import torch

        if not torch.cuda.is_available():
            return f"torch {torch.__version__} sees no CUDA device"
        return None
    elif backend == "onnxruntime-cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return "this onnxruntime build has no CUDAExecutionProvider (install onnxruntime-gpu)"
    elif backend == "tensorrt" and not has("tensorrt"):
        return "tensorrt is not installed (the `tensorrt` extra)"
    return "GPU benchmarking is not implemented in this version (never executed: no GPU here)"


def accuracy(
    model_dir: Path,
    variants: list[tuple[str, str]],
    x: np.ndarray,
    y: np.ndarray | None,
    source: str,
    batch: int = 32,
) -> dict[str, Any]:
    """Each variant against PyTorch eager FP32 on windows ``x`` (labels ``y`` or None)."""
    from mrm_edge.card import ModelCard
    from mrm_edge.metrics import macro_auc

    card = ModelCard.load(model_dir)
    thr = np.array([card.thresholds[lab] for lab in card.labels], np.float32)

    def run(backend: str, precision: str) -> np.ndarray:
        infer, _, close = _runner(model_dir, backend, precision)
        try:
            return np.concatenate(
                [
                    np.asarray(infer(np.ascontiguousarray(x[i : i + batch])))
                    for i in range(0, len(x), batch)
                ]
            )
        finally:
            close()

    def auc(p: np.ndarray) -> float | None:
        if y is None:
            return None
        v = macro_auc(y, p)
        return None if np.isnan(v) else v

    ref = run("torch", "fp32")
    ref_labels = ref >= thr
    ref_auc = auc(ref)
    rows = []
    for backend, precision in variants:
        p = ref if (backend, precision) == ("torch", "fp32") else run(backend, precision)
        a = auc(p)
        rows.append(
            {
                "backend": backend,
                "precision": precision,
                "max_abs_dp": float(np.max(np.abs(p - ref))),
                "label_agreement": float(np.mean((p >= thr) == ref_labels)),
                "macro_auc": a,
                "macro_auc_change": None if a is None or ref_auc is None else a - ref_auc,
            }
        )
    return {
        "reference": "torch fp32 (cpu)",
        "windows": len(x),
        "source": source,
        "thresholds": dict(card.thresholds),
        "label_agreement_is": "fraction of (window, label) decisions at the card's thresholds "
        "equal to PyTorch FP32's",
        "reference_macro_auc": ref_auc,
        "note": None
        if y is not None
        else "synthetic windows have no labels: macro-AUC is null (pass --data DIR for it)",
        "variants": rows,
    }


def to_json(results: list[Result], **sections: Any) -> dict[str, Any]:
    return {"machine": machine(), "results": [asdict(r) for r in results], **sections}


__all__ = [
    "Result",
    "accuracy",
    "add_speedups",
    "bench_model",
    "bench_torch_cuda",
    "check_backends",
    "gpu_unavailable",
    "machine",
    "to_json",
]
