"""What the builder needs to know about an ONNX graph before TensorRT parses it
(:func:`inspect_onnx`; without the ``onnx`` package, as on the edge install, by contract)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrm_edge.export.tensorrt.errors import BuildError

from mrm_edge.errors import first_line

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


@dataclass(frozen=True)
class GraphInfo:
    """What the builder needs to know about an ONNX graph before TensorRT parses it.

    ``input_shape`` uses -1 for dynamic dimensions. ``source`` says how it was learnt:
    ``"onnx"`` (every node inspected) or ``"contract"`` (the ``onnx`` package is missing:
    I/O from ONNX Runtime, Q/DQ from a byte scan, FP16 assumed from the file's precision
    name — ``model.fp16.onnx`` is the mixed-precision export by this project's contract).
    """

    input_name: str
    input_shape: tuple[int, ...]
    has_qdq: bool
    has_fp16: bool
    source: str = "onnx"

    @property
    def carries_precision(self) -> bool:
        """The graph states its own reduced precision (FP16 types or Q/DQ nodes)."""
        return self.has_qdq or self.has_fp16


def inspect_onnx(onnx_path: Path, precision: str = "fp32") -> GraphInfo:
    """Input/output and precision facts of ``onnx_path`` (see :class:`GraphInfo`)."""
    path = Path(onnx_path)
    if not path.is_file():
        raise BuildError(f"{path}: no such ONNX file")
    try:
        import onnx  # lazy: not part of the edge install
    except ImportError:
        return _inspect_by_contract(path, precision)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise BuildError(f"{path}: not a readable ONNX model ({first_line(e)})") from e
    half = {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    has_qdq = has_fp16 = False
    for graph in _graphs(model.graph, onnx):
        for node in graph.node:
            if node.op_type in QDQ_OPS:
                has_qdq = True
            if node.op_type == "Cast" and any(
                a.name == "to" and a.i in half for a in node.attribute
            ):
                has_fp16 = True
        if any(t.data_type in half for t in graph.initializer):
            has_fp16 = True
        values = (*graph.input, *graph.output, *graph.value_info)
        if any(v.type.tensor_type.elem_type in half for v in values):
            has_fp16 = True
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise BuildError(
            f"{path}: expected one input and one output, found inputs "
            f"{[i.name for i in inputs]} and outputs {[o.name for o in model.graph.output]}"
        )
    dims = inputs[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
    return GraphInfo(
        input_name=inputs[0].name,
        input_shape=shape,
        has_qdq=has_qdq,
        has_fp16=has_fp16,
        source="onnx",
    )


def _graphs(graph: Any, onnx: Any) -> Any:
    """The graph and every subgraph (If/Loop bodies) in it."""
    yield graph
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(a.g, onnx)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from _graphs(g, onnx)


def _inspect_by_contract(path: Path, precision: str) -> GraphInfo:
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise BuildError(
            f"{path}: cannot inspect it: neither onnx nor onnxruntime is installed"
        ) from e
    try:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise BuildError(f"{path}: ONNX Runtime cannot load it ({first_line(e)})") from e
    (inp,) = sess.get_inputs()
    data = path.read_bytes()
    return GraphInfo(
        input_name=inp.name,
        input_shape=tuple(d if isinstance(d, int) else -1 for d in inp.shape),
        has_qdq=b"QuantizeLinear" in data or b"DequantizeLinear" in data,
        has_fp16=precision == "fp16",
        source="contract",
    )
