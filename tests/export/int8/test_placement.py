"""The symmetric TensorRT placement (export/int8/placement.py): no int32 DQ, float biases,
Q/DQ where TensorRT fuses them."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from mrm_edge.export.int8.quantize import QuantizeOptions, quantize_int8

from tests.calibration import TinyModel
from tests.export.int8 import load_graph

pytestmark = pytest.mark.realdata


def test_symmetric_file_has_no_int32_dequantize_float_biases_int8_activations(
    int8_sym, tiny: TinyModel
) -> None:
    model, producer, inits = load_graph(int8_sym.path)
    # TensorRT's DequantizeLinear takes 8-bit inputs only: int8 weights, or a QuantizeLinear.
    for dq in (n for n in model.graph.node if n.op_type == "DequantizeLinear"):
        source = dq.input[0]
        if source in inits:
            assert inits[source].dtype == np.int8, dq.name
        else:
            assert producer[source].op_type == "QuantizeLinear", dq.name
    layers = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
    for node in layers:
        assert producer[node.input[0]].op_type == "DequantizeLinear"  # activation
        assert producer[node.input[1]].op_type == "DequantizeLinear"  # weight
        if len(node.input) > 2:  # bias: a float initializer, not a DequantizeLinear
            assert node.input[2] not in producer and inits[node.input[2]].dtype == np.float32
    for q in (n for n in model.graph.node if n.op_type == "QuantizeLinear"):
        zero = inits[q.input[2]]
        assert zero.dtype == np.int8 and not zero.any()  # symmetric int8 activations
    assert int8_sym.activation_type == "int8" and int8_sym.ranges_cached  # shared ranges
    assert sorted(int8_sym.quantized_nodes) == sorted(n.name for n in layers)


def test_symmetric_file_places_qdq_for_tensorrt(int8_sym, int8) -> None:
    model, producer, _ = load_graph(int8_sym.path)
    consumers: dict[str, list[str]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.op_type)
    # No Q on the outputs of the weighted layers; only Conv/Gemm/MatMul read a DQ (plus the
    # residual Adds sharing their neighbour Conv's DQ); MaxPool/Concat are left to TensorRT.
    for n in model.graph.node:
        if n.op_type in ("Conv", "Gemm"):
            assert "QuantizeLinear" not in consumers.get(n.output[0], [])
    readers = Counter(
        n.op_type
        for n in model.graph.node
        if any(
            producer.get(i) is not None and producer[i].op_type == "DequantizeLinear"
            for i in n.input
        )
    )
    assert set(readers) <= {"Conv", "Gemm", "MatMul", "Add"}
    residual = [
        n
        for n in model.graph.node
        if n.op_type == "Add"
        and any(producer.get(i) is not None and producer[i].op_type == "Conv" for i in n.input)
        and any(
            producer.get(i) is not None and producer[i].op_type == "DequantizeLinear"
            for i in n.input
        )
    ]
    assert residual  # the tiny MRM-Net has residual blocks: Conv + dequantized shortcut
    assert not [s for s in int8_sym.placement_notes if "float residual" in s]
    # Fewer Q/DQ than the ORT CPU file (which also quantizes outputs and carrier ops).
    count = lambda path: sum(  # noqa: E731
        n.op_type == "QuantizeLinear" for n in onnx.load(str(path)).graph.node
    )
    assert count(int8_sym.path) < count(int8.path)


def test_int8_placement_needs_a_compute_op(tiny: TinyModel, cset, cache_dir, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"int8 \(TensorRT\) placement quantizes the inputs of"):
        quantize_int8(
            tiny.onnx,
            tmp_path / "x.onnx",
            cset,
            QuantizeOptions(
                activation_type="int8", cache_dir=cache_dir, op_types=("Add", "MaxPool")
            ),
        )
