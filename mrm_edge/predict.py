"""Offline classification of whole recordings with a trained model: consecutive windows at the
model's rate (a shorter tail left out, never padded), each through the monitor's quality
check first: a window that fails it is ``rejected`` with its reason, never classified; a
recording shorter than one window is a :class:`DataError` (docs/model.md, ``mrm-edge predict``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mrm_edge.card import ModelCard
from mrm_edge.data.errors import DataError
from mrm_edge.records import Recording, cut_windows

if TYPE_CHECKING:
    from mrm_edge.runtime.stream.quality import QualityConfig


@dataclass
class PredictedWindow:
    """One window of a recording and its outcome; a rejected window has no probabilities,
    only its reason. (The streaming monitor's per-window outcome, with latency and
    smoothing, is ``mrm_edge.runtime.postprocess.WindowResult``.)"""

    recording: str
    start_s: float
    end_s: float
    probabilities: dict[str, float]
    positive: list[str]
    status: str = "ok"  # "ok", "rejected" (a bad window) or "refused" (an unreadable file)
    reason: str = ""


def check_long_enough(rec: Recording, card: ModelCard) -> None:
    """DataError naming the recording when it is shorter than one model window."""
    if rec.seconds < card.window_seconds:
        where = rec.path or rec.name
        raise DataError(
            f"{where}: record is {rec.seconds:.1f} s, the model needs at least "
            f"{card.window_seconds:.1f} s (one {card.window_seconds:g} s window)"
        )


def classify(
    recordings: list[Recording],
    model_dir: Path,
    backend: str = "auto",
    quality: QualityConfig | None = None,
    accept_card_tuning: bool = False,
) -> tuple[list[PredictedWindow], str]:
    """Window results for every recording, in order (module docstring), and which backend
    the runtime's selection ran them on and why; ``quality``: the monitor's defaults if None;
    ``accept_card_tuning``: ``DeployedModel.load``'s, what it accepted ends the reason."""
    from mrm_edge.runtime.model import DeployedModel
    from mrm_edge.runtime.selection import activate_backend
    from mrm_edge.runtime.stream.quality import assess_quality

    model = DeployedModel.load(model_dir, accept_card_tuning=accept_card_tuning)
    card = model.card
    for rec in recordings:
        check_long_enough(rec, card)
    runner, reason, _ = activate_backend(model, backend)
    unsaid = [f"{n}: {why}" for n, why in model.refused.items() if f"{n} refused" not in reason]
    if unsaid:  # a damaged artifact is never skipped silently
        reason += "; refused " + "; ".join(unsaid)
    for line in model.tuning_lines():  # the opt-in is never silent either
        reason += f"; {line}"
    results: list[PredictedWindow] = []
    try:  # activate_backend hands it over active
        for rec in recordings:
            wins = cut_windows(rec, card.sampling_rate, card.window_samples)
            reports = [assess_quality(w.T, card.sampling_rate, quality, card.leads) for w in wins]
            good = [i for i, q in enumerate(reports) if q.ok]
            probs = runner.infer(np.ascontiguousarray(wins[good], dtype=np.float32)) if good else []
            p_of = dict(zip(good, probs, strict=True))
            for i in range(len(wins)):
                start, end = i * card.window_seconds, (i + 1) * card.window_seconds
                if i not in p_of:
                    reason_i = "; ".join(reports[i].reasons)
                    rejected = PredictedWindow(rec.name, start, end, {}, [], "rejected", reason_i)
                    results.append(rejected)
                    continue
                probs_of = {lab: float(v) for lab, v in zip(card.labels, p_of[i], strict=True)}
                positive = [lab for lab in card.labels if probs_of[lab] >= card.thresholds[lab]]
                results.append(PredictedWindow(rec.name, start, end, probs_of, positive))
    finally:
        runner.deactivate()
    return results, reason
