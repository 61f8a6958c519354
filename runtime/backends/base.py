"""The interface every runtime backend implements (after Polygraphy's runners).

A backend turns raw 12-lead windows into label probabilities::

    with OnnxRuntimeBackend("model.onnx") as backend:      # __enter__ activates
        p = backend.infer(x)   # x float32 [batch, 12, samples] mV → float32 [batch, labels]

``activate()`` acquires everything expensive (sessions, engines, device memory, streams);
``deactivate()`` releases it; the constructor only records settings, so a backend can be
built cheaply and activated where it runs. Subclasses implement ``_activate``, ``_infer`` and
``_deactivate``; the public methods here check state and input once for all of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType

import numpy as np

from mrm_edge.artifacts import (
    ENGINE_PRECISIONS,
    VARIANTS,
    parse_engine_filename,
    trtexec_engine_filename,
)


class BackendUnavailable(RuntimeError):
    """A backend that cannot run here (missing library, device or provider).

    ``str(e)`` is one line: ``"<backend>: <reason>"``; ``e.reason`` is the reason alone.
    """

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"{backend}: {reason}")
        self.backend = backend
        self.reason = reason


def precision_from_filename(path: Path) -> str:
    """The precision a model-directory file name stands for, by ``mrm_edge.artifacts``: an
    ONNX variant's file (``model.fp16.onnx`` → ``"fp16"``, ``model.int8-sym.onnx`` →
    ``"int8"``), an exported engine (``model.fp16.<digest>.engine``) or a trtexec one
    (``model.fp16.trtexec.engine``); ``"fp32"`` for any other name."""
    name = Path(path).name
    for variant in VARIANTS.values():
        if name == variant.file:
            return variant.precision
    engine = parse_engine_filename(name)
    if engine is not None:
        return engine[0]
    for precision in ENGINE_PRECISIONS:
        if name == trtexec_engine_filename(precision):
            return precision
    return "fp32"


class Backend(ABC):
    """Common interface: ``name``, ``device``, ``precision``, ``input_name``,
    ``output_name``, ``input_dims`` (per-sample dims, None where dynamic), ``max_batch``
    (None = unlimited; larger batches are split), ``activate``/``infer``/``deactivate``."""

    name: str = "backend"

    def __init__(self) -> None:
        self.device: str = "cpu"
        self.precision: str = "fp32"
        self.input_name: str | None = None
        self.output_name: str | None = None
        self.input_dims: tuple[int | None, ...] | None = None
        self.max_batch: int | None = None
        self._active = False

    # ---------------------------------------------------------------- lifecycle

    @property
    def is_active(self) -> bool:
        return self._active

    def activate(self) -> None:
        """Acquire the backend's resources. Raises BackendUnavailable when it cannot run here."""
        if self._active:
            raise RuntimeError(f"{self.name}: already active")
        self._activate()
        self._active = True

    def deactivate(self) -> None:
        """Release the backend's resources (safe to call twice)."""
        if not self._active:
            return
        try:
            self._deactivate()
        finally:
            self._active = False

    def __enter__(self) -> Backend:
        self.activate()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.deactivate()

    # ---------------------------------------------------------------- inference

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Probabilities float32 [batch, labels] for windows ``x`` [batch, leads, samples]."""
        x = self.check_input(x)
        if self.max_batch is not None and x.shape[0] > self.max_batch:
            parts = [
                self._infer(x[i : i + self.max_batch]) for i in range(0, len(x), self.max_batch)
            ]
            return np.concatenate(parts).astype(np.float32, copy=False)
        return np.asarray(self._infer(x), dtype=np.float32)

    def check_input(self, x: np.ndarray) -> np.ndarray:
        """``x`` as C-contiguous float32 after checking state, rank and per-sample dims."""
        if not self._active:
            raise RuntimeError(f"{self.name}: not active (use `with backend:` or activate())")
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise ValueError(f"{self.name}: input dtype {x.dtype}, expected float32 mV")
        if x.ndim != 3 or x.shape[0] == 0:
            raise ValueError(
                f"{self.name}: input shape {x.shape}, expected [batch >= 1, leads, samples]"
            )
        if self.input_dims is not None:
            want = self.input_dims
            got = x.shape[1:]
            if len(want) != len(got) or any(
                w is not None and w != g for w, g in zip(want, got, strict=True)
            ):
                shown = ", ".join("?" if w is None else str(w) for w in want)
                raise ValueError(f"{self.name}: input shape {x.shape}, expected [batch, {shown}]")
        return np.ascontiguousarray(x, dtype=np.float32)

    def describe(self) -> str:
        batch = "unlimited" if self.max_batch is None else f"max batch {self.max_batch}"
        return f"{self.name} on {self.device}, {self.precision}, {batch}"

    # ---------------------------------------------------------------- to implement

    @abstractmethod
    def _activate(self) -> None: ...

    @abstractmethod
    def _infer(self, x: np.ndarray) -> np.ndarray:
        """``x`` is checked, float32, C-contiguous, batch <= max_batch."""

    @abstractmethod
    def _deactivate(self) -> None: ...
