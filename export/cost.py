"""What one window costs: FLOPs = 2 x multiply-accumulates of the Conv, Gemm and MatMul nodes
of an ONNX graph (the convention of ``torch.utils.flop_counter`` and of peak figures, where one
FMA is two FLOPs). The export records it in every ONNX sidecar (``cost``); the monitor's start
line and ``mrm-edge bench`` state it; ``python -m benchmarks.roofline`` divides by peaks.

Shapes come from ``onnx.shape_inference`` with the batch dimension fixed to 1, so the count
is per window. Elementwise and reduction ops (Relu, Add, pooling, normalisation, Q/DQ ...)
are not counted: for MRM-Net they are a few percent of the work, and they are memory-bound,
so counting them would flatter an achieved FLOP/s figure. :func:`count_flops` lists what it
left out, by op type. Torch-free (onnx only).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Ops that move or reshape data and do no arithmetic: not even worth listing as ignored.
_NO_ARITHMETIC = {
    "Cast",
    "Concat",
    "Constant",
    "Flatten",
    "Gather",
    "Identity",
    "Reshape",
    "Shape",
    "Slice",
    "Squeeze",
    "Transpose",
    "Unsqueeze",
}


@dataclass
class FlopCount:
    """FLOPs of one window: ``total`` and per counted op type; op types not counted."""

    total: int
    by_op: dict[str, int]
    ignored_ops: dict[str, int] = field(default_factory=dict)

    def note(self) -> str:
        ignored = ", ".join(f"{k} x{v}" for k, v in sorted(self.ignored_ops.items()))
        return "2 x MACs of Conv/Gemm/MatMul per window" + (
            f"; not counted (elementwise/reductions): {ignored}" if ignored else ""
        )


def _fix_batch(model: Any) -> None:
    """Set the first dimension of every graph input and output to 1 (per-window shapes)."""
    inits = {t.name for t in model.graph.initializer}
    for v in list(model.graph.input) + list(model.graph.output):
        if v.name in inits:
            continue
        dims = v.type.tensor_type.shape.dim
        if len(dims):
            dims[0].Clear()
            dims[0].dim_value = 1
    del model.graph.value_info[:]  # re-inferred with the fixed batch


def _shapes(model: Any) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    g = model.graph
    for v in list(g.input) + list(g.output) + list(g.value_info):
        dims = v.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            out[v.name] = tuple(int(d.dim_value) for d in dims)
    for t in g.initializer:
        out[t.name] = tuple(int(d) for d in t.dims)
    return out


def _attr(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _need(shapes: dict[str, tuple[int, ...]], name: str, node: Any) -> tuple[int, ...]:
    if name not in shapes:
        raise ValueError(
            f"{node.op_type} node {node.name or '(unnamed)'}: shape of {name!r} unknown after "
            "shape inference (dynamic dimension other than the batch?)"
        )
    return shapes[name]


def _conv(node: Any, shapes: dict[str, tuple[int, ...]]) -> int:
    # MACs = output elements x (input channels per group x kernel elements); the output shape
    # already reflects strides, dilations and pads, so they need no separate term.
    w = _need(shapes, node.input[1], node)
    y = _need(shapes, node.output[0], node)
    c_in_per_group = w[1]
    kernel = int(np.prod(w[2:], dtype=np.int64))
    return 2 * int(np.prod(y, dtype=np.int64)) * c_in_per_group * kernel


def _gemm(node: Any, shapes: dict[str, tuple[int, ...]]) -> int:
    a = _need(shapes, node.input[0], node)
    b = _need(shapes, node.input[1], node)
    k = a[0] if _attr(node, "transA", 0) else a[1]
    n = b[0] if _attr(node, "transB", 0) else b[1]
    m = a[1] if _attr(node, "transA", 0) else a[0]
    return 2 * m * n * k


def _matmul(node: Any, shapes: dict[str, tuple[int, ...]]) -> int:
    a = _need(shapes, node.input[0], node)
    y = _need(shapes, node.output[0], node)
    k = a[-1]  # numpy matmul semantics: y = [..., m, n], contraction over a's last axis
    return 2 * int(np.prod(y, dtype=np.int64)) * k


def count_flops(onnx_path: str | Path) -> FlopCount:
    """FLOPs per window of the model at ``onnx_path`` (see the module docstring)."""
    import onnx

    path = Path(onnx_path)
    try:
        model = onnx.load(str(path))
    except Exception as e:
        raise ValueError(f"{path}: not a readable ONNX model ({e})") from e
    _fix_batch(model)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    shapes = _shapes(model)
    by_op: Counter[str] = Counter()
    ignored: Counter[str] = Counter()
    for node in model.graph.node:
        if node.op_type == "Conv":
            by_op["Conv"] += _conv(node, shapes)
        elif node.op_type == "Gemm":
            by_op["Gemm"] += _gemm(node, shapes)
        elif node.op_type == "MatMul":
            by_op["MatMul"] += _matmul(node, shapes)
        elif node.op_type not in _NO_ARITHMETIC:
            ignored[node.op_type] += 1
    if any(n.domain not in ("", "ai.onnx") for n in model.graph.node) or model.functions:
        # Custom-domain or function nodes may hide convolutions this count cannot see.
        ignored["(custom-domain or function nodes)"] += 1
    return FlopCount(int(sum(by_op.values())), dict(by_op), dict(ignored))


def cost_record(onnx_path: str | Path) -> dict[str, Any]:
    """The sidecar's ``cost`` field for the graph at ``onnx_path`` (the same arithmetic for
    every precision of one model: casts and Q/DQ are not counted)."""
    c = count_flops(onnx_path)
    return {"flops_per_window": c.total, "by_op": c.by_op, "counted_on": Path(onnx_path).name,
            "method": c.note()}  # fmt: skip
