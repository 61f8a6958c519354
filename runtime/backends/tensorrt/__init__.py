"""The TensorRT backend (after Polygraphy's loader / runner split).

- ``capability``: which TensorRT flavours import here (standard ``tensorrt``, or
  ``tensorrt_rtx``), what they support, which GPU; probes never raise.
- ``engine_file``: an engine's sidecar, whether it fits this GPU and TensorRT
  (``fit_engines``, ``check_engine``), and why not.
- ``loader``: deserialising an engine with the flavour that built it, why one does not load,
  TensorRT-RTX's runtime cache.
- ``runner``: :class:`TensorRTBackend`: one buffer set, one stream, synchronous ``infer``.
- ``plan``: the TensorRT options of backend selection (registered in ``registry``).

Importing this package imports neither tensorrt nor a CUDA binding.
"""

from mrm_edge.runtime.backends.tensorrt.loader import EngineNotLoadable, EngineUnusable
from mrm_edge.runtime.backends.tensorrt.runner import TensorRTBackend

__all__ = ["EngineNotLoadable", "EngineUnusable", "TensorRTBackend"]
