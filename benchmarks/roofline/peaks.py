"""The GPU's measured matmul peak, and which peak a row of a given precision is compared
with. FP32 rows are compared with the TF32 peak, because cuDNN (PyTorch), ONNX Runtime's
CUDA provider and TensorRT all allow TF32 convolutions by default; FP16 rows with the FP16
peak; INT8 rows with the FP16 peak too (no INT8 peak is measured: the basis says so)."""

from __future__ import annotations

from typing import Any


def measure_gpu_peak(n: int = 8192, repeats: int = 10, device: int = 0) -> dict[str, Any]:
    """Measured matmul peak of this GPU in TFLOP/s: FP32 (TF32 off), TF32 and FP16, best of
    ``repeats`` ``n`` x ``n`` matmuls timed with CUDA events (PyTorch). NOT EXECUTED here."""
    import torch

    dev = torch.device("cuda", device)
    peaks: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(dev),
        "method": f"best of {repeats} {n}x{n} torch.matmul, CUDA events, torch {torch.__version__}",
    }
    prev = torch.backends.cuda.matmul.allow_tf32
    try:
        for key, dtype, tf32 in (
            ("fp32", torch.float32, False),
            ("tf32", torch.float32, True),
            ("fp16", torch.float16, False),
        ):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            a = torch.randn(n, n, device=dev, dtype=dtype)
            bm = torch.randn(n, n, device=dev, dtype=dtype)
            c = torch.empty(n, n, device=dev, dtype=dtype)
            for _ in range(3):
                torch.matmul(a, bm, out=c)
            best = float("inf")
            for _ in range(repeats):
                e0 = torch.cuda.Event(enable_timing=True)
                e1 = torch.cuda.Event(enable_timing=True)
                e0.record()
                torch.matmul(a, bm, out=c)
                e1.record()
                e1.synchronize()
                best = min(best, e0.elapsed_time(e1))
            peaks[key] = 2 * n**3 / (best / 1e3) / 1e12
            del a, bm, c
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    return peaks


def peak_for(precision: str, peaks: dict[str, Any]) -> tuple[float | None, str]:
    """The measured peak (TFLOP/s) a ``precision`` row is compared with, and its name."""
    key = {"fp32": "tf32", "fp16": "fp16", "int8": "fp16"}.get(precision, "fp32")
    basis = f"{key} matmul peak" + (" (no INT8 peak measured)" if precision == "int8" else "")
    value = peaks.get(key)
    return (float(value) if isinstance(value, (int, float)) else None), basis
