"""Distillation end to end on the real PTB-XL subset: a tiny teacher trained here for one epoch,
tiny students distilled from it (the trainer's own loop, data, resume and card)."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mrm_edge.card import ModelCard
from mrm_edge.checkpoint import load_model_dir
from mrm_edge.fileio import sha256_file
from mrm_edge.training.config import DistillConfig
from mrm_edge.training.trainer import Trainer
from tests.training import tiny_config

STUDENT = {"width": 8, "stem_channels": (8, 8, 8, 16)}  # not the teacher's shape


def quiet(cfg) -> Path:
    return Trainer(cfg, log=lambda s: None).run()


@pytest.fixture(scope="module")
def teacher(ptbxl_root: Path, tmp_path_factory) -> Path:
    return quiet(tiny_config(ptbxl_root, tmp_path_factory.mktemp("teacher"), epochs=1))


def student_config(data: Path, out: Path, teacher: Path, epochs: int = 1, alpha: float = 1.0):
    cfg = tiny_config(data, out, epochs=epochs, model_overrides=STUDENT)
    cfg.distill = DistillConfig(str(teacher), temperature=2.0, alpha=alpha)
    return cfg


def test_the_card_names_the_teacher_and_the_recipe(ptbxl_root, teacher, tmp_path) -> None:
    weights = teacher / "model.safetensors"
    before = sha256_file(weights)
    student = quiet(student_config(ptbxl_root, tmp_path, teacher))
    card = ModelCard.load(student)
    recipe = card.training["distillation"]
    assert recipe["teacher"]["name"] == ModelCard.load(teacher).name
    assert recipe["teacher"]["weights_sha256"] == before == sha256_file(weights)  # untouched
    assert (recipe["temperature"], recipe["alpha"]) == (2.0, 1.0)
    assert recipe["student"]["width"] == 8 and recipe["student"]["stem_channels"] == [8, 8, 8, 16]
    assert card.name.endswith("-distilled") and "distill" not in card.training  # no local path
    assert str(teacher) not in (student / "card.json").read_text()
    net, _ = load_model_dir(student)
    assert net.cfg.stem_channels == (8, 8, 8, 16)
    assert card.metrics["test"]["fused"]["auc"] > 0


def test_alpha_zero_trains_as_train_does_and_alpha_one_differs(
    ptbxl_root, teacher, tmp_path
) -> None:
    """The teacher changes nothing but the loss: at alpha 0 the run is `train`'s, step for step
    (loading it draws no random numbers); at alpha 1 its term moves the student."""
    plain = tiny_config(ptbxl_root, tmp_path / "plain", epochs=1, model_overrides=STUDENT)
    runs = {
        "plain": quiet(plain),
        "alpha0": quiet(student_config(ptbxl_root, tmp_path / "a0", teacher, alpha=0.0)),
        "alpha1": quiet(student_config(ptbxl_root, tmp_path / "a1", teacher, alpha=1.0)),
    }
    hist = {k: json.loads((v.parent / "history.json").read_text())[0] for k, v in runs.items()}
    assert hist["alpha0"]["train"]["loss"] == pytest.approx(hist["plain"]["train"]["loss"])
    assert hist["alpha1"]["train"]["kd"] > 0
    weights = {k: load_file(v / "model.safetensors") for k, v in runs.items()}
    for name, w in weights["plain"].items():
        torch.testing.assert_close(weights["alpha0"][name], w, msg=name)
    assert any(not torch.equal(weights["alpha1"][n], w) for n, w in weights["plain"].items())


def test_a_distilled_run_resumes_as_if_never_stopped(ptbxl_root, teacher, tmp_path) -> None:
    straight = quiet(student_config(ptbxl_root, tmp_path / "a", teacher, epochs=2))
    quiet(student_config(ptbxl_root, tmp_path / "b", teacher, epochs=1))
    resumed = quiet(student_config(ptbxl_root, tmp_path / "b", teacher, epochs=2))
    a = load_file(straight.parent / "checkpoint.safetensors")
    b = load_file(resumed.parent / "checkpoint.safetensors")
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    # Another recipe (or teacher) is another run: refused, naming what changed.
    with pytest.raises(ValueError, match="distillation="):
        quiet(student_config(ptbxl_root, tmp_path / "b", teacher, epochs=3, alpha=0.5))


def test_a_teacher_of_other_labels_is_refused_in_one_line(ptbxl_root, teacher, tmp_path) -> None:
    other = tmp_path / "teacher"
    shutil.copytree(teacher, other)
    card = json.loads((other / "card.json").read_text())
    card["labels"] = card["labels"][::-1]  # the same names in another output order
    (other / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"teacher's labels .* differ from the data's") as e:
        quiet(student_config(ptbxl_root, tmp_path / "s", other))
    assert "\n" not in str(e.value) and "card.json" in str(e.value)
