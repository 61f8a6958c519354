"""Shared by the training tests: a tiny MRM-Net run on the real PTB-XL subset.

The architecture is shrunk (width 8) so a run takes seconds; everything else — data,
folds, loss, checkpointing, card — is the real path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mrm_edge.training.trainer import TrainConfig

TINY = {"width": 8, "stem_channels": (8, 8, 8, 8)}


def tiny_config(data: Path, out: Path, **over: Any) -> TrainConfig:
    settings: dict[str, Any] = {"epochs": 2, "batch_size": 64, "seed": 3, "model_overrides": TINY}
    return TrainConfig(data=str(data), out=str(out), **{**settings, **over})
