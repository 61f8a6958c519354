"""The trivial backend: the same probabilities for every window, in numpy.

What adding a backend takes: this one module (the Backend and its ``SPEC``) plus one
``register_backend(SPEC)``; ``--backend constant``, ``select_backend`` and the monitor
then reach it without another edit.
"""

from __future__ import annotations

import numpy as np
from mrm_edge.runtime.backends.base import Backend
from mrm_edge.runtime.backends.registry import BackendSpec, Candidate, PlanRequest

PROBABILITY = 0.25


class ConstantBackend(Backend):
    """Probability :data:`PROBABILITY` for every label of every window."""

    name = "constant"

    def __init__(self, n_labels: int, input_dims: tuple[int, int]) -> None:
        super().__init__()
        self.n_labels = n_labels
        self._dims = input_dims

    def _activate(self) -> None:
        self.input_dims = self._dims

    def _infer(self, x: np.ndarray) -> np.ndarray:
        return np.full((len(x), self.n_labels), PROBABILITY, dtype=np.float32)

    def _deactivate(self) -> None:
        pass


def plan(request: PlanRequest) -> tuple[list[Candidate], list[str]]:
    card = request.model.card
    make = lambda: ConstantBackend(len(card.labels), (len(card.leads), card.window_samples))  # noqa: E731
    cand = Candidate(
        "constant fp32", "constant", make, "the trivial numpy backend", precision="fp32"
    )
    return [cand], [] if request.precision in (None, "fp32") else ["constant: fp32 only"]


# rank 5: before TensorRT, so `auto` would take it too (the test asks for it by name).
SPEC = BackendSpec(name="constant", family="constant", rank=5, plan=plan)
