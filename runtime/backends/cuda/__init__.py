"""CUDA for the TensorRT backend, the GPU benchmark and the GPU probe: one small interface
(:class:`CudaApi`), two bindings (cuda-python, the default; pycuda), and resources on top.

- ``api``: :class:`CudaApi`, :class:`CudaError`, :func:`load_cuda_api` (which binding, and
  ``MRM_EDGE_CUDA`` to force one), :func:`as_cuda_api`.
- ``cuda_python``: :class:`CudaPythonApi` (``cuda.bindings.runtime``).
- ``pycuda_api``: :class:`PyCudaApi` (``pycuda.driver``; no CUDA graphs).
- ``resources``: DeviceBuffer, PinnedHostBuffer, Stream, Event, GraphExec and the copy /
  timing / capture calls, over either binding.

Importing this package imports neither binding: they load on first use. Not executed here
against a real GPU (the development machines have none); both bindings run against test
doubles (``tests/fakes/tensorrt.py``, ``tests/fakes/pycuda.py``).
"""

from mrm_edge.runtime.backends.cuda.api import (
    BINDINGS,
    CUDA_ENV,
    CudaApi,
    CudaError,
    DeviceProps,
    as_cuda_api,
    check,
    load_cuda_api,
    load_cudart,
    requested_binding,
)
from mrm_edge.runtime.backends.cuda.cuda_python import CudaPythonApi
from mrm_edge.runtime.backends.cuda.pycuda_api import PyCudaApi
from mrm_edge.runtime.backends.cuda.resources import (
    DeviceBuffer,
    Event,
    GraphExec,
    PinnedHostBuffer,
    Stream,
    begin_capture,
    elapsed_ms,
    end_capture,
    memcpy_dtoh_async,
    memcpy_htod_async,
)

__all__ = [
    "BINDINGS",
    "CUDA_ENV",
    "CudaApi",
    "CudaError",
    "CudaPythonApi",
    "DeviceBuffer",
    "DeviceProps",
    "Event",
    "GraphExec",
    "PinnedHostBuffer",
    "PyCudaApi",
    "Stream",
    "as_cuda_api",
    "begin_capture",
    "check",
    "elapsed_ms",
    "end_capture",
    "load_cuda_api",
    "load_cudart",
    "memcpy_dtoh_async",
    "memcpy_htod_async",
    "requested_binding",
]
