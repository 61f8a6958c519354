"""Where the Q/DQ nodes go: the two INT8 placements (``activation_type="uint8"`` →
``model.int8.onnx`` for ONNX Runtime CPU, ``"int8"`` → ``model.int8-sym.onnx`` for TensorRT),
written by ONNX Runtime's ``QDQQuantizer`` from pre-computed ranges. Why each is placed as it
is: docs/export.md, "The two INT8 placements"."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from mrm_edge.calibration.ranges import QUANTIZED_OP_TYPES, Ranges

ActivationType = Literal["uint8", "int8"]
ACTIVATION_TYPES: tuple[str, ...] = ("uint8", "int8")
#: What is quantized by default: the compute ops (the layers that do the arithmetic, ranked by
#: the sensitivity sweep) plus the ops that carry their activations (docs/export.md).
DEFAULT_OP_TYPES: tuple[str, ...] = (*QUANTIZED_OP_TYPES, "Add", "MaxPool", "Concat")
#: The int8 (TensorRT) placement: Q/DQ on the inputs of these ops only.
TENSORRT_OP_TYPES: tuple[str, ...] = QUANTIZED_OP_TYPES
#: Activation type → the scheme in words, for sidecars and log lines.
SCHEMES: dict[str, str] = {
    "uint8": "uint8 asymmetric activations (ONNX Runtime CPU)",
    "int8": "int8 symmetric, float bias (TensorRT, OpenVINO)",
}


def write_qdq(
    fp32_onnx: Path,
    out_path: Path,
    ranges: Ranges,
    activation_type: str,
    exclude: Sequence[str] = (),
    only: Sequence[str] | None = None,
    op_types: Sequence[str] = DEFAULT_OP_TYPES,
) -> None:
    """Run ORT's QDQQuantizer on ``fp32_onnx`` with pre-computed ``ranges``.

    ``exclude`` keeps those nodes in float; ``only`` (when given) quantizes those nodes alone.
    """
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer

    model = load_model_with_shape_infer(fp32_onnx)
    tensors = TensorsData(
        CalibrationMethod.MinMax,
        {
            name: TensorData(lowest=np.array(lo, np.float32), highest=np.array(hi, np.float32))
            for name, (lo, hi) in ranges.items()
        },
    )
    quantize_ops, extra = placement(activation_type, op_types)
    act = QuantType.QInt8 if activation_type == "int8" else QuantType.QUInt8
    quantizer = QDQQuantizer(
        model,
        True,  # per_channel
        False,  # reduce_range: 8-bit weights
        QuantType.QInt8,  # weights
        act,
        tensors,
        list(only or []),
        list(exclude),
        quantize_ops,
        extra,
    )
    quantizer.quantize_model()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    quantizer.model.save_model_to_file(str(out_path), False)


def placement(activation_type: str, op_types: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """(op types to quantize, QDQQuantizer extra options) of ``activation_type``'s file.

    Why the two differ: docs/export.md."""
    extra: dict[str, Any] = {
        "WeightSymmetric": True,
        # Per output channel for MatMul weights too (Conv and Gemm default to it).
        "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
    }
    if activation_type == "uint8":
        # Shared pairs and quantized outputs: what ORT CPU fuses into QLinear* kernels.
        extra.update(ActivationSymmetric=False, DedicatedQDQPair=False)
        return list(op_types), extra
    extra.update(
        ActivationSymmetric=True,
        DedicatedQDQPair=True,
        # TensorRT's DequantizeLinear takes 8-bit inputs only: no int32 bias.
        QuantizeBias=False,
        # TensorRT fuses the next layer's input Q into a Conv; an output Q of its own is
        # only an extra rounding before float ops (ReLU, residual Add, Sigmoid).
        OpTypesToExcludeOutputQuantization=list(TENSORRT_OP_TYPES),
    )
    return [op for op in op_types if op in TENSORRT_OP_TYPES], extra


def placement_notes(model: Any, activation_type: str, op_types: Sequence[str]) -> list[str]:
    """What the int8 (TensorRT) file leaves unquantized that TensorRT would want to know."""
    if activation_type != "int8":
        return []
    notes = []
    carriers = [op for op in op_types if op not in TENSORRT_OP_TYPES]
    if carriers:
        notes.append(
            f"op types {','.join(carriers)} calibrated but given no Q/DQ in the TensorRT "
            "placement (TensorRT moves Q/DQ across MaxPool and Concat; a residual Add reads "
            "its neighbour Conv's input DequantizeLinear)"
        )
    # A residual Add that reads the float tensor while that tensor's Q/DQ feeds only the
    # Conv beside it (a tensor with several quantized consumers gets dedicated pairs).
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    quantized = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    float_residual = [
        node.name
        for node in model.graph.node
        if node.op_type == "Add"
        and any(producer.get(i) == "Conv" for i in node.input)
        and any(i in quantized for i in node.input)
    ]
    if float_residual:
        notes.append(
            f"{len(float_residual)} Add(s) after a Conv read a float residual that is "
            f"quantized elsewhere (first: {float_residual[0]}): TensorRT fuses Conv + Add "
            "only with a dequantized residual"
        )
    return notes
