"""``mrm-edge doctor --backend triton:HOST:PORT``: the served model checked end to end from
this front-end, with the TensorRT doctor's report, verdicts and exit codes.

Steps: ``model`` (the local directory: card, FP32 ONNX), ``windows`` (synthetic, at the
card's rate), ``reference`` (ONNX Runtime FP32 in-process), ``server`` (ready, and serving
this model: the identity check a monitor makes), ``run`` (the windows as one batch and one
alone through Triton), ``parity`` (max |Δp| and label agreement against the reference, with
the tolerances of the served precision). Exit 0 PASS, 1 FAIL (a step failed, a wrong model,
parity out of tolerance), 2 UNAVAILABLE (server unreachable, or no tritonclient).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.cli.doctor.report import (
    EXIT_FAIL,
    EXIT_PASS,
    EXIT_UNAVAILABLE,
    MIN_AGREEMENT,
    TOLERANCE,
    DoctorReport,
    Step,
    compare,
    record_step,
    skip_steps,
)
from mrm_edge.cli.doctor.steps import make_windows
from mrm_edge.errors import first_line

__all__ = ["run_triton_doctor"]


def run_triton_doctor(model_dir: Path, target: str, n_windows: int = 8) -> DoctorReport:
    """The served model behind ``target`` against ONNX Runtime FP32 here (module docstring)."""
    from mrm_edge.runtime.backends.base import BackendUnavailable
    from mrm_edge.runtime.backends.onnxruntime import CPU, OnnxRuntimeBackend
    from mrm_edge.runtime.model import DeployedModel
    from mrm_edge.runtime.selection import select_backend

    report = DoctorReport(Path(model_dir), "served")
    model = record_step(report, "model", lambda: _model(DeployedModel.load(model_dir)))
    if model is None:
        return _fail(report)
    x = record_step(report, "windows", lambda: _windows(model, n_windows))
    ref = record_step(report, "reference", lambda: _reference(OnnxRuntimeBackend, CPU, model, x))
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
        return _fail(report)
    try:
        report.precision = remote.precision
        report.steps.append(Step("server", "ok", remote.describe()))
        p = record_step(report, "run", lambda: _run(remote, x))
    finally:
        remote.deactivate()
    if p is None or ref is None:
        return _fail(report)
    thresholds = np.array([model.thresholds[lab] for lab in model.labels])
    tol = TOLERANCE.get(report.precision, TOLERANCE["fp32"])
    report.parity = compare(p, ref, thresholds, tol, MIN_AGREEMENT.get(report.precision, 1.0))
    status = "ok" if report.parity.passed else "fail"
    report.steps.append(Step("parity", status, report.parity.summary()))
    if status == "fail":
        return _fail(report)
    report.status, report.exit_code = "pass", EXIT_PASS
    report.verdict = (
        f"PASS: the served {report.precision} model matches ONNX Runtime FP32 "
        f"({report.parity.summary()})"
    )
    return report


def _model(model: Any) -> tuple[Any, str]:
    if "fp32" not in model.onnx:
        raise ValueError(f"{model.directory}: no verified model.onnx (the FP32 reference)")
    return model, f"{model.name}: {', '.join(model.labels)}"


def _windows(model: Any, n: int) -> tuple[np.ndarray, str]:
    x = make_windows(model.card, n)
    return x, f"{n} synthetic windows {tuple(x.shape[1:])} at {model.sampling_rate} Hz"


def _reference(ort_backend: Any, cpu: str, model: Any, x: np.ndarray) -> tuple[np.ndarray, str]:
    with ort_backend(model.onnx["fp32"].path, providers=[cpu]) as be:
        return be.infer(x), "ONNX Runtime FP32 on CPU"


def _run(remote: Any, x: np.ndarray) -> tuple[np.ndarray, str]:
    p = remote.infer(x)
    alone = remote.infer(x[:1])
    drift = float(np.max(np.abs(alone - p[:1])))
    return p, f"{len(x)} windows as one batch; window 0 alone differs by {drift:.1e}"


def _fail(report: DoctorReport) -> DoctorReport:
    failed = [s for s in report.steps if s.status == "fail"]
    report.status, report.exit_code = "fail", EXIT_FAIL
    report.verdict = f"FAIL: {failed[0].name}: {failed[0].detail}" if failed else "FAIL"
    return report
