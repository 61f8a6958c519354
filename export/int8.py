"""INT8 export: explicit (Q/DQ) static quantization of the FP32 ONNX model, with an accuracy gate.

Two files, two placements
-------------------------
The runtimes that make INT8 fast want different graphs, so ``mrm-edge export --int8`` writes
two files from the same calibration ranges (names in :mod:`mrm_edge.artifacts`). Both have
int8 weights, symmetric, one scale per output channel (axis 0 for Conv and for Gemm with
transB, the exporter's layout), and one scale per activation tensor.

``activation_type="uint8"`` → ``model.int8.onnx``, for ONNX Runtime CPU
    Asymmetric uint8 activations with int8 weights (U8S8, the combination ORT's x86 CPU
    kernels accelerate) and int32 biases. The compute ops (Conv, Gemm, MatMul) are quantized
    on their inputs *and* their outputs, on purpose: ORT's CPU provider fuses
    ``DQ → Conv → Q`` into one ``QLinearConv``; without the output Q the Conv runs in float
    between a DQ and nothing, and INT8 buys no speed at all. By default the ops that only
    carry activations from one Conv to the next are quantized too: the residual Add,
    MaxPool and Concat (``op_types``, :data:`DEFAULT_OP_TYPES`). They cost nothing in
    accuracy (they add, pick or copy already-quantized values) and let ORT keep the tensor
    in uint8 between Convs (``QLinearAdd``, ``QLinearConcat``, uint8 MaxPool) instead of a
    DequantizeLinear, a float op and a QuantizeLinear at every residual join. One Q/DQ pair
    per tensor, shared by its consumers. TensorRT's ONNX parser rejects this file: its
    DequantizeLinear takes 8-bit (or FP8/FP4/Int4) inputs only, not the int32 biases.

``activation_type="int8"`` → ``model.int8-sym.onnx``, for TensorRT (and OpenVINO)
    Symmetric int8 activations and weights (zero point 0) and biases left in float
    (``QuantizeBias: False``: TensorRT's parser takes a float bias, and an int32 one not at
    all). Q/DQ go where NVIDIA's TensorRT developer guide ("Q/DQ layer-placement
    recommendations") puts them, so that TensorRT can fuse them into its int8 layers:

    * on the inputs of the weighted layers only: the activation and the weight of every
      Conv, Gemm and MatMul (:data:`TENSORRT_OP_TYPES`);
    * not on their outputs (``OpTypesToExcludeOutputQuantization``): TensorRT fuses Conv,
      bias, ReLU and the *next* layer's input Q into one layer by itself, and a Q forced onto
      a Conv output that feeds a float op only adds a rounding;
    * the residual input of an Add that follows a Conv is dequantized, the pattern TensorRT
      fuses into Conv + Add: a tensor feeding one Conv and the residual Add gets a single
      Q/DQ pair that both read (ORT's rule for a tensor with one quantized consumer); an Add
      left reading a float residual is reported in ``placement_notes``;
    * nothing on MaxPool and Concat: they commute with Q/DQ and TensorRT moves the Q/DQ
      across them itself;
    * one Q/DQ pair per quantized consumer where a tensor feeds several
      (``DedicatedQDQPair``), so each layer's fusion stands on its own.

    The carrier op types in ``op_types`` are still calibrated (the ranges, and so the
    calibration cache entry, are shared with the uint8 file) but get no Q/DQ here.

    Evidence, without a GPU: TensorRT for RTX's parser takes the shipped model's file with
    no error and its builder serializes an engine; against the uint8 placement made
    symmetric (Q/DQ also on every Conv output and on Add/MaxPool/Concat) the parsed network
    has fewer layers and the serialized engine is smaller. Layer counts and engine size
    are the only fusion evidence this project has: no engine of it has run or been
    profiled on a GPU, so nothing here is a claim about TensorRT's speed.

    ONNX Runtime CPU runs this file with float convolutions (a DQ → Conv without an output
    Q is not fused), so no faster than FP32; it is gated on ORT all the same, as an
    accuracy check of the quantization.

``reduce_range`` (7-bit weights) is for x86 CPUs without VNNI, where U8S8 products can
saturate the 16-bit intermediate sums of ORT's fused kernels; the gate measures on the
exporting machine's kernels, so a layer that saturates there fails it and the sweep below
keeps that layer in float.

Ranges are computed once (``mrm_edge.calibration.ranges``) and cached
(``mrm_edge.calibration.cache``), then handed to ONNX Runtime's ``QDQQuantizer`` exactly as
``onnxruntime.quantization.quantize_static`` does after its own calibration
(``quantize.py``: ``QDQQuantizer(model, per_channel, reduce_range, weight_type,
activation_type, tensors_range, nodes_to_quantize, nodes_to_exclude, op_types_to_quantize,
extra_options).quantize_model()``). Node names are kept from the FP32 graph (no ORT graph
optimisation first), so exclusion lists and sensitivity reports name the layers a user sees
in the FP32 model. BatchNorm is expected folded by the exporter (eval-mode export); a
BatchNormalization left right after a Conv is reported in ``notes``.

Accuracy gate (:func:`build_int8`)
----------------------------------
FP32 and INT8 run in ONNX Runtime on held-out windows; the gate compares macro-AUC (and,
optionally, the largest probability change). When it fails, a per-layer sensitivity sweep
quantizes one layer at a time and measures the mean squared change of the output
probabilities against FP32 on the held-out windows. MSE, not AUC: on a few dozen held-out
windows AUC moves in coarse steps and mostly by chance, whereas the probability error is
continuous, needs no labels and ranks layers stably. The most sensitive layers are then kept
in float greedily, re-checking the gate after each, up to ``max_float_layers``.

No torch here; onnx and onnxruntime are imported when a function runs.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from mrm_edge.calibration.cache import CalibrationCache, calibration_key
from mrm_edge.calibration.ranges import (
    DEFAULT_QUANTIZED_BINS,
    QUANTIZED_OP_TYPES,
    Method,
    Ranges,
    check_windows,
    compute_ranges,
    range_params,
)
from mrm_edge.calibration.windows import CalibrationSet

from mrm_edge.data.errors import DataError

__all__ = [
    "ACTIVATION_TYPES",
    "COMPUTE_OP_TYPES",
    "DEFAULT_OP_TYPES",
    "SCHEMES",
    "TENSORRT_OP_TYPES",
    "ActivationType",
    "Int8GateError",
    "Int8Report",
    "Int8Result",
    "build_int8",
    "quantize_int8",
    "quantized_nodes",
]

ActivationType = Literal["uint8", "int8"]
ACTIVATION_TYPES: tuple[str, ...] = ("uint8", "int8")
#: The layers that do the arithmetic: quantized always, ranked by the sensitivity sweep.
COMPUTE_OP_TYPES: tuple[str, ...] = QUANTIZED_OP_TYPES
#: What is quantized by default: the compute ops plus the ops that carry their activations
#: (see the module docstring).
DEFAULT_OP_TYPES: tuple[str, ...] = (*COMPUTE_OP_TYPES, "Add", "MaxPool", "Concat")
#: The int8 (TensorRT) placement: Q/DQ on the inputs of these ops only (module docstring).
TENSORRT_OP_TYPES: tuple[str, ...] = COMPUTE_OP_TYPES
#: Activation type → the scheme in words, for sidecars and log lines.
SCHEMES: dict[str, str] = {
    "uint8": "uint8 asymmetric activations (ONNX Runtime CPU)",
    "int8": "int8 symmetric, float bias (TensorRT, OpenVINO)",
}


class Int8GateError(ValueError):
    """The INT8 model lost more accuracy than allowed, even with layers kept in float."""


@dataclass
class Int8Result:
    """What :func:`quantize_int8` wrote and how."""

    path: Path
    method: str
    activation_type: str
    ranges_cached: bool
    ranges_seconds: float  # time to obtain the ranges (cache read or calibration)
    quantized_nodes: list[str]
    excluded_nodes: list[str]
    float_nodes: list[str]  # Conv/Gemm/MatMul left in float, for whatever reason
    calibration: dict[str, Any]  # the calibration set's composition and fingerprint
    range_params: dict[str, Any]
    cache_key: str | None = None
    cache_file: str | None = None
    weights: str = "int8 symmetric, per output channel"
    notes: list[str] = field(default_factory=list)  # about the FP32 graph
    placement_notes: list[str] = field(default_factory=list)  # about the Q/DQ written

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return _jsonable(d)


@dataclass
class Int8Report:
    """The accuracy gate's verdict on an INT8 model (JSON-serialisable via :meth:`to_dict`)."""

    passed: bool
    message: str
    method: str
    activation_type: str
    max_auc_drop: float
    max_prob_delta: float | None
    n_heldout: int
    labels: list[str]
    auc_fp32: float
    auc_int8: float
    auc_drop: float
    per_label: dict[str, dict[str, float | None]]
    max_abs_prob_delta: float
    mean_abs_prob_delta: float
    result: Int8Result
    initial: dict[str, float] = field(default_factory=dict)  # the all-layers model's figures
    sensitivity: list[dict[str, Any]] = field(default_factory=list)
    sensitivity_metric: str = ""
    float_layers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.result.path

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["result"] = self.result.to_dict()
        # Conveniences for sidecars and log lines: the drop in percentage points, the
        # layers left in float (explicitly excluded or kept by the gate), the file.
        d["auc_drop_pt"] = 100.0 * self.auc_drop
        d["excluded_nodes"] = list(self.result.excluded_nodes)
        d["path"] = str(self.result.path)
        return _jsonable(d)

    def raise_for_failure(self) -> None:
        """Raise :class:`Int8GateError` (one line) when the gate failed."""
        if not self.passed:
            raise Int8GateError(self.message)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


# --------------------------------------------------------------------------- graph helpers


def _load(path: Path) -> Any:
    import onnx

    return onnx.load(str(path))


def _quantizable(model: Any) -> dict[str, str]:
    """Name → op type of every Conv / Gemm / MatMul node."""
    return {n.name: n.op_type for n in model.graph.node if n.op_type in QUANTIZED_OP_TYPES}


def quantized_nodes(int8_onnx: str | Path) -> list[str]:
    """Conv / Gemm / MatMul nodes of a Q/DQ model whose data input comes from a DequantizeLinear."""
    return _dequantized_compute(_load(Path(int8_onnx)))


def _dequantized_compute(model: Any) -> list[str]:
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    return [
        n.name
        for n in model.graph.node
        if n.op_type in QUANTIZED_OP_TYPES and producer.get(n.input[0]) == "DequantizeLinear"
    ]


def _graph_notes(model: Any) -> list[str]:
    """Things about the FP32 graph worth knowing before trusting an INT8 version of it."""
    producer = {o: n for n in model.graph.node for o in n.output}
    notes = []
    bns = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    unfolded = [n.name for n in bns if getattr(producer.get(n.input[0]), "op_type", "") == "Conv"]
    if unfolded:
        notes.append(
            f"{len(unfolded)} BatchNormalization node(s) directly after a Conv are not folded "
            f"(first: {unfolded[0]}); export in eval mode so the exporter folds them into the "
            "Conv weights before quantizing"
        )
    if len(bns) > len(unfolded):
        notes.append(
            f"{len(bns) - len(unfolded)} BatchNormalization node(s) follow non-Conv ops "
            "(e.g. the multi-scale kernel average) and stay float"
        )
    return notes


# --------------------------------------------------------------------------- quantization


def _obtain_ranges(
    fp32_onnx: Path,
    cset: CalibrationSet,
    params: dict[str, Any],
    batch_size: int,
    cache_dir: str | Path | None,
) -> tuple[Ranges, bool, str | None, str | None, float]:
    """(ranges, from_cache, key, cache file, seconds): the cache first, else calibrate."""
    t0 = time.perf_counter()
    key = cache = None
    if cache_dir is not None:
        cache = CalibrationCache(cache_dir)
        key = calibration_key(fp32_onnx, cset, params["method"], params)
        hit = cache.load(key)
        if hit is not None:
            return hit, True, key, str(cache.path(key)), time.perf_counter() - t0
    ranges = compute_ranges(
        fp32_onnx,
        cset,
        params["method"],
        batch_size=batch_size,
        percentile=params.get("percentile", 99.999),
        num_bins=params.get("num_bins"),
        num_quantized_bins=params.get("num_quantized_bins", DEFAULT_QUANTIZED_BINS),
        op_types=params["op_types"],
    )
    seconds = time.perf_counter() - t0
    file = None
    if cache is not None and key is not None:
        meta = {
            "model": fp32_onnx.name,
            "params": params,
            "calibration": cset.composition,
            "seconds": round(seconds, 3),
        }
        try:
            file = str(cache.save(key, ranges, meta))
        except OSError as exc:  # a read-only cache must not fail the export
            warnings.warn(f"{cache.directory}: calibration cache not written ({exc})", stacklevel=3)
    return ranges, False, key, file, seconds


def _write_qdq(
    fp32_onnx: Path,
    out_path: Path,
    ranges: Ranges,
    activation_type: str,
    exclude: Sequence[str] = (),
    only: Sequence[str] | None = None,
    reduce_range: bool = False,
    op_types: Sequence[str] = DEFAULT_OP_TYPES,
) -> None:
    """Run ORT's QDQQuantizer on ``fp32_onnx`` with pre-computed ``ranges``."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer

    model = load_model_with_shape_infer(fp32_onnx)
    tensors = TensorsData(
        CalibrationMethod.MinMax,
        {
            name: TensorData(lowest=np.array(lo, np.float32), highest=np.array(hi, np.float32))
            for name, (lo, hi) in ranges.items()
        },
    )
    quantize_ops, extra = _placement(activation_type, op_types)
    act = QuantType.QInt8 if activation_type == "int8" else QuantType.QUInt8
    quantizer = QDQQuantizer(
        model,
        True,  # per_channel
        reduce_range,
        QuantType.QInt8,  # weights
        act,
        tensors,
        list(only or []),
        list(exclude),
        quantize_ops,
        extra,
    )
    quantizer.quantize_model()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    quantizer.model.save_model_to_file(str(out_path), False)


def _placement(activation_type: str, op_types: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """(op types to quantize, QDQQuantizer extra options) of ``activation_type``'s file.

    See the module docstring for why the two differ."""
    extra: dict[str, Any] = {
        "WeightSymmetric": True,
        # Per output channel for MatMul weights too (Conv and Gemm default to it).
        "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
    }
    if activation_type == "uint8":
        # Shared pairs and quantized outputs: what ORT CPU fuses into QLinear* kernels.
        extra.update(ActivationSymmetric=False, DedicatedQDQPair=False)
        return list(op_types), extra
    extra.update(
        ActivationSymmetric=True,
        DedicatedQDQPair=True,
        # TensorRT's DequantizeLinear takes 8-bit inputs only: no int32 bias.
        QuantizeBias=False,
        # TensorRT fuses the next layer's input Q into a Conv; an output Q of its own is
        # only an extra rounding before float ops (ReLU, residual Add, Sigmoid).
        OpTypesToExcludeOutputQuantization=list(TENSORRT_OP_TYPES),
    )
    return [op for op in op_types if op in TENSORRT_OP_TYPES], extra


def _placement_notes(model: Any, activation_type: str, op_types: Sequence[str]) -> list[str]:
    """What the int8 (TensorRT) file leaves unquantized that TensorRT would want to know."""
    if activation_type != "int8":
        return []
    notes = []
    carriers = [op for op in op_types if op not in TENSORRT_OP_TYPES]
    if carriers:
        notes.append(
            f"op types {','.join(carriers)} calibrated but given no Q/DQ in the TensorRT "
            "placement (TensorRT moves Q/DQ across MaxPool and Concat; a residual Add reads "
            "its neighbour Conv's input DequantizeLinear)"
        )
    # A residual Add that reads the float tensor while that tensor's Q/DQ feeds only the
    # Conv beside it (a tensor with several quantized consumers gets dedicated pairs).
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    quantized = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    float_residual = [
        node.name
        for node in model.graph.node
        if node.op_type == "Add"
        and any(producer.get(i) == "Conv" for i in node.input)
        and any(i in quantized for i in node.input)
    ]
    if float_residual:
        notes.append(
            f"{len(float_residual)} Add(s) after a Conv read a float residual that is "
            f"quantized elsewhere (first: {float_residual[0]}): TensorRT fuses Conv + Add "
            "only with a dequantized residual"
        )
    return notes


def _check_args(fp32_onnx: Path, out_path: Path, activation_type: str) -> None:
    if activation_type not in ACTIVATION_TYPES:
        raise ValueError(
            f"activation_type is {activation_type!r}, expected 'uint8' (ONNX Runtime CPU) "
            "or 'int8' (TensorRT)"
        )
    if not fp32_onnx.is_file():
        raise ValueError(f"{fp32_onnx}: no such ONNX file")
    if out_path.resolve() == fp32_onnx.resolve():
        raise ValueError(f"{out_path}: the INT8 output would overwrite the FP32 input")


def _check_op_types(op_types: Sequence[str]) -> None:
    """Catch typos ("conv"): an op type the model lacks is fine, one ONNX lacks is not."""
    import onnx.defs

    unknown = [op for op in op_types if not onnx.defs.has(op)]
    if unknown:
        raise ValueError(
            f"op_types {unknown} are not ONNX operators, expected names such as "
            f"{','.join(DEFAULT_OP_TYPES)}"
        )


def quantize_int8(
    fp32_onnx: str | Path,
    out_path: str | Path,
    cset: CalibrationSet,
    method: Method = "minmax",
    activation_type: ActivationType = "uint8",
    exclude_nodes: Sequence[str] = (),
    cache_dir: str | Path | None = None,
    *,
    batch_size: int = 32,
    percentile: float = 99.999,
    num_bins: int | None = None,
    num_quantized_bins: int = DEFAULT_QUANTIZED_BINS,
    reduce_range: bool = False,
    op_types: Sequence[str] = DEFAULT_OP_TYPES,
) -> Int8Result:
    """Write a Q/DQ INT8 version of ``fp32_onnx`` to ``out_path``, calibrated on ``cset``.

    Args:
        fp32_onnx: the exported FP32 model.
        out_path: where the INT8 model goes.
        cset: calibration windows (real ECG, see :mod:`mrm_edge.calibration.windows`).
        method: activation range method: ``"minmax"``, ``"entropy"`` or ``"percentile"``.
        activation_type: ``"uint8"`` for ONNX Runtime on CPU, ``"int8"`` for TensorRT.
        exclude_nodes: Conv/Gemm/MatMul node names to keep in float.
        cache_dir: calibration cache directory (``None``: always calibrate).
        batch_size, percentile, num_bins, num_quantized_bins: see
            :func:`~mrm_edge.calibration.ranges.compute_ranges`.
        reduce_range: 7-bit weights, for x86 CPUs without VNNI.
        op_types: the op types to quantize (default :data:`DEFAULT_OP_TYPES`; see the
            module docstring); they are calibrated too, so they are part of the cache key.
    """
    fp32_onnx, out_path = Path(fp32_onnx), Path(out_path)
    _check_args(fp32_onnx, out_path, activation_type)
    params = range_params(method, batch_size, percentile, num_bins, num_quantized_bins, op_types)
    result, _ = _quantize(
        fp32_onnx,
        out_path,
        cset,
        params,
        activation_type=activation_type,
        exclude_nodes=exclude_nodes,
        cache_dir=cache_dir,
        batch_size=batch_size,
        reduce_range=reduce_range,
    )
    return result


def _quantize(
    fp32_onnx: Path,
    out_path: Path,
    cset: CalibrationSet,
    params: dict[str, Any],
    activation_type: str,
    exclude_nodes: Sequence[str],
    cache_dir: str | Path | None,
    batch_size: int,
    reduce_range: bool,
) -> tuple[Int8Result, Ranges]:
    """quantize_int8's work, also returning the ranges so the gate can re-quantize."""
    check_windows(fp32_onnx, cset.x, "calibration set")
    fp32_model = _load(fp32_onnx)
    quantizable = _quantizable(fp32_model)
    _check_op_types(params["op_types"])
    if activation_type == "int8" and not set(params["op_types"]) & set(TENSORRT_OP_TYPES):
        raise ValueError(
            f"op_types {','.join(params['op_types'])}: the int8 (TensorRT) placement "
            f"quantizes the inputs of {'/'.join(TENSORRT_OP_TYPES)} only, and none is listed"
        )
    unknown = [n for n in exclude_nodes if n not in quantizable]
    if unknown:
        raise ValueError(
            f"{fp32_onnx.name}: exclude_nodes {unknown} are not Conv/Gemm/MatMul nodes of the "
            f"model (it has {len(quantizable)}, e.g. {next(iter(quantizable), '-')!r})"
        )
    ranges, cached, key, file, seconds = _obtain_ranges(
        fp32_onnx, cset, params, batch_size, cache_dir
    )
    _write_qdq(
        fp32_onnx,
        out_path,
        ranges,
        activation_type,
        exclude_nodes,
        None,
        reduce_range,
        params["op_types"],
    )
    result = Int8Result(
        path=out_path,
        method=params["method"],
        activation_type=activation_type,
        ranges_cached=cached,
        ranges_seconds=round(seconds, 4),
        quantized_nodes=[],
        excluded_nodes=[],
        float_nodes=[],
        calibration={**cset.composition, "fingerprint": cset.fingerprint()},
        range_params=params,
        cache_key=key,
        cache_file=file,
        notes=_graph_notes(fp32_model),
    )
    return _with_nodes(result, out_path, exclude_nodes, quantizable), ranges


def _with_nodes(
    result: Int8Result, path: Path, exclude: Sequence[str], quantizable: dict[str, str]
) -> Int8Result:
    """``result`` describing the model at ``path``: which layers are quantized, which float."""
    model = _load(path)
    done = _dequantized_compute(model)
    return replace(
        result,
        path=path,
        placement_notes=_placement_notes(
            model, result.activation_type, result.range_params["op_types"]
        ),
        quantized_nodes=done,
        excluded_nodes=list(exclude),
        float_nodes=[n for n in quantizable if n not in set(done)],
    )


# --------------------------------------------------------------------------- accuracy gate


def _predict(path: Path, x: np.ndarray, batch_size: int) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # quiet: Q/DQ models make ORT chatty about fusions
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = [sess.run(None, {name: x[i : i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float64)


@dataclass
class _Eval:
    auc: float
    per_label: np.ndarray
    max_abs: float
    mean_abs: float


def _evaluate(p: np.ndarray, p_ref: np.ndarray, y: np.ndarray) -> _Eval:
    from mrm_edge.metrics import roc_auc_per_label

    per = roc_auc_per_label(y, p)
    d = np.abs(p - p_ref)
    return _Eval(float(np.nanmean(per)), per, float(d.max()), float(d.mean()))


def _model_labels(model: Any, n: int) -> list[str]:
    """Label names from the FP32 export's ``labels`` metadata, else ``label0..``."""
    import json

    meta = {p.key: p.value for p in model.metadata_props}
    try:
        names = json.loads(meta.get("labels", "null"))
    except json.JSONDecodeError:
        names = None
    if isinstance(names, list) and len(names) == n and all(isinstance(v, str) for v in names):
        return names
    return [f"label{j}" for j in range(n)]


def _none_if_nan(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def build_int8(
    fp32_onnx: str | Path,
    out_path: str | Path,
    cset: CalibrationSet,
    heldout_x: np.ndarray,
    heldout_y: np.ndarray,
    method: Method = "minmax",
    max_auc_drop: float = 0.005,
    cache_dir: str | Path | None = None,
    *,
    activation_type: ActivationType = "uint8",
    labels: Sequence[str] | None = None,
    max_prob_delta: float | None = None,
    max_float_layers: int = 8,
    sweep_windows: int | None = 128,
    exclude_nodes: Sequence[str] = (),
    batch_size: int = 32,
    percentile: float = 99.999,
    num_bins: int | None = None,
    num_quantized_bins: int = DEFAULT_QUANTIZED_BINS,
    reduce_range: bool = False,
    op_types: Sequence[str] = DEFAULT_OP_TYPES,
) -> Int8Report:
    """Quantize ``fp32_onnx`` and hold the result to an accuracy gate on held-out windows.

    The gate passes when macro-AUC(FP32) - macro-AUC(INT8) <= ``max_auc_drop`` (0.005 =
    half a point; labels with one class in the held-out set are left out of the mean, as
    :func:`mrm_edge.metrics.macro_auc` does) and, if given, the largest |p_INT8 - p_FP32|
    <= ``max_prob_delta``. On failure the most sensitive layers (see the module docstring)
    are kept in float one by one, at most ``max_float_layers``; ``sweep_windows`` caps the
    held-out windows the per-layer sweep runs on (evenly spaced; ``None``: all).

    ``labels`` name the report's per-label figures (default: the FP32 export's ``labels``
    metadata). The calibration arguments are those of :func:`quantize_int8`.

    On success the model is at ``out_path``. On failure ``out_path`` is removed (a model
    that failed its gate must not sit where a runtime looks for one), the last attempt is
    kept beside it as ``<name>.rejected.onnx`` for inspection, and ``report.passed`` is
    False: call :meth:`Int8Report.raise_for_failure` to turn that into an error.
    """
    fp32_onnx, out_path = Path(fp32_onnx), Path(out_path)
    _check_args(fp32_onnx, out_path, activation_type)
    if (
        not (isinstance(max_auc_drop, (int, float)) and math.isfinite(max_auc_drop))
        or max_auc_drop < 0
    ):
        raise ValueError(f"max_auc_drop is {max_auc_drop!r}, expected a finite number >= 0")
    if max_prob_delta is not None and not (0 <= max_prob_delta <= 1):
        raise ValueError(f"max_prob_delta is {max_prob_delta!r}, expected a number in [0, 1]")
    if (
        isinstance(max_float_layers, bool)
        or not isinstance(max_float_layers, int)
        or max_float_layers < 0
    ):
        raise ValueError(f"max_float_layers is {max_float_layers!r}, expected an integer >= 0")
    x = np.ascontiguousarray(heldout_x, dtype=np.float32)
    y = np.asarray(heldout_y)
    check_windows(fp32_onnx, x, "held-out set")
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise DataError(
            f"held-out set: labels have shape {list(y.shape)}, expected [{x.shape[0]}, n_labels]"
        )
    if not np.isfinite(x).all():
        raise DataError("held-out set: windows have non-finite samples, expected finite mV")

    fp32_model = _load(fp32_onnx)
    p_fp32 = _predict(fp32_onnx, x, batch_size)
    if p_fp32.shape != y.shape:
        raise DataError(
            f"held-out set: labels have {y.shape[1]} columns, but {fp32_onnx.name} outputs "
            f"{p_fp32.shape[1]} probabilities per window"
        )
    label_names = list(labels) if labels is not None else _model_labels(fp32_model, y.shape[1])
    if len(label_names) != y.shape[1]:
        raise ValueError(f"labels has {len(label_names)} names, expected {y.shape[1]}")
    base = _evaluate(p_fp32, p_fp32, y)
    if not math.isfinite(base.auc):
        raise DataError(
            f"held-out set: no label has both positive and negative windows among {len(y)}, "
            "so AUC cannot be measured; expected a larger or more varied held-out set"
        )

    def passes(ev: _Eval) -> bool:
        ok = base.auc - ev.auc <= max_auc_drop + 1e-12
        return ok and (max_prob_delta is None or ev.max_abs <= max_prob_delta)

    rejected = out_path.with_name(out_path.stem + ".rejected.onnx")
    with tempfile.TemporaryDirectory(prefix="mrm-int8-") as tmp:
        work = Path(tmp)
        params = range_params(
            method, batch_size, percentile, num_bins, num_quantized_bins, op_types
        )
        ops = params["op_types"]
        first, ranges = _quantize(
            fp32_onnx,
            work / "int8.onnx",
            cset,
            params,
            activation_type=activation_type,
            exclude_nodes=exclude_nodes,
            cache_dir=cache_dir,
            batch_size=batch_size,
            reduce_range=reduce_range,
        )
        current, current_path = first, work / "int8.onnx"
        ev = _evaluate(_predict(current_path, x, batch_size), p_fp32, y)
        initial = {
            "auc_int8": ev.auc,
            "auc_drop": base.auc - ev.auc,
            "max_abs_prob_delta": ev.max_abs,
            "n_quantized": len(first.quantized_nodes),
        }
        sensitivity: list[dict[str, Any]] = []
        float_layers: list[dict[str, Any]] = []
        metric = ""
        if not passes(ev) and max_float_layers > 0:
            # Per-layer sweep: quantize one layer alone, measure its output error vs FP32.
            n = len(x)
            if sweep_windows is not None and n > sweep_windows:
                idx = np.unique(np.linspace(0, n - 1, sweep_windows).round().astype(int))
            else:
                idx = np.arange(n)
            xs, ps = x[idx], p_fp32[idx]
            metric = (
                "mean squared change of the output probabilities vs FP32 with only this "
                f"layer quantized, on {len(idx)} held-out windows (max |Δp| alongside)"
            )
            op_type = _quantizable(fp32_model)
            for node in first.quantized_nodes:
                one = work / "one.onnx"
                _write_qdq(fp32_onnx, one, ranges, activation_type, (), [node], reduce_range, ops)
                d = _predict(one, xs, batch_size) - ps
                sensitivity.append(
                    {
                        "node": node,
                        "op_type": op_type[node],
                        "mse": float(np.mean(d**2)),
                        "max_abs_delta": float(np.abs(d).max()),
                    }
                )
            sensitivity.sort(key=lambda s: (-s["mse"], s["node"]))
            keep_float = list(exclude_nodes)
            for k, s in enumerate(sensitivity[:max_float_layers]):
                keep_float.append(s["node"])
                cand = work / f"int8-float{k + 1}.onnx"
                _write_qdq(
                    fp32_onnx, cand, ranges, activation_type, keep_float, None, reduce_range, ops
                )
                ev = _evaluate(_predict(cand, x, batch_size), p_fp32, y)
                float_layers.append(
                    {
                        "node": s["node"],
                        "op_type": s["op_type"],
                        "reason": (
                            f"rank {k + 1} in the sensitivity sweep: quantized alone it moves "
                            f"the probabilities by MSE {s['mse']:.3g} (max |Δp| "
                            f"{s['max_abs_delta']:.3g})"
                        ),
                        "mse": s["mse"],
                        "max_abs_delta": s["max_abs_delta"],
                        "auc_int8_after": ev.auc,
                        "auc_drop_after": base.auc - ev.auc,
                        "max_abs_prob_delta_after": ev.max_abs,
                    }
                )
                current_path = cand
                current = _with_nodes(first, cand, keep_float, op_type)
                if passes(ev):
                    break
        passed = passes(ev)
        final = out_path if passed else rejected
        final.parent.mkdir(parents=True, exist_ok=True)
        for stale in (out_path, rejected):
            if stale.exists():
                stale.unlink()
        shutil.move(str(current_path), str(final))
    current = replace(current, path=final)

    drop = base.auc - ev.auc
    gate = f"macro-AUC drop <= {max_auc_drop:g}" + (
        "" if max_prob_delta is None else f" and max |Δp| <= {max_prob_delta:g}"
    )
    kept = f"{len(float_layers)} layer(s) kept in float" if float_layers else "all layers quantized"
    if passed:
        message = (
            f"INT8 ({method}, {activation_type}) passes: macro-AUC {ev.auc:.4f} vs FP32 "
            f"{base.auc:.4f} (drop {drop:+.4f}), max |Δp| {ev.max_abs:.4f} on {len(x)} "
            f"held-out windows; {kept}"
        )
    else:
        message = (
            f"INT8 ({method}, {activation_type}) fails the gate ({gate}): macro-AUC "
            f"{ev.auc:.4f} vs FP32 {base.auc:.4f} (drop {drop:+.4f}), max |Δp| "
            f"{ev.max_abs:.4f} on {len(x)} held-out windows with {kept} "
            f"(cap {max_float_layers}); rejected model left at {rejected}"
        )
    per_label = {
        name: {
            "auc_fp32": _none_if_nan(base.per_label[j]),
            "auc_int8": _none_if_nan(ev.per_label[j]),
            "drop": _none_if_nan(base.per_label[j] - ev.per_label[j]),
        }
        for j, name in enumerate(label_names)
    }
    return Int8Report(
        passed=passed,
        message=message,
        method=method,
        activation_type=activation_type,
        max_auc_drop=float(max_auc_drop),
        max_prob_delta=max_prob_delta,
        n_heldout=len(x),
        labels=label_names,
        auc_fp32=base.auc,
        auc_int8=ev.auc,
        auc_drop=drop,
        per_label=per_label,
        max_abs_prob_delta=ev.max_abs,
        mean_abs_prob_delta=ev.mean_abs,
        result=current,
        initial=initial,
        sensitivity=sensitivity,
        sensitivity_metric=metric,
        float_layers=float_layers,
    )
