"""Resuming a training run from ``checkpoint.safetensors`` (written after every epoch, beside
``history.json``); a pickle ``checkpoint.pt`` is refused, never loaded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mrm_edge.card import shown
from mrm_edge.errors import first_line
from mrm_edge.fileio import atomic_write_bytes
from mrm_edge.training.selection import BestEpoch

CHECKPOINT_FILE = "checkpoint.safetensors"
CHECKPOINT_FORMAT = "mrm-edge-checkpoint/1"
LEGACY_CHECKPOINT = "checkpoint.pt"  # pickle (torch.save): refused, never loaded
HISTORY_FILE = "history.json"
# A run resumes only with these settings unchanged: they decide the data, the model and the
# order of batches (a distilled run: also its teacher and recipe); the number of epochs (and the
# device) may change.
SAME_SETTINGS = (
    "dataset",
    "task",
    "preset",
    "model_overrides",
    "batch_size",
    "lr",
    "seed",
    "sampling_rate",
    "distillation",
)


@dataclass
class RunState:
    """Where a run stands: the last epoch done (0: none), the best one, one record per epoch."""

    epoch: int = 0
    best: BestEpoch = field(default_factory=BestEpoch)
    history: list[dict[str, Any]] = field(default_factory=list)


def save_checkpoint(
    out: Path,
    settings: dict[str, Any],
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    state: RunState,
) -> None:
    """Write ``checkpoint.safetensors`` (atomically) and ``history.json`` into ``out``."""
    from safetensors.torch import save

    tensors, meta = _pack_checkpoint(net, opt, gen, state.best.weights)
    meta.update(
        format=CHECKPOINT_FORMAT,
        epoch=str(state.epoch),
        best_auc=json.dumps(state.best.auc),
        config=json.dumps(settings),
    )
    atomic_write_bytes(out / CHECKPOINT_FILE, save(tensors, metadata=meta))  # a kill: no half file
    (out / HISTORY_FILE).write_text(json.dumps(state.history, indent=1))


def resume(
    out: Path,
    settings: dict[str, Any],
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
) -> RunState:
    """The state saved in ``out``, restored into net, optimiser and RNGs; fresh if none."""
    path = out / CHECKPOINT_FILE
    legacy = out / LEGACY_CHECKPOINT
    if legacy.exists() and not path.exists():
        # Never unpickled: a pickle can run code on load, whoever wrote it.
        raise ValueError(
            f"{legacy}: a pickle checkpoint, not loaded (checkpoints are safetensors-only, "
            f"{CHECKPOINT_FILE}); delete it to train from scratch, or use another --out"
        )
    if not path.exists():
        return RunState()
    tensors, meta = _read_checkpoint(path)
    saved = json.loads(meta.get("config") or "{}")
    # Compared as saved (JSON: tuples are lists); a key older checkpoints lack reads as None.
    now = json.loads(json.dumps(settings))
    for key in SAME_SETTINGS:
        if saved.get(key) != now.get(key):
            raise ValueError(
                f"{path}: was trained with {key}={shown(saved.get(key))}, now {key}="
                f"{shown(now.get(key))}; use another --out or the same settings"
            )
    try:
        best_weights = _unpack_checkpoint(tensors, meta, net, opt, gen)
        epoch, best_auc = int(meta["epoch"]), float(json.loads(meta["best_auc"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ValueError(
            f"{path}: cannot resume from it ({first_line(e)}); delete it to train from "
            "scratch, or use another --out"
        ) from e
    history = json.loads((out / HISTORY_FILE).read_text()) if (out / HISTORY_FILE).exists() else []
    return RunState(epoch, BestEpoch(best_auc, best_weights), history[:epoch])


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
