"""The TensorRT backend's buffer slots and the handle of one submitted batch.

A slot is pinned host in/out + device in/out + two events (input copied, batch done); the
backend alternates two of them so one batch's input copy overlaps the other's compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mrm_edge.runtime.backends import cuda as cu

N_SLOTS = 2


@dataclass
class Slot:
    index: int
    host_in: cu.PinnedHostBuffer
    host_out: cu.PinnedHostBuffer
    dev_in: cu.DeviceBuffer
    dev_out: cu.DeviceBuffer
    h2d_done: cu.Event
    done: cu.Event
    pending: InferenceHandle | None = None


class InferenceHandle:
    """One submitted batch. ``result()`` waits for it and returns float32 [batch, labels];
    the result stays valid after the slot is reused."""

    def __init__(self, slot: Slot, out_shape: tuple[int, ...], out_dtype: np.dtype) -> None:
        self._slot: Slot | None = slot
        self._out_shape = out_shape
        self._out_dtype = out_dtype
        self._result: np.ndarray | None = None

    def done(self) -> bool:
        """True when the result is ready (never blocks)."""
        return self._result is not None or (self._slot is not None and self._slot.done.query())

    def result(self) -> np.ndarray:
        if self._result is None:
            self._finish()
        assert self._result is not None
        return self._result

    def _finish(self) -> None:
        slot = self._slot
        if slot is None or self._result is not None:
            return
        slot.done.synchronize()
        assert slot.host_out.array is not None
        n = int(np.prod(self._out_shape))
        out = slot.host_out.array.reshape(-1)[:n].reshape(self._out_shape)
        self._result = out.astype(np.float32, copy=True)  # the pinned buffer will be reused
        slot.pending = None
        self._slot = None


__all__ = ["N_SLOTS", "InferenceHandle", "Slot"]
