"""ONNX Runtime backend: CPU, or CUDA through the CUDA execution provider.

On CUDA the session runs with I/O binding: the input is bound from host memory, the output to
CUDA memory and copied back once (no per-run output allocation, no host round trips inside the
graph). On CPU a plain ``session.run`` is the simplest and fastest path. ``onnxruntime`` is
imported in ``activate()``. The CUDA provider is not executed here (no GPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from mrm_edge.runtime.backends.base import Backend, BackendUnavailable, precision_from_filename
from mrm_edge.runtime.backends.registry import (
    PRECISIONS,
    BackendSpec,
    Candidate,
    PlanRequest,
    sidecar_gate,
)

from mrm_edge.artifacts import ONNX_FILES, onnx_file, variants_for
from mrm_edge.errors import first_line

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# ORT's TensorRT provider needs libnvinfer and builds its own engines: the project uses its own
# TensorRT backend instead, so "auto" never picks it.
AUTO_ORDER = (CUDA, CPU)


class OnnxRuntimeBackend(Backend):
    """Run an ONNX model with ONNX Runtime.

    Args:
        onnx_path: the model (input ``[batch, leads, samples]`` float32, one output).
        providers: ``"auto"`` (CUDA when ORT has it, else CPU) or an explicit list of provider
            names; an explicit provider that is missing, or that ORT silently drops when
            creating the session, raises BackendUnavailable.
        intra_op_threads: ORT intra-op threads (None: ORT's default, all cores).
        io_binding: ``"auto"`` (on CUDA only), or force True / False.
        precision: label for reports; default from the file name (``model.fp16.onnx``).
    """

    name = "onnxruntime"

    def __init__(
        self,
        onnx_path: Path,
        providers: Literal["auto"] | list[str] = "auto",
        intra_op_threads: int | None = None,
        io_binding: Literal["auto"] | bool = "auto",
        precision: str | None = None,
    ) -> None:
        super().__init__()
        self.onnx_path = Path(onnx_path)
        self.requested_providers = providers
        self.intra_op_threads = intra_op_threads
        self.io_binding = io_binding
        self.precision = precision or precision_from_filename(self.onnx_path)
        self._session: Any = None
        self._bind_device: str | None = None

    def _resolve_providers(self, available: list[str]) -> list[str]:
        if self.requested_providers == "auto":
            return [p for p in AUTO_ORDER if p in available]
        missing = [p for p in self.requested_providers if p not in available]
        if missing:
            raise BackendUnavailable(
                self.name,
                f"provider(s) {', '.join(missing)} not in this onnxruntime build "
                f"(available: {', '.join(available)}); for CUDA install onnxruntime-gpu",
            )
        return list(self.requested_providers)

    def _activate(self) -> None:
        if not self.onnx_path.is_file():
            raise FileNotFoundError(f"{self.onnx_path}: no such ONNX file")
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendUnavailable(self.name, f"onnxruntime is not installed ({e})") from e
        wanted = self._resolve_providers(list(ort.get_available_providers()))
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT's warnings are not actionable here
        if self.intra_op_threads is not None:
            options.intra_op_num_threads = int(self.intra_op_threads)
        with_options: list[Any] = [(p, {"device_id": 0}) if p == CUDA else p for p in wanted]
        try:
            session = ort.InferenceSession(
                str(self.onnx_path), sess_options=options, providers=with_options
            )
        except Exception as e:
            first = first_line(e, with_type=False)
            raise ValueError(f"{self.onnx_path}: ONNX Runtime cannot load it ({first})") from e
        actual = list(session.get_providers())
        # ORT falls back to CPU with only a log line when the CUDA provider fails to load
        # (missing CUDA/cuDNN libraries): an explicit request must not silently run on CPU.
        dropped = [p for p in wanted if p not in actual]
        if dropped and self.requested_providers != "auto":
            raise BackendUnavailable(
                self.name,
                f"ONNX Runtime could not initialise {', '.join(dropped)} (running on {actual}); "
                "check the CUDA/cuDNN libraries onnxruntime-gpu needs",
            )
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(
                f"{self.onnx_path}: expected one input and one output, found "
                f"{[i.name for i in inputs]} and {[o.name for o in outputs]}"
            )
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        self.input_dims = tuple(d if isinstance(d, int) else None for d in inputs[0].shape[1:])
        on_cuda = CUDA in actual
        self.device = "cuda:0" if on_cuda else "cpu"  # GPU 0: the one the machine's facts describe
        use_binding = on_cuda if self.io_binding == "auto" else bool(self.io_binding)
        self._bind_device = ("cuda" if on_cuda else "cpu") if use_binding else None
        self._session = session

    def _infer(self, x: np.ndarray) -> np.ndarray:
        if self._bind_device is None:
            return self._session.run([self.output_name], {self.input_name: x})[0]
        binding = self._session.io_binding()
        binding.bind_cpu_input(self.input_name, x)
        binding.bind_output(self.output_name, self._bind_device, 0)
        self._session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def _deactivate(self) -> None:
        self._session = None


# =========================================================================== the plan

# Precision order per device: FP16 first on CUDA (its provider runs Q/DQ graphs dequantized,
# so INT8 buys nothing there); INT8 first on the CPU (fused QLinear kernels), FP16 last
# (CPUs emulate it).
CUDA_ORDER = ("fp16", "fp32", "int8")
CPU_ORDER = ("int8", "fp32", "fp16")
# Says why, not how much: a figure measured on one machine would go stale in this text.
INT8_WHY = (
    "INT8 first: ONNX Runtime CPU runs model.int8.onnx in fused QLinear kernels (the "
    "export's gate bounds its macro-AUC cost; `mrm-edge bench` measures the gain here)"
)


def _cpu_why(model: Any, asked: str | None, variant: dict[str, str], p: str) -> str:
    """Why precision ``p`` sits where it does among the CPU options (``asked``: the
    requested precision)."""
    int8, int8_sym = ONNX_FILES["int8"], ONNX_FILES["int8-sym"]
    if p == "int8" and variant[p] == "int8-sym":
        why = f"only {int8_sym} here, made for TensorRT: slower on ONNX Runtime CPU"
        return f"int8 requested; {why}" if asked == p else why
    if p == "int8":
        return INT8_WHY
    if asked == p:
        return f"{p} requested"
    if p == "fp32":
        if "int8" in model.onnx:
            return "FP32 (after the INT8 option)"
        if int8 in model.refused:
            return f"{int8} refused ({model.refused[int8]}), so FP32"
        return f"no {int8} in the model directory, so FP32"
    return "FP16 on CPU is emulated (slow)"


def _cpu_rank(variant: dict[str, str], p: str) -> float:
    # The symmetric file runs float convolutions on ORT CPU: after FP32, not before.
    if p == "int8" and variant[p] == "int8-sym":
        return CPU_ORDER.index("fp32") + 0.5
    return CPU_ORDER.index(p)


def _no_onnx(model: Any, asked: str | None) -> str:
    refused = [f"{n}: {r}" for n, r in model.refused.items() if n.endswith(".onnx")]
    return (
        "ONNX Runtime: no verified ONNX "
        + (f"for {asked}" if asked else "model")
        + (f" ({'; '.join(refused)})" if refused else "")
    )


def plan(request: PlanRequest) -> tuple[list[Candidate], list[str]]:
    """ONNX Runtime's options: CUDA (when the provider is there), then CPU, each in its
    precision order; and why the CUDA provider or the asked ONNX is missing."""
    model, asked = request.model, request.precision
    providers = request.facts.ort_providers
    if request.facts.ort_reason:
        return [], [request.facts.ort_reason]
    # Precision → the variant ONNX Runtime runs for it (int8: the uint8 file first).
    present = {p: [v for v in variants_for(p) if v in model.onnx] for p in PRECISIONS}
    variant = {p: vs[0] for p, vs in present.items() if vs}
    if not variant:
        return [], [_no_onnx(model, asked)]
    out: list[Candidate] = []

    def add(device: str, provider_list: list[str], why: str) -> None:
        rank = (lambda p: _cpu_rank(variant, p)) if device == "CPU" else CUDA_ORDER.index
        for p in sorted(variant, key=rank):
            art = model.onnx[variant[p]]
            reason = why if device == "CUDA" else f"{why}; {_cpu_why(model, asked, variant, p)}"
            out.append(
                Candidate(
                    f"onnxruntime {device} {p} ({art.name})",
                    "onnxruntime",
                    lambda a=art, pl=provider_list: OnnxRuntimeBackend(
                        a.path, providers=list(pl), precision=a.precision
                    ),
                    reason,
                    measurable=device == "CPU",
                    precision=p,
                    gate=sidecar_gate(art.sidecar, p),
                )
            )

    skipped: list[str] = []
    if asked is not None and asked not in variant:
        skipped.append(_no_onnx(model, asked))  # the reason; its other options stay in the plan
    elif CUDA not in providers:
        skipped.append("ONNX Runtime CUDA: no CUDAExecutionProvider (install onnxruntime-gpu)")
    if CUDA in providers:
        add("CUDA", [CUDA, CPU], "ONNX Runtime has the CUDA provider")
    if CPU in providers:
        add("CPU", [CPU], "ONNX Runtime CPU")
    return out, skipped


def cpu_backend(model_dir: Path, variant: str) -> OnnxRuntimeBackend:
    """The bench's ONNX Runtime row: ``variant``'s file on the CPU provider."""
    path = Path(model_dir) / onnx_file(variant)
    if not path.is_file():
        raise ValueError(f"{path}: not exported (run `mrm-edge export` first)")
    return OnnxRuntimeBackend(path, providers=[CPU])


SPEC = BackendSpec(
    name="onnxruntime",
    family="onnxruntime",
    rank=20,
    plan=plan,
    cpu_factory=cpu_backend,
)
