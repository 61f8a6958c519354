"""CUDA resources as context managers over a :class:`CudaApi` (or a cuda-python-like runtime
module, wrapped): device and pinned host memory, streams, events, graphs. They free themselves
on exit (idempotently): leaked pinned memory and streams outlive a Python exception otherwise.
"""

from __future__ import annotations

import ctypes
from types import TracebackType
from typing import Any

import numpy as np
from mrm_edge.runtime.backends.cuda.api import as_cuda_api


class _Resource:
    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()  # type: ignore[attr-defined]  # each resource defines it


class DeviceBuffer(_Resource):
    """``nbytes`` of device memory; ``ptr`` is its address."""

    def __init__(self, nbytes: int, cuda: Any) -> None:
        self._cuda = as_cuda_api(cuda)
        self.nbytes = int(nbytes)
        self.ptr: int | None = self._cuda.malloc(self.nbytes)

    def close(self) -> None:
        if self.ptr is not None:
            ptr, self.ptr = self.ptr, None
            self._cuda.free(ptr)


class PinnedHostBuffer(_Resource):
    """Page-locked host memory with a numpy view ``array``.

    Pinned memory is what lets the async copies run truly asynchronously (pageable memory
    makes the copy synchronous). The numpy view is dropped on ``close()``: keep no other
    references to it past that point, they would dangle.
    """

    def __init__(self, shape: tuple[int, ...], dtype: Any, cuda: Any) -> None:
        self._cuda = as_cuda_api(cuda)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.ptr: int | None = self._cuda.malloc_host(self.nbytes)
        raw = (ctypes.c_byte * self.nbytes).from_address(self.ptr)
        self.array: np.ndarray | None = np.frombuffer(raw, dtype=self.dtype).reshape(self.shape)

    def close(self) -> None:
        if self.ptr is not None:
            ptr, self.ptr, self.array = self.ptr, None, None
            self._cuda.free_host(ptr)


class Stream(_Resource):
    """A non-blocking CUDA stream (no implicit sync with the legacy default stream)."""

    def __init__(self, cuda: Any) -> None:
        self._cuda = as_cuda_api(cuda)
        self._stream: Any = self._cuda.stream_create()

    @property
    def raw(self) -> Any:
        """The binding's stream object."""
        return self._stream

    @property
    def handle(self) -> int:
        """The stream's address as an int, as TensorRT's ``execute_async_v3`` takes it."""
        return self._cuda.stream_handle(self._stream)

    def synchronize(self) -> None:
        self._cuda.stream_synchronize(self._stream)

    def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            self._cuda.stream_destroy(stream)


class Event(_Resource):
    """A CUDA event: the host waits for it (``synchronize``). Without timing by default
    (cheaper); ``timing=True`` makes one ``CudaApi.event_elapsed_ms`` can measure between."""

    def __init__(self, cuda: Any, timing: bool = False) -> None:
        self._cuda = as_cuda_api(cuda)
        self._event: Any = self._cuda.event_create(timing)

    @property
    def raw(self) -> Any:
        return self._event

    def record(self, stream: Stream) -> None:
        self._cuda.event_record(self._event, stream.raw)

    def synchronize(self) -> None:
        self._cuda.event_synchronize(self._event)

    def close(self) -> None:
        if self._event is not None:
            event, self._event = self._event, None
            self._cuda.event_destroy(event)


class GraphExec(_Resource):
    """An instantiated CUDA graph; ``launch(stream)`` replays it."""

    def __init__(self, cuda: Any, exec_: Any) -> None:
        self._cuda = as_cuda_api(cuda)
        self._exec = exec_

    def launch(self, stream: Stream) -> None:
        self._cuda.graph_launch(self._exec, stream.raw)

    def close(self) -> None:
        if self._exec is not None:
            exec_, self._exec = self._exec, None
            self._cuda.graph_destroy(exec_)


def end_capture(cuda: Any, stream: Stream) -> GraphExec:
    """End the capture on ``stream`` and instantiate it (the graph template is freed)."""
    api = as_cuda_api(cuda)
    return GraphExec(api, api.end_capture(stream.raw))
