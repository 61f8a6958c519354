"""The settings of one training run; the defaults are the paper's recipe (Adam at a fixed
1e-3, batch 64, 100 epochs, PTB-XL folds 1-8 / 9 / 10); ``distill`` set: ``mrm-edge distill``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mrm_edge.losses import LossConfig


@dataclass
class DistillConfig:
    """A teacher's soft labels on top of the paper's loss (docs/model.md, ``mrm-edge distill``):
    weight ``alpha``, softened at ``temperature``."""

    teacher: str  # a trained model directory (card.json + model.safetensors)
    temperature: float = 2.0
    alpha: float = 1.0


@dataclass
class TrainConfig:
    data: str
    out: str
    dataset: str = "ptbxl"
    task: str | None = None  # None: the dataset's own (PTB-XL superdiagnostic, CPSC "all")
    preset: str = "paper"
    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    sampling_rate: int = 100
    train_folds: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    val_folds: tuple[int, ...] = (9,)
    test_folds: tuple[int, ...] = (10,)
    head_fusion: str = "mean"
    device: str = "auto"
    loss: LossConfig = field(default_factory=LossConfig)
    name: str = ""
    # Extra MRMNetConfig fields on top of the preset (e.g. a tiny width for tests).
    model_overrides: dict[str, Any] = field(default_factory=dict)
    distill: DistillConfig | None = None  # None: trained on the labels alone (`train`)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # nested: the loss settings become a dict too
