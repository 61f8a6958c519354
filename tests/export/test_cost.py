"""What a window costs (mrm_edge.export.cost): FLOPs per window counted on an ONNX graph
(hand-built graphs with hand-computed counts, the shipped models against PyTorch's own FLOP
counter), recorded by the export in every sidecar and added to older ones by --restamp."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.export.cost import count_flops
from mrm_edge.runtime.model import DeployedModel

from mrm_edge.artifacts import EDGE_MODEL_DIR, SHIPPED_MODEL_DIR
from tests.cli.test_cli import run
from tests.fakes import make_onnx


def conv_matmul_gemm_graph(path: Path) -> Path:
    """x [N, 4, 20] -> grouped, strided, dilated, padded Conv -> MatMul -> Flatten -> Gemm
    (transB) -> Sigmoid. Hand count per window:
      Conv: W [6, 2, 3], group 2, stride 2, dilation 2, pads 1+1:
            L_out = floor((20 + 2 - 2*(3-1) - 1) / 2) + 1 = 9;
            MACs = 6 out ch x 9 positions x 2 in ch per group x 3 taps = 324 -> 648 FLOPs
      MatMul [6, 9] x [9, 4]: MACs = 6 x 4 x 9 = 216 -> 432 FLOPs
      Gemm [1, 24] x [5, 24]^T: MACs = 5 x 24 = 120 -> 240 FLOPs
    Total 1320."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(6, 2, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.normal(size=(6,)).astype(np.float32), "Wb"),
        numpy_helper.from_array(rng.normal(size=(9, 4)).astype(np.float32), "M"),
        numpy_helper.from_array(rng.normal(size=(5, 24)).astype(np.float32), "G"),
    ]
    nodes = [
        helper.make_node(
            "Conv", ["x", "W", "Wb"], ["c"], group=2, strides=[2], dilations=[2], pads=[1, 1]
        ),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MatMul", ["r", "M"], ["m"]),
        helper.make_node("Flatten", ["m"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "G"], ["g"], transB=1),
        helper.make_node("Sigmoid", ["g"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "hand",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 20])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_hand_built_graph_matches_the_hand_count(tmp_path: Path) -> None:
    import onnxruntime as ort

    path = conv_matmul_gemm_graph(tmp_path / "hand.onnx")
    # The graph is real: ONNX Runtime runs it at batch 3 with the shapes counted above.
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": np.ones((3, 4, 20), np.float32)})
    assert y.shape == (3, 5)
    c = count_flops(path)
    assert c.by_op == {"Conv": 648, "MatMul": 432, "Gemm": 240}
    assert c.total == 1320
    assert c.ignored_ops == {"Relu": 1, "Sigmoid": 1}  # Flatten moves data: not even listed
    assert "not counted" in c.note() and "Relu x1" in c.note()


def test_per_window_count_does_not_depend_on_a_fixed_batch(tmp_path: Path) -> None:
    # make_onnx: ReduceMean over time, then MatMul [1, 12] x [12, 5] -> 2 x 60 FLOPs.
    dynamic = make_onnx(tmp_path / "dyn.onnx")
    fixed = make_onnx(tmp_path / "fixed.onnx", batch=8)
    assert count_flops(dynamic).total == count_flops(fixed).total == 120
    assert count_flops(dynamic).ignored_ops == {"ReduceMean": 1, "Sigmoid": 1}


def test_unreadable_file_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a protobuf at all \x00\xff")
    with pytest.raises(ValueError, match=r"model\.onnx: not a readable ONNX model") as e:
        count_flops(bad)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("model_dir", [SHIPPED_MODEL_DIR, EDGE_MODEL_DIR], ids=["paper", "edge"])
def test_shipped_models_agree_with_torch_flop_counter(model_dir: Path) -> None:
    """The ONNX count of each shipped model against torch.utils.flop_counter on the same
    weights' inference path (measured for the paper model: both 6,583,896,652 FLOPs per
    window), and what the export recorded in every sidecar."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from mrm_edge.checkpoint import inference_model, load_model_dir

    onnx_count = count_flops(model_dir / "model.onnx")
    net, card = load_model_dir(model_dir, "cpu")
    model = inference_model(net, card)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, len(card.leads), card.window_samples))
    torch_count = counter.get_total_flops()
    assert torch_count > 1e8  # a real network, not an empty count
    assert onnx_count.total == pytest.approx(torch_count, rel=0.02)
    # The FP16 and INT8 variants do the same arithmetic (casts and Q/DQ are not counted).
    for variant in ("model.fp16.onnx", "model.int8.onnx"):
        assert count_flops(model_dir / variant).total == onnx_count.total
    assert DeployedModel.load(model_dir).gflop_per_window == onnx_count.total / 1e9


def test_restamp_adds_the_cost_an_older_export_did_not_record(tmp_path: Path) -> None:
    d = tmp_path / "m"
    shutil.copytree(SHIPPED_MODEL_DIR, d)
    sidecars = sorted(d.glob("model*.onnx.json"))
    for sidecar in sidecars:  # as written before the count existed
        doc = json.loads(sidecar.read_text())
        del doc["cost"]
        sidecar.write_text(json.dumps(doc))
    assert DeployedModel.load(d).gflop_per_window is None
    r = run("export", "--model", str(d), "--restamp")
    assert r.returncode == 0, r.stderr
    want = count_flops(d / "model.onnx").total
    assert {json.loads(s.read_text())["cost"]["flops_per_window"] for s in sidecars} == {want}
    assert DeployedModel.load(d).gflop_per_window == want / 1e9


@pytest.mark.parametrize("cost", ["6.5", {"flops_per_window": -1}, {"flops_per_window": True},
                                  {"flops_per_window": "1e9"}, [1]])  # fmt: skip
def test_a_hostile_cost_field_is_no_cost(tmp_path: Path, cost: object) -> None:
    """The cost is information, not a check: a sidecar that lies about it in a form no
    export writes states no cost rather than failing the load."""
    d = tmp_path / "m"
    d.mkdir()
    for name in ("card.json", "model.int8.onnx", "model.int8.onnx.json"):
        shutil.copy(SHIPPED_MODEL_DIR / name, d / name)
    doc = json.loads((d / "model.int8.onnx.json").read_text())
    doc["cost"] = cost
    (d / "model.int8.onnx.json").write_text(json.dumps(doc))
    model = DeployedModel.load(d)
    assert "model.int8.onnx" not in model.refused and model.gflop_per_window is None
