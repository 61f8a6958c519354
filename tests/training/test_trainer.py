"""Training end to end on the real PTB-XL subset with a tiny MRM-Net.

The architecture is shrunk (width 8) so a run takes seconds; everything else —
data, folds, loss, checkpointing, card — is the real path.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mrm_edge.card import ModelCard
from mrm_edge.checkpoint import load_model_dir
from mrm_edge.training.trainer import TrainConfig, Trainer

TINY = {"width": 8, "stem_channels": (8, 8, 8, 8)}


def tiny_config(data: Path, out: Path, **over) -> TrainConfig:
    return TrainConfig(
        data=str(data), out=str(out), epochs=2, batch_size=64, seed=3, model_overrides=TINY, **over
    )


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


def test_resume_equals_an_uninterrupted_run(ptbxl_root: Path, tmp_path: Path) -> None:
    # 2 epochs straight vs 1 epoch, stop, then resume to 2.
    straight = Trainer(tiny_config(ptbxl_root, tmp_path / "a"), log=lambda s: None).run()
    cfg = tiny_config(ptbxl_root, tmp_path / "b")
    cfg.epochs = 1
    Trainer(cfg, log=lambda s: None).run()
    cfg.epochs = 2
    resumed = Trainer(cfg, log=lambda s: None).run()
    # The resume file is safetensors (never pickle): read its tensors back directly.
    a = load_file(straight.parent / "checkpoint.safetensors")
    b = load_file(resumed.parent / "checkpoint.safetensors")
    assert not (resumed.parent / "checkpoint.pt").exists()
    assert set(a) == set(b) and any(k.startswith("optim.") for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    hist = json.loads((resumed.parent / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2]


def test_resume_refuses_other_settings(ptbxl_root: Path, tmp_path: Path) -> None:
    cfg = tiny_config(ptbxl_root, tmp_path)
    cfg.epochs = 1
    Trainer(cfg, log=lambda s: None).run()
    cfg.lr = 5e-4
    with pytest.raises(ValueError, match=r"lr=0\.001"):
        Trainer(cfg, log=lambda s: None).run()
