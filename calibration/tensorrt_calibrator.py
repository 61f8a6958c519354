"""The same real-ECG calibration windows, fed to TensorRT's implicit INT8 calibrator.

TensorRT (JetPack 6: TensorRT 8.6 on JetPack 6.0, 10.3 on 6.1/6.2) can calibrate an FP32
network itself: during ``build_serialized_network`` it pulls batches from an
``IInt8EntropyCalibrator2`` subclass and writes a calibration cache (per-tensor scales) so
later builds skip calibration. :func:`make_entropy_calibrator` builds that subclass over a
:class:`~mrm_edge.calibration.windows.CalibrationSet`.

Note: TensorRT 10 deprecates implicit INT8 calibration in favour of explicit quantization;
the Q/DQ model from :mod:`mrm_edge.export.int8` with ``activation_type="int8"`` is the
forward-compatible route, this calibrator the route for a plain FP32 ONNX.

The TensorRT subclass is a thin shell. Everything that can be wrong without a GPU — fixed
batch size, what happens to the last partial batch, the cache file — lives in
:class:`CalibrationBatches`, which needs neither TensorRT nor CUDA and is unit-tested here.
The shell itself cannot run on a machine without TensorRT and an NVIDIA GPU; the tests
exercise it with test doubles passed in through ``trt_module`` / ``allocator`` /
``cudart``: ``FakeTensorRT`` (a module object whose ``IInt8EntropyCalibrator2`` is a plain
base class), a fake device allocator, and the project's CUDA runtime double for the
default cuda-python path. Nothing here has run against real TensorRT yet. No torch.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from mrm_edge.calibration.windows import CalibrationSet
from mrm_edge.runtime.backends import cuda as cu
from mrm_edge.runtime.backends.base import BackendUnavailable
from mrm_edge.runtime.backends.tensorrt.capability import (
    STANDARD,
    TensorRTUnavailable,
    import_tensorrt,
)

from mrm_edge.fileio import atomic_write_bytes

__all__ = [
    "CalibrationBatches",
    "DeviceBuffer",
    "make_entropy_calibrator",
]


class DeviceBuffer(Protocol):
    """A device allocation the calibrator copies each batch into."""

    ptr: int

    def copy_from_host(self, host: np.ndarray) -> None: ...

    def free(self) -> None: ...


class CalibrationBatches:
    """A calibration set as fixed-size batches, plus the calibration cache file.

    * Every batch has exactly ``batch_size`` windows: the TensorRT input binding is sized
      for that, and TensorRT reads ``batch_size`` windows from the device pointer.
    * The last partial batch is **dropped**, not padded: zero padding would add a spike of
      exact zeros to every activation histogram, and repeating windows would weight some
      records twice. ``dropped`` says how many windows that cost (choose ``n_windows`` as a
      multiple of the batch size to lose none).
    * The cache is TensorRT's opaque bytes, stored as ``cache_file``; a sidecar
      ``<cache_file>.json`` records the calibration set's fingerprint and the batch size,
      and a cache whose sidecar does not match is not offered to TensorRT (which would
      otherwise reuse scales computed on other data without a word).
    """

    def __init__(
        self, cset: CalibrationSet, batch_size: int, cache_file: str | Path | None = None
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if len(cset) < batch_size:
            raise ValueError(
                f"calibration set has {len(cset)} windows, fewer than one batch of {batch_size}; "
                "lower batch_size or select more windows"
            )
        self.cset = cset
        self.batch_size = batch_size
        self.n_batches = len(cset) // batch_size
        self.dropped = len(cset) - self.n_batches * batch_size
        self.cache_file = None if cache_file is None else Path(cache_file)
        self._next = 0
        self._fingerprint = cset.fingerprint()

    @property
    def batch_shape(self) -> tuple[int, int, int]:
        return (self.batch_size, int(self.cset.x.shape[1]), int(self.cset.x.shape[2]))

    @property
    def batch_nbytes(self) -> int:
        return int(np.prod(self.batch_shape)) * np.dtype(np.float32).itemsize

    def reset(self) -> None:
        self._next = 0

    def next_batch(self) -> np.ndarray | None:
        """The next C-contiguous float32 ``[batch_size, 12, window]`` batch, or ``None``."""
        if self._next >= self.n_batches:
            return None
        start = self._next * self.batch_size
        self._next += 1
        return np.ascontiguousarray(self.cset.x[start : start + self.batch_size], np.float32)

    # ------------------------------------------------------------------ cache

    @property
    def _sidecar(self) -> Path | None:
        return (
            None
            if self.cache_file is None
            else self.cache_file.with_name(self.cache_file.name + ".json")
        )

    def _identity(self) -> dict[str, Any]:
        return {"calibration": self._fingerprint, "batch_size": self.batch_size}

    def read_cache(self) -> bytes | None:
        """The cached calibration bytes, or ``None`` to make TensorRT calibrate."""
        if self.cache_file is None or not self.cache_file.is_file():
            return None
        sidecar = self._sidecar
        try:
            ident = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar else None
            data = self.cache_file.read_bytes()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None  # unreadable: recalibrate and overwrite
        if ident != self._identity() or not data:
            return None  # made from other windows or another batch size
        return data

    def write_cache(self, data: bytes) -> None:
        """Store TensorRT's calibration bytes (atomically) with their sidecar."""
        if self.cache_file is None:
            return
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        sidecar = self._sidecar
        assert sidecar is not None
        atomic_write_bytes(sidecar, json.dumps(self._identity()).encode())
        atomic_write_bytes(self.cache_file, bytes(data))


# --------------------------------------------------------------------------- TensorRT shell

# What a missing TensorRT means here, said after capability's "TensorRT is not installed here".
_INSTALL_HINT = (
    "TensorRT is needed to calibrate a TensorRT INT8 engine but is not importable here: on "
    "a Jetson install JetPack 6 (it provides the 'tensorrt' Python module), on an x86 "
    "machine with an NVIDIA GPU run `pip install 'mrm-edge[tensorrt]'`. Without TensorRT, "
    "export an INT8 Q/DQ ONNX instead (mrm_edge.export.int8, activation_type='int8') and "
    "build the engine on the target"
)


class _CudaBuffer:
    """A device buffer fed through a pinned host buffer on its own stream (the project's
    :class:`~mrm_edge.runtime.backends.cuda.CudaApi`: cuda-python, or pycuda).

    Pinned staging because an asynchronous copy from pageable memory silently becomes
    synchronous; the stream is synchronised before TensorRT reads the device pointer.
    """

    def __init__(self, nbytes: int, cudart: Any | None = None) -> None:
        try:
            cuda = cu.as_cuda_api(cudart)
        except BackendUnavailable as e:
            raise TensorRTUnavailable(
                f"a CUDA binding is needed to hand calibration batches to TensorRT: {e.reason}"
            ) from e
        self.nbytes = int(nbytes)
        with contextlib.ExitStack() as stack:
            self._device = stack.enter_context(cu.DeviceBuffer(self.nbytes, cuda))
            self._host = stack.enter_context(cu.PinnedHostBuffer((self.nbytes,), np.uint8, cuda))
            self._stream = stack.enter_context(cu.Stream(cuda))
            self._resources = stack.pop_all()
        self._cuda = cuda
        self.ptr = self._device.ptr

    def copy_from_host(self, host: np.ndarray) -> None:
        if host.nbytes != self.nbytes or not host.flags.c_contiguous:
            raise ValueError(f"batch is {host.nbytes} bytes, device buffer {self.nbytes}")
        assert self._host.array is not None and self._host.ptr is not None
        np.copyto(self._host.array, host.reshape(-1).view(np.uint8))
        cu.memcpy_htod_async(self._cuda, self.ptr, self._host.ptr, self.nbytes, self._stream)
        self._stream.synchronize()

    def free(self) -> None:
        # Idempotent: the stream, then the pinned and the device memory.
        self._resources.close()
        self.ptr = 0


def make_entropy_calibrator(
    cset: CalibrationSet,
    cache_file: str | Path | None,
    batch_size: int = 32,
    *,
    trt_module: Any | None = None,
    allocator: Callable[[int], DeviceBuffer] | None = None,
    cudart: Any | None = None,
) -> Any:
    """An ``IInt8EntropyCalibrator2`` over ``cset`` for TensorRT's INT8 builder.

    Use: ``config.set_flag(trt.BuilderFlag.INT8); config.int8_calibrator = calibrator``
    (the network's input profile must allow ``batch_size``). ``cache_file`` makes
    re-builds skip calibration (``None``: no cache). The calibrator's ``calibration_id``
    (the calibration set's fingerprint and the batch size) identifies its data, e.g. for
    an engine cache key.

    ``trt_module``, ``allocator`` and ``cudart`` are for tests only (a stand-in module, a
    fake device allocator, a stand-in for cuda-python's runtime); by default TensorRT and
    cuda-python are imported here, and a missing TensorRT raises
    :class:`~mrm_edge.runtime.backends.tensorrt.capability.TensorRTUnavailable` saying what
    to install.
    """
    trt = import_tensorrt(STANDARD, hint=_INSTALL_HINT) if trt_module is None else trt_module
    batches = CalibrationBatches(cset, batch_size, cache_file)
    alloc: Callable[[int], DeviceBuffer] = allocator or (lambda n: _CudaBuffer(n, cudart))
    calibration_id = f"{cset.fingerprint()}:batch{batch_size}"

    class EcgEntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc,name-defined]
        """TensorRT's entropy calibrator (v2) over real ECG windows."""

        def __init__(self) -> None:
            # pybind11 trampolines need the base __init__ called explicitly.
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = batches
            self.calibration_id = calibration_id
            self.buffer = alloc(batches.batch_nbytes)

        def get_batch_size(self) -> int:
            return batches.batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            if len(names) != 1:
                raise ValueError(
                    f"calibrator feeds one input (the ECG batch), TensorRT asks for {names}"
                )
            batch = batches.next_batch()
            if batch is None:
                return None  # tells TensorRT calibration data is exhausted
            self.buffer.copy_from_host(batch)
            return [int(self.buffer.ptr)]

        def read_calibration_cache(self) -> bytes | None:
            return batches.read_cache()

        def write_calibration_cache(self, cache: Any) -> None:
            batches.write_cache(bytes(cache))

        def free(self) -> None:
            self.buffer.free()

    return EcgEntropyCalibrator()
