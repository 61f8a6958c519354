"""Evaluating MRM-Net with the paper's metrics, per head (low, high, fused) and per
label: the heads' probabilities and metrics (used by training too) and ``evaluate``, a
trained model directory scored on a dataset's held-out folds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrm_edge.checkpoint import load_model_dir
from mrm_edge.data.loaders import load_dataset
from mrm_edge.data.normalization import LeadStandardizer
from mrm_edge.metrics import paper_metrics, per_label_report
from mrm_edge.model import MRMNet


def resolve_device(device: str) -> torch.device:
    """``auto``: CUDA when there is one, else the CPU; any other name as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@torch.no_grad()
def predict_heads(
    net: MRMNet, x: np.ndarray, device: torch.device, batch_size: int = 128
) -> dict[str, np.ndarray]:
    """Sigmoid probabilities of the low and high heads and their mean (eval mode)."""
    net.eval()
    low, high = [], []
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[i : i + batch_size]).to(device)
        o1, o2 = net.head_logits(xb)
        low.append(torch.sigmoid(o1).float().cpu().numpy())
        high.append(torch.sigmoid(o2).float().cpu().numpy())
    p_low = np.concatenate(low) if low else np.zeros((0, net.cfg.n_labels), np.float32)
    p_high = np.concatenate(high) if high else np.zeros((0, net.cfg.n_labels), np.float32)
    return {"low": p_low, "high": p_high, "fused": (p_low + p_high) / 2}


def head_metrics(y: np.ndarray, probs: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """The paper's metrics of each head's probabilities against the labels ``y``."""
    return {head: paper_metrics(y, p) for head, p in probs.items()}


def evaluate(
    model_dir: Path,
    data: Path,
    dataset: str | None = None,
    folds: tuple[int, ...] | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Metrics of ``model_dir`` on ``folds`` of the dataset at ``data``.

    Defaults come from the model card: its dataset, task, sampling rate and
    test folds, so ``evaluate(model, data)`` scores the held-out fold.
    """
    dev = resolve_device(device)
    net, card = load_model_dir(model_dir, dev)
    dataset = dataset or card.data.get("dataset", "ptbxl")
    folds = tuple(folds or card.data.get("folds", {}).get("test", (10,)))
    ds = load_dataset(dataset, data, task=card.task, sampling_rate=card.sampling_rate)
    if list(ds.labels) != list(card.labels):
        raise ValueError(
            f"{data}: labels {ds.labels} do not match the model's {card.labels} "
            f"(task {card.task!r}); evaluate on data with the same label set"
        )
    sel = ds.select_folds(folds)
    if len(sel) == 0:
        raise ValueError(f"{data}: no records in folds {list(folds)}")
    scaler = LeadStandardizer.from_dict(card.normalization)
    probs = predict_heads(net, scaler.apply(sel.x), dev)
    thresholds = np.array([card.thresholds[lab] for lab in card.labels])
    return {
        "model": str(model_dir),
        "model_name": card.name,
        "dataset": dataset,
        "task": card.task,
        "folds": list(folds),
        "records": len(sel),
        "labels": list(card.labels),
        "heads": head_metrics(sel.y, probs),
        "per_label": per_label_report(sel.y, probs["fused"], sel.labels, thresholds),
        "label_counts": sel.label_counts(),
    }
