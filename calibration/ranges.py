"""Activation ranges (tensor name → (min, max)) of an FP32 ONNX model on a calibration set, with
ONNX Runtime's calibrators: ``minmax``, ``entropy``, ``percentile``. The result does not
depend on the batch size: a MinMax pass runs first and seeds the histograms (see
:func:`_seed_histograms`; why: docs/export.md, "Activation ranges")."""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from mrm_edge.calibration.windows import CalibrationSet

from mrm_edge.artifacts import onnx_io
from mrm_edge.data.errors import DataError

Method = Literal["minmax", "entropy", "percentile"]
METHODS: tuple[str, ...] = ("minmax", "entropy", "percentile")
#: Op types whose inputs/outputs are calibrated: the ones INT8 pays for (see export/int8.py).
QUANTIZED_OP_TYPES: tuple[str, ...] = ("Conv", "Gemm", "MatMul")
#: ORT's entropy default is 128 bins with 128 quantized bins, which leaves the KL search a
#: single candidate (the full range): entropy would silently equal min/max. 512 bins give
#: 193 candidate windows at a cost of ~0.1 s per tensor in ORT's pure-Python search.
ENTROPY_BINS = 512
QUANTIZED_BINS = 128
#: ORT's percentile defaults: 2048 bins of |x|, the share of |x| kept in percent.
PERCENTILE_BINS = 2048
PERCENTILE = 99.999

#: tensor name -> (min, max)
Ranges = dict[str, tuple[float, float]]


def check_windows(fp32_onnx: str | Path, x: np.ndarray, what: str) -> str:
    """The model's input name, after checking ``x`` is ``[n, leads, samples]`` as it expects."""
    path = Path(fp32_onnx)
    if not path.is_file():
        raise ValueError(f"{path}: no such ONNX file")
    (model_in,) = onnx_io(path)["inputs"]  # the FP32 export's one input, [batch, 12, samples]
    name = model_in["name"]
    want = [d if isinstance(d, int) and d > 0 else None for d in model_in["shape"][1:]]
    got = list(x.shape[1:])
    if x.ndim != 3 or any(w is not None and w != g for w, g in zip(want, got, strict=True)):
        raise DataError(
            f"{what}: windows have shape {list(x.shape)}, but input {name!r} of "
            f"{path.name} expects [batch, {want[0]}, {want[1]}] "
            "(wrong window length or lead count for this model)"
        )
    return name


def range_params(method: str, op_types: Sequence[str] = QUANTIZED_OP_TYPES) -> dict[str, Any]:
    """The validated parameters that determine ranges (the cache key uses exactly these)."""
    if method not in METHODS:
        raise ValueError(f"method is {method!r}, expected one of {', '.join(METHODS)}")
    ops = sorted({str(o) for o in op_types})
    if not ops:
        raise ValueError("op_types is empty, expected op types to calibrate, e.g. Conv")
    params: dict[str, Any] = {"method": method, "op_types": ops}
    if method == "entropy":
        params.update(num_bins=ENTROPY_BINS, num_quantized_bins=QUANTIZED_BINS)
    elif method == "percentile":
        params.update(num_bins=PERCENTILE_BINS, percentile=PERCENTILE, symmetric=True)
    return params


class _Reader:
    """An ORT ``CalibrationDataReader`` over a list of batches (duck-typed: ``get_next``)."""

    def __init__(self, input_name: str, batches: Sequence[np.ndarray]) -> None:
        self._it: Iterator[np.ndarray] = iter(batches)
        self._name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {self._name: batch}


def _scalar(v: Any) -> float:
    return float(np.asarray(v, dtype=np.float64).reshape(-1)[0])


def _to_ranges(tensors: Any, where: str) -> Ranges:
    out: Ranges = {}
    for name in sorted(tensors.keys()):
        lo, hi = (_scalar(v) for v in tensors[name].range_value)
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
            raise DataError(
                f"{where}: tensor {name!r} got range ({lo}, {hi}), expected finite min <= max "
                "(non-finite activations on the calibration windows?)"
            )
        out[name] = (lo, hi)
    return out


def _seed_histograms(calibrator: Any, minmax: Ranges, params: dict[str, Any]) -> None:
    """Empty histograms over each tensor's final range, so no batch re-bins them."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    if not hasattr(calibrator, "collector"):
        raise RuntimeError(
            "onnxruntime's HistogramCalibrater has no 'collector' attribute: this "
            "onnxruntime version is not supported by mrm_edge.calibration.ranges"
        )
    collector = HistogramCollector(
        method=calibrator.method,
        symmetric=calibrator.symmetric,
        num_bins=calibrator.num_bins,
        num_quantized_bins=calibrator.num_quantized_bins,
        percentile=calibrator.percentile,
        scenario=calibrator.scenario,
    )
    n_bins = int(params["num_bins"])
    absolute = params["method"] == "percentile" and calibrator.symmetric
    for name, (lo, hi) in minmax.items():
        t = max(abs(lo), abs(hi))
        # A hair wider than the MinMax pass saw: the histogram pass runs another session,
        # whose arithmetic may differ in the last ulp, and any excess would re-bin.
        t = np.float32(t * (1 + 1e-5) if t > 0 else 1e-6)
        lo32, hi32 = np.array(lo, dtype=np.float32), np.array(hi, dtype=np.float32)
        if absolute:  # collect_absolute_value: histogram of |x| over [0, t]
            edges = np.linspace(0, t, n_bins + 1, dtype=np.float32)
            collector.histogram_dict[name] = (np.zeros(n_bins, np.int64), edges, lo32, hi32)
        else:  # collect_value: histogram of x over [-t, t], plus the threshold t
            edges = np.linspace(-t, t, n_bins + 1, dtype=np.float32)
            threshold = np.array(t, dtype=np.float32)
            collector.histogram_dict[name] = (
                np.zeros(n_bins, np.int64),
                edges,
                lo32,
                hi32,
                threshold,
            )
    calibrator.collector = collector


def compute_ranges(
    fp32_onnx: str | Path,
    cset: CalibrationSet,
    method: Method = "minmax",
    batch_size: int = 32,
    op_types: Sequence[str] = QUANTIZED_OP_TYPES,
) -> Ranges:
    """Activation ranges of ``fp32_onnx`` (input ``[batch, 12, samples]`` raw mV) on ``cset``
    (tensor name → (min, max)) for the inputs and outputs of ``op_types``, with ``method``
    (docs/export.md); ``batch_size`` windows per ORT run bounds memory, never the result."""
    params = range_params(method, op_types)
    input_name = check_windows(fp32_onnx, cset.x, "calibration set")
    batches = [cset.x[i : i + batch_size] for i in range(0, len(cset), batch_size)]
    where = Path(fp32_onnx).name

    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    providers = ["CPUExecutionProvider"]
    with tempfile.TemporaryDirectory(prefix="mrm-calib-") as tmp:
        # Pass 1, MinMax: the answer for "minmax", the histogram range for the others.
        # Its per-batch outputs are two scalars per tensor, so all batches go in one call.
        calibrator = create_calibrator(
            Path(fp32_onnx),
            list(params["op_types"]),
            augmented_model_path=str(Path(tmp) / "minmax.onnx"),
            calibrate_method=CalibrationMethod.MinMax,
            providers=providers,
        )
        calibrator.collect_data(_Reader(input_name, batches))
        minmax = _to_ranges(calibrator.compute_data(), where)
        del calibrator
        if method == "minmax":
            return minmax

        # ORT's extra options are the method's parameters (range_params).
        extra = {k: v for k, v in params.items() if k not in ("method", "op_types")}
        extra.setdefault("symmetric", False)  # entropy's clipping window is asymmetric
        cal_method = (
            CalibrationMethod.Entropy if method == "entropy" else CalibrationMethod.Percentile
        )
        calibrator = create_calibrator(
            Path(fp32_onnx),
            list(params["op_types"]),
            augmented_model_path=str(Path(tmp) / "histogram.onnx"),
            calibrate_method=cal_method,
            providers=providers,
            extra_options=extra,
        )
        _seed_histograms(calibrator, minmax, params)
        # ORT's collector prints progress lines on stdout; keep the caller's stdout clean.
        with contextlib.redirect_stdout(io.StringIO()):
            for batch in batches:  # one batch per call: ORT keeps every tensor of a call
                calibrator.collect_data(_Reader(input_name, [batch]))
            tensors = calibrator.compute_data()
        return _to_ranges(tensors, where)
