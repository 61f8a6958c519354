"""The CPU's measured GEMM peaks, the figure a CPU row's achieved GFLOP/s is divided by.

A CPU row is compared with a large GEMM on *its own runtime* at its precision: FP32 MatMul;
INT8 as each runtime runs it (ONNX Runtime MatMulInteger u8 x s8 -> s32; OpenVINO a Q/DQ
MatMul it fuses into an int8 GEMM); BF16 on OpenVINO and PyTorch where the CPU has it.
FLOPs = 2 n^3 (one multiply-accumulate = 2). The GEMM graphs are built with ``onnx`` (the
export extra); without it the ONNX runtimes' peaks are reported as not measured, with why.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _matmul_onnx(n: int, kind: str) -> bytes:
    """A [n, n] x [n, n] GEMM as an ONNX model: ``fp32`` MatMul, ``int8`` MatMulInteger,
    ``qdq`` DequantizeLinear(int8 weight) · Q/DQ(input) → MatMul."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if kind == "int8":
        a = helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n])
        w = numpy_helper.from_array(rng.integers(-64, 64, (n, n), dtype=np.int8), "w")
        nodes = [helper.make_node("MatMulInteger", ["a", "w"], ["y"])]
        out = helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])
        inits = [w]
    else:
        a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])
        if kind == "fp32":
            w = numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "w")
            nodes, inits = [helper.make_node("MatMul", ["a", "w"], ["y"])], [w]
        else:
            wq = numpy_helper.from_array(rng.integers(-64, 64, (n, n), dtype=np.int8), "wq")
            s = numpy_helper.from_array(np.array(0.01, np.float32), "s")
            z = numpy_helper.from_array(np.array(0, np.int8), "z")
            nodes = [
                helper.make_node("QuantizeLinear", ["a", "s", "z"], ["aq"]),
                helper.make_node("DequantizeLinear", ["aq", "s", "z"], ["ad"]),
                helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"]),
                helper.make_node("MatMul", ["ad", "wd"], ["y"]),
            ]
            inits = [wq, s, z]
    graph = helper.make_graph(nodes, f"gemm_{kind}", [a], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _best_gflops(fn: Any, n: int, repeats: int) -> float:
    import time

    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _ort_peaks(n: int, repeats: int) -> dict[str, float]:
    import onnxruntime as ort

    out = {}
    for key, kind, dtype in (("fp32", "fp32", np.float32), ("int8", "int8", np.uint8)):
        s = ort.InferenceSession(_matmul_onnx(n, kind), providers=["CPUExecutionProvider"])
        x = (np.random.default_rng(1).integers(0, 128, (n, n))).astype(dtype)
        out[key] = _best_gflops(lambda s=s, x=x: s.run(None, {"a": x}), n, repeats)
    return out


def _openvino_peaks(n: int, repeats: int, bf16: bool) -> dict[str, float]:
    import tempfile
    from pathlib import Path

    import openvino as ov

    core = ov.Core()
    out = {}
    todo = [("fp32", "fp32", "f32"), ("int8", "qdq", "f32")]
    if bf16:
        todo.append(("bf16", "fp32", "bf16"))
    x = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    for key, kind, hint in todo:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"gemm_{kind}.onnx"
            path.write_bytes(_matmul_onnx(n, kind))
            model = core.read_model(str(path))
        cfg = {"INFERENCE_PRECISION_HINT": hint, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
        req = core.compile_model(model, "CPU", cfg).create_infer_request()
        out[key] = _best_gflops(lambda r=req: r.infer({0: x}), n, repeats)
    return out


def _torch_peaks(n: int, repeats: int, bf16: bool) -> dict[str, float]:
    import torch

    out = {}
    for key, dtype in (("fp32", torch.float32), *((("bf16", torch.bfloat16),) if bf16 else ())):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        out[key] = _best_gflops(lambda a=a, b=b: torch.mm(a, b), n, repeats)
    return out


def measure_cpu_peaks(
    runtimes: list[str], bf16: bool, n: int = 1024, repeats: int = 5
) -> dict[str, Any]:
    """GFLOP/s of a large GEMM per runtime (``onnxruntime``, ``openvino``, ``torch``) and
    precision; a runtime that cannot run says why under ``errors``."""
    peaks: dict[str, Any] = {
        "method": f"best of {repeats} {n}x{n} GEMMs per runtime and precision, 2 n^3 FLOPs",
        "errors": {},
    }
    measure = {
        "onnxruntime": lambda: _ort_peaks(n, repeats),
        "openvino": lambda: _openvino_peaks(n, repeats, bf16),
        "torch": lambda: _torch_peaks(n, repeats, bf16),
    }
    for rt in runtimes:
        try:
            peaks[rt] = measure[rt]()
        except Exception as e:  # a missing runtime or onnx: that peak is absent, said so
            peaks["errors"][rt] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return peaks


#: Bench backend → the runtime whose GEMM peak its rows are compared with.
PEAK_RUNTIME = {"onnxruntime": "onnxruntime", "openvino": "openvino", "torch": "torch",
                "torch-compile": "torch"}  # fmt: skip


def cpu_peak_for(backend: str, precision: str, peaks: dict[str, Any]) -> tuple[float | None, str]:
    """The GFLOP/s a CPU row is compared with, and its name."""
    rt = PEAK_RUNTIME.get(backend)
    key = "int8" if precision.startswith("int8") else precision
    value = (peaks.get(rt) or {}).get(key) if rt else None
    if key == "fp16":
        value, key = (peaks.get(rt) or {}).get("fp32") if rt else None, "fp32"
    return (float(value) if value else None), f"{rt} {key} GEMM peak (measured)"
