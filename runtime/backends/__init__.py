"""Inference backends (installed as ``mrm_edge.runtime.backends``); docs/architecture.md lists
the modules. Importing this package imports no torch, onnxruntime, tensorrt or CUDA binding:
each backend imports its library in ``activate()``.
"""

from mrm_edge.runtime.backends import onnxruntime, torch, triton
from mrm_edge.runtime.backends.base import Backend, BackendUnavailable
from mrm_edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from mrm_edge.runtime.backends.openvino import plan as openvino_plan
from mrm_edge.runtime.backends.registry import register_backend
from mrm_edge.runtime.backends.tensorrt import plan as tensorrt_plan
from mrm_edge.runtime.backends.tensorrt.runner import TensorRTBackend
from mrm_edge.runtime.backends.torch import TorchBackend

# The built-in backends; a new one is one module plus one line here.
register_backend(tensorrt_plan.SPEC)
register_backend(onnxruntime.SPEC)
register_backend(openvino_plan.SPEC)
register_backend(torch.SPEC)
register_backend(triton.SPEC)  # remote: --backend triton:HOST:PORT, never in auto's plan

__all__ = [
    "Backend",
    "BackendUnavailable",
    "OnnxRuntimeBackend",
    "TensorRTBackend",
    "TorchBackend",
]
