"""Evaluating a trained model directory on a dataset's held-out folds with the
paper's metrics, per head (low, high, fused) and per label."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.checkpoint import load_model_dir
from mrm_edge.data.loaders import load_dataset
from mrm_edge.data.normalization import LeadStandardizer
from mrm_edge.metrics import per_label_report
from mrm_edge.training.trainer import head_metrics, predict_heads, resolve_device


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
    sel = ds.subset(np.isin(ds.folds, folds))
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


__all__ = ["evaluate"]
