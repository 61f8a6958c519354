"""Achieved GFLOP/s and fraction of peak per row of a bench document: throughput x the FLOPs
per window :func:`mrm_edge.export.cost.count_flops` counts on the model's FP32 graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mrm_edge.export.cost import count_flops

from benchmarks.roofline.peaks import peak_for
from mrm_edge.artifacts import ONNX_FILES
from mrm_edge.cli.bench.peaks import cpu_peak_for


def add_flops(
    rows: list[dict[str, Any]],
    flops_per_window: int,
    peaks: dict[str, Any] | None = None,
    cpu_peaks: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Achieved GFLOP/s per row of the bench JSON; with the GPU's measured ``peaks``
    (TFLOP/s), GPU rows' fraction of the peak for their precision
    (:func:`benchmarks.roofline.peaks.peak_for`); with ``cpu_peaks`` (GFLOP/s per runtime and
    precision), CPU rows' fraction of their runtime's GEMM peak
    (:func:`mrm_edge.cli.bench.peaks.cpu_peak_for`)."""

    for r in rows:
        r["gflops"] = gflops = flops_per_window * r["throughput"] / 1e9
        r.setdefault("fraction_of_peak", None)
        r.setdefault("peak_basis", None)
        if peaks and r["device"].startswith("cuda"):
            peak, r["peak_basis"] = peak_for(r["precision"], peaks)
            if peak:
                r["fraction_of_peak"] = gflops / (peak * 1e3)
        elif cpu_peaks and r["device"] == "cpu":
            peak, basis = cpu_peak_for(r["backend"], r["precision"], cpu_peaks)
            if peak and gflops > peak:
                # A "peak" below what the model reached is no peak: the GEMM probe missed
                # this runtime's fast path. Say so rather than print a fraction above 100 %.
                r["peak_basis"] = f"{basis}: {peak:.0f} GFLOP/s, below this row (no valid peak)"
            elif peak:
                r["fraction_of_peak"], r["peak_basis"] = gflops / peak, basis
    return rows


def flops_section(model_dir: Path) -> dict[str, Any]:
    """FLOPs per window of the model's FP32 ONNX (the same arithmetic for every variant)."""
    path = Path(model_dir) / ONNX_FILES["fp32"]
    if not path.is_file():
        return {"per_window": None, "note": f"{path}: not exported, FLOPs not counted"}
    c = count_flops(path)
    return {"per_window": c.total, "by_op": c.by_op, "source": path.name, "note": c.note()}
