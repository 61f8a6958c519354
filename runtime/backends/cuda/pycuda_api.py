""":class:`CudaApi` over ``pycuda.driver`` (the CUDA driver API), for machines that have pycuda
and not cuda-python.

How pycuda differs and what this does about it:

- Contexts: the driver API needs a current context on every calling thread. ``set_device``
  retains the device's *primary* context (the one the CUDA runtime, hence TensorRT, uses) and
  pushes it; later calls from another thread push it there first. ``close`` pops and
  releases it (pycuda aborts at exit when its context stack is not empty).
- Memory: ``mem_alloc`` / ``pagelocked_empty`` objects free their memory when collected, so
  they are kept by address until ``free`` / ``free_host``.
- Copies take Python buffers: the pinned address is wrapped in a ctypes array of the size.
- Streams and events have no destroy call: dropping the object destroys it.
- No CUDA graph API: ``graphs_supported`` is False, capture raises (``CudaApi``'s refusals).

Not installable here (a source build needing nvcc): it runs against ``tests/fakes/pycuda.py``.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from mrm_edge.runtime.backends.cuda.api import (
    GRAPHS_NEED_CUDA_PYTHON,
    CudaApi,
    CudaError,
    GpuInfo,
)

_STREAM_NON_BLOCKING = 1  # CU_STREAM_NON_BLOCKING; pycuda has no enum for stream flags


class PyCudaApi(CudaApi):
    """pycuda's driver API (``import pycuda.driver``)."""

    graphs_supported = False
    graphs_unsupported = GRAPHS_NEED_CUDA_PYTHON

    def __init__(self, driver: Any, version: str | None = None) -> None:
        self.driver = driver
        version = version or getattr(driver, "VERSION_TEXT", None)
        self.binding = f"pycuda {version}" if version else "pycuda"
        self._initialised = False
        self._ctx: Any = None
        self._local = threading.local()  # .ctx: the context this thread has pushed
        self._device_mem: dict[int, Any] = {}
        self._host_mem: dict[int, np.ndarray] = {}

    def _call(self, call: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except self.driver.Error as e:
            raise CudaError(call, e) from e

    def _init(self) -> None:
        if not self._initialised:
            self._call("cuInit", self.driver.init)
            self._initialised = True

    def _current(self) -> None:
        """Make the device's context current on this thread (driver calls need one)."""
        if self._ctx is not None and getattr(self._local, "ctx", None) is not self._ctx:
            self._call("cuCtxPushCurrent", self._ctx.push)
            self._local.ctx = self._ctx

    # ---------------------------------------------------------------- devices

    def device_count(self) -> int:
        self._init()
        return int(self._call("cuDeviceGetCount", self.driver.Device.count))

    def device_properties(self, device: int) -> GpuInfo:
        self._init()
        dev = self._call(f"cuDeviceGet({device})", self.driver.Device, device)
        major, minor = self._call("cuDeviceComputeCapability", dev.compute_capability)
        name = self._call("cuDeviceGetName", dev.name)
        memory = self._call("cuDeviceTotalMem", dev.total_memory)
        return GpuInfo(str(name).strip(), f"{int(major)}.{int(minor)}", int(memory), device)

    def set_device(self, device: int) -> None:
        self._init()
        dev = self._call(f"cuDeviceGet({device})", self.driver.Device, device)
        if self._ctx is not None:
            self.close()
        self._ctx = self._call("cuDevicePrimaryCtxRetain", dev.retain_primary_context)
        self._current()

    def close(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx is None:
            return
        if getattr(self._local, "ctx", None) is ctx:
            self._local.ctx = None
            self._call("cuCtxPopCurrent", self.driver.Context.pop)
        self._call("cuDevicePrimaryCtxRelease", ctx.detach)

    # ---------------------------------------------------------------- memory

    def malloc(self, nbytes: int) -> int:
        self._current()
        alloc = self._call(f"cuMemAlloc({nbytes})", self.driver.mem_alloc, nbytes)
        self._device_mem[int(alloc)] = alloc
        return int(alloc)

    def free(self, ptr: int) -> None:
        alloc = self._device_mem.pop(int(ptr), None)
        if alloc is None:
            raise CudaError("cuMemFree", f"{int(ptr):#x} is no allocation of this binding")
        self._current()
        self._call("cuMemFree", alloc.free)

    def malloc_host(self, nbytes: int) -> int:
        self._current()
        array = self._call(
            f"cuMemHostAlloc({nbytes})", self.driver.pagelocked_empty, (nbytes,), np.uint8
        )
        ptr = int(array.ctypes.data)
        self._host_mem[ptr] = array
        return ptr

    def free_host(self, ptr: int) -> None:
        array = self._host_mem.pop(int(ptr), None)
        if array is None:
            raise CudaError("cuMemFreeHost", f"{int(ptr):#x} is no allocation of this binding")
        self._current()
        self._call("cuMemFreeHost", array.base.free)  # base: the PagelockedHostAllocation

    # ---------------------------------------------------------------- streams

    def stream_create(self) -> Any:
        self._current()
        return self._call("cuStreamCreate", self.driver.Stream, _STREAM_NON_BLOCKING)

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def stream_synchronize(self, stream: Any) -> None:
        self._current()
        self._call("cuStreamSynchronize", stream.synchronize)

    def stream_destroy(self, stream: Any) -> None:
        pass  # pycuda destroys a stream when its object is collected (the caller drops it)

    # ---------------------------------------------------------------- events

    def event_create(self, timing: bool = False) -> Any:
        self._current()
        flags = 0 if timing else int(self.driver.event_flags.DISABLE_TIMING)
        return self._call("cuEventCreate", self.driver.Event, flags)

    def event_record(self, event: Any, stream: Any) -> None:
        self._current()
        self._call("cuEventRecord", event.record, stream)

    def event_synchronize(self, event: Any) -> None:
        self._current()
        self._call("cuEventSynchronize", event.synchronize)

    def event_elapsed_ms(self, start: Any, end: Any) -> float:
        self._current()
        return float(self._call("cuEventElapsedTime", end.time_since, start))

    def event_destroy(self, event: Any) -> None:
        pass  # as streams: collected, not destroyed by call

    # ---------------------------------------------------------------- copies

    def memcpy_htod_async(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        self._current()
        view = (ctypes.c_byte * nbytes).from_address(src)  # pycuda sizes copies by the buffer
        self._call("cuMemcpyHtoDAsync", self.driver.memcpy_htod_async, dst, view, stream)

    def memcpy_dtoh_async(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        self._current()
        view = (ctypes.c_byte * nbytes).from_address(dst)
        self._call("cuMemcpyDtoHAsync", self.driver.memcpy_dtoh_async, view, src, stream)
