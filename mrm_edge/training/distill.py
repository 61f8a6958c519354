"""The teacher of ``mrm-edge distill``: a trained model directory, loaded as every command loads
one (:func:`load_model_dir`: safetensors checked against the card's SHA-256), run once over the
training folds in eval mode under no_grad. Its softened outputs are the soft labels; there is no
augmentation, so they are the same every epoch and the teacher never runs again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrm_edge.card import WEIGHTS_FILE, ModelCard
from mrm_edge.checkpoint import load_model_dir
from mrm_edge.data.dataset import LEADS, EcgDataset
from mrm_edge.data.normalization import LeadStandardizer
from mrm_edge.fileio import sha256_file
from mrm_edge.model import MRMNet, count_parameters
from mrm_edge.training.config import DistillConfig


def teacher_soft_labels(
    cfg: DistillConfig, train: EcgDataset, sampling_rate: int, device: torch.device
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The teacher's deployed output at temperature T on each training record ``[n, labels]``
    (CPU), and the recipe the student's card records (teacher, T, alpha)."""
    if not cfg.temperature > 0 or not cfg.alpha >= 0:
        raise ValueError(
            f"distillation needs temperature > 0 and alpha >= 0, got {cfg.temperature} "
            f"and {cfg.alpha}"
        )
    directory = Path(cfg.teacher)
    # Building a net draws initial weights from the global RNG: leave the student's run as if
    # no teacher had been loaded (alpha 0 trains exactly as `train` does).
    with torch.random.fork_rng(devices=[]):
        net, card = load_model_dir(directory, device)
    _check_matches(directory, card, train, sampling_rate)
    probs = _softened_outputs(net, card, train.x, cfg.temperature, device)
    recipe = {
        "teacher": {
            "name": card.name,
            "weights_sha256": sha256_file(directory / card.weights.get("file", WEIGHTS_FILE)),
            "preset": card.preset,
            "parameters": count_parameters(net),
            "head_fusion": card.head_fusion,
        },
        "temperature": cfg.temperature,
        "alpha": cfg.alpha,
        "loss": "the paper's loss on the student + alpha * sum over the student's two heads of "
        "T^2 * per-label binary KL(sigmoid-at-T teacher output || sigmoid(head / T))",
    }
    return probs, recipe


def _check_matches(directory: Path, card: ModelCard, train: EcgDataset, rate: int) -> None:
    """The teacher must read the student's inputs and name its outputs the same way."""
    where = directory / "card.json"
    if list(card.labels) != list(train.labels):
        raise ValueError(
            f"{where}: the teacher's labels {card.labels} ({card.task}) differ from the "
            f"data's {list(train.labels)}; distil on the teacher's dataset and task"
        )
    if card.sampling_rate != rate or card.window_samples != train.x.shape[-1]:
        raise ValueError(
            f"{where}: the teacher reads {card.window_samples} samples at {card.sampling_rate} "
            f"Hz, the student {train.x.shape[-1]} at {rate} Hz; use the same --sampling-rate"
        )
    if list(card.leads) != list(LEADS):
        raise ValueError(f"{where}: field 'leads' is {card.leads}, expected {list(LEADS)}")


@torch.no_grad()
def _softened_outputs(
    net: MRMNet,
    card: ModelCard,
    raw: np.ndarray,
    temperature: float,
    device: torch.device,
    batch_size: int = 128,
) -> torch.Tensor:
    """The teacher's output as deployed (its own standardisation and head fusion), each head's
    logits divided by T before the sigmoid."""
    net.eval()
    scaler = LeadStandardizer.from_dict(card.normalization)
    out = []
    for i in range(0, len(raw), batch_size):  # standardised per batch: no second copy of x
        xb = torch.from_numpy(scaler.apply(raw[i : i + batch_size])).to(device)
        low, high = (torch.sigmoid(o / temperature) for o in net.head_logits(xb))
        fused = {"low": low, "high": high, "mean": (low + high) / 2}[card.head_fusion]
        out.append(fused.float().cpu())
    return torch.cat(out) if out else torch.zeros((0, len(card.labels)))
