"""The doctor's steps, in order (listed in docs/export.md): :func:`run_doctor`."""

from __future__ import annotations

import contextlib
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.cli.doctor.report import (
    EXIT_UNAVAILABLE,
    MIN_AGREEMENT,
    ONNX_FOR,
    TOLERANCE,
    DoctorReport,
    Step,
    compare,
    finish,
    record_step,
    reference_steps,
    skip_steps,
    unavailable,
)
from mrm_edge.errors import first_line


def run_doctor(
    model_dir: Path,
    precision: str = "fp16",
    batch: tuple[int, int, int] = (1, 8, 32),
    out_dir: Path | None = None,
    *,
    n_windows: int = 8,
    cuda_graphs: bool = False,
    trt_flavour: str | None = None,
    facts: Any = None,
) -> DoctorReport:
    """Check that this machine builds and runs the model's TensorRT engine correctly (the
    parameters: ``mrm-edge doctor --help``; ``out_dir`` None: a temporary directory).
    ``facts``: the machine (``runtime.facts.MachineFacts``; None: probed here), with the
    TensorRT and CUDA modules it describes (tests: the test doubles)."""
    from mrm_edge.export.tensorrt.plan import BuildOptions

    model_dir = Path(model_dir)
    report = DoctorReport(model_dir=model_dir, precision=precision)
    report.platform = (
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
    )
    if precision not in ONNX_FOR:
        report.steps.append(
            Step("model", "fail", f"precision {precision!r}, expected one of {list(ONNX_FOR)}")
        )
        return finish(report)
    try:
        options = BuildOptions(precision=precision, profile=tuple(batch))  # type: ignore[arg-type]
    except (TypeError, ValueError) as e:
        report.steps.append(Step("options", "fail", first_line(e)))
        return finish(report)
    doctor = _Doctor(report, options, cuda_graphs=cuda_graphs, facts=facts)
    doctor.onnx_steps(n_windows)
    can_build, verdict = doctor.tensorrt_steps(trt_flavour)
    if not can_build:
        return verdict
    if doctor.p_ref is None:
        skip_steps(report, ["build", "run", "parity"], "the reference step failed")
        return finish(report)
    with contextlib.ExitStack() as stack:
        if out_dir is None:
            out_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mrm-doctor-")))
        return doctor.engine_steps(Path(out_dir))


class _Doctor:
    """The steps of one :func:`run_doctor`, in order, and what they hand each other (the
    card, the windows, the reference output, the TensorRT flavour and GPU)."""

    def __init__(
        self, report: DoctorReport, options: Any, *, cuda_graphs: bool, facts: Any
    ) -> None:
        self.report = report
        self.model_dir = report.model_dir
        self.precision = report.precision
        self.options = options
        self.tol, self.need = TOLERANCE[self.precision], MIN_AGREEMENT[self.precision]
        self.cuda_graphs, self.facts = cuda_graphs, facts
        self.trt: Any = None  # the chosen flavour's module, where facts name one (tests)
        self.card: Any = None
        self.x: np.ndarray | None = None
        self.p_ref: np.ndarray | None = None
        self.thresholds: np.ndarray | None = None
        self.gpu: Any = None
        self.info: Any = None

    # 1-3. model, ONNX Runtime, windows, reference ------------------------------------------
    def model_step(self) -> tuple[Any, str]:
        from mrm_edge.card import ModelCard

        card = ModelCard.load(self.model_dir)
        files = [self.model_dir / ONNX_FOR["fp32"], self.model_dir / ONNX_FOR[self.precision]]
        missing = [str(f) for f in dict.fromkeys(files) if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"missing {', '.join(missing)} (run `mrm-edge export` first)")
        names = ", ".join(dict.fromkeys(f.name for f in files))
        return card, f"{card.name}: {len(card.labels)} labels, {names}"

    def ort_step(self) -> tuple[Any, str]:
        import onnxruntime as ort

        providers = ort.get_available_providers()
        return providers, f"onnxruntime {ort.__version__} ({', '.join(providers)})"

    def onnx_steps(self, n_windows: int) -> None:
        """model, onnxruntime, windows, reference and (fp16 / int8) the precision's ONNX."""
        card = self.card = record_step(self.report, "model", self.model_step)
        record_step(self.report, "onnxruntime", self.ort_step)

        if card is not None:
            self.thresholds = np.array([card.thresholds[k] for k in card.labels], np.float32)
            fp32 = self.model_dir / ONNX_FOR["fp32"]
            self.x, self.p_ref = reference_steps(self.report, card, fp32, n_windows)
        else:
            skip_steps(self.report, ["windows"], "no model")
            skip_steps(self.report, ["reference"], "no windows")
        if self.p_ref is not None and self.precision != "fp32":
            self.variant_step()

    def variant_step(self) -> None:
        """The precision's ONNX on ONNX Runtime against FP32. Context for the engine's parity,
        not part of the verdict: ORT's CPU kernels for reduced precision are not TensorRT's."""
        from mrm_edge.cli.bench.common import cpu_reference

        p = self.precision

        def step() -> tuple[Any, str]:
            out = cpu_reference(self.model_dir / ONNX_FOR[p], self.x)
            par = compare(out, self.p_ref, self.thresholds, self.tol, self.need)
            self.report.reference_parity = par
            return par, f"{ONNX_FOR[p]} on ONNX Runtime (CPU): {par.summary()}"

        variant = record_step(self.report, f"onnx {p}", step)
        if variant is not None and not variant.passed:
            s = self.report.step(f"onnx {p}")
            s.status = "info"  # type: ignore[union-attr]
            s.detail += " (outside the engine's tolerance)"  # type: ignore[union-attr]

    # 4. TensorRT and GPU -----------------------------------------------------------------
    def tensorrt_steps(self, trt_flavour: str | None) -> tuple[bool, DoctorReport]:
        """The tensorrt and gpu steps; (whether an engine can be built here, the report)."""
        from mrm_edge.runtime.backends.tensorrt.capability import (
            STANDARD,
            choose_flavour,
            requested_flavour,
        )
        from mrm_edge.runtime.facts import probe_machine

        report, facts = self.report, self.facts or probe_machine()
        self.facts = facts
        infos, gpu, gpu_reason = facts.tensorrt, facts.gpu, facts.gpu_reason
        self.gpu, report.gpu_reason = gpu, gpu_reason
        asked = requested_flavour(trt_flavour)
        flavour, why_flavour = choose_flavour(asked, infos, gpu)
        # Installed but unable to build here (standard TensorRT without a GPU) is a GPU problem.
        installed = any(i.available for f, i in infos.items() if asked in ("auto", f))
        info = self.info = infos[flavour] if flavour else infos[STANDARD]
        if flavour is not None:
            self.trt = (facts.trt_modules or {}).get(flavour)
            report.steps.append(Step("tensorrt", "ok", f"{info.summary()} ({why_flavour})"))
        else:
            found = "; ".join(i.summary() for i in infos.values())
            report.steps.append(Step("tensorrt", "fail", f"{why_flavour} ({found})"))
        if gpu is not None:
            report.steps.append(Step("gpu", "ok", gpu.summary()))
        else:
            report.steps.append(Step("gpu", "fail", str(gpu_reason)))
        # TensorRT-RTX builds without a GPU, so the build step still runs and proves the engine.
        if flavour is not None and (gpu is not None or info.builds_without_gpu):
            return True, report
        return False, unavailable(report, infos, gpu_reason, None if installed else why_flavour)

    # 5-7. build, run, parity -------------------------------------------------------------
    def build_step(self, out_dir: Path) -> tuple[Any, str]:
        from mrm_edge.export.tensorrt.builder import build_or_load

        t0 = time.perf_counter()
        onnx = self.model_dir / ONNX_FOR[self.precision]
        path, built = build_or_load(onnx, out_dir, self.options, self.gpu, self.info, trt=self.trt)
        self.report.engine_path, self.report.engine_built = path, built
        how = f"built in {time.perf_counter() - t0:.1f} s" if built else "cached engine verified"
        return path, f"{path.name}: {how}, batch profile {self.options.profile}"

    def run_step(self, engine: Path) -> tuple[Any, str]:
        from mrm_edge.runtime.backends.tensorrt.runner import TensorRTBackend

        x = self.x
        backend = TensorRTBackend(
            engine, cuda_graphs=self.cuda_graphs, trt=self.trt, cudart=self.facts.cudart
        )
        with backend:
            p = backend.infer(x)
            # The same window alone: an engine must not depend on its batch-mates.
            p1 = backend.infer(x[:1]) if self.options.profile[0] == 1 else p[:1]
        drift = float(np.abs(p1[0] - p[0]).max())
        graphs = f", CUDA graphs: {backend.graph_error or 'on'}" if self.cuda_graphs else ""
        return p, (
            f"{backend.describe()}: {len(p)} windows; batch-1 vs batch-{len(p)} |Δp| "
            f"{drift:.1e}{graphs}"
        )

    def engine_steps(self, out_dir: Path) -> DoctorReport:
        """build, run and parity (``out_dir``: where the engine is cached)."""
        report = self.report
        engine = record_step(self.report, "build", lambda: self.build_step(out_dir))
        if engine is None:
            skip_steps(report, ["run", "parity"], "no engine")
            return finish(report)
        if self.gpu is None:
            return self._built_without_gpu(engine)
        p_trt = record_step(self.report, "run", lambda: self.run_step(engine))
        if p_trt is None:
            skip_steps(report, ["parity"], "the run failed")
            return finish(report)

        def parity_step() -> tuple[Any, str]:
            par = compare(p_trt, self.p_ref, self.thresholds, self.tol, self.need)
            report.parity = par
            return par, par.summary()

        parity = record_step(self.report, "parity", parity_step)
        if parity is not None and not parity.passed:
            report.step("parity").status = "fail"  # type: ignore[union-attr]
        return finish(report)

    def _built_without_gpu(self, engine: Path) -> DoctorReport:
        """TensorRT-RTX built the engine with no GPU here: UNAVAILABLE, saying where to run."""
        report, info = self.report, self.info
        skip_steps(
            report, ["run", "parity"], f"running the engine needs a GPU ({report.gpu_reason})"
        )
        report.status, report.exit_code = "unavailable", EXIT_UNAVAILABLE
        report.verdict = (
            f"UNAVAILABLE: {info.display} {info.version} built {engine.name} here without a "
            f"GPU (compute {', '.join(self.options.rtx_targets)}); running it needs one of those "
            "GPUs: copy the model directory there and run `mrm-edge doctor`. The ONNX "
            "Runtime checks passed."
        )
        return report
