"""The roofline of a bench run (python -m benchmarks.roofline): FLOPs per window from an ONNX
graph (hand-built graphs with hand-computed counts, and the shipped model against PyTorch's own
FLOP counter on MRM-Net), the measured peaks, and each row's fraction of its peak."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks.roofline.flops import add_flops, count_flops
from benchmarks.roofline.peaks import cpu_peak_for, measure_cpu_peaks, peak_for
from mrm_edge.artifacts import SHIPPED_MODEL_DIR
from mrm_edge.cli.bench.common import Result, add_speedups
from tests.fakes import make_onnx

SHIPPED = SHIPPED_MODEL_DIR
ROOT = Path(__file__).resolve().parents[2]
HAS_OV = importlib.util.find_spec("openvino") is not None


def roofline(bench_json: Path, out: Path, *args: str) -> SimpleNamespace:
    """``python -m benchmarks.roofline`` on a bench's JSON, from the repository root: the
    document it wrote and its stdout."""
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.roofline", str(bench_json), "--json", str(out), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return SimpleNamespace(doc=json.loads(out.read_text()), stdout=r.stdout)


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


def test_shipped_model_agrees_with_torch_flop_counter() -> None:
    """The ONNX count of the shipped model against torch.utils.flop_counter on the same
    weights' inference path (measured: both 6,583,896,652 FLOPs per window)."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from mrm_edge.checkpoint import inference_model, load_model_dir

    onnx_count = count_flops(SHIPPED / "model.onnx")
    net, card = load_model_dir(SHIPPED, "cpu")
    model = inference_model(net, card)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, len(card.leads), card.window_samples))
    torch_count = counter.get_total_flops()
    assert torch_count > 1e9  # a real network, not an empty count
    assert onnx_count.total == pytest.approx(torch_count, rel=0.02)
    # The FP16 and INT8 variants do the same arithmetic (casts and Q/DQ are not counted).
    for variant in ("model.fp16.onnx", "model.int8.onnx"):
        assert count_flops(SHIPPED / variant).total == onnx_count.total


def test_cpu_peaks_are_measured_per_runtime() -> None:
    runtimes = ["onnxruntime", *(["openvino"] if HAS_OV else [])]
    peaks = measure_cpu_peaks(runtimes, bf16=False, n=256, repeats=2)
    assert peaks["errors"] == {}
    assert peaks["onnxruntime"]["fp32"] > 0 and peaks["onnxruntime"]["int8"] > 0
    value, basis = cpu_peak_for("onnxruntime", "int8", peaks)
    assert (
        value == peaks["onnxruntime"]["int8"] and basis == "onnxruntime int8 GEMM peak (measured)"
    )
    assert cpu_peak_for("torch", "fp32", peaks) == (None, "torch fp32 GEMM peak (measured)")
    if HAS_OV:
        assert cpu_peak_for("openvino", "int8-sym", peaks)[0] == peaks["openvino"]["int8"]


def test_a_row_above_its_measured_peak_gets_no_fraction() -> None:
    """A GEMM probe slower than the model is no peak: no fraction above 100 % is printed."""
    lat = {"p50": 1.0, "p90": 1.0, "p99": 1.0}
    below = asdict(Result("onnxruntime", "int8", "cpu", 32, 50.0, lat, 5))
    above = asdict(Result("onnxruntime", "int8", "cpu", 32, 300.0, lat, 5))
    add_flops([below, above], 10**9, cpu_peaks={"onnxruntime": {"int8": 100.0}})
    assert below["fraction_of_peak"] == pytest.approx(0.5)
    assert below["peak_basis"] == "onnxruntime int8 GEMM peak (measured)"
    assert above["gflops"] == 300.0 and above["fraction_of_peak"] is None
    assert "100 GFLOP/s, below this row (no valid peak)" in above["peak_basis"]


def test_fraction_of_peak_uses_the_peak_of_the_rows_precision() -> None:
    lat = {"p50": 1.0, "p90": 1.0, "p99": 1.0}
    rows = [
        Result("torch-cuda", "fp32", "cuda:0", 256, 1000.0, lat, 10),
        Result("tensorrt", "fp16", "cuda:0", 256, 8000.0, lat, 10),
        Result("tensorrt", "int8", "cuda:0", 256, 9000.0, lat, 10),
        Result("onnxruntime", "fp32", "cpu", 256, 100.0, lat, 10),
    ]
    peaks = {"fp32": 50.0, "tf32": 400.0, "fp16": 800.0}
    docs = add_flops([asdict(r) for r in add_speedups(rows)], 10**9, peaks)  # 1 GFLOP/window
    gpu32, trt16, trt8, cpu = docs
    assert gpu32["gflops"] == 1000.0
    assert gpu32["fraction_of_peak"] == pytest.approx(1000 / 400e3)
    assert trt16["fraction_of_peak"] == pytest.approx(8000 / 800e3)
    assert "no INT8 peak" in trt8["peak_basis"]
    assert trt8["fraction_of_peak"] == pytest.approx(9 / 800)
    assert cpu["gflops"] == 100.0 and cpu["fraction_of_peak"] is None  # no CPU peak measured
    assert trt16["speedup_vs_torch_cuda_fp32"] == 8.0
    assert cpu["speedup_vs_torch_cuda_fp32"] is None
    assert peak_for("fp16", {})[0] is None


def _has_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _has_cuda(), reason="no CUDA device here: never executed")
def test_real_gpu_peak() -> None:
    from benchmarks.roofline.peaks import measure_gpu_peak

    peaks = measure_gpu_peak(n=2048, repeats=3)
    assert peaks["fp16"] > 0 and peaks["fp32"] > 0 and peaks["gpu"]
