"""Offline classification of whole recordings with a trained model.

Each recording is resampled to the model's rate and cut into consecutive,
non-overlapping windows of the model's length; a shorter tail is left out and
counted, never padded silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrm_edge.card import ModelCard
from mrm_edge.data.signal import resample
from mrm_edge.records import Recording

SHIPPED_MODEL = "mrm-net-ptbxl-superdiagnostic"


def default_model_dir() -> Path:
    """The shipped model: $MRM_EDGE_MODEL, else models/<SHIPPED_MODEL> of this source tree."""
    env = os.environ.get("MRM_EDGE_MODEL")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "models" / SHIPPED_MODEL


@dataclass
class WindowResult:
    recording: str
    start_s: float
    end_s: float
    probabilities: dict[str, float]
    positive: list[str]


def windows_of(rec: Recording, card: ModelCard) -> tuple[np.ndarray, list[float], float]:
    """[n, 12, window] windows at the model's rate, their start times, and the unused tail (s)."""
    x = rec.signal
    if rec.sampling_rate != card.sampling_rate:
        x = resample(x, rec.sampling_rate, card.sampling_rate)
    w = card.window_samples
    n = x.shape[1] // w
    wins = np.stack([x[:, i * w : (i + 1) * w] for i in range(n)]) if n else np.zeros((0, 12, w))
    tail = (x.shape[1] - n * w) / card.sampling_rate
    return wins.astype(np.float32), [i * card.window_seconds for i in range(n)], tail


def classify(
    recordings: list[Recording],
    model_dir: Path,
    backend: str = "auto",
    precision: str | None = None,
) -> tuple[list[WindowResult], str]:
    """Window results for every recording, and which backend ran them and why.

    The runtime's backend selection is used (ONNX Runtime when the model is
    exported, PyTorch otherwise), so this works on an edge install without torch.
    """
    from mrm_edge.runtime.model import DeployedModel
    from mrm_edge.runtime.selection import activate_backend

    model = DeployedModel.load(model_dir)
    card = model.card
    runner, reason = activate_backend(model, backend, precision)
    results: list[WindowResult] = []
    try:  # activate_backend hands it over active
        for rec in recordings:
            wins, starts, _ = windows_of(rec, card)
            if len(wins) == 0:
                continue
            probs = runner.infer(np.ascontiguousarray(wins, dtype=np.float32))
            for start, p in zip(starts, probs, strict=True):
                probs_of = {lab: float(v) for lab, v in zip(card.labels, p, strict=True)}
                results.append(
                    WindowResult(
                        rec.name,
                        start,
                        start + card.window_seconds,
                        probs_of,
                        [lab for lab in card.labels if probs_of[lab] >= card.thresholds[lab]],
                    )
                )
    finally:
        runner.deactivate()
    return results, reason


__all__ = ["SHIPPED_MODEL", "WindowResult", "classify", "default_model_dir", "windows_of"]
