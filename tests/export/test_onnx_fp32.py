"""The FP32 ONNX: the inference graph only, dynamic batch, faithful to PyTorch."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from mrm_edge.export.gates import onnx_probabilities, torch_probabilities
from mrm_edge.export.onnx_fp32 import export_fp32


@pytest.fixture(scope="module")
def fp32(tiny_model_dir: Path, tmp_path_factory) -> Path:
    return export_fp32(tiny_model_dir, tmp_path_factory.mktemp("fp32") / "model.onnx")


def test_graph_has_exactly_the_inference_io(fp32: Path) -> None:
    model = onnx.load(str(fp32))
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert inp.name == "ecg" and out.name == "probabilities"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    in_dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    out_dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert in_dims == ["batch", 12, 1000] and out_dims == ["batch", 5]


def test_no_training_only_nodes(fp32: Path) -> None:
    ops = [n.op_type for n in onnx.load(str(fp32)).graph.node]
    # The KL heads are softmax + log-softmax over flattened features: none may remain.
    assert not {"Softmax", "LogSoftmax", "KLDivLoss"} & set(ops)
    # Both heads feed the fused output: exactly two classifier Gemms, no spare outputs.
    assert ops.count("Gemm") == 2
    # LayerNorm is one node (opset >= 17): 2 attention-fusion + 2 head LayerNorms.
    assert ops.count("LayerNormalization") == 4
    assert max(o.version for o in onnx.load(str(fp32)).opset_import if o.domain == "") >= 17


def test_checker_and_metadata(fp32: Path, tiny_model_dir: Path) -> None:
    onnx.checker.check_model(str(fp32), full_check=True)
    meta = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    assert meta["labels"] == '["CD", "HYP", "MI", "NORM", "STTC"]'
    assert meta["sampling_rate"] == "100" and meta["window_samples"] == "1000"
    assert meta["units"] == "mV" and meta["precision"] == "fp32"
    assert "I" in meta["leads"] and meta["head_fusion"] == "mean"


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_dynamic_batch_parity_on_real_records(fp32, tiny_model_dir, real_windows, batch) -> None:
    x = real_windows[0][:batch]
    assert len(x) == batch
    ref = torch_probabilities(tiny_model_dir, x)
    got = onnx_probabilities(fp32, x, batch_size=batch)
    assert got.shape == (batch, 5)
    assert np.abs(got - ref).max() <= 1e-5
