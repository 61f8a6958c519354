"""Parity and accuracy gates: every exported variant against its reference on real windows;
the figures land in the sidecars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.metrics import macro_auc, roc_auc_per_label

FP32_PARITY_TOLERANCE = 1e-5  # max |Δp|, ONNX Runtime vs PyTorch
FP16_AUC_TOLERANCE_PT = 0.1  # macro-AUC change in percentage points
INT8_AUC_TOLERANCE_PT = 0.5


class GateFailed(RuntimeError):
    """An exported artifact does not reproduce its reference within tolerance."""


def onnx_probabilities(path: Path, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Probabilities of an ONNX model on the CPU execution provider, batch by batch."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # Quiet: the CPU EP warns about FP16 fallbacks and Q/DQ fusions; neither is actionable.
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = [sess.run(None, {name: x[i : i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float32)


def torch_probabilities(model_dir: Path, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The reference: the runtime's PyTorch backend of a model directory (FP32, CPU)."""
    from mrm_edge.runtime.backends.torch import TorchBackend

    with TorchBackend(model_dir) as backend:
        out = [backend.infer(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return np.concatenate(out)


def compare(
    reference: np.ndarray,
    probs: np.ndarray,
    y: np.ndarray | None = None,
    labels: list[str] | None = None,
    thresholds: np.ndarray | None = None,
) -> dict[str, Any]:
    """max/mean |Δp|, label agreement at the thresholds, and AUC change when labels exist."""
    diff = np.abs(probs.astype(np.float64) - reference.astype(np.float64))
    th = np.full(reference.shape[1], 0.5) if thresholds is None else np.asarray(thresholds)
    out: dict[str, Any] = {
        "windows": len(reference),
        "max_abs_prob_delta": float(diff.max()) if diff.size else 0.0,
        "mean_abs_prob_delta": float(diff.mean()) if diff.size else 0.0,
        "label_agreement": float(np.mean((probs >= th) == (reference >= th))),
    }
    if y is not None and len(y):
        auc_ref, auc = macro_auc(y, reference), macro_auc(y, probs)
        out.update(
            auc_reference=auc_ref,
            auc=auc,
            auc_delta_pt=100.0 * (auc - auc_ref),
        )
        if labels:
            per_ref, per = roc_auc_per_label(y, reference), roc_auc_per_label(y, probs)
            out["per_label_auc_delta_pt"] = {
                lab: None if np.isnan(a) or np.isnan(b) else float(100.0 * (b - a))
                for lab, a, b in zip(labels, per_ref, per, strict=True)
            }
    return out
