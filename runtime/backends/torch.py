"""PyTorch reference backend: the model the exported graphs are gated against, as a Backend.

``torch`` is imported in ``activate()`` only (the edge install has none): planning it, and
importing this module, import no torch. Last in ``auto``'s plan: the slowest option, there
so a directory with only weights still runs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from mrm_edge.runtime.backends.base import Backend, BackendUnavailable
from mrm_edge.runtime.backends.registry import BackendSpec, Candidate, PlanRequest

from mrm_edge.errors import first_line


class TorchBackend(Backend):
    """The PyTorch model as a Backend: the reference the exported graphs are gated against.

    ``torch`` is imported in ``activate()`` only; without it, activation raises
    BackendUnavailable saying so. Loads ``mrm_edge.checkpoint.load_model_dir`` (weights
    verified against the card's SHA-256) and its raw-mV ``inference_model``.
    """

    name = "torch"

    def __init__(self, model_dir: str | Path) -> None:
        super().__init__()
        self.model_dir = Path(model_dir)
        self.precision = "fp32"
        self._model: Any = None
        self._torch: Any = None

    def _activate(self) -> None:
        try:
            import torch
        except ImportError as e:
            raise BackendUnavailable(
                self.name,
                f"PyTorch is not installed ({first_line(e, with_type=False)}); use "
                "onnxruntime, or install the `train` extra",
            ) from e
        from mrm_edge.checkpoint import inference_model, load_model_dir

        net, card = load_model_dir(self.model_dir, self.device)
        self._model = inference_model(net, card).to(self.device).eval()
        self._torch = torch
        self.input_name, self.output_name = "ecg", "probabilities"
        self.input_dims = (len(card.leads), card.window_samples)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            p = self._model(torch.from_numpy(x).to(self.device))
        return p.detach().cpu().numpy().astype(np.float32, copy=False)

    def _deactivate(self) -> None:
        self._model = None
        self._torch = None


def plan(request: PlanRequest) -> tuple[list[Candidate], list[str]]:
    """The reference option (FP32, weights present, torch importable), or why not."""
    model = request.model
    # Another precision asked: that is the reason, though the FP32 option stays in the plan.
    fp32_only = (
        ["PyTorch reference runs FP32 only"] if request.precision not in (None, "fp32") else []
    )
    if model.weights is None:
        return [], fp32_only or [
            f"PyTorch: no weights ({model.directory / 'model.safetensors'} missing)"
        ]
    if importlib.util.find_spec("torch") is None:
        return [], fp32_only or ["PyTorch is not installed (the edge install has no torch)"]
    cand = Candidate(
        "torch fp32 (model.safetensors) on CPU",
        "torch",
        lambda: TorchBackend(model.directory),
        "PyTorch reference (slowest)",
        precision="fp32",
    )
    return [cand], fp32_only


def cpu_backend(model_dir: Path, variant: str) -> TorchBackend:
    """The bench's PyTorch row: FP32 weights on the CPU."""
    if variant != "fp32":
        raise ValueError("torch runs FP32 on the CPU; FP16 needs CUDA")
    return TorchBackend(model_dir)


# Last resort for auto (planning it imports no torch; only activation does); its reasons are
# noise when a faster option was chosen.
SPEC = BackendSpec(
    name="torch",
    family="torch",
    rank=30,
    plan=plan,
    cpu_factory=cpu_backend,
    quiet_when_passed=True,
)
