"""The paper's three metrics, exactly as its code computes them (docs/model.md, ``mrm-edge
eval``): macro ROC AUC, element-wise accuracy at 0.5 (why PTB-XL "all" shows ~98 %), and
per-sample F1 at 0.5 (a sample with no true and no predicted label scores 0, sklearn's
default). Numpy only, so the runtime can report the same figures."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _check(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != y_score.shape:
        raise ValueError(
            f"expected y_true and y_score of the same [samples, labels] shape, "
            f"got {y_true.shape} and {y_score.shape}"
        )
    return y_true.astype(bool), y_score


def roc_auc_per_label(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """ROC AUC of each label (Mann-Whitney U with mid-ranks for ties).

    A label whose column holds only one class has no AUC: NaN.
    """
    y, s = _check(y_true, y_score)
    out = np.full(y.shape[1], np.nan)
    for j in range(y.shape[1]):
        pos = y[:, j]
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = rankdata(s[:, j])  # average ranks: ties count one half
        out[j] = (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out


def macro_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean AUC over labels. Labels with a single class in ``y_true`` are left
    out (sklearn would raise instead; tiny held-out folds make that common)."""
    per = roc_auc_per_label(y_true, y_score)
    if np.all(np.isnan(per)):
        return float("nan")
    return float(np.nanmean(per))


def element_accuracy(y_true: np.ndarray, y_score: np.ndarray, threshold: float = 0.5) -> float:
    y, s = _check(y_true, y_score)
    return float(np.mean(y == (s >= threshold)))


def sample_f1(y_true: np.ndarray, y_score: np.ndarray, threshold: float = 0.5) -> float:
    y, s = _check(y_true, y_score)
    pred = s >= threshold
    tp = np.sum(y & pred, axis=1)
    fp = np.sum(~y & pred, axis=1)
    fn = np.sum(y & ~pred, axis=1)
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(len(y), dtype=np.float64), where=denom > 0)
    return float(f1.mean())


def per_label_report(
    y_true: np.ndarray, y_score: np.ndarray, labels: list[str], thresholds: np.ndarray | None = None
) -> dict[str, dict[str, float]]:
    """AUC, prevalence, sensitivity and specificity per label (at 0.5 or the given thresholds)."""
    y, s = _check(y_true, y_score)
    th = np.full(y.shape[1], 0.5) if thresholds is None else np.asarray(thresholds, float)
    auc = roc_auc_per_label(y, s)
    report = {}
    for j, name in enumerate(labels):
        pred = s[:, j] >= th[j]
        pos = y[:, j]
        tp, tn = np.sum(pos & pred), np.sum(~pos & ~pred)
        report[name] = {
            "auc": nan_to_none(auc[j]),
            "positives": int(pos.sum()),
            "threshold": float(th[j]),
            "sensitivity": nan_to_none(tp / pos.sum() if pos.any() else np.nan),
            "specificity": nan_to_none(tn / (~pos).sum() if (~pos).any() else np.nan),
        }
    return report


def paper_metrics(y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float]:
    """The paper's table row: macro AUC, element-wise accuracy, sample F1 (fractions)."""
    return {
        "auc": macro_auc(y_true, y_score),
        "accuracy": element_accuracy(y_true, y_score),
        "f1": sample_f1(y_true, y_score),
    }


def tune_thresholds(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """Per-label threshold that maximises that label's F1 on (validation) data.

    Candidates are the observed scores; a label without positives keeps 0.5.
    """
    y, s = _check(y_true, y_score)
    th = np.full(y.shape[1], 0.5)
    for j in range(y.shape[1]):
        pos = y[:, j]
        if not pos.any():
            continue
        order = np.argsort(-s[:, j], kind="stable")
        sorted_scores, sorted_pos = s[order, j], pos[order]
        tp = np.cumsum(sorted_pos)
        fp = np.cumsum(~sorted_pos)
        f1 = 2 * tp / (2 * tp + fp + (pos.sum() - tp))
        # Only cut between distinct scores: the threshold keeps every tie.
        last_of_tie = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
        f1 = np.where(last_of_tie, f1, -1.0)
        k = int(np.argmax(f1))
        th[j] = float(sorted_scores[k])
    return th


def nan_to_none(v: float) -> float | None:
    return None if v is None or np.isnan(v) else float(v)
