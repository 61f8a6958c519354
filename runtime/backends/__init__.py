"""Inference backends (installed as ``mrm_edge.runtime.backends``).

- ``base``: the ``Backend`` interface and ``BackendUnavailable``.
- ``onnxruntime``: ``OnnxRuntimeBackend`` (CPU, or CUDA with I/O binding).
- ``tensorrt``: ``TensorRTBackend`` (serialized engine, double-buffered pipeline, CUDA graphs).
- ``cuda``: the CUDA interface the TensorRT backend uses (cuda-python, or pycuda).
- ``trt_engine``, ``trt_slots``: the TensorRT backend's engine loading and buffer slots.

Importing this package imports no torch, no onnxruntime, no tensorrt and no CUDA binding:
each backend imports its library in ``activate()``.
"""

from mrm_edge.runtime.backends.base import Backend, BackendUnavailable
from mrm_edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from mrm_edge.runtime.backends.tensorrt import InferenceHandle, TensorRTBackend

__all__ = [
    "Backend",
    "BackendUnavailable",
    "InferenceHandle",
    "OnnxRuntimeBackend",
    "TensorRTBackend",
]
