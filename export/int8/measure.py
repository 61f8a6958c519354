"""The accuracy gate's measurements: FP32 and INT8 on the same held-out windows, in ORT."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mrm_edge.export.gates import onnx_probabilities

from mrm_edge.metrics import roc_auc_per_label


@dataclass
class Evaluation:
    """One model's figures against FP32 on the held-out windows."""

    auc: float  # macro-AUC (labels with one class left out)
    per_label: np.ndarray
    max_abs: float  # largest |p - p_FP32|
    mean_abs: float


def evaluate(p: np.ndarray, p_ref: np.ndarray, y: np.ndarray) -> Evaluation:
    per = roc_auc_per_label(y, p)
    d = np.abs(p - p_ref)
    return Evaluation(float(np.nanmean(per)), per, float(d.max()), float(d.mean()))


@dataclass
class HeldOut:
    """The held-out windows, FP32's answers on them and the gate's thresholds."""

    x: np.ndarray
    y: np.ndarray
    p_fp32: np.ndarray  # float64, so every difference to it is taken in float64
    base: Evaluation  # FP32 against itself: its AUC is the reference
    max_auc_drop: float
    max_prob_delta: float | None

    def measure(self, path: Path) -> Evaluation:
        return evaluate(onnx_probabilities(path, self.x), self.p_fp32, self.y)

    def drop(self, ev: Evaluation) -> float:
        return self.base.auc - ev.auc

    def passes(self, ev: Evaluation) -> bool:
        ok = self.drop(ev) <= self.max_auc_drop + 1e-12
        return ok and (self.max_prob_delta is None or ev.max_abs <= self.max_prob_delta)
