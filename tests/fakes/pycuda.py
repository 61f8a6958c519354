"""TEST DOUBLE of the ``pycuda.driver`` surface this project uses. Not pycuda.

pycuda is a source package: building it needs nvcc and the CUDA headers, which the
development machines do not have, so the real module cannot be installed (let alone run)
here. ``FakePyCudaDriver`` mirrors the calls :class:`PyCudaApi` makes, with pycuda's shapes
(objects, not error codes; buffers, not pointers, for host memory in copies) on top of
``FakeCudaRuntime``'s host-memory device: deferred streams, bounds-checked memory, events
with "last record" semantics, a fake clock for timing events. What it enforces that the
code under test could get wrong:

- ``init()`` first, then a *current context* on the calling thread for every call that
  needs one (allocations, streams, events, copies), as the driver API does; contexts are
  a per-thread stack (``push`` / ``Context.pop``), and ``detach`` releases the primary one;
- allocations free once (``free()`` twice is a ``LogicError``); ``pagelocked_empty``
  returns an ndarray whose ``base`` is the allocation with ``free()``, as pycuda does;
- ``memcpy_*_async`` size the copy from the Python buffer; host memory must be pinned;
- streams and events are destroyed when collected (no destroy call), as in pycuda;
- there is no graph API at all.

Nothing here talks to a GPU; what passes against it has not been shown to work with pycuda.
"""

from __future__ import annotations

import ctypes
import enum
import threading
from typing import Any

import numpy as np

from tests.fakes.tensorrt import FakeCudaRuntime, FakeDeviceProp, cudaError_t, cudaMemcpyKind


class Error(Exception):
    """``pycuda.driver.Error``: the base of pycuda's CUDA errors."""


class LogicError(Error):
    pass


class MemoryError(Error):
    pass


class RuntimeError(Error):
    pass


class event_flags(enum.IntEnum):
    DEFAULT = 0
    BLOCKING_SYNC = 1
    DISABLE_TIMING = 2


def _raise(call: str, err: Any) -> None:
    if int(err) != 0:
        raise LogicError(f"{call} failed: {cudaError_t(int(err)).name}")


class FakePyCudaDriver:
    """A stand-in for ``pycuda.driver`` (test double); ``runtime`` is the FakeCudaRuntime
    holding its memory and streams (pass it to FakeTensorRT as ``cuda=``)."""

    Error, LogicError, MemoryError, RuntimeError = Error, LogicError, MemoryError, RuntimeError
    event_flags = event_flags
    VERSION_TEXT = "2025.1.2 (test double)"

    def __init__(self, devices: list[FakeDeviceProp] | None = None, **runtime_kw: Any) -> None:
        self.runtime = FakeCudaRuntime(devices, **runtime_kw)
        self.initialised = False
        self._stacks = threading.local()
        self.retained: dict[int, int] = {}  # device -> primary context retain count
        driver = self

        class Device:
            def __init__(self, number: int) -> None:
                driver._need_init("cuDeviceGet")
                if not 0 <= number < len(driver.runtime.devices):
                    raise LogicError(f"cuDeviceGet failed: invalid device ordinal {number}")
                self.number = number
                self._prop = driver.runtime.devices[number]

            @staticmethod
            def count() -> int:
                driver._need_init("cuDeviceGetCount")
                return len(driver.runtime.devices)

            def name(self) -> str:
                return self._prop.name.split(b"\0", 1)[0].decode()

            def compute_capability(self) -> tuple[int, int]:
                return self._prop.major, self._prop.minor

            def total_memory(self) -> int:
                return self._prop.totalGlobalMem

            def retain_primary_context(self) -> FakeContext:
                driver.retained[self.number] = driver.retained.get(self.number, 0) + 1
                return FakeContext(driver, self.number)

        class Context:
            @staticmethod
            def pop() -> None:
                stack = driver.stack()
                if not stack:
                    raise LogicError("cuCtxPopCurrent failed: no context to pop")
                stack.pop()

            @staticmethod
            def get_current() -> FakeContext | None:
                stack = driver.stack()
                return stack[-1] if stack else None

        class Stream:
            def __init__(self, flags: int = 0) -> None:
                driver._need_context("cuStreamCreate")
                self._rt = driver.runtime
                self._s = self._rt.cudaStreamCreateWithFlags(flags)[1]
                self.handle = self._s.ident

            def synchronize(self) -> None:
                driver._need_context("cuStreamSynchronize")
                _raise("cuStreamSynchronize", self._rt.cudaStreamSynchronize(self._s)[0])

            def __del__(self) -> None:  # pycuda destroys the stream with the object
                if not self._s.destroyed:
                    self._rt.cudaStreamDestroy(self._s)

        class Event:
            def __init__(self, flags: int = 0) -> None:
                driver._need_context("cuEventCreate")
                self._rt = driver.runtime
                self._e = self._rt.cudaEventCreateWithFlags(int(flags))[1]

            def record(self, stream: Any = None) -> Event:
                driver._need_context("cuEventRecord")
                if stream is None:
                    raise LogicError("this double has no legacy default stream: pass a Stream")
                _raise("cuEventRecord", self._rt.cudaEventRecord(self._e, stream._s)[0])
                return self

            def synchronize(self) -> Event:
                driver._need_context("cuEventSynchronize")
                _raise("cuEventSynchronize", self._rt.cudaEventSynchronize(self._e)[0])
                return self

            def time_since(self, event: Any) -> float:
                driver._need_context("cuEventElapsedTime")
                err, ms = self._rt.cudaEventElapsedTime(event._e, self._e)
                _raise("cuEventElapsedTime", err)
                return ms

            def __del__(self) -> None:
                if not self._e.destroyed:
                    self._rt.cudaEventDestroy(self._e)

        self.Device, self.Context, self.Stream, self.Event = Device, Context, Stream, Event

    # ------------------------------------------------------------------ state checks

    def stack(self) -> list[FakeContext]:
        if not hasattr(self._stacks, "stack"):
            self._stacks.stack = []
        return self._stacks.stack

    def _need_init(self, call: str) -> None:
        if not self.initialised:
            raise LogicError(f"{call} failed: initialization error (call init() first)")

    def _need_context(self, call: str) -> None:
        self._need_init(call)
        stack = self.stack()
        if not stack or not stack[-1].valid:
            raise LogicError(
                f"{call} failed: invalid device context - no currently active context?"
            )

    # ------------------------------------------------------------------ module functions

    def init(self, flags: int = 0) -> None:
        if not self.runtime.devices:
            raise RuntimeError("cuInit failed: no CUDA-capable device is detected")
        self.initialised = True

    def mem_alloc(self, nbytes: int) -> FakeDeviceAllocation:
        self._need_context("cuMemAlloc")
        err, ptr = self.runtime.cudaMalloc(int(nbytes))
        if int(err) != 0:
            raise MemoryError("cuMemAlloc failed: out of memory")
        return FakeDeviceAllocation(self, ptr)

    def pagelocked_empty(self, shape: Any, dtype: Any, order: str = "C", mem_flags: int = 0):
        self._need_context("cuMemHostAlloc")
        dtype = np.dtype(dtype)
        shape = tuple(shape) if isinstance(shape, (tuple, list)) else (int(shape),)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        err, ptr = self.runtime.cudaMallocHost(nbytes)
        if int(err) != 0:
            raise MemoryError("cuMemHostAlloc failed: out of memory")
        return np.asarray(FakePagelockedHostAllocation(self, ptr, shape, dtype))

    def _copy(self, call: str, dst: int, src: int, nbytes: int, kind: Any, stream: Any) -> None:
        self._need_context(call)
        if stream is None:
            raise LogicError("this double only does stream-ordered copies: pass a Stream")
        _raise(call, self.runtime.cudaMemcpyAsync(dst, src, nbytes, kind, stream._s)[0])

    def memcpy_htod_async(self, dest: Any, src: Any, stream: Any = None) -> None:
        # pycuda: the size of the copy is the buffer's; the address is where it lies.
        nbytes, addr = memoryview(src).nbytes, ctypes.addressof(ctypes.c_char.from_buffer(src))
        kind = cudaMemcpyKind.cudaMemcpyHostToDevice
        self._copy("cuMemcpyHtoDAsync", int(dest), addr, nbytes, kind, stream)

    def memcpy_dtoh_async(self, dest: Any, src: Any, stream: Any = None) -> None:
        nbytes, addr = memoryview(dest).nbytes, ctypes.addressof(ctypes.c_char.from_buffer(dest))
        kind = cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._copy("cuMemcpyDtoHAsync", addr, int(src), nbytes, kind, stream)


class FakeContext:
    """A retained primary context (``Device.retain_primary_context()``)."""

    def __init__(self, driver: FakePyCudaDriver, device: int) -> None:
        self._driver, self.device, self.valid = driver, device, True

    def push(self) -> None:
        if not self.valid:
            raise LogicError("cuCtxPushCurrent failed: context was detached")
        self._driver.stack().append(self)

    def detach(self) -> None:
        if not self.valid:
            raise LogicError("context::detach failed: cannot detach from invalid context")
        self.valid = False
        self._driver.retained[self.device] -= 1
        stack = self._driver.stack()
        if self in stack:
            stack.remove(self)


class FakeDeviceAllocation:
    def __init__(self, driver: FakePyCudaDriver, ptr: int) -> None:
        self._driver, self._ptr, self.freed = driver, ptr, False

    def __int__(self) -> int:
        return self._ptr

    def free(self) -> None:
        if self.freed:
            raise LogicError("cuMemFree failed: already freed")
        self._driver._need_context("cuMemFree")
        self.freed = True
        _raise("cuMemFree", self._driver.runtime.cudaFree(self._ptr)[0])


class FakePagelockedHostAllocation:
    """The ``base`` of a ``pagelocked_empty`` array (pycuda's PagelockedHostAllocation)."""

    def __init__(
        self, driver: FakePyCudaDriver, ptr: int, shape: tuple[int, ...], dtype: np.dtype
    ) -> None:
        self._driver, self._ptr, self.freed = driver, ptr, False
        self.__array_interface__ = {
            "shape": shape,
            "typestr": dtype.str,
            "data": (ptr, False),
            "version": 3,
        }

    def free(self) -> None:
        if self.freed:
            raise LogicError("cuMemFreeHost failed: already freed")
        self._driver._need_context("cuMemFreeHost")
        self.freed = True
        _raise("cuMemFreeHost", self._driver.runtime.cudaFreeHost(self._ptr)[0])


__all__ = ["FakePyCudaDriver"]
