"""Thin cuda-python helpers: errors, device and pinned host memory, streams, events (timing
too), graphs.

cuda-python's runtime API (``from cuda.bindings import runtime as cudart``; ``from cuda import
cudart`` on older releases) returns a tuple ``(err, *values)`` from every call; :func:`check`
turns a non-success ``err`` into a one-line :class:`CudaError`. Every class takes the
``cudart`` module it should use, so the TensorRT backend can be driven by a host-memory test
double (``tests/fakes/tensorrt.py``); the module is imported lazily by :func:`load_cudart`.

Resources are context managers and free themselves on exit (and ``free()``/``destroy()`` are
idempotent), because leaked pinned memory and streams outlive a Python exception otherwise.

Not executed here: these helpers have only run against the test double (this machine has no
GPU); the calls follow the cuda-python runtime API documentation.
"""

from __future__ import annotations

import ctypes
from types import TracebackType
from typing import Any

import numpy as np
from mrm_edge.runtime.backends.base import BackendUnavailable


class CudaError(RuntimeError):
    """A CUDA runtime call failed: ``"<call>: <cudaErrorName>"`` in one line."""

    def __init__(self, call: str, err: Any) -> None:
        self.call = call
        self.code = int(err)
        self.error_name = str(getattr(err, "name", f"cudaError {int(err)}"))
        super().__init__(f"{call}: {self.error_name}")


def load_cudart() -> Any:
    """The cuda-python runtime module, or BackendUnavailable saying what to install."""
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[import-not-found, no-redef]  # cuda-python < 12.6
        except ImportError as e:
            raise BackendUnavailable(
                "cuda", f"cuda-python is not installed ({e}); pip install 'cuda-python>=12.4'"
            ) from e
    return cudart


def check(result: Any, call: str = "CUDA call") -> Any:
    """Unpack a cuda-python result tuple: raise CudaError unless ``err`` is success (0);
    return None, the single value, or the tuple of values."""
    if not isinstance(result, tuple):
        result = (result,)
    err, values = result[0], result[1:]
    if int(err) != 0:
        raise CudaError(call, err)
    if not values:
        return None
    return values[0] if len(values) == 1 else values


class _Resource:
    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class DeviceBuffer(_Resource):
    """``nbytes`` of device memory (``cudaMalloc``); ``ptr`` is its address."""

    def __init__(self, nbytes: int, cudart: Any) -> None:
        self._cudart = cudart
        self.nbytes = int(nbytes)
        self.ptr: int | None = int(
            check(cudart.cudaMalloc(self.nbytes), f"cudaMalloc({self.nbytes})")
        )

    def close(self) -> None:
        if self.ptr is not None:
            ptr, self.ptr = self.ptr, None
            check(self._cudart.cudaFree(ptr), "cudaFree")

    free = close


class PinnedHostBuffer(_Resource):
    """Page-locked host memory (``cudaMallocHost``) with a numpy view ``array``.

    Pinned memory is what lets ``cudaMemcpyAsync`` run truly asynchronously (pageable memory
    makes the copy synchronous). The numpy view is dropped on ``close()``: keep no other
    references to it past that point, they would dangle.
    """

    def __init__(self, shape: tuple[int, ...], dtype: Any, cudart: Any) -> None:
        self._cudart = cudart
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.ptr: int | None = int(
            check(cudart.cudaMallocHost(self.nbytes), f"cudaMallocHost({self.nbytes})")
        )
        raw = (ctypes.c_byte * self.nbytes).from_address(self.ptr)
        self.array: np.ndarray | None = np.frombuffer(raw, dtype=self.dtype).reshape(self.shape)

    def close(self) -> None:
        if self.ptr is not None:
            ptr, self.ptr, self.array = self.ptr, None, None
            check(self._cudart.cudaFreeHost(ptr), "cudaFreeHost")

    free = close


class Stream(_Resource):
    """A non-blocking CUDA stream (no implicit sync with the legacy default stream)."""

    def __init__(self, cudart: Any) -> None:
        self._cudart = cudart
        flags = getattr(cudart, "cudaStreamNonBlocking", 1)
        self._stream: Any = check(
            cudart.cudaStreamCreateWithFlags(flags), "cudaStreamCreateWithFlags"
        )

    @property
    def raw(self) -> Any:
        """The cudaStream_t for cuda-python calls."""
        return self._stream

    @property
    def handle(self) -> int:
        """The stream's address as an int, as TensorRT's ``execute_async_v3`` takes it."""
        return int(self._stream)

    def synchronize(self) -> None:
        check(self._cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def wait(self, event: Event) -> None:
        """Work enqueued on this stream after this call waits for ``event``'s last record."""
        check(self._cudart.cudaStreamWaitEvent(self._stream, event.raw, 0), "cudaStreamWaitEvent")

    def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            check(self._cudart.cudaStreamDestroy(stream), "cudaStreamDestroy")

    destroy = close


class Event(_Resource):
    """A CUDA event, used to order streams and to poll completion. Without timing by default
    (cheaper); ``timing=True`` makes one :func:`elapsed_ms` can measure between (benchmarks)."""

    def __init__(self, cudart: Any, timing: bool = False) -> None:
        self._cudart = cudart
        self.timing = timing
        if timing:
            flags = getattr(cudart, "cudaEventDefault", 0)
        else:
            flags = getattr(cudart, "cudaEventDisableTiming", 2)
        self._event: Any = check(cudart.cudaEventCreateWithFlags(flags), "cudaEventCreateWithFlags")

    @property
    def raw(self) -> Any:
        return self._event

    def record(self, stream: Stream) -> None:
        check(self._cudart.cudaEventRecord(self._event, stream.raw), "cudaEventRecord")

    def synchronize(self) -> None:
        check(self._cudart.cudaEventSynchronize(self._event), "cudaEventSynchronize")

    def query(self) -> bool:
        """True when the work before the last record has finished (never blocks)."""
        result = self._cudart.cudaEventQuery(self._event)
        err = result[0] if isinstance(result, tuple) else result
        if int(err) == int(self._cudart.cudaError_t.cudaErrorNotReady):
            return False
        check(result, "cudaEventQuery")
        return True

    def close(self) -> None:
        if self._event is not None:
            event, self._event = self._event, None
            check(self._cudart.cudaEventDestroy(event), "cudaEventDestroy")

    destroy = close


def elapsed_ms(cudart: Any, start: Event, end: Event) -> float:
    """Device time between two recorded timing events, in ms (``cudaEventElapsedTime``:
    about 0.5 us resolution). Both must have completed: synchronize ``end`` first."""
    return float(check(cudart.cudaEventElapsedTime(start.raw, end.raw), "cudaEventElapsedTime"))


def memcpy_htod_async(cudart: Any, dst: int, src: int, nbytes: int, stream: Stream) -> None:
    kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
    check(cudart.cudaMemcpyAsync(dst, src, nbytes, kind, stream.raw), "cudaMemcpyAsync(HtoD)")


def memcpy_dtoh_async(cudart: Any, dst: int, src: int, nbytes: int, stream: Stream) -> None:
    kind = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
    check(cudart.cudaMemcpyAsync(dst, src, nbytes, kind, stream.raw), "cudaMemcpyAsync(DtoH)")


class GraphExec(_Resource):
    """An instantiated CUDA graph; ``launch(stream)`` replays it."""

    def __init__(self, cudart: Any, exec_: Any) -> None:
        self._cudart = cudart
        self._exec = exec_

    def launch(self, stream: Stream) -> None:
        check(self._cudart.cudaGraphLaunch(self._exec, stream.raw), "cudaGraphLaunch")

    def close(self) -> None:
        if self._exec is not None:
            exec_, self._exec = self._exec, None
            check(self._cudart.cudaGraphExecDestroy(exec_), "cudaGraphExecDestroy")

    destroy = close


def begin_capture(cudart: Any, stream: Stream) -> None:
    # Thread-local mode: other threads' CUDA calls (e.g. a second backend) stay legal.
    mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
    check(cudart.cudaStreamBeginCapture(stream.raw, mode), "cudaStreamBeginCapture")


def end_capture(cudart: Any, stream: Stream) -> GraphExec:
    """End the capture on ``stream`` and instantiate it (the graph template is freed)."""
    graph = check(cudart.cudaStreamEndCapture(stream.raw), "cudaStreamEndCapture")
    try:
        exec_ = check(cudart.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
    finally:
        check(cudart.cudaGraphDestroy(graph), "cudaGraphDestroy")
    return GraphExec(cudart, exec_)


__all__ = [
    "CudaError",
    "DeviceBuffer",
    "Event",
    "GraphExec",
    "PinnedHostBuffer",
    "Stream",
    "begin_capture",
    "check",
    "elapsed_ms",
    "end_capture",
    "load_cudart",
    "memcpy_dtoh_async",
    "memcpy_htod_async",
]
