"""Accuracy agreement: every variant against PyTorch eager FP32 on the same windows
(held-out labelled windows with ``--data``, else synthetic ones): max |Δp|, label agreement
at the card's thresholds, and macro-AUC where labels exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.cli.bench.common import infer_all
from mrm_edge.cli.bench.cpu import cpu_backend


def accuracy(
    model_dir: Path,
    variants: list[tuple[str, str]],
    x: np.ndarray,
    y: np.ndarray | None,
    source: str,
) -> dict[str, Any]:
    """Each variant against PyTorch eager FP32 on windows ``x`` (labels ``y`` or None)."""
    from mrm_edge.card import ModelCard
    from mrm_edge.metrics import macro_auc

    card = ModelCard.load(model_dir)
    thr = np.array([card.thresholds[lab] for lab in card.labels], np.float32)

    def run(backend: str, precision: str) -> np.ndarray:
        with cpu_backend(model_dir, backend, precision) as be:
            return infer_all(be, x)

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
