"""The model card: everything a runtime needs to use a trained model correctly,
and everything a reader needs to judge it. Plain JSON, no torch.

A model directory holds ``card.json`` and ``model.safetensors`` (weights,
loadable without pickle); export adds ONNX files beside them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FORMAT = 1


class ModelCardError(ValueError):
    """A model card that is missing, unreadable or inconsistent (one-line message)."""


@dataclass
class ModelCard:
    name: str
    task: str
    labels: list[str]
    sampling_rate: int
    window_samples: int
    leads: list[str]
    units: str
    normalization: dict[str, Any]  # {"method", "mean": [12], "std": [12], "fitted_on"}
    preset: str
    architecture: dict[str, Any]  # MRMNetConfig.to_dict()
    head_fusion: str
    thresholds: dict[str, float]
    threshold_method: str
    metrics: dict[str, Any]
    data: dict[str, Any]  # provenance: dataset, records, folds, citation, licence
    training: dict[str, Any]
    code_version: dict[str, Any]
    weights: dict[str, Any] = field(default_factory=dict)  # {"file", "sha256"}
    intended_use: str = ""
    format: int = CARD_FORMAT

    @property
    def window_seconds(self) -> float:
        return self.window_samples / self.sampling_rate

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["window_seconds"] = self.window_seconds
        return d

    def save(self, directory: Path) -> Path:
        path = Path(directory) / CARD_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "card") -> ModelCard:
        d = dict(d)
        d.pop("window_seconds", None)
        required = [
            f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
        ]
        missing = [k for k in required if k not in d]
        if missing:
            raise ModelCardError(f"{source}: missing field(s) {', '.join(missing)}")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ModelCardError(f"{source}: unknown field(s) {', '.join(sorted(unknown))}")
        card = cls(**d)
        card.validate(source)
        return card

    @classmethod
    def load(cls, directory: Path) -> ModelCard:
        path = Path(directory) / CARD_FILE
        if not path.is_file():
            raise ModelCardError(
                f"{path}: no model card (expected {CARD_FILE} in the model directory)"
            )
        try:
            d = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelCardError(f"{path}: not readable JSON ({e})") from e
        if not isinstance(d, dict):
            raise ModelCardError(f"{path}: expected a JSON object, found {type(d).__name__}")
        return cls.from_dict(d, source=str(path))

    def validate(self, source: str = "card") -> None:
        if self.format != CARD_FORMAT:
            raise ModelCardError(
                f"{source}: field 'format' is {self.format}, expected {CARD_FORMAT}"
            )
        n_leads = len(self.leads)
        for key in ("mean", "std"):
            v = self.normalization.get(key)
            if not isinstance(v, list) or len(v) != n_leads:
                raise ModelCardError(
                    f"{source}: field 'normalization.{key}' must be a list of {n_leads} numbers"
                )
        if set(self.thresholds) != set(self.labels):
            raise ModelCardError(f"{source}: field 'thresholds' must name exactly the labels")
        if self.sampling_rate <= 0 or self.window_samples <= 0:
            raise ModelCardError(f"{source}: sampling_rate and window_samples must be positive")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


__all__ = ["CARD_FILE", "WEIGHTS_FILE", "ModelCard", "ModelCardError", "sha256_file"]
