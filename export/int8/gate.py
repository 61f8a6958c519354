"""The INT8 accuracy gate (:func:`build_int8`) and its report: FP32 and INT8 on ONNX Runtime on
held-out windows; on failure, :mod:`.sweep` keeps the most sensitive layers in float."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from mrm_edge.calibration.ranges import check_windows
from mrm_edge.calibration.windows import CalibrationSet
from mrm_edge.export.gates import onnx_probabilities
from mrm_edge.export.int8.measure import HeldOut, evaluate
from mrm_edge.export.int8.quantize import (
    Int8Result,
    QuantizeOptions,
    check_args,
    jsonable,
    load_onnx,
    quantizable,
    quantize_int8,
)
from mrm_edge.export.int8.sweep import Attempt, Requantizer, keep_in_float, sensitivity

from mrm_edge.data.errors import DataError
from mrm_edge.metrics import nan_to_none


@dataclass(frozen=True)
class Int8Options(QuantizeOptions):
    """How to quantize (the fields of :class:`QuantizeOptions`) and how strict the gate is.

    Attributes:
        max_auc_drop: the largest macro-AUC(FP32) - macro-AUC(INT8) that passes (0.005 =
            half a point).
        max_prob_delta: if given, the largest |p_INT8 - p_FP32| that passes.
        max_float_layers: at most this many layers kept in float by the sweep.
        sweep_windows: caps the held-out windows the per-layer sweep runs on (evenly
            spaced; ``None``: all).
    """

    max_auc_drop: float = 0.005
    max_prob_delta: float | None = None
    max_float_layers: int = 8
    sweep_windows: int | None = 128


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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # Conveniences for sidecars and log lines: the drop in percentage points, the
        # layers left in float (explicitly excluded or kept by the gate), the file.
        d["auc_drop_pt"] = 100.0 * self.auc_drop
        d["excluded_nodes"] = list(self.result.excluded_nodes)
        d["path"] = str(self.result.path)
        return jsonable(d)


def _held_out(
    fp32_onnx: Path, heldout_x: np.ndarray, heldout_y: np.ndarray, options: Int8Options
) -> tuple[HeldOut, list[str]]:
    """The checked held-out set with FP32's answers on it, and the label names."""
    x = np.ascontiguousarray(heldout_x, dtype=np.float32)
    y = np.asarray(heldout_y)
    check_windows(fp32_onnx, x, "held-out set")
    p_fp32 = onnx_probabilities(fp32_onnx, x).astype(np.float64)
    if p_fp32.shape != y.shape:
        raise DataError(
            f"held-out set: labels have {y.shape[1]} columns, but {fp32_onnx.name} outputs "
            f"{p_fp32.shape[1]} probabilities per window"
        )
    # The FP32 export records the card's labels, in output order, in its metadata.
    meta = {p.key: p.value for p in load_onnx(fp32_onnx).metadata_props}
    label_names = json.loads(meta["labels"])
    base = evaluate(p_fp32, p_fp32, y)
    if not math.isfinite(base.auc):
        raise DataError(
            f"held-out set: no label has both positive and negative windows among {len(y)}, "
            "so AUC cannot be measured; expected a larger or more varied held-out set"
        )
    held = HeldOut(x, y, p_fp32, base, float(options.max_auc_drop), options.max_prob_delta)
    return held, label_names


def _attempt(
    fp32_onnx: Path, work: Path, cset: CalibrationSet, held: HeldOut, options: Int8Options
) -> Attempt:
    """Quantize every layer; if that fails the gate, sweep and keep layers in float."""
    first, ranges = quantize_int8(fp32_onnx, work / "int8.onnx", cset, options)
    ev = held.measure(first.path)
    attempt = Attempt(
        first,
        first.path,
        ev,
        initial={
            "auc_int8": ev.auc,
            "auc_drop": held.drop(ev),
            "max_abs_prob_delta": ev.max_abs,
            "n_quantized": len(first.quantized_nodes),
        },
    )
    if held.passes(ev) or options.max_float_layers <= 0:
        return attempt
    requant = Requantizer(
        fp32_onnx, work, ranges, options.activation_type, first.range_params["op_types"]
    )
    layers = quantizable(load_onnx(fp32_onnx))
    attempt.sensitivity, attempt.metric = sensitivity(
        requant, first.quantized_nodes, layers, held, options.sweep_windows
    )
    keep_in_float(requant, attempt, layers, held, options.max_float_layers)
    return attempt


def build_int8(
    fp32_onnx: str | Path,
    out_path: str | Path,
    cset: CalibrationSet,
    heldout_x: np.ndarray,
    heldout_y: np.ndarray,
    options: Int8Options = Int8Options(),
) -> Int8Report:
    """Quantize ``fp32_onnx`` and hold the result to the accuracy gate on held-out windows
    (docs/export.md, "The INT8 gate"). On success the model is at ``out_path``. On failure
    ``out_path`` is removed (a model that failed its gate must not sit where a runtime looks
    for one), the last attempt is kept beside it as ``<name>.rejected.onnx``, and
    ``report.passed`` is False."""
    fp32_onnx, out_path = Path(fp32_onnx), Path(out_path)
    check_args(fp32_onnx, out_path, options.activation_type)
    drop = options.max_auc_drop  # from --int8-tolerance
    if not (isinstance(drop, (int, float)) and math.isfinite(drop)) or drop < 0:
        raise ValueError(f"max_auc_drop is {drop!r}, expected a finite number >= 0")
    held, label_names = _held_out(fp32_onnx, heldout_x, heldout_y, options)
    rejected = out_path.with_name(out_path.stem + ".rejected.onnx")
    with tempfile.TemporaryDirectory(prefix="mrm-int8-") as tmp:
        attempt = _attempt(fp32_onnx, Path(tmp), cset, held, options)
        passed = held.passes(attempt.evaluation)
        final = out_path if passed else rejected
        final.parent.mkdir(parents=True, exist_ok=True)
        for stale in (out_path, rejected):
            if stale.exists():
                stale.unlink()
        shutil.move(str(attempt.path), str(final))
    attempt.result = replace(attempt.result, path=final)
    return _report(attempt, held, label_names, options, passed, rejected)


def _message(
    attempt: Attempt, held: HeldOut, options: Int8Options, passed: bool, rejected: Path
) -> str:
    ev, base = attempt.evaluation, held.base
    drop = held.drop(ev)
    what = f"INT8 ({options.method}, {options.activation_type})"
    n = len(attempt.float_layers)
    kept = f"{n} layer(s) kept in float" if n else "all layers quantized"
    if passed:
        return (
            f"{what} passes: macro-AUC {ev.auc:.4f} vs FP32 "
            f"{base.auc:.4f} (drop {drop:+.4f}), max |Δp| {ev.max_abs:.4f} on {len(held.x)} "
            f"held-out windows; {kept}"
        )
    gate = f"macro-AUC drop <= {options.max_auc_drop:g}" + (
        "" if options.max_prob_delta is None else f" and max |Δp| <= {options.max_prob_delta:g}"
    )
    return (
        f"{what} fails the gate ({gate}): macro-AUC "
        f"{ev.auc:.4f} vs FP32 {base.auc:.4f} (drop {drop:+.4f}), max |Δp| "
        f"{ev.max_abs:.4f} on {len(held.x)} held-out windows with {kept} "
        f"(cap {options.max_float_layers}); rejected model left at {rejected}"
    )


def _report(
    attempt: Attempt,
    held: HeldOut,
    label_names: list[str],
    options: Int8Options,
    passed: bool,
    rejected: Path,
) -> Int8Report:
    ev, base = attempt.evaluation, held.base
    per_label = {
        name: {
            "auc_fp32": nan_to_none(base.per_label[j]),
            "auc_int8": nan_to_none(ev.per_label[j]),
            "drop": nan_to_none(base.per_label[j] - ev.per_label[j]),
        }
        for j, name in enumerate(label_names)
    }
    return Int8Report(
        passed=passed,
        message=_message(attempt, held, options, passed, rejected),
        method=options.method,
        activation_type=options.activation_type,
        max_auc_drop=float(options.max_auc_drop),
        max_prob_delta=options.max_prob_delta,
        n_heldout=len(held.x),
        labels=label_names,
        auc_fp32=base.auc,
        auc_int8=ev.auc,
        auc_drop=held.drop(ev),
        per_label=per_label,
        max_abs_prob_delta=ev.max_abs,
        mean_abs_prob_delta=ev.mean_abs,
        result=attempt.result,
        initial=attempt.initial,
        sensitivity=attempt.sensitivity,
        sensitivity_metric=attempt.metric,
        float_layers=attempt.float_layers,
    )
