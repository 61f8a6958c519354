"""The BF16 gate: OpenVINO running ``model.onnx`` at inference precision bf16 against FP32 on
the held-out folds, written to the model directory's BF16 record
(``mrm_edge.artifacts.BF16_RECORD``) that the OpenVINO plan reads (docs/cpu-runtimes.md#bf16).
Measured on a BF16 CPU only; elsewhere refused with the reason."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.artifacts import BF16_RECORD, read_sidecar
from mrm_edge.card import ModelCard

BF16_AUC_TOLERANCE_PT = 0.1
BF16_MAX_DP = 2e-2


def _bf16_backend(path: Path) -> Any:
    from mrm_edge.runtime.backends.openvino.backend import OpenVinoBackend

    return OpenVinoBackend(path, inference_precision="bf16")


def measure_bf16_gate(model_dir: Path, data_dir: Path | None = None) -> dict[str, Any]:
    """Measure the gate, write the record, return it. Raises BackendUnavailable (no OpenVINO,
    no BF16 CPU: the reason) before anything is written."""
    from mrm_edge.export.gates import compare, onnx_probabilities
    from mrm_edge.export.pipeline import held_out, synthetic_windows
    from mrm_edge.runtime.cpu_timing import machine_key

    tolerance_pt, max_dp = BF16_AUC_TOLERANCE_PT, BF16_MAX_DP
    model_dir = Path(model_dir)
    onnx = model_dir / "model.onnx"
    card = ModelCard.load(model_dir)
    windows = held_out(card, data_dir) if data_dir else synthetic_windows(card, 64)
    backend = _bf16_backend(onnx)
    with backend:  # activation refuses a CPU without BF16, with the reason
        x = windows.x
        p16 = np.concatenate([backend.infer(x[i : i + 32]) for i in range(0, len(x), 32)])
        runtime = f"OpenVINO {backend.version} ({backend.inference_precision})"
    acc = compare(onnx_probabilities(onnx, windows.x), p16, windows.y)
    dp, change = acc["max_abs_prob_delta"], acc.get("auc_delta_pt")
    passed = dp <= max_dp and (change is None or abs(change) <= tolerance_pt)
    auc_text = (
        "AUC gate not applied (no labels)"
        if change is None
        else f"macro-AUC change {change:+.3f} pt (≤ {tolerance_pt:g})"
    )
    verdict = "passes" if passed else "FAILS"
    record = {
        "precision": "bf16",
        "runtime": runtime,
        "source": onnx.name,
        "source_sha256": read_sidecar(onnx).get("sha256"),
        "data": windows.description,
        "windows": len(windows.x),
        "max_abs_prob_delta": dp,
        "max_dp_limit": max_dp,
        "auc_fp32": acc.get("auc_reference"),
        "auc_bf16": acc.get("auc"),
        "auc_change_pt": change,
        "tolerance_pt": tolerance_pt,
        "passed": passed,
        "message": f"BF16 {verdict}: max |Δp| {dp:.2e} (≤ {max_dp:g}), {auc_text}, "
        f"on {windows.description}",
        "cpu": str(machine_key()["cpu"]),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (model_dir / BF16_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record
