"""What a run keeps: the epoch with the best validation macro-AUC (fused head), and one
threshold per label, tuned on the validation folds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mrm_edge.data.dataset import EcgDataset
from mrm_edge.metrics import per_label_report, tune_thresholds
from mrm_edge.model import MRMNet
from mrm_edge.training.evaluate import head_metrics, predict_heads

METRICS_NOTE = (
    "auc = macro ROC AUC; accuracy = element-wise at 0.5; f1 = sample-wise at 0.5 "
    "(the paper's definitions); per-label sensitivity/specificity at the tuned thresholds"
)


@dataclass
class BestEpoch:
    """The best validation AUC so far and a CPU copy of that epoch's weights."""

    auc: float = float("-inf")
    weights: dict[str, torch.Tensor] | None = None

    def offer(self, auc: float, net: torch.nn.Module) -> bool:
        """Keep ``net``'s weights when ``auc`` beats the best so far; say whether it did."""
        improved = auc > self.auc
        if improved:
            self.auc = auc
            self.weights = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        return improved


def best_epoch(history: list[dict[str, Any]]) -> int:
    """The epoch of ``history`` with the highest validation AUC of the fused head."""
    return max(history, key=lambda r: r["val"]["fused"]["auc"])["epoch"]


def tuned_metrics(
    net: MRMNet,
    val: EcgDataset,
    test: EcgDataset,
    x_val: np.ndarray,
    x_test: np.ndarray,
    device: torch.device,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-label thresholds tuned on validation, and the metrics the card reports.

    ``x_val`` / ``x_test`` are the standardised inputs of ``val`` / ``test``; the test
    folds are only scored, with the validation thresholds, never tuned on.
    """
    val_probs = predict_heads(net, x_val, device)
    thresholds = tune_thresholds(val.y, val_probs["fused"])
    metrics: dict[str, Any] = {"validation": head_metrics(val.y, val_probs)}
    metrics["validation_per_label"] = per_label_report(
        val.y, val_probs["fused"], val.labels, thresholds
    )
    if len(test):
        test_probs = predict_heads(net, x_test, device)
        metrics["test"] = head_metrics(test.y, test_probs)
        metrics["test_per_label"] = per_label_report(
            test.y, test_probs["fused"], test.labels, thresholds
        )
    metrics["note"] = METRICS_NOTE
    return thresholds, metrics
