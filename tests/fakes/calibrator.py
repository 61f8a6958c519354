"""Test doubles for the INT8 entropy calibrator's two dependencies: the one TensorRT base
class it subclasses, and a device allocator whose "device memory" is a host byte buffer.

For the calibrator against the full TensorRT and CUDA runtime doubles, see
``tests/fakes/tensorrt.py`` (``FakeTensorRT``, ``FakeCudaRuntime``).
"""

from __future__ import annotations

import types

import numpy as np


class FakeCalibratorBase:
    """Test double for ``tensorrt.IInt8EntropyCalibrator2`` (a pybind11 class whose
    ``__init__`` subclasses must call explicitly: ``base_initialised`` says it was)."""

    def __init__(self) -> None:
        self.base_initialised = True


#: Test double for the ``tensorrt`` module, holding only ``IInt8EntropyCalibrator2``.
MiniTensorRT = types.ModuleType("MiniTensorRT")
MiniTensorRT.IInt8EntropyCalibrator2 = FakeCalibratorBase  # type: ignore[attr-defined]


class FakeDevice:
    """Test double for a device allocator: allocations are host buffers (``memory``, by
    made-up address) and every ``free`` is recorded (``freed``)."""

    def __init__(self) -> None:
        self.memory: dict[int, bytearray] = {}
        self.freed: list[int] = []
        self._next = 0x7F0000000000

    def __call__(self, nbytes: int) -> FakeDevice.Buffer:
        ptr = self._next
        self._next += 1 << 20
        self.memory[ptr] = bytearray(nbytes)
        return FakeDevice.Buffer(self, ptr)

    class Buffer:
        def __init__(self, device: FakeDevice, ptr: int) -> None:
            self.device, self.ptr = device, ptr

        def copy_from_host(self, host: np.ndarray) -> None:
            mem = self.device.memory[self.ptr]
            assert host.flags.c_contiguous and host.nbytes == len(mem)
            mem[:] = host.tobytes()

        def free(self) -> None:
            self.device.freed.append(self.ptr)
