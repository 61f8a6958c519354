"""``mrm-edge doctor --backend triton:HOST:PORT``: the served model checked end to end from
this front-end, with the TensorRT doctor's report, verdicts and exit codes (its steps:
docs/triton.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.cli.doctor.report import (
    EXIT_UNAVAILABLE,
    MIN_AGREEMENT,
    TOLERANCE,
    DoctorReport,
    Step,
    compare,
    finish,
    record_step,
    reference_steps,
    skip_steps,
)
from mrm_edge.errors import first_line


def run_triton_doctor(model_dir: Path, target: str, n_windows: int = 8) -> DoctorReport:
    """The served model behind ``target`` against ONNX Runtime FP32 here (module docstring)."""
    from mrm_edge.runtime.backends.base import BackendUnavailable
    from mrm_edge.runtime.model import DeployedModel
    from mrm_edge.runtime.selection import select_backend

    report = DoctorReport(Path(model_dir), "served")
    model = record_step(report, "model", lambda: _model(DeployedModel.load(model_dir)))
    if model is None:
        return finish(report)
    x, ref = reference_steps(report, model.card, model.onnx["fp32"].path, n_windows)
    try:
        remote, _ = select_backend(model, target)
        remote.activate()
    except BackendUnavailable as e:
        report.steps.append(Step("server", "fail", e.reason))
        skip_steps(report, ["run", "parity"], "needs the server")
        report.status, report.exit_code = "unavailable", EXIT_UNAVAILABLE
        report.verdict = f"UNAVAILABLE: {target}: {e.reason}"
        return report
    except ValueError as e:  # a wrong model behind the address
        report.steps.append(Step("server", "fail", first_line(e, with_type=False)))
        return finish(report)
    try:
        report.precision = remote.precision
        report.steps.append(Step("server", "ok", remote.describe()))
        p = record_step(report, "run", lambda: _run(remote, x))
    finally:
        remote.deactivate()
    if p is None or ref is None:
        return finish(report)
    thresholds = np.array([model.thresholds[lab] for lab in model.card.labels])
    tol = TOLERANCE.get(report.precision, TOLERANCE["fp32"])
    report.parity = compare(p, ref, thresholds, tol, MIN_AGREEMENT.get(report.precision, 1.0))
    status = "ok" if report.parity.passed else "fail"
    report.steps.append(Step("parity", status, report.parity.summary()))
    return finish(report, f"the served {report.precision} model")


def _model(model: Any) -> tuple[Any, str]:
    if "fp32" not in model.onnx:
        raise ValueError(f"{model.directory}: no verified model.onnx (the FP32 reference)")
    return model, f"{model.card.name}: {', '.join(model.card.labels)}"


def _run(remote: Any, x: np.ndarray) -> tuple[np.ndarray, str]:
    p = remote.infer(x)
    alone = remote.infer(x[:1])
    drift = float(np.max(np.abs(alone - p[:1])))
    return p, f"{len(x)} windows as one batch; window 0 alone differs by {drift:.1e}"
