"""Training MRM-Net with the paper's recipe: Adam 1e-3 fixed, batch 64, the
mutual-learning loss; the best epoch by validation macro-AUC is kept.

Resumable: after every epoch ``checkpoint.safetensors`` holds the model, the best
epoch's weights, the optimiser state and the RNG states as tensors, and the epoch,
best AUC, settings and optimiser hyper-parameters as JSON in its metadata; with
``history.json`` beside it, ``train`` with the same ``--out`` carries on where it
stopped. Never pickle: a ``checkpoint.pt`` found there is refused, not loaded.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import mrm_edge
from mrm_edge.card import ModelCard
from mrm_edge.checkpoint import save_model_dir
from mrm_edge.data.dataset import LEADS, EcgDataset
from mrm_edge.data.errors import first_line
from mrm_edge.data.loaders import load_dataset
from mrm_edge.data.normalization import LeadStandardizer
from mrm_edge.losses import LossConfig, MutualLearningLoss
from mrm_edge.metrics import paper_metrics, per_label_report, tune_thresholds
from mrm_edge.model import MRMNet, preset

CHECKPOINT_FILE = "checkpoint.safetensors"
CHECKPOINT_FORMAT = "mrm-edge-checkpoint/1"
LEGACY_CHECKPOINT = "checkpoint.pt"  # pickle (torch.save): refused, never loaded
HISTORY_FILE = "history.json"
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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["loss"] = self.loss.to_dict()
        return d


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@torch.no_grad()
def predict_heads(
    net: MRMNet, x: np.ndarray, device: torch.device, batch_size: int = 128
) -> dict[str, np.ndarray]:
    """Sigmoid probabilities of the low and high heads and their mean (eval mode)."""
    net.eval()
    low, high = [], []
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[i : i + batch_size]).to(device)
        o1, o2 = net.head_logits(xb)
        low.append(torch.sigmoid(o1).float().cpu().numpy())
        high.append(torch.sigmoid(o2).float().cpu().numpy())
    p_low = np.concatenate(low) if low else np.zeros((0, net.cfg.n_labels), np.float32)
    p_high = np.concatenate(high) if high else np.zeros((0, net.cfg.n_labels), np.float32)
    return {"low": p_low, "high": p_high, "fused": (p_low + p_high) / 2}


def head_metrics(y: np.ndarray, probs: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    return {head: paper_metrics(y, p) for head, p in probs.items()}


def code_version() -> dict[str, Any]:
    info: dict[str, Any] = {
        "mrm_edge": mrm_edge.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    try:
        root = Path(__file__).resolve().parents[2]
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        info["git"] = rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        info["git"] = None
    return info


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

    # ----------------------------------------------------------------- data
    def load_data(self) -> tuple[EcgDataset, EcgDataset, EcgDataset, LeadStandardizer]:
        cfg = self.cfg
        ds = load_dataset(cfg.dataset, cfg.data, task=cfg.task, sampling_rate=cfg.sampling_rate)
        self.task = ds.task
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

        model_cfg = preset(
            cfg.preset,
            n_labels=len(train.labels),
            head_fusion=cfg.head_fusion,
            n_samples=train.x.shape[-1],
            **cfg.model_overrides,
        )
        net = MRMNet(model_cfg).to(self.device)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        loss_fn = MutualLearningLoss(cfg.loss)
        gen = torch.Generator().manual_seed(cfg.seed)

        state = self._resume(net, opt, gen)
        history: list[dict[str, Any]] = state["history"]
        best_auc: float = state["best_auc"]
        best_state: dict[str, torch.Tensor] | None = state["best_state"]
        start_epoch: int = state["epoch"]
        self.log(
            f"training {cfg.preset} MRM-Net ({sum(p.numel() for p in net.parameters()):,} "
            f"parameters) on {len(train)} records, validating on {len(val)}, device {self.device}"
            + (f", resuming after epoch {start_epoch}" if start_epoch else "")
        )

        n = len(train)
        steps = (n + cfg.batch_size - 1) // cfg.batch_size
        task = (
            self.progress.add_task("epochs", total=cfg.epochs, completed=start_epoch)
            if self.progress
            else None
        )
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
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
                loss, parts = loss_fn(net(xb), yb)
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

            val_probs = predict_heads(net, x_val, self.device)
            val_metrics = head_metrics(val.y, val_probs)
            auc = val_metrics["fused"]["auc"]
            improved = auc > best_auc
            if improved:
                best_auc = auc
                best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            record = {
                "epoch": epoch,
                "seconds": round(time.perf_counter() - t0, 2),
                "train": {k: v / n for k, v in totals.items()},
                "val": val_metrics,
                "best": improved,
            }
            history.append(record)
            self.log(
                f"epoch {epoch:3d}  loss {record['train']['loss']:.4f}  val AUC fused "
                f"{auc:.4f} (low {val_metrics['low']['auc']:.4f}, high "
                f"{val_metrics['high']['auc']:.4f})  {record['seconds']:.0f}s"
                + ("  *best*" if improved else "")
            )
            self._save_checkpoint(net, opt, gen, epoch, best_auc, best_state, history)
            if task is not None:
                self.progress.advance(task)

        if best_state is None:
            raise RuntimeError("no epoch was trained (epochs must be >= 1)")
        net.load_state_dict(best_state)
        return self._finish(net, scaler, train, val, test, x_val, x_test, history)

    # ----------------------------------------------------------------- resume
    def _save_checkpoint(self, net, opt, gen, epoch, best_auc, best_state, history) -> None:
        from safetensors.torch import save_file

        tensors, meta = _pack_checkpoint(net, opt, gen, best_state)
        meta.update(
            format=CHECKPOINT_FORMAT,
            epoch=str(epoch),
            best_auc=json.dumps(best_auc),
            config=json.dumps(self.cfg.to_dict()),
        )
        tmp = self.out / (CHECKPOINT_FILE + ".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(self.out / CHECKPOINT_FILE)  # atomic: a kill never leaves half a file
        (self.out / HISTORY_FILE).write_text(json.dumps(history, indent=1))

    def _resume(self, net, opt, gen) -> dict[str, Any]:
        path = self.out / CHECKPOINT_FILE
        fresh = {"epoch": 0, "best_auc": float("-inf"), "best_state": None, "history": []}
        legacy = self.out / LEGACY_CHECKPOINT
        if legacy.exists() and not path.exists():
            # Never unpickled: a pickle can run code on load, whoever wrote it.
            raise ValueError(
                f"{legacy}: a pickle checkpoint, not loaded (checkpoints are safetensors-only, "
                f"{CHECKPOINT_FILE}); delete it to train from scratch, or use another --out"
            )
        if not path.exists():
            return fresh
        tensors, meta = _read_checkpoint(path)
        saved = json.loads(meta.get("config") or "{}")
        for key in ("dataset", "task", "preset", "batch_size", "lr", "seed", "sampling_rate"):
            if saved.get(key) != self.cfg.to_dict().get(key):
                raise ValueError(
                    f"{path}: was trained with {key}={saved.get(key)!r}, now {key}="
                    f"{self.cfg.to_dict().get(key)!r}; use another --out or the same settings"
                )
        try:
            best_state = _unpack_checkpoint(tensors, meta, net, opt, gen)
            epoch, best_auc = int(meta["epoch"]), float(json.loads(meta["best_auc"]))
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ValueError(
                f"{path}: cannot resume from it ({first_line(e)}); delete it to train from "
                "scratch, or use another --out"
            ) from e
        history = (
            json.loads((self.out / HISTORY_FILE).read_text())
            if (self.out / HISTORY_FILE).exists()
            else []
        )
        return {
            "epoch": epoch,
            "best_auc": best_auc,
            "best_state": best_state,
            "history": history[:epoch],
        }

    # ----------------------------------------------------------------- card
    def _finish(self, net, scaler, train, val, test, x_val, x_test, history) -> Path:
        cfg = self.cfg
        val_probs = predict_heads(net, x_val, self.device)
        thresholds = tune_thresholds(val.y, val_probs["fused"])
        metrics: dict[str, Any] = {"validation": head_metrics(val.y, val_probs)}
        metrics["validation_per_label"] = per_label_report(
            val.y, val_probs["fused"], val.labels, thresholds
        )
        if len(test):
            test_probs = predict_heads(net, x_test, self.device)
            metrics["test"] = head_metrics(test.y, test_probs)
            metrics["test_per_label"] = per_label_report(
                test.y, test_probs["fused"], test.labels, thresholds
            )
        metrics["note"] = (
            "auc = macro ROC AUC; accuracy = element-wise at 0.5; f1 = sample-wise at 0.5 "
            "(the paper's definitions); per-label sensitivity/specificity at the tuned thresholds"
        )
        best = max(history, key=lambda r: r["val"]["fused"]["auc"])
        desc = self.dataset.describe()
        dropped = self.dataset.dropped_unlabelled
        desc_train_total = len(train) + sum(dropped.get(f, 0) for f in cfg.train_folds)
        card = ModelCard(
            name=cfg.name or f"mrm-net-{cfg.preset}-{cfg.dataset}-{self.task}",
            task=self.task,
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
                "description": desc,
                "folds": {
                    "train": list(cfg.train_folds),
                    "validation": list(cfg.val_folds),
                    "test": list(cfg.test_folds),
                },
                "records": {"train": len(train), "validation": len(val), "test": len(test)},
            },
            training={
                **cfg.to_dict(),
                "data": Path(cfg.data).name,  # no absolute paths of the user's machine
                "out": Path(cfg.out).name,
                "optimizer": "Adam",
                "epochs_run": len(history),
                "best_epoch": best["epoch"],
                "device": str(self.device),
            },
            code_version=self.code_version,
            intended_use=(
                f"Demonstration and engineering model, not a medical device and not for "
                f"clinical use. It saw {desc_train_total} records in the training folds "
                f"{list(cfg.train_folds)} ({len(train)} of them carry a {self.task} label and "
                f"were trained on, as in the PTB-XL benchmark); its test metrics come from "
                f"{len(test)} records and are far too few to judge clinical accuracy."
            ),
        )
        model_dir = self.out / "model"
        save_model_dir(model_dir, net.cpu(), card)
        self.log(f"model written to {model_dir}")
        return model_dir


# --------------------------------------------------------------------------- checkpoint file
# Tensors by prefix: "model." (the net), "best." (the best epoch's weights), "optim.<i>.<name>"
# (optimiser state of parameter i), "rng.torch" / "rng.generator"; everything else is JSON in
# the safetensors metadata (string to string), so reading a checkpoint never runs code.


def _pack_checkpoint(
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    best_state: dict[str, torch.Tensor] | None,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors: dict[str, torch.Tensor] = {}

    def put(name: str, t: torch.Tensor) -> None:
        # clone: safetensors refuses tensors that share memory (e.g. a best state = model).
        tensors[name] = t.detach().cpu().clone().contiguous()

    for k, v in net.state_dict().items():
        put(f"model.{k}", v)
    for k, v in (best_state or {}).items():
        put(f"best.{k}", v)
    optim = opt.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entries in optim["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                put(f"optim.{pid}.{name}", value)
            else:
                scalars.setdefault(str(pid), {})[name] = value
    put("rng.torch", torch.get_rng_state())
    put("rng.generator", gen.get_state())
    meta = {
        "optimizer": json.dumps({"param_groups": optim["param_groups"], "scalars": scalars}),
        "has_best": json.dumps(best_state is not None),
    }
    return tensors, meta


def _read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(
            f"{path}: not a readable safetensors checkpoint ({first_line(e, with_type=False)}); "
            "delete it to train from scratch, or use another --out"
        ) from e
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path}: metadata 'format' is {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}"
        )
    return tensors, meta


def _unpack_checkpoint(
    tensors: dict[str, torch.Tensor],
    meta: dict[str, str],
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
) -> dict[str, torch.Tensor] | None:
    """Restore net, optimiser and RNGs in place; return the best epoch's weights (or None)."""

    def prefixed(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    net.load_state_dict(prefixed("model."))
    optim = json.loads(meta["optimizer"])
    state: dict[int, dict[str, Any]] = {}
    for key, value in prefixed("optim.").items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for pid, entries in optim["scalars"].items():
        state.setdefault(int(pid), {}).update(entries)
    # JSON turned tuples (Adam's betas) into lists; give them back as saved.
    groups = [
        {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
        for g in optim["param_groups"]
    ]
    opt.load_state_dict({"state": state, "param_groups": groups})
    torch.set_rng_state(tensors["rng.torch"])
    gen.set_state(tensors["rng.generator"])
    return prefixed("best.") if json.loads(meta["has_best"]) else None


__all__ = ["TrainConfig", "Trainer", "head_metrics", "predict_heads"]
