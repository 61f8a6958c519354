"""Test doubles for backends: a stub with no model at all, and fault-injection wrappers
around a real backend (a slow one, a failing one)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from mrm_edge.runtime.backends.base import Backend, BackendUnavailable

#: What a CUDA out-of-memory error says; ``FailingBackend`` raises it by default.
OOM = "CUDA out of memory. Tried to allocate 2.00 GiB"


class StubBackend(Backend):
    """Test double: no model; probabilities are ``fn`` of the batch (default 0.9 for the
    first of five labels, 0.1 for the others), with an optional ``delay_s`` per call and
    failures (the first ``fail`` calls raise; -1: every call). Counts its calls
    (``calls``) and the largest batch it was given (``max_seen``)."""

    name = "stub"

    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray] | None = None,
        delay_s: float = 0.0,
        fail: int = 0,
        input_dims: tuple[int, int] = (12, 1000),
    ) -> None:
        super().__init__()
        self.fn = fn or (lambda x: np.tile([0.9, 0.1, 0.1, 0.1, 0.1], (len(x), 1)))
        self.delay_s = delay_s
        self.fail = fail  # fail this many calls first (-1: always)
        self.calls = 0
        self.max_seen = 0
        self._dims = input_dims

    def _activate(self) -> None:
        self.input_dims = self._dims

    def _infer(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.max_seen = max(self.max_seen, len(x))
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail < 0 or self.calls <= self.fail:
            raise RuntimeError("boom")
        return np.asarray(self.fn(x), np.float32)

    def _deactivate(self) -> None:
        pass


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


class FailingBackend(Backend):
    """Test double: a real backend that raises on chosen ``infer`` calls (1-based:
    ``fail_calls``, or every call from ``fail_from`` on) and, optionally, on its
    ``fail_activations``-th activations. Records every call's batch size and outcome."""

    name = "failing"

    def __init__(
        self,
        inner: Backend,
        *,
        error: Callable[[], BaseException] = lambda: RuntimeError(OOM),
        fail_calls: tuple[int, ...] = (),
        fail_from: int | None = None,
        fail_activations: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        self.inner = inner
        self.error = error
        self.fail_calls = set(fail_calls)
        self.fail_from = fail_from
        self.fail_activations = set(fail_activations)
        self.calls: list[tuple[int, bool]] = []  # (batch size, succeeded)
        self.activations = 0
        self.precision = inner.precision

    def _activate(self) -> None:
        self.activations += 1
        if self.activations in self.fail_activations:
            raise BackendUnavailable(self.name, "injected: device lost")
        self.inner.activate()
        self.device, self.input_dims = self.inner.device, self.inner.input_dims

    def _infer(self, x: np.ndarray) -> np.ndarray:
        n = len(self.calls) + 1
        fail = n in self.fail_calls or (self.fail_from is not None and n >= self.fail_from)
        self.calls.append((len(x), not fail))
        if fail:
            raise self.error()
        return self.inner.infer(x)

    def _deactivate(self) -> None:
        self.inner.deactivate()

    @property
    def classified(self) -> int:
        """Windows this backend returned probabilities for."""
        return sum(n for n, ok in self.calls if ok)
