"""Inference backends (installed as ``mrm_edge.runtime.backends``).

- ``base``: the ``Backend`` interface and ``BackendUnavailable``.
- ``registry``: the registered backends (``BackendSpec``: family, place in ``auto``'s plan,
  plan, CPU factory); ``--backend``, selection and the bench read it.
- ``onnxruntime``: ``OnnxRuntimeBackend`` (CPU, or CUDA with I/O binding) and its plan.
- ``tensorrt``: ``TensorRTBackend`` (serialized engine, one buffer set, CUDA graphs):
  capability probes, engine files, loader, runner, plan.
- ``openvino``: ``OpenVinoBackend`` (CPU; the ``openvino`` extra), its capability probe and plan.
- ``torch``: ``TorchBackend``, the PyTorch reference.
- ``triton``: ``TritonBackend``, a Triton Inference Server over gRPC (``triton:HOST:PORT``).
- ``cuda``: the CUDA interface the TensorRT backend uses (cuda-python, or pycuda).

Importing this package imports no torch, no onnxruntime, no tensorrt and no CUDA binding:
each backend imports its library in ``activate()``.
"""

from mrm_edge.runtime.backends import onnxruntime, torch, triton
from mrm_edge.runtime.backends import openvino as openvino_backend
from mrm_edge.runtime.backends.base import Backend, BackendUnavailable
from mrm_edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from mrm_edge.runtime.backends.registry import register_backend
from mrm_edge.runtime.backends.tensorrt import TensorRTBackend
from mrm_edge.runtime.backends.tensorrt import plan as tensorrt_plan
from mrm_edge.runtime.backends.torch import TorchBackend

# The built-in backends; a new one is one module plus one line here.
register_backend(tensorrt_plan.SPEC)
register_backend(onnxruntime.SPEC)
register_backend(openvino_backend.SPEC)
register_backend(torch.SPEC)
register_backend(triton.SPEC)  # remote: --backend triton:HOST:PORT, never in auto's plan

__all__ = [
    "Backend",
    "BackendUnavailable",
    "OnnxRuntimeBackend",
    "TensorRTBackend",
    "TorchBackend",
]
