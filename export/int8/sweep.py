"""When the gate fails: rank the layers by sensitivity (the mean squared change of the
probabilities with one layer quantized; why MSE and not AUC: docs/export.md, "The INT8 gate"),
then keep the worst ones in float, re-checking the gate after each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mrm_edge.calibration.ranges import Ranges
from mrm_edge.export.gates import onnx_probabilities
from mrm_edge.export.int8.measure import Evaluation, HeldOut
from mrm_edge.export.int8.placement import write_qdq
from mrm_edge.export.int8.quantize import Int8Result, with_nodes


@dataclass(frozen=True)
class Requantizer:
    """Writes variants of one quantization (same ranges and placement) into ``work``."""

    fp32_onnx: Path
    work: Path
    ranges: Ranges
    activation_type: str
    op_types: Sequence[str]

    def write(
        self, name: str, exclude: Sequence[str] = (), only: Sequence[str] | None = None
    ) -> Path:
        path = self.work / name
        write_qdq(
            self.fp32_onnx,
            path,
            self.ranges,
            self.activation_type,
            exclude,
            only,
            self.op_types,
        )
        return path


def sensitivity(
    requant: Requantizer,
    nodes: Sequence[str],
    layers: dict[str, str],
    held: HeldOut,
    sweep_windows: int | None,
) -> tuple[list[dict[str, Any]], str]:
    """(each of ``nodes`` quantized alone, most sensitive first; the metric in words)."""
    n = len(held.x)
    idx = np.arange(n)
    if sweep_windows is not None and n > sweep_windows:  # evenly spaced, at most that many
        idx = np.unique(np.linspace(0, n - 1, sweep_windows).round().astype(int))
    xs, ps = held.x[idx], held.p_fp32[idx]
    metric = (
        "mean squared change of the output probabilities vs FP32 with only this "
        f"layer quantized, on {len(idx)} held-out windows (max |Δp| alongside)"
    )
    rows: list[dict[str, Any]] = []
    for node in nodes:
        one = requant.write("one.onnx", (), [node])
        d = onnx_probabilities(one, xs) - ps
        rows.append(
            {
                "node": node,
                "op_type": layers[node],
                "mse": float(np.mean(d**2)),
                "max_abs_delta": float(np.abs(d).max()),
            }
        )
    rows.sort(key=lambda s: (-s["mse"], s["node"]))
    return rows, metric


@dataclass
class Attempt:
    """The model the gate ends with, and how it got there."""

    result: Int8Result
    path: Path
    evaluation: Evaluation
    initial: dict[str, float]
    sensitivity: list[dict[str, Any]] = field(default_factory=list)
    metric: str = ""
    float_layers: list[dict[str, Any]] = field(default_factory=list)


def keep_in_float(
    requant: Requantizer,
    attempt: Attempt,
    layers: dict[str, str],
    held: HeldOut,
    max_float_layers: int,
) -> None:
    """Keep the most sensitive layers of ``attempt.sensitivity`` in float one by one until
    the gate passes or the cap is reached; ``attempt`` then describes the last candidate."""
    first, keep_float = attempt.result, []
    for k, s in enumerate(attempt.sensitivity[:max_float_layers]):
        keep_float.append(s["node"])
        cand = requant.write(f"int8-float{k + 1}.onnx", keep_float)
        ev = held.measure(cand)
        attempt.float_layers.append(
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
                "auc_drop_after": held.drop(ev),
                "max_abs_prob_delta_after": ev.max_abs,
            }
        )
        attempt.result = with_nodes(first, cand, keep_float, layers)
        attempt.path, attempt.evaluation = cand, ev
        if held.passes(ev):
            break
