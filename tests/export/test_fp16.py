"""The mixed-precision FP16 ONNX: FP16 compute, FP32 I/O and FP32 islands."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from mrm_edge.export.fp16 import KEEP_FP32_OPS, convert_fp16
from mrm_edge.export.gates import compare, onnx_probabilities
from mrm_edge.export.onnx_fp32 import export_fp32

F16, F32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT


@pytest.fixture(scope="module")
def pair(tiny_model_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("fp16")
    fp32 = export_fp32(tiny_model_dir, d / "model.onnx")
    return fp32, convert_fp16(fp32, d / "model.fp16.onnx")


def _types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    types.update({v.name: v.type.tensor_type.elem_type for v in model.graph.input})
    types.update({v.name: v.type.tensor_type.elem_type for v in model.graph.output})
    types.update({t.name: t.data_type for t in model.graph.initializer})
    return types


def test_io_stays_fp32_and_convs_run_in_fp16(pair) -> None:
    model = onnx.load(str(pair[1]))
    assert model.graph.input[0].type.tensor_type.elem_type == F32
    assert model.graph.output[0].type.tensor_type.elem_type == F32
    types = _types(model)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs and all(types[n.input[1]] == F16 for n in convs)


def test_sensitive_ops_stay_fp32(pair) -> None:
    model = onnx.load(str(pair[1]))
    types = _types(model)
    kept = [n for n in model.graph.node if n.op_type in KEEP_FP32_OPS]
    assert {n.op_type for n in kept} == set(KEEP_FP32_OPS)
    for n in kept:
        assert types[n.input[0]] == F32, f"{n.op_type} {n.name} runs in FP16"


def test_runs_in_onnxruntime_close_to_fp32(pair, real_windows) -> None:
    x, y = real_windows
    p32 = onnx_probabilities(pair[0], x)
    p16 = onnx_probabilities(pair[1], x)
    figures = compare(p32, p16, y, ["CD", "HYP", "MI", "NORM", "STTC"])
    assert figures["max_abs_prob_delta"] < 5e-3
    assert abs(figures["auc_delta_pt"]) < 0.5
    assert np.isfinite(p16).all()
