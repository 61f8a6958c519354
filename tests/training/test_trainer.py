"""Training end to end on the real PTB-XL subset with a tiny MRM-Net (see tests/training)."""

import json
from pathlib import Path

import numpy as np
import pytest

from mrm_edge.card import ModelCard
from mrm_edge.checkpoint import load_model_dir
from mrm_edge.training.trainer import Trainer
from tests.training import tiny_config


@pytest.fixture(scope="module")
def trained(ptbxl_root: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    return Trainer(tiny_config(ptbxl_root, out), log=lambda s: None).run()


def test_model_directory_and_card(trained: Path) -> None:
    card = ModelCard.load(trained)
    assert card.labels == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert card.task == "superdiagnostic" and card.sampling_rate == 100
    assert card.window_samples == 1000 and card.units == "mV" and len(card.leads) == 12
    assert set(card.thresholds) == set(card.labels)
    assert card.alarm_labels == ["CD", "HYP", "MI", "STTC"]  # written out: NORM never alarms
    assert all(0.0 <= t <= 1.0 for t in card.thresholds.values())
    for split in ("validation", "test"):
        for head in ("low", "high", "fused"):
            m = card.metrics[split][head]
            assert 0.0 <= m["auc"] <= 1.0 and 0.0 <= m["accuracy"] <= 1.0
    # Provenance: folds 1-8 hold 353 records, 352 of which carry a superclass.
    assert card.data["records"] == {"train": 352, "validation": 72, "test": 64}
    assert card.data["folds"]["train"] == list(range(1, 9))
    assert "PTB-XL" in card.data["citation"]
    assert card.training["epochs_run"] == 2 and card.training["best_epoch"] in (1, 2)
    assert card.code_version["mrm_edge"]
    net, _ = load_model_dir(trained)
    assert net.cfg.width == 8


def test_history_is_recorded(trained: Path) -> None:
    history = json.loads((trained.parent / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(np.isfinite(h["train"]["loss"]) for h in history)
