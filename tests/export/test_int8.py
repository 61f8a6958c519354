"""INT8 Q/DQ export: graph structure, accuracy on real held-out windows, the gate and its sweep."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from mrm_edge.calibration.windows import CalibrationSet, held_out_windows, select_windows
from mrm_edge.export.int8 import (
    Int8GateError,
    Int8Options,
    QuantizeOptions,
    build_int8,
    quantize_int8,
    quantized_nodes,
)
from onnx import numpy_helper

from mrm_edge.data.errors import DataError
from mrm_edge.metrics import macro_auc
from tests.calibration import LABELS, TinyModel, ptbxl_pool, tiny_int8_model

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="session")
def tiny(ptbxl_root: Path, tmp_path_factory) -> TinyModel:
    return tiny_int8_model(ptbxl_root, tmp_path_factory)


@pytest.fixture(scope="module")
def cset(ptbxl_root: Path) -> CalibrationSet:
    return select_windows(ptbxl_pool(ptbxl_root), 96, seed=0)


@pytest.fixture(scope="module")
def heldout(ptbxl_root: Path, tiny: TinyModel) -> tuple[np.ndarray, np.ndarray]:
    return held_out_windows(ptbxl_root, tiny.card)  # fold 10


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("calibration-cache")


@pytest.fixture(scope="module")
def int8(tiny: TinyModel, cset, cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "model.int8.onnx"
    return quantize_int8(tiny.onnx, out, cset, QuantizeOptions(cache_dir=cache_dir))


def _graph(path: Path):
    model = onnx.load(str(path))
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return model, producer, inits


def _probs(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"ecg": x[i : i + 32]})[0] for i in range(0, len(x), 32)])


def test_every_conv_and_gemm_reads_dequantized_inputs(int8, tiny: TinyModel) -> None:
    model, producer, _ = _graph(int8.path)
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
    model, producer, inits = _graph(int8.path)
    for node in (n for n in model.graph.node if n.op_type in ("Conv", "Gemm")):
        dq = producer[node.input[1]]
        weight, scale, zero = (inits[name] for name in dq.input)
        axis = next(a.i for a in dq.attribute if a.name == "axis")
        assert weight.dtype == np.int8 and axis == 0
        assert scale.shape == (weight.shape[0],)  # one scale per output channel
        assert zero.dtype == np.int8 and not zero.any()  # symmetric
        assert (scale > 0).all()


def _activation_zero_points(path: Path) -> list[np.ndarray]:
    model, producer, inits = _graph(path)
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
    trt = quantize_int8(
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


def test_gate_passes_and_reports_figures(tiny: TinyModel, cset, heldout, cache_dir, tmp_path):
    x, y = heldout
    out = tmp_path / "model.int8.onnx"
    report = build_int8(tiny.onnx, out, cset, x, y, Int8Options(cache_dir=cache_dir))
    assert report.passed, report.message
    assert report.path == out and out.is_file()
    assert report.auc_fp32 > 0.7  # the tiny model is well above chance: the gate can bite
    assert report.auc_drop <= 0.005 and report.auc_drop == pytest.approx(
        report.auc_fp32 - report.auc_int8
    )
    assert report.n_heldout == 64 and set(report.per_label) == set(LABELS)
    assert report.float_layers == [] and report.sensitivity == []
    d = json.loads(json.dumps(report.to_dict()))
    assert d["passed"] and d["method"] == "minmax" and d["activation_type"] == "uint8"
    assert d["auc_drop_pt"] == pytest.approx(100 * report.auc_drop)
    assert d["result"]["calibration"]["folds"] == list(range(1, 9))
    assert d["result"]["calibration"]["n_windows"] == 96
    assert "passes" in report.message
    report.raise_for_failure()  # no-op when passed


def test_sensitivity_sweep_keeps_layers_float_and_reports_failure(
    tiny: TinyModel, cset, heldout, cache_dir, tmp_path: Path
) -> None:
    x, y = heldout
    out = tmp_path / "model.int8.onnx"
    out.write_bytes(b"stale model from an earlier run")
    # Impossible: zero AUC drop *and* bit-identical probabilities.
    report = build_int8(
        tiny.onnx,
        out,
        cset,
        x,
        y,
        Int8Options(
            max_auc_drop=0.0,
            max_prob_delta=0.0,
            cache_dir=cache_dir,
            max_float_layers=2,
            sweep_windows=8,
        ),
    )
    assert not report.passed
    # A model that failed its gate is not left where a runtime would load it.
    assert not out.exists() and report.path == tmp_path / "model.int8.rejected.onnx"
    assert report.path.is_file()
    # The sweep scored every quantized layer, most sensitive first.
    sens = report.sensitivity
    assert len(sens) == 44 and "only this layer quantized" in report.sensitivity_metric
    mses = [s["mse"] for s in sens]
    assert mses == sorted(mses, reverse=True) and mses[0] > 0
    # The two most sensitive layers were kept in float, each with its reason.
    kept = [f["node"] for f in report.float_layers]
    assert kept == [s["node"] for s in sens[:2]]
    assert all("sensitivity sweep" in f["reason"] for f in report.float_layers)
    assert report.result.excluded_nodes == kept
    assert set(report.result.float_nodes) == set(kept)
    assert not set(kept) & set(quantized_nodes(report.path))
    assert len(quantized_nodes(report.path)) == 42
    assert report.initial["n_quantized"] == 44
    with pytest.raises(Int8GateError, match=r"fails the gate .*2 layer\(s\) kept in float"):
        report.raise_for_failure()
    assert "\n" not in report.message
    json.dumps(report.to_dict())

    # A gate that keeping the most sensitive layer in float can meet: the same sweep
    # ranks the same layer first, and the gate passes with exactly that layer in float.
    after_one = report.float_layers[0]["max_abs_prob_delta_after"]
    if after_one >= report.initial["max_abs_prob_delta"]:
        pytest.skip("keeping the top layer in float does not lower max |Δp| for this model")
    rescued = build_int8(
        tiny.onnx,
        out,
        cset,
        x,
        y,
        Int8Options(
            max_auc_drop=1.0,
            max_prob_delta=after_one,
            cache_dir=cache_dir,
            max_float_layers=3,
            sweep_windows=8,
        ),
    )
    assert rescued.passed, rescued.message
    assert [f["node"] for f in rescued.float_layers] == kept[:1]
    assert out.is_file() and not report.path.exists()  # the stale rejection is cleared
    assert "1 layer(s) kept in float" in rescued.message


def test_exclude_nodes_and_bad_arguments(tiny: TinyModel, cset, heldout, cache_dir, tmp_path):
    first = next(n.name for n in onnx.load(str(tiny.onnx)).graph.node if n.op_type == "Conv")
    res = quantize_int8(
        tiny.onnx,
        tmp_path / "x.onnx",
        cset,
        QuantizeOptions(exclude_nodes=[first], cache_dir=cache_dir),
    )
    assert res.excluded_nodes == [first] and res.float_nodes == [first]
    assert first not in res.quantized_nodes and len(res.quantized_nodes) == 43
    assert first not in quantized_nodes(res.path)
    with pytest.raises(ValueError, match=r"exclude_nodes \['nope'\] are not Conv/Gemm/MatMul"):
        quantize_int8(tiny.onnx, tmp_path / "y.onnx", cset, QuantizeOptions(exclude_nodes=["nope"]))
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
    INT8 speed-up on the shipped model depends on it); COMPUTE_OP_TYPES is the narrow export."""
    from mrm_edge.export.int8 import COMPUTE_OP_TYPES, DEFAULT_OP_TYPES

    assert {"Add", "MaxPool", "Concat"} <= set(DEFAULT_OP_TYPES)
    assert int8.range_params["op_types"] == sorted(DEFAULT_OP_TYPES)
    narrow = quantize_int8(
        tiny.onnx,
        tmp_path / "narrow.onnx",
        cset,
        QuantizeOptions(cache_dir=cache_dir, op_types=COMPUTE_OP_TYPES),
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


@pytest.fixture(scope="module")
def int8_sym(tiny: TinyModel, cset, cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8-sym") / "model.int8-sym.onnx"
    sym = QuantizeOptions(activation_type="int8", cache_dir=cache_dir)
    return quantize_int8(tiny.onnx, out, cset, sym)


def test_symmetric_file_has_no_int32_dequantize_float_biases_int8_activations(
    int8_sym, tiny: TinyModel
) -> None:
    model, producer, inits = _graph(int8_sym.path)
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
    model, producer, _ = _graph(int8_sym.path)
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
