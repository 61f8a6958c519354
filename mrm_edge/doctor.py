"""``mrm-edge doctor``: the end-to-end TensorRT self-check a user runs on their GPU machine.

What it does, each step reported with its result or the reason it failed (never a traceback):

1. model: the card and the ONNX files (``model.onnx`` as the FP32 reference, and
   ``model.fp16.onnx`` / ``model.int8-sym.onnx`` / ``model.onnx`` for the chosen precision:
   INT8 engines are built from the symmetric file, the one TensorRT's parser accepts, see
   ``mrm_edge.artifacts``);
2. windows: synthetic 12-lead windows at the card's sampling rate and window length
   (``mrm_edge.data.synthetic``: varied rhythms, rates, axes and noise);
3. reference: ONNX Runtime FP32 on CPU on those windows; and, for fp16 / int8, the same
   windows through the precision's ONNX on ONNX Runtime (how much the graph itself moves);
4. tensorrt, gpu: what ``probe_tensorrt`` / ``probe_gpu`` find;
5. build: an engine for the chosen precision and batch profile (cached in ``out_dir`` when
   given, else in a temporary directory);
6. run: the engine through ``TensorRTBackend`` on the same windows (whole batch, and one
   window alone to check batch independence);
7. parity: max |Δp| against the reference and agreement of the thresholded labels.

Verdict and exit status: 0 PASS; 1 FAIL (a step failed, or parity outside tolerance); 2
UNAVAILABLE (TensorRT, cuda-python or a GPU is missing: the report says what to install;
the ONNX Runtime steps still run).

The tolerances below are starting points, not measurements: no TensorRT engine of MRM-Net has
been run by this project yet (no TensorRT on the development machines). The whole path has
only run against the test double (tests/test_doctor.py).
"""

from __future__ import annotations

import contextlib
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.artifacts import onnx_file
from mrm_edge.data.errors import first_line

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
    onnxruntime: str = ""  # version and providers
    tensorrt: Any = None  # TensorRTInfo
    gpu: Any = None  # GpuInfo | None
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


def _run(report: DoctorReport, name: str, fn: Callable[[], tuple[Any, str]]) -> Any:
    """Run one step; record ok + detail, or fail + the reason. Returns the value or None."""
    try:
        value, detail = fn()
    except Exception as e:
        report.steps.append(Step(name, "fail", first_line(e)))
        return None
    report.steps.append(Step(name, "ok", detail))
    return value


def _skip(report: DoctorReport, names: list[str], why: str) -> None:
    report.steps += [Step(n, "skip", why) for n in names]


def make_windows(card: Any, n: int, seed: int = 0) -> np.ndarray:
    """``n`` synthetic windows float32 [n, leads, window] in mV at the card's rate."""
    from mrm_edge.data.synthetic import make_patients, synthesize

    patients = make_patients(n, seed=seed)
    x = np.stack([synthesize(p, card.window_seconds, fs=card.sampling_rate) for p in patients])
    if x.shape[1:] != (len(card.leads), card.window_samples):
        raise ValueError(f"synthetic windows have shape {x.shape[1:]}, the card expects "
                         f"({len(card.leads)}, {card.window_samples})")  # fmt: skip
    return x.astype(np.float32)


def run_doctor(
    model_dir: Path,
    precision: str = "fp16",
    batch: tuple[int, int, int] = (1, 8, 32),
    out_dir: Path | None = None,
    *,
    n_windows: int = 8,
    seed: int = 0,
    cuda_graphs: bool = False,
    tolerance: float | None = None,
    min_agreement: float | None = None,
    trt_flavour: str | None = None,
    trt: Any = None,
    cudart: Any = None,
) -> DoctorReport:
    """Check that this machine builds and runs the model's TensorRT engine correctly.

    Args:
        model_dir: directory with ``card.json`` and the exported ONNX files.
        precision: ``fp32`` / ``fp16`` / ``int8``: which ONNX to build.
        batch: (min, opt, max) batch profile of the engine.
        out_dir: where engines are cached (default: a temporary directory, removed after).
        n_windows: synthetic windows to compare on.
        cuda_graphs: run the engine with CUDA graph replay.
        tolerance, min_agreement: override the per-precision defaults.
        trt_flavour: ``auto`` / ``tensorrt`` / ``tensorrt-rtx`` (None: the environment's
            choice, else auto; see ``mrm_edge.export.tensorrt.capability``).
        trt, cudart: tensorrt / cuda-python runtime modules (default: import them); tests
            pass the test doubles.
    """
    from mrm_edge.card import ModelCard
    from mrm_edge.export.tensorrt.builder import BuildOptions, build_or_load
    from mrm_edge.export.tensorrt.capability import (
        STANDARD,
        choose_flavour,
        flavour_of,
        probe_flavours,
        probe_gpu,
        requested_flavour,
    )
    from mrm_edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
    from mrm_edge.runtime.backends.tensorrt import TensorRTBackend

    model_dir = Path(model_dir)
    report = DoctorReport(model_dir=model_dir, precision=precision)
    report.platform = (
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
    )
    if precision not in ONNX_FOR:
        report.steps.append(
            Step("model", "fail", f"precision {precision!r}, expected one of {list(ONNX_FOR)}")
        )
        return _finish(report)
    tol = TOLERANCE[precision] if tolerance is None else tolerance
    need = MIN_AGREEMENT[precision] if min_agreement is None else min_agreement
    try:
        options = BuildOptions(precision=precision, profile=tuple(batch))  # type: ignore[arg-type]
    except (TypeError, ValueError) as e:
        report.steps.append(Step("options", "fail", first_line(e)))
        return _finish(report)

    # 1. model ------------------------------------------------------------------------
    def model_step() -> tuple[Any, str]:
        card = ModelCard.load(model_dir)
        files = [model_dir / ONNX_FOR["fp32"], model_dir / ONNX_FOR[precision]]
        missing = [str(f) for f in dict.fromkeys(files) if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"missing {', '.join(missing)} (run `mrm-edge export` first)")
        names = ", ".join(dict.fromkeys(f.name for f in files))
        return card, f"{card.name}: {len(card.labels)} labels, {names}"

    card = _run(report, "model", model_step)

    # 2. ONNX Runtime environment ----------------------------------------------------------
    def ort_step() -> tuple[Any, str]:
        import onnxruntime as ort

        providers = ort.get_available_providers()
        report.onnxruntime = f"onnxruntime {ort.__version__} ({', '.join(providers)})"
        return providers, report.onnxruntime

    _run(report, "onnxruntime", ort_step)

    x = p_ref = thresholds = None

    def windows_step() -> tuple[Any, str]:
        w = make_windows(card, n_windows, seed)
        rate = f"{card.window_samples} samples at {card.sampling_rate} Hz"
        return w, f"{len(w)} synthetic windows (mixed rhythms), {rate}"

    def ort_run(path: Path) -> np.ndarray:
        with OnnxRuntimeBackend(path, providers=["CPUExecutionProvider"]) as backend:
            return backend.infer(x)

    def reference_step() -> tuple[Any, str]:
        p = ort_run(model_dir / ONNX_FOR["fp32"])
        return p, f"ONNX Runtime FP32 (CPU) on {len(p)} windows"

    if card is not None:
        x = _run(report, "windows", windows_step)
        thresholds = np.array([card.thresholds[lab] for lab in card.labels], dtype=np.float32)
    else:
        _skip(report, ["windows"], "no model")
    if x is not None:
        p_ref = _run(report, "reference", reference_step)
    else:
        _skip(report, ["reference"], "no windows")
    if p_ref is not None and precision != "fp32":

        def variant_step() -> tuple[Any, str]:
            par = compare(ort_run(model_dir / ONNX_FOR[precision]), p_ref, thresholds, tol, need)
            report.reference_parity = par
            return par, f"{ONNX_FOR[precision]} on ONNX Runtime (CPU): {par.summary()}"

        # Context for the engine's parity, not part of the verdict: ORT's CPU kernels for
        # reduced precision are not TensorRT's.
        variant = _run(report, f"onnx {precision}", variant_step)
        if variant is not None and not variant.passed:
            step = report.step(f"onnx {precision}")
            step.status = "info"  # type: ignore[union-attr]
            step.detail += " (outside the engine's tolerance)"  # type: ignore[union-attr]

    # 3. TensorRT and GPU --------------------------------------------------------------------
    infos = probe_flavours({flavour_of(trt): trt} if trt is not None else None)
    gpu, gpu_reason = probe_gpu(0, cudart)
    report.gpu, report.gpu_reason = gpu, gpu_reason
    asked = requested_flavour(trt_flavour)
    flavour, why_flavour = choose_flavour(asked, infos, gpu)
    # Installed but unable to build here (standard TensorRT without a GPU) is a GPU problem.
    installed = any(i.available for f, i in infos.items() if asked in ("auto", f))
    info = infos[flavour] if flavour else infos[STANDARD]
    report.tensorrt = info
    if flavour is not None:
        report.steps.append(Step("tensorrt", "ok", f"{info.summary()} ({why_flavour})"))
    else:
        found = "; ".join(i.summary() for i in infos.values())
        report.steps.append(Step("tensorrt", "fail", f"{why_flavour} ({found})"))
    if gpu is not None:
        report.steps.append(Step("gpu", "ok", gpu.summary()))
    else:
        report.steps.append(Step("gpu", "fail", str(gpu_reason)))

    # TensorRT-RTX builds without a GPU, so the build step still runs and proves the engine.
    can_build = flavour is not None and (gpu is not None or info.builds_without_gpu)
    if not can_build:
        return _unavailable(report, infos, gpu_reason, None if installed else why_flavour)
    if p_ref is None:
        _skip(report, ["build", "run", "parity"], "the reference step failed")
        return _finish(report)

    # 4. build, run, compare ----------------------------------------------------------------
    with contextlib.ExitStack() as stack:
        if out_dir is None:
            out_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mrm-doctor-")))

        def build_step() -> tuple[Any, str]:
            t0 = time.perf_counter()
            path, built = build_or_load(
                model_dir / ONNX_FOR[precision], Path(out_dir), options, gpu, info, trt=trt
            )
            report.engine_path, report.engine_built = path, built
            how = (
                f"built in {time.perf_counter() - t0:.1f} s" if built else "cached engine verified"
            )
            return path, f"{path.name}: {how}, batch profile {options.profile}"

        engine = _run(report, "build", build_step)
        if engine is None:
            _skip(report, ["run", "parity"], "no engine")
            return _finish(report)
        if gpu is None:
            _skip(report, ["run", "parity"], f"running the engine needs a GPU ({gpu_reason})")
            report.status, report.exit_code = "unavailable", EXIT_UNAVAILABLE
            report.verdict = (
                f"UNAVAILABLE: {info.display} {info.version} built {engine.name} here without a "
                f"GPU (compute {', '.join(options.rtx_targets)}); running it needs one of those "
                "GPUs: copy the model directory there and run `mrm-edge doctor`. The ONNX "
                "Runtime checks passed."
            )
            return report

        def run_step() -> tuple[Any, str]:
            backend = TensorRTBackend(engine, cuda_graphs=cuda_graphs, trt=trt, cudart=cudart)
            with backend:
                p = backend.infer(x)
                # The same window alone: an engine must not depend on its batch-mates.
                p1 = backend.infer(x[:1]) if options.profile[0] == 1 else p[:1]
            drift = float(np.abs(p1[0] - p[0]).max())
            graphs = f", CUDA graphs: {backend.graph_error or 'on'}" if cuda_graphs else ""
            return p, (
                f"{backend.describe()}: {len(p)} windows; batch-1 vs batch-{len(p)} |Δp| "
                f"{drift:.1e}{graphs}"
            )

        p_trt = _run(report, "run", run_step)
        if p_trt is None:
            _skip(report, ["parity"], "the run failed")
            return _finish(report)

        def parity_step() -> tuple[Any, str]:
            par = compare(p_trt, p_ref, thresholds, tol, need)
            report.parity = par
            return par, par.summary()

        parity = _run(report, "parity", parity_step)
        if parity is not None and not parity.passed:
            report.step("parity").status = "fail"  # type: ignore[union-attr]
    return _finish(report)


def _unavailable(
    report: DoctorReport, infos: dict[str, Any], gpu_reason: str | None, no_trt: str | None
) -> DoctorReport:
    """The verdict when this machine can neither build nor run an engine; ``no_trt`` says why
    no TensorRT flavour can build here (None: one can, but there is no GPU to build on)."""
    from mrm_edge.export.tensorrt.capability import CUDA_PYTHON_HINT, INSTALL_HINT

    _skip(report, ["build", "run", "parity"], f"needs {'TensorRT' if no_trt else 'a usable GPU'}")
    if any(s.status == "fail" for s in report.steps if s.name not in ("tensorrt", "gpu")):
        return _finish(report)  # a broken model is the first thing to fix
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


def _finish(report: DoctorReport) -> DoctorReport:
    failed = [s for s in report.steps if s.status == "fail"]
    if not failed and report.parity is not None:
        report.status, report.exit_code = "pass", EXIT_PASS
        report.verdict = (
            f"PASS: the TensorRT {report.precision} engine matches ONNX Runtime FP32 "
            f"({report.parity.summary()})"
        )
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


__all__ = [
    "EXIT_FAIL",
    "EXIT_PASS",
    "EXIT_UNAVAILABLE",
    "MIN_AGREEMENT",
    "ONNX_FOR",
    "TOLERANCE",
    "DoctorReport",
    "Parity",
    "Step",
    "compare",
    "format_report",
    "make_windows",
    "run_doctor",
]
