"""Resuming a run from checkpoint.safetensors: the same result as an uninterrupted run,
refused with other settings, and never from a pickle."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mrm_edge.training.resume import (
    CHECKPOINT_FILE,
    HISTORY_FILE,
    LEGACY_CHECKPOINT,
    RunState,
    resume,
    save_checkpoint,
)
from mrm_edge.training.selection import BestEpoch
from mrm_edge.training.trainer import Trainer
from tests.training import tiny_config


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


def _tiny_run(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.Generator]:
    torch.manual_seed(seed)
    net = torch.nn.Linear(3, 2)
    return net, torch.optim.Adam(net.parameters(), lr=1e-3), torch.Generator().manual_seed(seed)


def test_save_then_resume_restores_net_optimiser_and_generator(tmp_path: Path) -> None:
    net, opt, gen = _tiny_run(0)
    net(torch.ones(4, 3)).sum().backward()
    opt.step()
    torch.randperm(5, generator=gen)
    best = BestEpoch()
    best.offer(0.75, net)
    settings = {"lr": 1e-3, "seed": 0}
    save_checkpoint(tmp_path, settings, net, opt, gen, RunState(1, best, [{"epoch": 1}]))

    net2, opt2, gen2 = _tiny_run(1)
    state = resume(tmp_path, settings, net2, opt2, gen2)
    assert state.epoch == 1 and state.best.auc == 0.75 and state.history == [{"epoch": 1}]
    for k, v in net.state_dict().items():
        torch.testing.assert_close(net2.state_dict()[k], v)
        torch.testing.assert_close(state.best.weights[k], v)
    assert opt2.state_dict()["param_groups"][0]["betas"] == (0.9, 0.999)  # a tuple again
    torch.testing.assert_close(
        opt2.state_dict()["state"][0]["exp_avg"], opt.state[net.weight]["exp_avg"]
    )
    assert torch.equal(gen2.get_state(), gen.get_state())
    assert (tmp_path / CHECKPOINT_FILE).exists() and (tmp_path / HISTORY_FILE).exists()


def test_a_fresh_directory_starts_at_epoch_zero(tmp_path: Path) -> None:
    state = resume(tmp_path, {}, *_tiny_run(0))
    assert state.epoch == 0 and state.best.weights is None and state.history == []


def test_a_pickle_checkpoint_is_refused_unread(tmp_path: Path) -> None:
    # Not a valid pickle either: were it read, the error would be another one.
    (tmp_path / LEGACY_CHECKPOINT).write_bytes(b"\x80\x04not read")
    with pytest.raises(ValueError, match="a pickle checkpoint, not loaded"):
        resume(tmp_path, {}, *_tiny_run(0))
