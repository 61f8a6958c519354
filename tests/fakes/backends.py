"""Fault-injection wrappers around a real backend (test doubles for a slow or failing one)."""

from __future__ import annotations

import time

import numpy as np
from mrm_edge.runtime.backends.base import Backend


class SlowBackend(Backend):
    """Test double: a real backend that sleeps ``delay_s`` per call, so that a max-speed
    source outruns it (a slow consumer)."""

    name = "slow"

    def __init__(self, inner: Backend, delay_s: float) -> None:
        super().__init__()
        self.inner, self.delay_s = inner, delay_s
        self.precision = inner.precision

    def _activate(self) -> None:
        self.inner.activate()
        self.input_dims = self.inner.input_dims

    def _infer(self, x: np.ndarray) -> np.ndarray:
        time.sleep(self.delay_s)
        return self.inner.infer(x)

    def _deactivate(self) -> None:
        self.inner.deactivate()
