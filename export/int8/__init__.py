"""INT8 export: explicit (Q/DQ) static quantization of the FP32 ONNX model, with an accuracy gate.

- :mod:`.placement` — where the Q/DQ nodes go: uint8 for ONNX Runtime CPU
  (``model.int8.onnx``) and the symmetric TensorRT placement (``model.int8-sym.onnx``),
  written by ONNX Runtime's ``QDQQuantizer``;
- :mod:`.quantize` — calibration ranges (cached) → a Q/DQ model (:func:`quantize_int8`);
- :mod:`.measure` — FP32 and INT8 on the held-out windows (macro-AUC, |Δp|);
- :mod:`.sweep` — the per-layer sensitivity sweep and keeping layers in float;
- :mod:`.gate` — the accuracy gate (:func:`build_int8`) and its report.

No torch here; onnx and onnxruntime are imported when a function runs.
"""

from mrm_edge.export.int8.gate import Int8GateError, Int8Options, Int8Report, build_int8
from mrm_edge.export.int8.placement import (
    ACTIVATION_TYPES,
    COMPUTE_OP_TYPES,
    DEFAULT_OP_TYPES,
    SCHEMES,
    TENSORRT_OP_TYPES,
    ActivationType,
)
from mrm_edge.export.int8.quantize import (
    Int8Result,
    QuantizeOptions,
    quantize_int8,
    quantized_nodes,
)

__all__ = [
    "ACTIVATION_TYPES",
    "COMPUTE_OP_TYPES",
    "DEFAULT_OP_TYPES",
    "SCHEMES",
    "TENSORRT_OP_TYPES",
    "ActivationType",
    "Int8GateError",
    "Int8Options",
    "Int8Report",
    "Int8Result",
    "QuantizeOptions",
    "build_int8",
    "quantize_int8",
    "quantized_nodes",
]
