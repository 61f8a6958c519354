"""One small CUDA interface (:class:`CudaApi`) for the TensorRT backend, the GPU benchmark
and the GPU probe, and how a binding is chosen (:func:`load_cuda_api`; docs/export.md).

Two implementations: ``cuda_python.CudaPythonApi`` (the default) and ``pycuda_api.PyCudaApi``
(no CUDA graphs). Pointers are ints; streams, events and graphs are opaque handles that only
the implementation that made them reads. Every method raises a one-line :class:`CudaError`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from mrm_edge.runtime.backends.base import BackendUnavailable

from mrm_edge.errors import first_line

CUDA_ENV = "MRM_EDGE_CUDA"
CUDA_PYTHON, PYCUDA = "cuda-python", "pycuda"
BINDINGS: tuple[str, ...] = (CUDA_PYTHON, PYCUDA)
CUDA_PYTHON_INSTALL = "pip install 'cuda-python>=12.4'"
PYCUDA_INSTALL = "pip install pycuda (builds from source: needs nvcc and the CUDA headers)"
GRAPHS_NEED_CUDA_PYTHON = "CUDA graphs need cuda-python (pycuda has no graph API)"


class CudaError(RuntimeError):
    """A CUDA call failed: ``"<call>: <cudaErrorName or driver message>"`` in one line.

    ``err`` is a cuda-python error code or the exception / text a binding without codes gave
    (pycuda)."""

    def __init__(self, call: str, err: Any) -> None:
        self.call = call
        if isinstance(err, BaseException):
            self.error_name = first_line(err, with_type=False)
        elif isinstance(err, str):
            self.error_name = err
        else:
            self.error_name = str(getattr(err, "name", f"cudaError {int(err)}"))
        super().__init__(f"{call}: {self.error_name}")


def check(result: Any, call: str = "CUDA call") -> Any:
    """Unpack a cuda-python result tuple (every call returns one): raise CudaError unless
    ``err`` is success (0); return None, the single value, or the tuple of values."""
    err, values = result[0], result[1:]
    if int(err) != 0:
        raise CudaError(call, err)
    if not values:
        return None
    return values[0] if len(values) == 1 else values


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device, as either binding reports it."""

    name: str
    compute_capability: str  # "major.minor", e.g. "9.0" (H100), "8.7" (Jetson Orin)
    total_memory_bytes: int
    device: int = 0

    def summary(self) -> str:
        gib = self.total_memory_bytes / 2**30
        return (
            f"{self.name} (compute {self.compute_capability}, {gib:.1f} GiB, device {self.device})"
        )


class CudaApi(ABC):
    """The CUDA calls this project makes, whichever binding serves them.

    ``binding`` names the binding and its version; ``graphs_supported`` says whether stream
    capture works (``graphs_unsupported`` says why not)."""

    binding: str = "cuda"
    graphs_supported: bool = True
    graphs_unsupported: str | None = None

    # devices
    @abstractmethod
    def device_count(self) -> int: ...
    @abstractmethod
    def device_properties(self, device: int) -> GpuInfo: ...
    @abstractmethod
    def set_device(self, device: int) -> None:
        """Make ``device`` (its primary context, the one TensorRT uses) current."""

    def close(self) -> None:  # noqa: B027 - optional: only bindings with contexts need it
        """Undo ``set_device`` where the binding needs it (pycuda pops its context)."""

    # memory
    @abstractmethod
    def malloc(self, nbytes: int) -> int: ...
    @abstractmethod
    def free(self, ptr: int) -> None: ...
    @abstractmethod
    def malloc_host(self, nbytes: int) -> int:
        """Page-locked host memory: what makes the async copies asynchronous."""

    @abstractmethod
    def free_host(self, ptr: int) -> None: ...

    # streams
    @abstractmethod
    def stream_create(self) -> Any:
        """A non-blocking stream (no implicit sync with the legacy default stream)."""

    @abstractmethod
    def stream_handle(self, stream: Any) -> int:
        """The stream's address, as TensorRT's ``execute_async_v3`` takes it."""

    @abstractmethod
    def stream_synchronize(self, stream: Any) -> None: ...
    @abstractmethod
    def stream_destroy(self, stream: Any) -> None: ...

    # events
    @abstractmethod
    def event_create(self, timing: bool = False) -> Any: ...
    @abstractmethod
    def event_record(self, event: Any, stream: Any) -> None: ...
    @abstractmethod
    def event_synchronize(self, event: Any) -> None: ...
    @abstractmethod
    def event_elapsed_ms(self, start: Any, end: Any) -> float:
        """Device time between two recorded timing events, in ms (about 0.5 us resolution).
        Both must have completed: synchronize ``end`` first."""

    @abstractmethod
    def event_destroy(self, event: Any) -> None: ...

    # copies (host side: page-locked memory from malloc_host)
    @abstractmethod
    def memcpy_htod_async(self, dst: int, src: int, nbytes: int, stream: Any) -> None: ...
    @abstractmethod
    def memcpy_dtoh_async(self, dst: int, src: int, nbytes: int, stream: Any) -> None: ...

    # graphs: a binding without a graph API (pycuda) keeps these refusals
    def begin_capture(self, stream: Any) -> None:
        raise CudaError("stream capture", str(self.graphs_unsupported))

    def end_capture(self, stream: Any) -> Any:
        """End the capture and return the instantiated graph (the template is freed)."""
        raise CudaError("stream capture", str(self.graphs_unsupported))

    def graph_launch(self, graph: Any, stream: Any) -> None:
        raise CudaError("graph launch", str(self.graphs_unsupported))

    def graph_destroy(self, graph: Any) -> None:
        raise CudaError("graph destroy", str(self.graphs_unsupported))


def _dist_version(*names: str) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _load_cuda_python() -> CudaApi:
    from mrm_edge.runtime.backends.cuda.cuda_python import CudaPythonApi

    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
    except ImportError:
        from cuda import cudart  # type: ignore[import-not-found, no-redef]  # cuda-python < 12.6
    return CudaPythonApi(cudart, version=_dist_version("cuda-bindings", "cuda-python"))


def _load_pycuda() -> CudaApi:
    import pycuda  # type: ignore[import-not-found]  # only when chosen: it initialises CUDA
    import pycuda.driver as driver  # type: ignore[import-not-found]
    from mrm_edge.runtime.backends.cuda.pycuda_api import PyCudaApi

    return PyCudaApi(driver, version=str(getattr(pycuda, "VERSION_TEXT", "") or "") or None)


#: binding → loader; tests replace entries to simulate what is installed.
LOADERS: dict[str, Callable[[], CudaApi]] = {CUDA_PYTHON: _load_cuda_python, PYCUDA: _load_pycuda}


def load_cuda_api() -> CudaApi:
    """cuda-python when importable, else pycuda; ``$MRM_EDGE_CUDA`` forces one.
    BackendUnavailable (backend "cuda") says what is missing and what to install."""
    want = os.environ.get(CUDA_ENV, "").strip() or None
    if want is not None and want not in BINDINGS:
        raise ValueError(f"${CUDA_ENV} {want!r}, expected one of {', '.join(BINDINGS)}")
    why: dict[str, str] = {}
    for name in [want] if want else list(BINDINGS):
        try:
            return LOADERS[name]()
        except Exception as e:  # pycuda without libcuda raises ImportError or its own errors
            why[name] = first_line(e, with_type=False)
    forced = f" (asked for by ${CUDA_ENV})"
    if want == CUDA_PYTHON:
        reason = f"cuda-python is not installed ({why[CUDA_PYTHON]}){forced}"
        raise BackendUnavailable("cuda", f"{reason}; {CUDA_PYTHON_INSTALL}")
    if want == PYCUDA:
        reason = f"pycuda is not usable here ({why[PYCUDA]}){forced}"
        raise BackendUnavailable("cuda", f"{reason}; {PYCUDA_INSTALL}")
    raise BackendUnavailable(
        "cuda",
        f"cuda-python is not installed ({why[CUDA_PYTHON]}), nor is pycuda ({why[PYCUDA]}); "
        f"{CUDA_PYTHON_INSTALL} (preferred), or {PYCUDA_INSTALL}",
    )


def as_cuda_api(cuda: Any = None) -> CudaApi:
    """``cuda`` if it is a CudaApi; a cuda-python-like runtime module (or its test double)
    wrapped in CudaPythonApi; None: :func:`load_cuda_api`. pycuda is passed as a PyCudaApi
    (it keeps state: its context and allocations)."""
    if cuda is None:
        return load_cuda_api()
    if isinstance(cuda, CudaApi):
        return cuda
    from mrm_edge.runtime.backends.cuda.cuda_python import CudaPythonApi

    return CudaPythonApi(cuda)
