"""The training loop of MRM-Net with the paper's recipe (docs/model.md, ``mrm-edge train``);
the best epoch by validation macro-AUC is kept. With ``cfg.distill`` the same loop distils a
teacher into the model (``mrm-edge distill``): only the loss gains the teacher's term."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrm_edge.checkpoint import save_model_dir
from mrm_edge.data.dataset import EcgDataset
from mrm_edge.data.loaders import load_dataset
from mrm_edge.data.normalization import LeadStandardizer
from mrm_edge.losses import DistillationLoss, MutualLearningLoss
from mrm_edge.model import MRMNet, MRMNetConfig, count_parameters, preset
from mrm_edge.training.card import code_version, training_card
from mrm_edge.training.config import TrainConfig
from mrm_edge.training.evaluate import head_metrics, predict_heads, resolve_device
from mrm_edge.training.resume import RunState, resume, save_checkpoint
from mrm_edge.training.selection import tuned_metrics


class Trainer:
    """One training run. ``run()`` returns the path of the finished model directory."""

    def __init__(
        self,
        cfg: TrainConfig,
        log: Callable[[str], None] = print,
        progress: Any | None = None,
    ) -> None:
        self.cfg = cfg
        self.log = log
        self.progress = progress  # a rich Progress, or None for silent runs
        self.out = Path(cfg.out)
        self.device = resolve_device(cfg.device)
        self.recipe: dict[str, Any] | None = None  # the distillation's, for the card

    # ----------------------------------------------------------------- data
    def load_data(self) -> tuple[EcgDataset, EcgDataset, EcgDataset, LeadStandardizer]:
        cfg = self.cfg
        ds = load_dataset(cfg.dataset, cfg.data, task=cfg.task, sampling_rate=cfg.sampling_rate)
        train, val, test = ds.split(cfg.train_folds, cfg.val_folds, cfg.test_folds)
        if len(train) == 0 or len(val) == 0:
            raise ValueError(
                f"{cfg.data}: need records in the training folds {list(cfg.train_folds)} and "
                f"validation folds {list(cfg.val_folds)}; found {len(train)} and {len(val)}"
            )
        # Standardisation is fitted on the training folds only, then saved in the
        # card and baked into exported graphs: no train/serve skew.
        scaler = LeadStandardizer.fit(train.x)
        self.dataset = ds
        return train, val, test, scaler

    # ----------------------------------------------------------------- loop
    def run(self) -> Path:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)

        # Recorded now: the tree may change while a long run is going on.
        self.code_version = code_version()
        train, val, test, scaler = self.load_data()
        x_train = scaler.apply(train.x)
        x_val = scaler.apply(val.x)
        x_test = scaler.apply(test.x)
        y_train = torch.from_numpy(train.y)

        # Built in this order after the seeds, so a run's weights and batches are reproducible.
        net = MRMNet(self._model_config(train)).to(self.device)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        gen = torch.Generator().manual_seed(cfg.seed)
        loss_fn, soft_labels = self._loss(train)
        # A run resumes only with the same teacher and recipe (resume.SAME_SETTINGS).
        settings = {**cfg.to_dict(), "distillation": self.recipe}

        state = resume(self.out, settings, net, opt, gen)
        start_epoch = state.epoch
        teacher = f" from teacher {self.recipe['teacher']['name']}" if self.recipe else ""
        self.log(
            f"training {cfg.preset} MRM-Net ({count_parameters(net):,} parameters){teacher} "
            f"on {len(train)} records, validating on {len(val)}, device {self.device}"
            + (f", resuming after epoch {start_epoch}" if start_epoch else "")
        )
        task = (
            self.progress.add_task("epochs", total=cfg.epochs, completed=start_epoch)
            if self.progress
            else None
        )
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            totals = self._train_epoch(
                epoch, net, opt, loss_fn, gen, x_train, (y_train, soft_labels)
            )
            val_metrics = head_metrics(val.y, predict_heads(net, x_val, self.device))
            improved = state.best.offer(val_metrics["fused"]["auc"], net)
            record = {
                "epoch": epoch,
                "seconds": round(time.perf_counter() - t0, 2),
                "train": {k: v / len(train) for k, v in totals.items()},
                "val": val_metrics,
                "best": improved,
            }
            state.epoch = epoch
            state.history.append(record)
            self._log_epoch(record)
            save_checkpoint(self.out, settings, net, opt, gen, state)
            if task is not None:
                self.progress.advance(task)

        if state.best.weights is None:
            raise RuntimeError("no epoch was trained (epochs must be >= 1)")
        net.load_state_dict(state.best.weights)
        return self._finish(net, scaler, (train, val, test), x_val, x_test, state)

    def _loss(
        self, train: EcgDataset
    ) -> tuple[MutualLearningLoss | DistillationLoss, torch.Tensor | None]:
        """The paper's loss, or with a teacher the distillation loss and its soft labels."""
        d = self.cfg.distill
        if d is None:
            return MutualLearningLoss(self.cfg.loss), None
        from mrm_edge.training.distill import teacher_soft_labels

        soft, self.recipe = teacher_soft_labels(d, train, self.cfg.sampling_rate, self.device)
        return DistillationLoss(self.cfg.loss, d.alpha, d.temperature), soft

    def _model_config(self, train: EcgDataset) -> MRMNetConfig:
        cfg = self.cfg
        return preset(
            cfg.preset,
            n_labels=len(train.labels),
            head_fusion=cfg.head_fusion,
            n_samples=train.x.shape[-1],
            **cfg.model_overrides,
        )

    def _train_epoch(
        self,
        epoch: int,
        net: MRMNet,
        opt: torch.optim.Optimizer,
        loss_fn: MutualLearningLoss | DistillationLoss,
        gen: torch.Generator,
        x_train: np.ndarray,
        targets: tuple[torch.Tensor, torch.Tensor | None],
    ) -> dict[str, float]:
        """One pass over the training folds in a fresh order; the loss terms summed over
        the samples (divide by the record count for the epoch's means). ``targets``: the
        labels and, when distilling, the teacher's soft labels."""
        y_train, soft_labels = targets
        cfg = self.cfg
        n = len(x_train)
        steps = (n + cfg.batch_size - 1) // cfg.batch_size
        net.train()
        order = torch.randperm(n, generator=gen)
        totals: dict[str, float] = {}
        batch_task = (
            self.progress.add_task(f"epoch {epoch}", total=steps) if self.progress else None
        )
        for s in range(steps):
            idx = order[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            if len(idx) < 2:  # BatchNorm cannot train on a single sample
                continue
            xb = torch.from_numpy(x_train[idx.numpy()]).to(self.device)
            yb = y_train[idx].to(self.device)
            soft = () if soft_labels is None else (soft_labels[idx].to(self.device),)
            loss, parts = loss_fn(net(xb), yb, *soft)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            totals["loss"] = totals.get("loss", 0.0) + loss.item() * len(idx)
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + v * len(idx)
            if batch_task is not None:
                self.progress.advance(batch_task)
        if batch_task is not None:
            self.progress.remove_task(batch_task)
        return totals

    def _log_epoch(self, record: dict[str, Any]) -> None:
        val = record["val"]
        self.log(
            f"epoch {record['epoch']:3d}  loss {record['train']['loss']:.4f}  val AUC fused "
            f"{val['fused']['auc']:.4f} (low {val['low']['auc']:.4f}, high "
            f"{val['high']['auc']:.4f})  {record['seconds']:.0f}s"
            + ("  *best*" if record["best"] else "")
        )

    # ----------------------------------------------------------------- card
    def _finish(
        self,
        net: MRMNet,
        scaler: LeadStandardizer,
        splits: tuple[EcgDataset, EcgDataset, EcgDataset],
        x_val: np.ndarray,
        x_test: np.ndarray,
        state: RunState,
    ) -> Path:
        _, val, test = splits
        thresholds, metrics = tuned_metrics(net, val, test, x_val, x_test, self.device)
        card = training_card(
            self.cfg,
            dataset=self.dataset,
            splits=splits,
            scaler=scaler,
            net=net,
            thresholds=thresholds,
            metrics=metrics,
            history=state.history,
            device=self.device,
            versions=self.code_version,
            distillation=self.recipe,
        )
        model_dir = self.out / "model"
        save_model_dir(model_dir, net.cpu(), card)
        self.log(f"model written to {model_dir}")
        return model_dir
