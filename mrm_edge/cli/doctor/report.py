"""The doctor's report: its steps, parity figures, verdicts and exit codes, and the plain text
a terminal shows. The steps themselves: :mod:`mrm_edge.cli.doctor.steps`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.artifacts import onnx_file
from mrm_edge.errors import first_line

# Precision → the ONNX a TensorRT engine of it is built from (model.int8.onnx, for ONNX
# Runtime CPU, has int32 biases that TensorRT's parser rejects).
ONNX_FOR = {"fp32": onnx_file("fp32"), "fp16": onnx_file("fp16"), "int8": onnx_file("int8-sym")}
# max |Δp| against ONNX Runtime FP32. FP32 engines may use TF32 on Ampere and newer.
TOLERANCE = {"fp32": 5e-3, "fp16": 2e-2, "int8": 5e-2}
# Fraction of (window, label) decisions at the card's thresholds that must agree.
MIN_AGREEMENT = {"fp32": 1.0, "fp16": 0.95, "int8": 0.90}

EXIT_PASS, EXIT_FAIL, EXIT_UNAVAILABLE = 0, 1, 2


@dataclass
class Step:
    name: str
    status: str  # "ok" | "fail" | "skip" | "info"
    detail: str


@dataclass
class Parity:
    """Agreement of a run with the reference on the same windows."""

    max_abs_diff: float
    mean_abs_diff: float
    label_agreement: float  # fraction of (window, label) decisions that agree
    n_windows: int
    n_labels: int
    tolerance: float
    min_agreement: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.label_agreement >= self.min_agreement

    def summary(self) -> str:
        agree = round(self.label_agreement * self.n_windows * self.n_labels)
        return (
            f"max |Δp| {self.max_abs_diff:.2e} (tolerance {self.tolerance:.0e}), mean "
            f"{self.mean_abs_diff:.2e}; labels agree {agree}/{self.n_windows * self.n_labels} "
            f"(need {self.min_agreement:.0%})"
        )


@dataclass
class DoctorReport:
    model_dir: Path
    precision: str
    steps: list[Step] = field(default_factory=list)
    platform: str = ""
    gpu_reason: str | None = None
    engine_path: Path | None = None
    engine_built: bool | None = None
    reference_parity: Parity | None = None  # the precision's ONNX on ORT vs FP32 ORT
    parity: Parity | None = None  # the TensorRT engine vs FP32 ORT
    status: str = "fail"  # "pass" | "fail" | "unavailable"
    verdict: str = ""
    exit_code: int = EXIT_FAIL

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)


def compare(
    p: np.ndarray, p_ref: np.ndarray, thresholds: np.ndarray, tolerance: float, min_agreement: float
) -> Parity:
    """Parity of probabilities ``p`` against ``p_ref`` ([windows, labels])."""
    if p.shape != p_ref.shape:
        raise ValueError(f"output shape {p.shape} differs from the reference's {p_ref.shape}")
    d = np.abs(p.astype(np.float64) - p_ref.astype(np.float64))
    agree = (p >= thresholds) == (p_ref >= thresholds)
    return Parity(
        max_abs_diff=float(d.max()),
        mean_abs_diff=float(d.mean()),
        label_agreement=float(agree.mean()),
        n_windows=int(p.shape[0]),
        n_labels=int(p.shape[1]),
        tolerance=tolerance,
        min_agreement=min_agreement,
    )


def record_step(report: DoctorReport, name: str, fn: Callable[[], tuple[Any, str]]) -> Any:
    """Run one step; record ok + detail, or fail + the reason. Returns the value or None."""
    try:
        value, detail = fn()
    except Exception as e:
        report.steps.append(Step(name, "fail", first_line(e)))
        return None
    report.steps.append(Step(name, "ok", detail))
    return value


def reference_steps(
    report: DoctorReport, card: Any, fp32: Path, n_windows: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The windows and reference steps: ``n_windows`` synthetic windows of ``card`` and
    ONNX Runtime CPU on ``fp32`` (the model.onnx every figure is compared with)."""
    from mrm_edge.cli.bench.common import cpu_reference
    from mrm_edge.data.synthetic import make_windows

    def windows_step() -> tuple[Any, str]:
        w = make_windows(card, n_windows)
        rate = f"{card.window_samples} samples at {card.sampling_rate} Hz"
        return w, f"{len(w)} synthetic windows (mixed rhythms), {rate}"

    x = record_step(report, "windows", windows_step)
    if x is None:
        skip_steps(report, ["reference"], "no windows")
        return None, None
    ref = record_step(
        report,
        "reference",
        lambda: (cpu_reference(fp32, x), f"ONNX Runtime FP32 (CPU) on {len(x)} windows"),
    )
    return x, ref


def skip_steps(report: DoctorReport, names: list[str], why: str) -> None:
    report.steps += [Step(n, "skip", why) for n in names]


def unavailable(
    report: DoctorReport, infos: dict[str, Any], gpu_reason: str | None, no_trt: str | None
) -> DoctorReport:
    """The verdict when this machine can neither build nor run an engine; ``no_trt`` says why
    no TensorRT flavour can build here (None: one can, but there is no GPU to build on)."""
    from mrm_edge.runtime.backends.tensorrt.capability import CUDA_PYTHON_HINT, INSTALL_HINT

    skip_steps(
        report, ["build", "run", "parity"], f"needs {'TensorRT' if no_trt else 'a usable GPU'}"
    )
    if any(s.status == "fail" for s in report.steps if s.name not in ("tensorrt", "gpu")):
        return finish(report)  # a broken model is the first thing to fix
    report.status, report.exit_code = "unavailable", EXIT_UNAVAILABLE
    available = [i for i in infos.values() if i.available]
    if no_trt:
        report.verdict = (
            f"UNAVAILABLE: TensorRT is not installed here ({no_trt}); {INSTALL_HINT}; then run "
            "`mrm-edge doctor` there. The ONNX Runtime checks passed."
        )
    else:
        names = " / ".join(f"{i.display} {i.version}" for i in available)
        report.verdict = (
            f"UNAVAILABLE: {names} is installed but no GPU is usable ({gpu_reason}); "
            f"cuda-python: {CUDA_PYTHON_HINT}."
        )
    return report


def finish(report: DoctorReport, checked: str | None = None) -> DoctorReport:
    """The verdict from the steps: PASS when none failed and parity was computed (``checked``
    names what matched, default the TensorRT engine), else FAIL at the first failed step."""
    failed = [s for s in report.steps if s.status == "fail"]
    if not failed and report.parity is not None:
        report.status, report.exit_code = "pass", EXIT_PASS
        checked = checked or f"the TensorRT {report.precision} engine"
        report.verdict = f"PASS: {checked} matches ONNX Runtime FP32 ({report.parity.summary()})"
    else:
        report.status, report.exit_code = "fail", EXIT_FAIL
        first = failed[0] if failed else None
        report.verdict = (
            f"FAIL: {first.name}: {first.detail}" if first else "FAIL: no parity computed"
        )
    return report


def format_report(report: DoctorReport) -> str:
    """The report as plain text for a terminal (one line per step, then the verdict)."""
    lines = [f"mrm-edge doctor: {report.model_dir} ({report.precision})"]
    if report.platform:
        lines.append(f"  platform     {report.platform}")
    tag = {"ok": "[ok]  ", "fail": "[FAIL]", "skip": "[skip]", "info": "[info]"}
    for s in report.steps:
        lines.append(f"{tag.get(s.status, '[?]   ')} {s.name:<12} {s.detail}")
    lines.append("")
    lines.append(report.verdict)
    return "\n".join(lines)
