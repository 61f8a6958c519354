"""Shared helpers for the calibration and INT8 tests: a model card and a tiny real model.

The tiny model is built once per test session (``tiny_int8_model``) and shared by
tests/calibration and tests/export/int8/: a small MRM-Net trained for a few steps on
real PTB-XL training windows (folds 1-8), so its fold-10 AUC is clearly above chance and an
accuracy gate on it means something, then exported with the project's own FP32 exporter
(``mrm_edge.export.onnx_fp32.export_fp32``), i.e. exactly the graph INT8 export quantizes.
torch is used here only, never in the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.card import ModelCard
from mrm_edge.data.dataset import LEADS

LABELS = ["CD", "HYP", "MI", "NORM", "STTC"]
TINY = {"n_labels": 5, "width": 16, "stem_channels": (8, 8, 16, 16)}
TRAIN_STEPS = 20  # fold-10 macro-AUC ~0.80: far enough from chance for a gate to bite
TRAIN_BATCH = 32


def make_card(**overrides: Any) -> ModelCard:
    """A valid superdiagnostic model card (100 Hz, 10 s windows, folds 1-8 / 9 / 10)."""
    fields: dict[str, Any] = {
        "name": "tiny-test",
        "task": "superdiagnostic",
        "labels": list(LABELS),
        "sampling_rate": 100,
        "window_samples": 1000,
        "leads": list(LEADS),
        "units": "mV",
        "normalization": {"mean": [0.0] * 12, "std": [1.0] * 12},
        "preset": "tiny",
        "architecture": {},
        "head_fusion": "mean",
        "thresholds": {label: 0.5 for label in LABELS},
        "threshold_method": "fixed 0.5",
        "metrics": {},
        "data": {
            "dataset": "ptbxl",
            "folds": {"train": list(range(1, 9)), "validation": [9], "test": [10]},
        },
        "training": {},
        "code_version": {},
    }
    fields.update(overrides)
    return ModelCard(**fields)


@dataclass
class TinyModel:
    onnx: Path  # FP32 ONNX, input 'ecg' [batch, 12, 1000] raw mV
    model_dir: Path
    card: ModelCard
    test_x: np.ndarray  # fold 10, raw mV
    test_y: np.ndarray


_CACHE: dict[Path, TinyModel] = {}


def tiny_int8_model(ptbxl_root: Path, tmp_path_factory: Any) -> TinyModel:
    """The session's tiny trained model (built on first use, ~15 s on two busy cores)."""
    key = Path(ptbxl_root).resolve()
    if key not in _CACHE:
        _CACHE[key] = _build(key, tmp_path_factory.mktemp("tiny-int8-model"))
    return _CACHE[key]


def _build(ptbxl_root: Path, out: Path) -> TinyModel:
    import torch
    from mrm_edge.export.onnx_fp32 import export_fp32
    from torch.nn.functional import binary_cross_entropy_with_logits as bce

    from mrm_edge.checkpoint import save_model_dir
    from mrm_edge.data.loaders import load_dataset
    from mrm_edge.data.normalization import LeadStandardizer
    from mrm_edge.model import MRMNet, MRMNetConfig

    ds = load_dataset("ptbxl", ptbxl_root, task="superdiagnostic", sampling_rate=100)
    train, _, test = ds.split()
    scaler = LeadStandardizer.fit(train.x)
    xs = torch.from_numpy(scaler.apply(train.x))
    ys = torch.from_numpy(train.y)

    threads = torch.get_num_threads()
    # One thread: on a shared 2-core machine, torch's thread pool spins against the other
    # jobs and a step takes several times longer than single-threaded.
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        net = MRMNet(MRMNetConfig(**TINY))
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(0)
        net.train()
        for _ in range(TRAIN_STEPS):
            idx = torch.randint(0, len(xs), (TRAIN_BATCH,), generator=gen)
            out1, out2 = net.head_logits(xs[idx])
            loss = bce(out1, ys[idx]) + bce(out2, ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        card = make_card(
            normalization={"method": "per-lead standardisation", **scaler.to_dict()},
            architecture=net.cfg.to_dict(),
        )
        model_dir = save_model_dir(out / "model", net, card)
        onnx_path = export_fp32(model_dir, out / "model.onnx")
    finally:
        torch.set_num_threads(threads)
    return TinyModel(onnx_path, model_dir, card, test.x, test.y)


_POOLS: dict[Path, Any] = {}


def ptbxl_pool(ptbxl_root: Path) -> Any:
    """The PTB-XL calibration pool (training folds, 100 Hz, 10 s) for :func:`make_card`,
    read once per session: selections with other sizes and seeds reuse it."""
    from mrm_edge.calibration.sources import load_calibration_pool

    key = Path(ptbxl_root).resolve()
    if key not in _POOLS:
        _POOLS[key] = load_calibration_pool(key, make_card())
    return _POOLS[key]
