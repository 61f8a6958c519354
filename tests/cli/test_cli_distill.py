"""``mrm-edge distill`` through real subprocesses: a student distilled from the tiny trained
model on the real PTB-XL subset, then scored by ``mrm-edge eval``; bad input is one line."""

import json

import pytest

from tests.cli.test_cli import assert_one_line_error, run


def test_distill_then_eval_the_student(tiny_model_dir, ptbxl_root, tmp_path) -> None:
    out = tmp_path / "run"
    args = ["distill", "--teacher", str(tiny_model_dir), "--data", str(ptbxl_root)]
    shape = ["--preset", "edge", "--width", "8", "--stem", "8,8,8,8", "--out", str(out)]
    r = run(*args, *shape, "--epochs", "1", "--temperature", "3", "--alpha", "0.5")
    assert r.returncode == 0, r.stderr
    student = out / "model"
    assert r.stdout.strip() == str(student)
    assert "from teacher" in r.stderr
    card = json.loads((student / "card.json").read_text())
    assert card["preset"] == "edge" and card["architecture"]["width"] == 8
    recipe = card["training"]["distillation"]
    assert (
        recipe["teacher"]["weights_sha256"]
        == json.loads((tiny_model_dir / "card.json").read_text())["weights"]["sha256"]
    )
    assert (recipe["temperature"], recipe["alpha"]) == (3.0, 0.5)

    # Rerun with more epochs: resumes after epoch 1 (the trainer's checkpoint), then eval.
    r = run(*args, *shape, "--epochs", "2", "--temperature", "3", "--alpha", "0.5")
    assert r.returncode == 0, r.stderr
    assert "resuming after epoch 1" in r.stderr
    r = run(
        "eval", "--model", str(student), "--data", str(ptbxl_root), "--json", str(tmp_path / "e")
    )
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "e").read_text())
    card = json.loads((student / "card.json").read_text())
    assert res["records"] == 64 and card["training"]["epochs_run"] == 2
    assert res["heads"]["fused"]["auc"] == pytest.approx(card["metrics"]["test"]["fused"]["auc"])


def test_bad_teacher_and_shape_are_one_line_errors(tiny_model_dir, ptbxl_root, tmp_path) -> None:
    common = ["--data", str(ptbxl_root), "--out", str(tmp_path / "o")]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run("distill", "--teacher", str(empty), *common), "card.json")
    assert_one_line_error(
        run("distill", "--teacher", str(tiny_model_dir), "--stem", "16,32,64", *common),
        "--width/--stem",
        "stem_channels",
    )
