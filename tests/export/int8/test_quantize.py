"""INT8 Q/DQ quantization (export/int8/quantize.py): which layers read dequantized inputs,
weights, activation types, probabilities, exclusions and bad arguments, the carrier op types."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from mrm_edge.export.int8.gate import Int8Options, build_int8
from mrm_edge.export.int8.quantize import QuantizeOptions, quantize_int8

from mrm_edge.data.errors import DataError
from mrm_edge.metrics import macro_auc
from tests.calibration import TinyModel
from tests.export.int8 import load_graph

pytestmark = pytest.mark.realdata


def _probs(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"ecg": x[i : i + 32]})[0] for i in range(0, len(x), 32)])


def test_every_conv_and_gemm_reads_dequantized_inputs(int8, tiny: TinyModel) -> None:
    model, producer, _ = load_graph(int8.path)
    layers = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(layers) == 44  # 42 Conv + 2 Gemm, as in the FP32 graph
    for node in layers:
        for k, name in enumerate(node.input):  # data, weight and (folded-BN) bias
            assert producer[name].op_type == "DequantizeLinear", (node.name, k)
    assert sorted(int8.quantized_nodes) == sorted(n.name for n in layers)
    assert int8.float_nodes == [] and int8.excluded_nodes == []
    # Everything else stays float: the graph is the FP32 graph plus Q/DQ nodes.
    fp32_ops = Counter(n.op_type for n in onnx.load(str(tiny.onnx)).graph.node)
    ops = Counter(n.op_type for n in model.graph.node)
    qdq = {"QuantizeLinear", "DequantizeLinear"}
    assert Counter({k: v for k, v in ops.items() if k not in qdq}) == fp32_ops


def test_weights_are_int8_per_output_channel(int8) -> None:
    model, producer, inits = load_graph(int8.path)
    for node in (n for n in model.graph.node if n.op_type in ("Conv", "Gemm")):
        dq = producer[node.input[1]]
        weight, scale, zero = (inits[name] for name in dq.input)
        axis = next(a.i for a in dq.attribute if a.name == "axis")
        assert weight.dtype == np.int8 and axis == 0
        assert scale.shape == (weight.shape[0],)  # one scale per output channel
        assert zero.dtype == np.int8 and not zero.any()  # symmetric
        assert (scale > 0).all()


def _activation_zero_points(path: Path) -> list[np.ndarray]:
    model, producer, inits = load_graph(path)
    zps = []
    for node in (n for n in model.graph.node if n.op_type in ("Conv", "Gemm")):
        dq = producer[node.input[0]]
        zps.append(inits[dq.input[2]])
    return zps


def test_activations_are_uint8_by_default_int8_for_tensorrt(
    int8, tiny: TinyModel, cset, cache_dir, tmp_path: Path
) -> None:
    zps = _activation_zero_points(int8.path)
    assert all(z.dtype == np.uint8 for z in zps)
    assert len({int(z) for z in zps}) > 1  # asymmetric: zero points follow the ranges
    trt, _ = quantize_int8(
        tiny.onnx,
        tmp_path / "trt.onnx",
        cset,
        QuantizeOptions(activation_type="int8", cache_dir=cache_dir),
    )
    assert trt.ranges_cached  # ranges do not depend on the activation type
    zps = _activation_zero_points(trt.path)
    assert all(z.dtype == np.int8 and int(z) == 0 for z in zps)  # symmetric int8


def test_int8_probabilities_close_to_fp32_on_fold_10(int8, tiny: TinyModel, heldout) -> None:
    x, y = heldout
    p32, p8 = _probs(tiny.onnx, x), _probs(int8.path, x)
    assert p8.shape == p32.shape == (64, 5)
    diff = np.abs(p8 - p32)
    assert diff.max() < 0.1 and diff.mean() < 0.01
    assert diff.max() > 0  # it really is a different (quantized) model
    assert abs(macro_auc(y, p8) - macro_auc(y, p32)) < 0.02


def test_bad_arguments(tiny: TinyModel, cset, heldout, cache_dir, tmp_path):
    with pytest.raises(ValueError, match=r"activation_type is 'fp8', expected 'uint8'"):
        fp8 = QuantizeOptions(activation_type="fp8")  # type: ignore[arg-type]
        quantize_int8(tiny.onnx, tmp_path / "y.onnx", cset, fp8)
    with pytest.raises(ValueError, match=r"would overwrite the FP32 input"):
        quantize_int8(tiny.onnx, tiny.onnx, cset)
    x, y = heldout
    with pytest.raises(DataError, match=r"labels have 3 columns, but .* outputs 5"):
        build_int8(
            tiny.onnx, tmp_path / "z.onnx", cset, x, y[:, :3], Int8Options(cache_dir=cache_dir)
        )
    with pytest.raises(DataError, match=r"expects \[batch, 12, 1000\]"):
        build_int8(tiny.onnx, tmp_path / "z.onnx", cset, x[:, :, :500], y)
    with pytest.raises(ValueError, match=r"max_auc_drop is -0.1, expected a finite number >= 0"):
        build_int8(tiny.onnx, tmp_path / "z.onnx", cset, x, y, Int8Options(max_auc_drop=-0.1))


def _ort_optimized_ops(path: Path, tmp_path: Path) -> Counter:
    """Op types of the graph ONNX Runtime's CPU provider actually runs (after its fusions)."""
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / (path.stem + ".ort-optimized.onnx"))
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)


def test_default_quantizes_the_ops_carrying_activations(int8, tiny, cset, cache_dir, tmp_path):
    """Add / MaxPool / Concat get Q/DQ by default, so ORT keeps their tensors uint8 (the
    INT8 speed-up on the shipped model depends on it); QUANTIZED_OP_TYPES is the narrow export."""
    from mrm_edge.calibration.ranges import QUANTIZED_OP_TYPES
    from mrm_edge.export.int8.placement import DEFAULT_OP_TYPES

    assert {"Add", "MaxPool", "Concat"} <= set(DEFAULT_OP_TYPES)
    assert int8.range_params["op_types"] == sorted(DEFAULT_OP_TYPES)
    narrow, _ = quantize_int8(
        tiny.onnx,
        tmp_path / "narrow.onnx",
        cset,
        QuantizeOptions(cache_dir=cache_dir, op_types=QUANTIZED_OP_TYPES),
    )
    assert narrow.cache_key != int8.cache_key  # the op types are calibrated: part of the key
    assert sorted(narrow.quantized_nodes) == sorted(int8.quantized_nodes)

    def carried_outputs_quantized(path: Path) -> dict[str, bool]:
        model = onnx.load(str(path))
        consumers: dict[str, list[str]] = {}
        for n in model.graph.node:
            for i in n.input:
                consumers.setdefault(i, []).append(n.op_type)
        return {
            n.name: consumers.get(n.output[0], []) == ["QuantizeLinear"]
            for n in model.graph.node
            if n.op_type in ("Add", "MaxPool", "Concat")
        }

    wide = carried_outputs_quantized(int8.path)
    assert wide and all(wide.values()), [k for k, v in wide.items() if not v]
    # In the narrow export some of them feed a Conv's input Q, so look at what ORT runs:
    wide_ops = _ort_optimized_ops(int8.path, tmp_path)
    thin_ops = _ort_optimized_ops(narrow.path, tmp_path)
    assert wide_ops["QLinearAdd"] > thin_ops["QLinearAdd"]
    assert wide_ops["DequantizeLinear"] < thin_ops["DequantizeLinear"]
    with pytest.raises(ValueError, match=r"op_types \['conv'\] are not ONNX operators"):
        quantize_int8(tiny.onnx, tmp_path / "typo.onnx", cset, QuantizeOptions(op_types=["conv"]))
