"""Calibration ranges (computed once, cached) → a Q/DQ INT8 model (:func:`quantize_int8`), and
what it contains. Node names are kept from the FP32 graph; a BatchNormalization left right
after a Conv (not folded by the exporter) is reported in ``notes``."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from mrm_edge.calibration.cache import CalibrationCache, calibration_key
from mrm_edge.calibration.ranges import (
    QUANTIZED_OP_TYPES,
    Method,
    Ranges,
    check_windows,
    compute_ranges,
    range_params,
)
from mrm_edge.calibration.windows import CalibrationSet
from mrm_edge.export.int8.placement import (
    ACTIVATION_TYPES,
    DEFAULT_OP_TYPES,
    TENSORRT_OP_TYPES,
    ActivationType,
    placement_notes,
    write_qdq,
)


@dataclass(frozen=True)
class QuantizeOptions:
    """How to calibrate and quantize (validated by :func:`quantize_int8`).

    Attributes:
        method: activation range method: ``"minmax"``, ``"entropy"`` or ``"percentile"``.
        activation_type: ``"uint8"`` for ONNX Runtime on CPU, ``"int8"`` for TensorRT.
        cache_dir: calibration cache directory (``None``: always calibrate).
        op_types: the op types to quantize (default :data:`DEFAULT_OP_TYPES`; see
            :mod:`.placement`); they are calibrated too, so they are part of the cache key.
    """

    method: Method = "minmax"
    activation_type: ActivationType = "uint8"
    cache_dir: str | Path | None = None
    op_types: Sequence[str] = DEFAULT_OP_TYPES


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


def jsonable(v: Any) -> Any:
    """``v`` with paths as strings, numpy scalars as Python numbers, NaN/inf as None."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


# --------------------------------------------------------------------------- graph helpers


def load_onnx(path: Path) -> Any:
    import onnx

    return onnx.load(str(path))


def quantizable(model: Any) -> dict[str, str]:
    """Name → op type of every Conv / Gemm / MatMul node."""
    return {n.name: n.op_type for n in model.graph.node if n.op_type in QUANTIZED_OP_TYPES}


def quantized_nodes(model: Any) -> list[str]:
    """Conv / Gemm / MatMul nodes of a Q/DQ model whose data input comes from a DequantizeLinear."""
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
    ranges = compute_ranges(fp32_onnx, cset, params["method"], op_types=params["op_types"])
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


def check_args(fp32_onnx: Path, out_path: Path, activation_type: str) -> None:
    """The activation type is known and the FP32 model would not be overwritten."""
    if activation_type not in ACTIVATION_TYPES:
        raise ValueError(
            f"activation_type is {activation_type!r}, expected 'uint8' (ONNX Runtime CPU) "
            "or 'int8' (TensorRT)"
        )
    if out_path.resolve() == fp32_onnx.resolve():
        raise ValueError(f"{out_path}: the INT8 output would overwrite the FP32 input")


def _check_op_types(op_types: Sequence[str], activation_type: str) -> None:
    """Catch typos ("conv"): an op type the model lacks is fine, one ONNX lacks is not."""
    import onnx.defs

    unknown = [op for op in op_types if not onnx.defs.has(op)]
    if unknown:
        raise ValueError(
            f"op_types {unknown} are not ONNX operators, expected names such as "
            f"{','.join(DEFAULT_OP_TYPES)}"
        )
    if activation_type == "int8" and not set(op_types) & set(TENSORRT_OP_TYPES):
        raise ValueError(
            f"op_types {','.join(op_types)}: the int8 (TensorRT) placement "
            f"quantizes the inputs of {'/'.join(TENSORRT_OP_TYPES)} only, and none is listed"
        )


def quantize_int8(
    fp32_onnx: str | Path,
    out_path: str | Path,
    cset: CalibrationSet,
    options: QuantizeOptions = QuantizeOptions(),
) -> tuple[Int8Result, Ranges]:
    """Write a Q/DQ INT8 version of ``fp32_onnx`` to ``out_path``, calibrated on ``cset``
    (real ECG windows) as ``options`` say; the ranges too, so the gate can re-quantize."""
    fp32_onnx, out_path = Path(fp32_onnx), Path(out_path)
    check_args(fp32_onnx, out_path, options.activation_type)
    params = range_params(options.method, op_types=options.op_types)  # what the cache key uses
    check_windows(fp32_onnx, cset.x, "calibration set")
    fp32_model = load_onnx(fp32_onnx)
    layers = quantizable(fp32_model)
    _check_op_types(params["op_types"], options.activation_type)
    ranges, cached, key, file, seconds = _obtain_ranges(fp32_onnx, cset, params, options.cache_dir)
    write_qdq(
        fp32_onnx,
        out_path,
        ranges,
        options.activation_type,
        (),
        None,
        params["op_types"],
    )
    result = Int8Result(
        path=out_path,
        method=params["method"],
        activation_type=options.activation_type,
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
    return with_nodes(result, out_path, (), layers), ranges


def with_nodes(
    result: Int8Result, path: Path, exclude: Sequence[str], layers: dict[str, str]
) -> Int8Result:
    """``result`` describing the model at ``path``: which layers are quantized, which float."""
    model = load_onnx(path)
    done = quantized_nodes(model)
    return replace(
        result,
        path=path,
        placement_notes=placement_notes(
            model, result.activation_type, result.range_params["op_types"]
        ),
        quantized_nodes=done,
        excluded_nodes=list(exclude),
        float_nodes=[n for n in layers if n not in set(done)],
    )
