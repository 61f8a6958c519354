"""The model card of a finished run: what it was trained on and how, what it scored, the
code that made it, and what it is for (and not for)."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

import mrm_edge
from mrm_edge.card import ModelCard, default_alarm_labels
from mrm_edge.data.dataset import LEADS, EcgDataset
from mrm_edge.data.normalization import LeadStandardizer
from mrm_edge.model import MRMNet, count_parameters
from mrm_edge.training.config import TrainConfig
from mrm_edge.training.selection import best_epoch

DATA_CITATIONS = {
    "ptbxl": (
        "PTB-XL: Wagner et al., 'PTB-XL, a large publicly available electrocardiography "
        "dataset', Scientific Data 7, 154 (2020); PhysioNet; CC BY 4.0"
    ),
    "cpsc2018": (
        "CPSC 2018: Liu et al., 'An open access database for evaluating the algorithms of "
        "electrocardiogram rhythm and morphology abnormality detection', J. Med. Imaging "
        "Health Inform. 8(7), 2018"
    ),
}


def code_version() -> dict[str, Any]:
    """Versions of mrm_edge, torch and Python, and the git revision (``-dirty`` if edited)."""
    info: dict[str, Any] = {
        "mrm_edge": mrm_edge.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        cmd = ["git", "-C", str(root), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=True).stdout

    try:
        dirty = git("status", "--porcelain", "--untracked-files=no").strip()
        info["git"] = git("rev-parse", "--short", "HEAD").strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        info["git"] = None
    return info


def training_card(
    cfg: TrainConfig,
    *,
    dataset: EcgDataset,
    splits: tuple[EcgDataset, EcgDataset, EcgDataset],
    scaler: LeadStandardizer,
    net: MRMNet,
    thresholds: np.ndarray,
    metrics: dict[str, Any],
    history: list[dict[str, Any]],
    device: torch.device,
    versions: dict[str, Any],
    distillation: dict[str, Any] | None = None,
) -> ModelCard:
    """The card of the run ``cfg`` on ``dataset`` (``splits``: train, validation, test);
    ``distillation``: the recipe of a distilled run (teacher, temperature, alpha)."""
    train, val, test = splits
    settings = cfg.to_dict()
    settings.pop("distill")  # the teacher's path is the user's machine: recorded below instead
    if distillation is not None:
        shape = {k: net.cfg.to_dict()[k] for k in ("width", "stem_channels")}
        settings["distillation"] = {
            **distillation,
            "student": {"preset": cfg.preset, **shape, "parameters": count_parameters(net)},
        }
    task = dataset.task
    dropped = dataset.dropped_unlabelled
    desc_train_total = len(train) + sum(dropped.get(f, 0) for f in cfg.train_folds)
    return ModelCard(
        name=cfg.name
        or f"mrm-net-{cfg.preset}-{cfg.dataset}-{task}" + ("-distilled" if distillation else ""),
        task=task,
        labels=list(train.labels),
        sampling_rate=cfg.sampling_rate,
        window_samples=int(train.x.shape[-1]),
        leads=list(LEADS),
        units="mV",
        normalization={
            "method": "per-lead standardisation, (x - mean) / std",
            **scaler.to_dict(),
            "fitted_on": f"training folds {list(cfg.train_folds)} ({len(train)} records)",
        },
        preset=cfg.preset,
        architecture=net.cfg.to_dict(),
        head_fusion=cfg.head_fusion,
        thresholds={lab: float(t) for lab, t in zip(train.labels, thresholds, strict=True)},
        threshold_method="per label, maximising F1 of the fused head on the validation folds",
        metrics=metrics,
        data={
            "dataset": cfg.dataset,
            "citation": DATA_CITATIONS.get(cfg.dataset, ""),
            "description": dataset.describe(),
            "folds": {
                "train": list(cfg.train_folds),
                "validation": list(cfg.val_folds),
                "test": list(cfg.test_folds),
            },
            "records": {"train": len(train), "validation": len(val), "test": len(test)},
        },
        training={
            **settings,
            "data": Path(cfg.data).name,  # no absolute paths of the user's machine
            "out": Path(cfg.out).name,
            "optimizer": "Adam",
            "epochs_run": len(history),
            "best_epoch": best_epoch(history),
            "device": str(device),
        },
        code_version=versions,
        intended_use=(
            f"Demonstration and engineering model, not a medical device and not for "
            f"clinical use. It saw {desc_train_total} records in the training folds "
            f"{list(cfg.train_folds)} ({len(train)} of them carry a {task} label and "
            f"were trained on, as in the PTB-XL benchmark); its test metrics come from "
            f"{len(test)} records and are far too few to judge clinical accuracy."
        ),
        # Written out (not left to the runtime's default) so the card says what alarms.
        alarm_labels=list(default_alarm_labels(train.labels)),
    )
