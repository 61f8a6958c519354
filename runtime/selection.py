"""Which backend runs the model here, and why.

``select_backend(model, "auto")`` walks this order and takes the first option whose
preconditions hold, returning the backend (not yet activated) and one line saying which it
is and why the faster ones were passed over:

1. **TensorRT** — a CUDA GPU and an engine in the model directory that runs on it: built by
   standard TensorRT for this GPU and the installed TensorRT version, or by TensorRT-RTX for
   targets that include this GPU's compute capability, with that TensorRT-RTX installed
   (and a batch profile that admits batch 1, since a live monitor dispatches whatever is
   waiting). Precision: INT8 > FP16 > FP32.
2. **ONNX Runtime CUDA** — onnxruntime-gpu with ``CUDAExecutionProvider``.
   Precision: FP16 > FP32 > INT8 (the CUDA provider runs Q/DQ graphs dequantized, so INT8
   buys nothing there).
3. **ONNX Runtime CPU** — INT8 > FP32 > FP16. INT8 first because it was measured at 3.5-4x
   the FP32 throughput on ONNX Runtime CPU on this project's machines (the export's
   gate bounds its macro-AUC cost); FP16 last because CPUs emulate it.

ONNX Runtime's INT8 file is ``model.int8.onnx`` (uint8 activations, fused into QLinear
kernels). A directory with only ``model.int8-sym.onnx`` (the symmetric file made for
TensorRT) still offers INT8 to ONNX Runtime, but on the CPU after FP32: ORT runs its
convolutions in float, so it is no faster than FP32 and less exact.
4. **PyTorch** (reference) — ``torch`` importable and the weights present; FP32 only.

``precision`` restricts every step to that precision. An explicit ``requested`` backend
considers only its own options; if none can run, :class:`BackendUnavailable` says why.
The probes are cheap (imports, provider list, GPU query, sidecars); the real test is
activation, so :func:`activate_backend` activates the options in order and, when one fails
to start (e.g. the CUDA provider's libraries are missing), moves on and says so.
:func:`activate_with_fallbacks` also returns the options after the chosen one: the chain a
monitor falls back along when its backend keeps failing mid-run (``runtime/engine.py``).

``TorchBackend`` lives here too: the reference implementation of the Backend interface on
the PyTorch model, importing torch only when activated.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from mrm_edge.runtime.backends.base import Backend, BackendUnavailable
from mrm_edge.runtime.model import ONNX_FILES, DeployedModel

from mrm_edge.artifacts import variants_for
from mrm_edge.data.errors import first_line

__all__ = [
    "BACKEND_CHOICES",
    "Candidate",
    "TorchBackend",
    "activate_backend",
    "activate_with_fallbacks",
    "plan_backends",
    "select_backend",
]

Requested = Literal["auto", "tensorrt", "onnxruntime", "torch"]
BACKEND_CHOICES: tuple[str, ...] = ("auto", "tensorrt", "onnxruntime", "torch")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")

_TRT_ORDER = ("int8", "fp16", "fp32")
_ORT_CUDA_ORDER = ("fp16", "fp32", "int8")
_ORT_CPU_ORDER = ("int8", "fp32", "fp16")
_INT8_WHY = (
    "INT8 measured 3.5-4x the FP32 throughput on ONNX Runtime CPU (shipped model, batch 32, "
    "2-core x86; `mrm-edge bench`)"
)


@dataclass
class Candidate:
    """One runnable option: what it is, how to build it, and why it is this far up."""

    label: str
    """E.g. ``"onnxruntime CPU int8 (model.int8.onnx)"``."""
    family: str
    """``"tensorrt"``, ``"onnxruntime"`` or ``"torch"``."""
    make: Callable[[], Backend]
    why: str


# =========================================================================== the plan


def _tensorrt_options(
    model: DeployedModel, precisions: tuple[str, ...], trt: Any, cudart: Any, explicit: bool
) -> tuple[list[Candidate], str | None]:
    """Engines that run here. Each engine is loaded by the TensorRT flavour that built it
    (its sidecar says which): a standard engine needs this GPU and TensorRT version, a
    TensorRT-RTX engine this GPU's compute capability among its targets."""
    from mrm_edge.runtime.backends.tensorrt import TensorRTBackend
    from mrm_edge.runtime.backends.tensorrt.capability import (
        DISPLAY,
        RTX,
        STANDARD,
        flavour_of,
        probe_flavours,
        probe_gpu,
    )
    from mrm_edge.runtime.backends.tensorrt.engine_file import describe_misfit

    modules = {flavour_of(trt): trt} if trt is not None else None
    infos = probe_flavours(modules)
    found = [i for i in infos.values() if i.available]
    if not found:
        reason = str(infos[STANDARD].reason)
        # The install hint helps whoever asked for TensorRT; in auto's list it is noise.
        return [], f"TensorRT: {reason if explicit else reason.split('; ')[0]}"
    names = " and ".join(f"{i.display} {i.version}" for i in found)
    gpu, reason = probe_gpu(0, cudart)
    if gpu is None:
        return [], f"{names} found but no GPU ({reason})"
    versions = {f: (i.version if i.available else None) for f, i in infos.items()}
    misfits: list[str] = []
    fitting = []
    for engine in model.engines:
        key = engine.key
        profile = key.get("profile") or [1, 1, 1]
        if engine.precision not in precisions:
            continue
        misfit = describe_misfit(
            key, gpu.name, gpu.compute_capability, versions[STANDARD], versions[RTX]
        )
        if misfit:
            misfits.append(f"{engine.name} {misfit}")
        elif int(profile[0]) > 1:
            misfits.append(f"{engine.name} needs batches >= {profile[0]}")
        else:
            fitting.append(engine)
    if not fitting:
        detail = "; ".join(misfits) if misfits else "no engine in the model directory"
        return [], (
            f"{names} on {gpu.name} but no engine for it ({detail}); build one "
            "with `mrm-edge export --engine`"
        )
    fitting.sort(key=lambda a: _TRT_ORDER.index(a.precision))
    out = []
    for engine in fitting:
        flavour = engine.key.get("flavour", STANDARD)
        info = infos[flavour]
        module = (modules or {}).get(flavour)
        out.append(
            Candidate(
                f"tensorrt {engine.precision} ({engine.name}) on {gpu.name}",
                "tensorrt",
                lambda e=engine, m=module: TensorRTBackend(
                    e.path, precision=e.precision, trt=m, cudart=cudart
                ),
                f"{DISPLAY[flavour]} {info.version} and an engine built for this {gpu.name}"
                if flavour == STANDARD
                else f"TensorRT-RTX {info.version} and a portable engine that targets compute "
                f"{gpu.compute_capability} ({gpu.name})",
            )
        )
    return out, None


def _onnxruntime_options(
    model: DeployedModel,
    precisions: tuple[str, ...],
    providers: list[str] | None,
    intra_op_threads: int | None,
) -> tuple[list[Candidate], list[str]]:
    from mrm_edge.runtime.backends.onnxruntime import CPU, CUDA, OnnxRuntimeBackend

    skipped: list[str] = []
    if providers is None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            return [], [f"onnxruntime is not installed ({first_line(e, with_type=False)})"]
        providers = list(ort.get_available_providers())
    # Precision → the variant ONNX Runtime runs for it (int8: the uint8 file first).
    present = {p: [v for v in variants_for(p) if v in model.onnx] for p in precisions}
    variant = {p: vs[0] for p, vs in present.items() if vs}
    wanted = list(variant)
    if not wanted:
        refused = [f"{n}: {r}" for n, r in model.refused.items() if n.endswith(".onnx")]
        return [], [
            "ONNX Runtime: no verified ONNX "
            + (f"for {'/'.join(precisions)}" if len(precisions) == 1 else "model")
            + (f" ({'; '.join(refused)})" if refused else "")
        ]
    out: list[Candidate] = []

    int8, int8_sym = ONNX_FILES["int8"], ONNX_FILES["int8-sym"]

    def cpu_why(p: str) -> str:
        if p == "int8" and variant[p] == "int8-sym":
            why = f"only {int8_sym} here, made for TensorRT: slower on ONNX Runtime CPU"
            return f"int8 requested; {why}" if len(precisions) == 1 else why
        if p == "int8":
            return _INT8_WHY
        if len(precisions) == 1:
            return f"{p} requested"
        if p == "fp32":
            if "int8" in model.onnx:
                return "FP32 (after the INT8 option)"
            if int8 in model.refused:
                return f"{int8} refused ({model.refused[int8]}), so FP32"
            return f"no {int8} in the model directory, so FP32"
        return "FP16 on CPU is emulated (slow)"

    def cpu_rank(p: str) -> float:
        # The symmetric file runs float convolutions on ORT CPU: after FP32, not before.
        if p == "int8" and variant[p] == "int8-sym":
            return _ORT_CPU_ORDER.index("fp32") + 0.5
        return _ORT_CPU_ORDER.index(p)

    def add(device: str, order: tuple[str, ...], provider_list: list[str], why: str) -> None:
        rank = cpu_rank if device == "CPU" else order.index
        for p in sorted(wanted, key=rank):
            art = model.onnx[variant[p]]
            reason = why if device == "CUDA" else f"{why}; {cpu_why(p)}"
            out.append(
                Candidate(
                    f"onnxruntime {device} {p} ({art.name})",
                    "onnxruntime",
                    lambda a=art, pl=provider_list: OnnxRuntimeBackend(
                        a.path,
                        providers=list(pl),
                        intra_op_threads=intra_op_threads,
                        precision=a.precision,
                    ),
                    reason,
                )
            )

    if CUDA in providers:
        add("CUDA", _ORT_CUDA_ORDER, [CUDA, CPU], "ONNX Runtime has the CUDA provider")
    else:
        skipped.append("ONNX Runtime CUDA: no CUDAExecutionProvider (install onnxruntime-gpu)")
    if CPU in providers:
        add("CPU", _ORT_CPU_ORDER, [CPU], "ONNX Runtime CPU")
    return out, skipped


def _torch_options(
    model: DeployedModel, precisions: tuple[str, ...]
) -> tuple[list[Candidate], str]:
    if "fp32" not in precisions:
        return [], "PyTorch reference runs FP32 only"
    if model.weights is None:
        return [], f"PyTorch: no weights ({model.directory / 'model.safetensors'} missing)"
    if importlib.util.find_spec("torch") is None:
        return [], "PyTorch is not installed (the edge install has no torch)"
    cand = Candidate(
        "torch fp32 (model.safetensors) on CPU",
        "torch",
        lambda: TorchBackend(model.directory),
        "PyTorch reference (slowest)",
    )
    return [cand], ""


def plan_backends(
    model: DeployedModel,
    requested: str = "auto",
    precision: str | None = None,
    *,
    intra_op_threads: int | None = None,
    ort_providers: list[str] | None = None,
    trt: Any = None,
    cudart: Any = None,
) -> tuple[list[Candidate], list[str]]:
    """Every runnable option for ``requested`` in preference order, and why the others are
    out. ``ort_providers``, ``trt``, ``cudart`` override what is probed (tests)."""
    if requested not in BACKEND_CHOICES:
        raise ValueError(f"backend {requested!r}: expected one of {', '.join(BACKEND_CHOICES)}")
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    precisions = (precision,) if precision else PRECISIONS
    candidates: list[Candidate] = []
    skipped: list[str] = []
    if requested in ("auto", "tensorrt"):
        found, why_not = _tensorrt_options(
            model, precisions, trt, cudart, explicit=requested == "tensorrt"
        )
        candidates += found
        if why_not:
            skipped.append(why_not)
    if requested in ("auto", "onnxruntime"):
        found, why_nots = _onnxruntime_options(model, precisions, ort_providers, intra_op_threads)
        candidates += found
        skipped += why_nots
    if requested in ("auto", "torch"):
        # Last resort for auto (planning it imports no torch; only activation does).
        found, why_not = _torch_options(model, precisions)
        candidates += found
        if why_not:
            skipped.append(why_not)
    return candidates, skipped


def _explain(requested: str, chosen: Candidate, passed_over: list[str]) -> str:
    text = f"{chosen.label}: {chosen.why}"
    if requested != "auto":
        text = f"requested {requested} → {text}"
    if passed_over:
        text += " (passed over: " + "; ".join(passed_over) + ")"
    return text


def _unavailable(requested: str, precision: str | None, reasons: list[str]) -> BackendUnavailable:
    what = requested + (f" {precision}" if precision else "")
    return BackendUnavailable(what, "; ".join(reasons) or "nothing to run")


def select_backend(
    model: DeployedModel,
    requested: str = "auto",
    precision: str | None = None,
    **probe: Any,
) -> tuple[Backend, str]:
    """The preferred backend (not activated) and one line saying which and why.

    Raises BackendUnavailable (``"<requested>: <reasons>"``) when nothing can run.
    ``probe`` is passed to :func:`plan_backends` (threads and test overrides)."""
    candidates, skipped = plan_backends(model, requested, precision, **probe)
    if not candidates:
        raise _unavailable(requested, precision, skipped)
    chosen = candidates[0]
    # Only the options that would have come first are worth explaining.
    passed = [s for s in skipped if not s.startswith("PyTorch")] if requested == "auto" else []
    return chosen.make(), _explain(requested, chosen, passed)


def activate_backend(
    model: DeployedModel,
    requested: str = "auto",
    precision: str | None = None,
    **probe: Any,
) -> tuple[Backend, str]:
    """Like :func:`select_backend`, then activate it; an option that fails to start
    (BackendUnavailable) is skipped for the next one, and the reason says so. The caller
    owns the returned, active backend (``with backend: ...`` or ``deactivate()``)."""
    backend, reason, _ = activate_with_fallbacks(model, requested, precision, **probe)
    return backend, reason


def activate_with_fallbacks(
    model: DeployedModel,
    requested: str = "auto",
    precision: str | None = None,
    **probe: Any,
) -> tuple[Backend, str, list[Candidate]]:
    """:func:`activate_backend`, plus the fallback chain for a monitor: the options to move
    to, in order, if the chosen one starts failing mid-run (not built, not activated).

    The chain is the rest of the requested plan (options after the chosen one), then every
    option of the ``auto`` plan that comes after the chosen one there, at any precision.
    So an explicit ``--backend``/``--precision`` choice is honoured at the start but may
    still fall back beyond what was asked: a monitor on patients should keep classifying
    rather than reject every window, and the switch is loud (an event-log line, the live
    view, the summary). Options that failed to start here are left out; options *before*
    the chosen one in ``auto`` order are too (asking for ONNX Runtime CPU never falls
    "back" to TensorRT)."""
    candidates, skipped = plan_backends(model, requested, precision, **probe)
    passed = [s for s in skipped if not s.startswith("PyTorch")] if requested == "auto" else []
    failed: list[str] = []
    for i, cand in enumerate(candidates):
        backend = cand.make()
        try:
            backend.activate()
        except BackendUnavailable as e:
            failed.append(f"{cand.label} failed to start ({e.reason})")
            continue
        chain = candidates[i + 1 :]
        if requested != "auto" or precision is not None:
            everything, _ = plan_backends(model, "auto", None, **probe)
            labels = [c.label for c in everything]
            if cand.label in labels:
                seen = {c.label for c in chain} | {c.label for c in candidates[: i + 1]}
                after = everything[labels.index(cand.label) + 1 :]
                chain += [c for c in after if c.label not in seen]
        return backend, _explain(requested, cand, passed + failed), chain
    raise _unavailable(requested, precision, skipped + failed)


# =========================================================================== PyTorch reference


class TorchBackend(Backend):
    """The PyTorch model as a Backend: the reference the exported graphs are gated against.

    ``torch`` is imported in ``activate()`` only; without it, activation raises
    BackendUnavailable saying so. Loads ``mrm_edge.checkpoint.load_model_dir`` (weights
    verified against the card's SHA-256) and its raw-mV ``inference_model``.
    """

    name = "torch"

    def __init__(
        self, model_dir: str | Path, device: str = "cpu", threads: int | None = None
    ) -> None:
        super().__init__()
        self.model_dir = Path(model_dir)
        self.device = device
        self.precision = "fp32"
        self.threads = threads
        self._model: Any = None
        self._torch: Any = None

    def _activate(self) -> None:
        try:
            import torch
        except ImportError as e:
            raise BackendUnavailable(
                self.name,
                f"PyTorch is not installed ({first_line(e, with_type=False)}); use "
                "onnxruntime, or install the `train` extra",
            ) from e
        from mrm_edge.checkpoint import inference_model, load_model_dir

        if self.threads is not None:
            torch.set_num_threads(int(self.threads))
        net, card = load_model_dir(self.model_dir, self.device)
        self._model = inference_model(net, card).to(self.device).eval()
        self._torch = torch
        self.input_name, self.output_name = "ecg", "probabilities"
        self.input_dims = (len(card.leads), card.window_samples)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            p = self._model(torch.from_numpy(x).to(self.device))
        return p.detach().cpu().numpy().astype(np.float32, copy=False)

    def _deactivate(self) -> None:
        self._model = None
        self._torch = None
