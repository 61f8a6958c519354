"""The shipped INT8 files against the real TensorRT for RTX ONNX parser (no GPU needed).

Why two INT8 files (``mrm_edge.artifacts``): TensorRT's parser takes the symmetric
``model.int8-sym.onnx`` and turns every QuantizeLinear / DequantizeLinear into a quantize /
dequantize layer, while it rejects the ONNX Runtime file ``model.int8.onnx`` at its first
int32 bias DequantizeLinear. Parsing only: building and running engines is tested elsewhere.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx
import pytest

from mrm_edge.artifacts import EDGE_MODEL_DIR, SHIPPED_MODEL_DIR

trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT for RTX (tensorrt_rtx) not installed")

SHIPPED = SHIPPED_MODEL_DIR


def _parse(path: Path) -> tuple[bool, list[str], Counter]:
    """(parsed, parser errors, layer type → count) of ``path`` in a fresh network."""
    logger = trt.Logger(trt.Logger.INTERNAL_ERROR)  # the errors are read from the parser
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(path))
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    types = Counter(network.get_layer(i).type for i in range(network.num_layers))
    return ok, errors, types


@pytest.mark.parametrize("model_dir", [SHIPPED, EDGE_MODEL_DIR], ids=["paper", "edge"])
def test_shipped_symmetric_file_parses_with_one_layer_per_qdq_node(model_dir: Path) -> None:
    ok, errors, types = _parse(model_dir / "model.int8-sym.onnx")
    assert ok and errors == []
    ops = Counter(n.op_type for n in onnx.load(str(model_dir / "model.int8-sym.onnx")).graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > ops["QuantizeLinear"]
    assert types[trt.LayerType.QUANTIZE] == ops["QuantizeLinear"]
    assert types[trt.LayerType.DEQUANTIZE] == ops["DequantizeLinear"]
    assert types[trt.LayerType.CONVOLUTION] == ops["Conv"]


def test_shipped_ort_file_is_rejected_at_its_int32_bias_dequantize() -> None:
    ok, errors, _ = _parse(SHIPPED / "model.int8.onnx")
    assert not ok and errors
    first = errors[0]
    assert "_bias_DequantizeLinear" in first and "Int32" in first
