"""PyTorch's CPU modes beside eager FP32, so every speed-up can be stated against PyTorch's
best (docs/benchmarks.md): bench-only subclasses of the runtime's PyTorch backend that change
how a batch runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.runtime.backends import BackendUnavailable, TorchBackend


def torch_bf16_refusal() -> str | None:
    """Why eager BF16 autocast is not timed here (no native BF16: PyTorch would emulate it,
    a figure nobody would run), or None."""
    from mrm_edge.runtime.facts import probe_machine

    ok, why = probe_machine().bf16  # OpenVINO's CPU capabilities and the flags
    return None if ok else why


class TorchAutocastBackend(TorchBackend):
    """PyTorch eager under ``torch.autocast("cpu", dtype=torch.bfloat16)``."""

    name = "torch"

    def __init__(self, model_dir: str | Path) -> None:
        super().__init__(model_dir)
        self.precision = "bf16"

    def _activate(self) -> None:
        why = torch_bf16_refusal()
        if why is not None:
            raise BackendUnavailable("torch bf16", why)
        super()._activate()

    def _infer(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            p = self._model(torch.from_numpy(x))
        return p.float().numpy()


class TorchCompiledBackend(TorchBackend):
    """``torch.compile`` (default mode, static shapes: one compilation per batch size, whose
    time is recorded in ``compile_seconds`` and kept out of the timed calls)."""

    name = "torch-compile"

    def __init__(self, model_dir: str | Path) -> None:
        super().__init__(model_dir)
        self.compile_seconds: dict[int, float] = {}
        self._compiled: Any = None

    def _activate(self) -> None:
        super()._activate()
        self._compiled = self._torch.compile(self._model, dynamic=False)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        first = len(x) not in self.compile_seconds
        t0 = time.perf_counter()
        with torch.inference_mode():
            p = self._compiled(torch.from_numpy(x))
        if first:  # the first call at a shape is the compilation (plus one run)
            self.compile_seconds[len(x)] = time.perf_counter() - t0
        return p.detach().numpy().astype(np.float32, copy=False)

    def _deactivate(self) -> None:
        self._compiled = None
        super()._deactivate()
