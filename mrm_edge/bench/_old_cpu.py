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
reason. Their timing: :func:`bench_torch_cuda` here (FP32 and FP16 autocast, CUDA events,
copies timed apart) and ONNX Runtime CUDA / TensorRT in :mod:`mrm_edge.bench_gpu`. None of
the GPU timing has run on this project's machines (no GPU): TensorRT only against the test
doubles, ONNX Runtime CUDA only up to its refusal.

Arithmetic: every row gets ``gflops`` = FLOPs per window (:mod:`mrm_edge.flops`, 2 x MACs of
the ONNX graph's Conv/Gemm/MatMul) x throughput; GPU rows also ``fraction_of_peak`` against
the GPU's measured matmul peak (:func:`mrm_edge.bench_gpu.measure_gpu_peak`).
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

from mrm_edge.artifacts import ONNX_FILES

# Variant → ONNX file (mrm_edge.artifacts); ``--precisions`` takes these names, so
# ``int8-sym`` benchmarks the symmetric (TensorRT) INT8 file on ONNX Runtime.
VARIANT_FILES = ONNX_FILES


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
    gflops: float | None = None  # achieved: FLOPs per window x throughput / 1e9
    fraction_of_peak: float | None = None  # GPU rows: gflops / the measured peak (peak_basis)
    peak_basis: str | None = None
    max_abs_dp_vs_cpu_fp32: float | None = None  # GPU rows: output vs ONNX Runtime CPU FP32


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
    """Set each row's speed-up against PyTorch eager FP32 (CPU) at the same batch size, and
    each GPU row's against PyTorch eager FP32 on the same GPU (torch-cuda fp32)."""

    def base(backend: str) -> dict[int, float]:
        return {
            r.batch_size: r.throughput
            for r in results
            if r.backend == backend and r.precision == "fp32"
        }

    cpu, gpu = base("torch"), base("torch-cuda")
    for r in results:
        if r.batch_size in cpu:
            r.speedup_vs_torch_fp32 = r.throughput / cpu[r.batch_size]
        if r.device.startswith("cuda") and r.batch_size in gpu:
            r.speedup_vs_torch_cuda_fp32 = r.throughput / gpu[r.batch_size]
    return results


def add_flops(
    results: list[Result], flops_per_window: int, peaks: dict[str, Any] | None = None
) -> list[Result]:
    """Achieved GFLOP/s per row; with the GPU's measured ``peaks`` (TFLOP/s), GPU rows'
    fraction of the peak for their precision (:func:`mrm_edge.bench_gpu.peak_for`)."""
    from mrm_edge.bench_gpu import peak_for

    for r in results:
        r.gflops = flops_per_window * r.throughput / 1e9
        if peaks and r.device.startswith("cuda"):
            peak, r.peak_basis = peak_for(r.precision, peaks)
            if peak:
                r.fraction_of_peak = r.gflops / (peak * 1e3)
    return results


def flops_section(model_dir: Path) -> dict[str, Any]:
    """FLOPs per window of the model's FP32 ONNX (the same arithmetic for every variant)."""
    from mrm_edge.flops import count_flops

    path = Path(model_dir) / VARIANT_FILES["fp32"]
    if not path.is_file():
        return {"per_window": None, "note": f"{path}: not exported, FLOPs not counted"}
    c = count_flops(path)
    return {"per_window": c.total, "by_op": c.by_op, "source": path.name, "note": c.note()}


def _percentiles_ms(ms: np.ndarray) -> dict[str, float]:
    return {q: float(np.percentile(ms, p)) for q, p in (("p50", 50), ("p90", 90), ("p99", 99))}


def bench_torch_cuda(
    model_dir: Path,
    precisions: list[str],
    batch_sizes: list[int],
    warmup: int = 3,
    repeats: int = 10,
    log: Callable[[str], None] = lambda s: None,
    reference: np.ndarray | None = None,
) -> list[Result]:
    """PyTorch eager on CUDA: FP32, and FP16 by autocast.

    NOT EXECUTED on this project's machine (no GPU): written to the torch.cuda API
    documentation, never run. Timing: CUDA events on the current stream; the model's
    device time is the figure (throughput = batch / median), the host-to-device copy of
    the batch (pinned memory, non-blocking) is timed apart in ``h2d_ms``, the copy of the
    output back to pinned host memory in ``d2h_ms``, all three in ``end_to_end_ms``.
    ``reference`` (ONNX Runtime CPU FP32 on the same windows) fills ``max_abs_dp_vs_cpu_fp32``.
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
            out = torch.empty((b, len(card.labels)), dtype=torch.float32).pin_memory()

            def step(host=host, dev=dev, out=out, precision=precision) -> tuple[float, ...]:
                e0, e1, e2, e3 = (torch.cuda.Event(enable_timing=True) for _ in range(4))
                e0.record()
                dev.copy_(host, non_blocking=True)
                e1.record()
                with (
                    torch.inference_mode(),
                    torch.autocast("cuda", dtype=torch.float16, enabled=precision == "fp16"),
                ):
                    p = model(dev)
                e2.record()
                out.copy_(p, non_blocking=True)
                e3.record()
                e3.synchronize()
                return e0.elapsed_time(e1), e1.elapsed_time(e2), e2.elapsed_time(e3)

            for _ in range(warmup):
                step()
            ms = np.array([step() for _ in range(repeats)])  # [repeats, (h2d, compute, d2h)]
            r = summarise("torch-cuda", precision, "cuda:0", b, ms[:, 1] / 1e3)
            r.timing = (
                "CUDA events: model device time; host-to-device and device-to-host copies "
                "(pinned) apart"
            )
            r.h2d_ms = _percentiles_ms(ms[:, 0])
            r.d2h_ms = _percentiles_ms(ms[:, 2])
            r.end_to_end_ms = _percentiles_ms(ms.sum(axis=1))
            if reference is not None:
                r.max_abs_dp_vs_cpu_fp32 = float(np.max(np.abs(out.numpy() - reference[:b])))
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
    """Why the GPU ``backend`` cannot be benchmarked here, or None when its cheap
    preconditions hold (torch sees CUDA; onnxruntime has the CUDA provider; tensorrt and
    cuda-python import and a GPU answers). The benchmark functions still refuse, with the
    reason, what only shows later (a session falling back to the CPU, no engine)."""
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
    if backend == "onnxruntime-cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return "this onnxruntime build has no CUDAExecutionProvider (install onnxruntime-gpu)"
        return None
    if backend == "tensorrt":
        from mrm_edge.export.tensorrt.capability import probe_gpu, probe_tensorrt

        if not has("tensorrt"):
            return "tensorrt is not installed (the `tensorrt` extra)"
        info = probe_tensorrt()
        if not info.available:
            return str(info.reason)
        gpu, why = probe_gpu(0)
        return None if gpu is not None else f"TensorRT {info.version} but no GPU ({why})"
    return f"{backend!r} is not a GPU backend"


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


def to_json(
    results: list[Result], machine_extra: dict[str, Any] | None = None, **sections: Any
) -> dict[str, Any]:
    """The bench's JSON: machine facts (plus ``machine_extra``: GPU, its measured peak), the
    rows, and the other ``sections``."""
    return {
        "machine": {**machine(), **(machine_extra or {})},
        "results": [asdict(r) for r in results],
        **sections,
    }


__all__ = [
    "Result",
    "accuracy",
    "add_flops",
    "add_speedups",
    "bench_model",
    "bench_torch_cuda",
    "check_backends",
    "flops_section",
    "gpu_unavailable",
    "machine",
    "to_json",
]
