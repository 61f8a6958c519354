"""Where the Q/DQ nodes go: the two INT8 placements, written by ONNX Runtime's QDQQuantizer.

The runtimes that make INT8 fast want different graphs, so ``mrm-edge export --int8`` writes
two files from the same calibration ranges (names in :mod:`mrm_edge.artifacts`). Both have
int8 weights, symmetric, one scale per output channel (axis 0 for Conv and for Gemm with
transB, the exporter's layout), and one scale per activation tensor.

``activation_type="uint8"`` → ``model.int8.onnx``, for ONNX Runtime CPU
    Asymmetric uint8 activations with int8 weights (U8S8, the combination ORT's x86 CPU
    kernels accelerate) and int32 biases. The compute ops (Conv, Gemm, MatMul) are quantized
    on their inputs *and* their outputs, on purpose: ORT's CPU provider fuses
    ``DQ → Conv → Q`` into one ``QLinearConv``; without the output Q the Conv runs in float
    between a DQ and nothing, and INT8 buys no speed at all. By default the ops that only
    carry activations from one Conv to the next are quantized too: the residual Add,
    MaxPool and Concat (``op_types``, :data:`DEFAULT_OP_TYPES`). They cost nothing in
    accuracy (they add, pick or copy already-quantized values) and let ORT keep the tensor
    in uint8 between Convs (``QLinearAdd``, ``QLinearConcat``, uint8 MaxPool) instead of a
    DequantizeLinear, a float op and a QuantizeLinear at every residual join. One Q/DQ pair
    per tensor, shared by its consumers. TensorRT's ONNX parser rejects this file: its
    DequantizeLinear takes 8-bit (or FP8/FP4/Int4) inputs only, not the int32 biases.

``activation_type="int8"`` → ``model.int8-sym.onnx``, for TensorRT (and OpenVINO)
    Symmetric int8 activations and weights (zero point 0) and biases left in float
    (``QuantizeBias: False``: TensorRT's parser takes a float bias, and an int32 one not at
    all). Q/DQ go where NVIDIA's TensorRT developer guide ("Q/DQ layer-placement
    recommendations") puts them, so that TensorRT can fuse them into its int8 layers:

    * on the inputs of the weighted layers only: the activation and the weight of every
      Conv, Gemm and MatMul (:data:`TENSORRT_OP_TYPES`);
    * not on their outputs (``OpTypesToExcludeOutputQuantization``): TensorRT fuses Conv,
      bias, ReLU and the *next* layer's input Q into one layer by itself, and a Q forced onto
      a Conv output that feeds a float op only adds a rounding;
    * the residual input of an Add that follows a Conv is dequantized, the pattern TensorRT
      fuses into Conv + Add: a tensor feeding one Conv and the residual Add gets a single
      Q/DQ pair that both read (ORT's rule for a tensor with one quantized consumer); an Add
      left reading a float residual is reported in ``placement_notes``;
    * nothing on MaxPool and Concat: they commute with Q/DQ and TensorRT moves the Q/DQ
      across them itself;
    * one Q/DQ pair per quantized consumer where a tensor feeds several
      (``DedicatedQDQPair``), so each layer's fusion stands on its own.

    The carrier op types in ``op_types`` are still calibrated (the ranges, and so the
    calibration cache entry, are shared with the uint8 file) but get no Q/DQ here.

    Evidence, without a GPU: TensorRT for RTX's parser takes the shipped model's file with
    no error and its builder serializes an engine; against the uint8 placement made
    symmetric (Q/DQ also on every Conv output and on Add/MaxPool/Concat) the parsed network
    has fewer layers and the serialized engine is smaller. Layer counts and engine size
    are the only fusion evidence this project has: no engine of it has run or been
    profiled on a GPU, so nothing here is a claim about TensorRT's speed.

    ONNX Runtime CPU runs this file with float convolutions (a DQ → Conv without an output
    Q is not fused), so no faster than FP32; it is gated on ORT all the same, as an
    accuracy check of the quantization.

``reduce_range`` (7-bit weights) is for x86 CPUs without VNNI, where U8S8 products can
saturate the 16-bit intermediate sums of ORT's fused kernels; the gate measures on the
exporting machine's kernels, so a layer that saturates there fails it and the sensitivity
sweep (:mod:`.sweep`) keeps that layer in float.

The ranges are handed to ONNX Runtime's ``QDQQuantizer`` exactly as
``onnxruntime.quantization.quantize_static`` does after its own calibration
(``quantize.py``: ``QDQQuantizer(model, per_channel, reduce_range, weight_type,
activation_type, tensors_range, nodes_to_quantize, nodes_to_exclude, op_types_to_quantize,
extra_options).quantize_model()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from mrm_edge.calibration.ranges import QUANTIZED_OP_TYPES, Ranges

ActivationType = Literal["uint8", "int8"]
ACTIVATION_TYPES: tuple[str, ...] = ("uint8", "int8")
#: The layers that do the arithmetic: quantized always, ranked by the sensitivity sweep.
COMPUTE_OP_TYPES: tuple[str, ...] = QUANTIZED_OP_TYPES
#: What is quantized by default: the compute ops plus the ops that carry their activations
#: (see the module docstring).
DEFAULT_OP_TYPES: tuple[str, ...] = (*COMPUTE_OP_TYPES, "Add", "MaxPool", "Concat")
#: The int8 (TensorRT) placement: Q/DQ on the inputs of these ops only (module docstring).
TENSORRT_OP_TYPES: tuple[str, ...] = COMPUTE_OP_TYPES
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
    reduce_range: bool = False,
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
        reduce_range,
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

    See the module docstring for why the two differ."""
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
