"""Which backend runs the model here, and why.

``select_backend(model, "auto")`` walks the registered backends
(:mod:`mrm_edge.runtime.backends.registry`) in ``auto``'s order and takes the first option
whose preconditions hold, returning the backend (not yet activated) and one line saying which
it is and why the faster ones were passed over. With the built-in backends:

1. **TensorRT** — a CUDA GPU and an engine in the model directory that runs on it: built by
   standard TensorRT for this GPU and the installed TensorRT version, or by TensorRT-RTX for
   targets that include this GPU's compute capability, with that TensorRT-RTX installed
   (and a batch profile that admits batch 1, since a live monitor dispatches whatever is
   waiting). Precision: INT8 > FP16 > FP32.
2. **ONNX Runtime CUDA** — onnxruntime-gpu with ``CUDAExecutionProvider``.
   Precision: FP16 > FP32 > INT8 (the CUDA provider runs Q/DQ graphs dequantized, so INT8
   buys nothing there).
3. **ONNX Runtime CPU** — INT8 > FP32 > FP16. INT8 first because ONNX Runtime fuses the
   uint8 file into QLinear kernels (``mrm-edge bench`` measures the gain on a machine; the
   export's gate bounds its macro-AUC cost); FP16 last because CPUs emulate it.

ONNX Runtime's INT8 file is ``model.int8.onnx`` (uint8 activations, fused into QLinear
kernels). A directory with only ``model.int8-sym.onnx`` (the symmetric file made for
TensorRT) still offers INT8 to ONNX Runtime, but on the CPU after FP32: ORT runs its
convolutions in float, so it is no faster than FP32 and less exact.
4. **OpenVINO CPU** (the ``openvino`` extra) — ``model.int8-sym.onnx``, ``model.int8.onnx``,
   BF16 (a BF16 CPU and a passed gate record), FP32 (``backends/openvino/plan.py``).
5. **PyTorch** (reference) — ``torch`` importable and the weights present; FP32 only.

Steps 3 and 4 are the order when nothing is measured. With the probe on (the default,
``runtime/probe.py``; ``MRM_EDGE_AUTO_PROBE=0`` or ``auto_probe=False`` turns it off), the
CPU options of 3 and 4 are timed here once per machine + model + runtime versions and
ordered by what was measured; an option failing its accuracy check is dropped, and the
reason states the figures.

Each backend's options come from its own ``plan`` (in its module); this module only orders
them, explains the choice and activates. ``precision`` restricts every step to that
precision. An explicit ``requested`` family considers only its own options; if none can run,
:class:`BackendUnavailable` says why. The probes are cheap (imports, provider list, GPU
query, sidecars); the real test is activation, so :func:`activate_backend` activates the
options in order and, when one fails to start (e.g. the CUDA provider's libraries are
missing), moves on and says so. :func:`activate_with_fallbacks` also returns the options
after the chosen one: the chain a monitor falls back along when its backend keeps failing
mid-run (``runtime/engine.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from mrm_edge.runtime.backends.base import Backend, BackendUnavailable
from mrm_edge.runtime.backends.registry import (
    Candidate,
    PlanRequest,
    backend_choices,
    backend_specs,
    backend_target_forms,
    get_remote_spec,
)
from mrm_edge.runtime.model import DeployedModel

from mrm_edge.card import CARD_FILE, ModelCard
from mrm_edge.errors import first_line

__all__ = [
    "BACKEND_CHOICES",
    "Candidate",
    "activate_backend",
    "activate_with_fallbacks",
    "check_outputs",
    "plan_backends",
    "select_backend",
]

#: ``--backend``'s choices with the built-in backends (``backend_choices()`` is the live list).
BACKEND_CHOICES: tuple[str, ...] = backend_choices()
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8", "bf16")
#: The probe keys selection itself reads (the rest go to the backends' plans).
SELECTION_KEYS = ("auto_probe",)


def _plan(
    model: DeployedModel, requested: str, precision: str | None, probe: dict[str, Any]
) -> tuple[list[Candidate], list[str], list[str]]:
    """``(candidates, skipped, worth_explaining)``: every option of ``requested`` in
    preference order, why the others are out, and those reasons ``auto`` should explain."""
    choices = backend_choices()
    family, _, text = requested.partition(":")
    remote = get_remote_spec(family) if text else None
    target = remote.parse_target(text) if remote and remote.parse_target else None
    if remote is None and requested not in choices:
        forms = ", ".join((*choices, *backend_target_forms()))
        raise ValueError(f"backend {requested!r}: expected one of {forms}")
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    # A remote backend (named with its address) plans alone; auto never includes one.
    local = [s for s in backend_specs() if s.parse_target is None]
    specs = [remote] if remote else [s for s in local if requested in ("auto", s.family)]
    known = {k for s in backend_specs() for k in s.probe_keys} | set(SELECTION_KEYS)
    unknown = sorted(set(probe) - known)
    if unknown:
        raise TypeError(f"plan_backends() got unexpected keyword argument(s) {unknown}")
    # BF16 is an explicit choice or auto's when the probe measures it: never a static default.
    precisions = (precision,) if precision else PRECISIONS
    candidates: list[Candidate] = []
    skipped: list[str] = []
    explained: list[str] = []
    for spec in specs:
        request = PlanRequest(model, precisions, requested != "auto", probe, target)
        found, why_nots = spec.plan(request)
        candidates += found
        skipped += why_nots
        if not spec.quiet_when_passed:
            explained += why_nots
    candidates, note = _measured(model, candidates, probe.get("auto_probe"))
    if note:
        explained.append(note)
    return candidates, skipped, explained if requested == "auto" else []


def _measured(
    model: DeployedModel, candidates: list[Candidate], auto_probe: Any
) -> tuple[list[Candidate], str | None]:
    """The candidates ordered by ``runtime/probe.py``'s measurement (when on), and a note when
    it is off. ``auto_probe``: None (``$MRM_EDGE_AUTO_PROBE``), False, True or settings."""
    from mrm_edge.runtime import probe

    if sum(c.measurable for c in candidates) < 2:
        return candidates, None
    if not probe.probe_enabled(auto_probe):
        return candidates, f"CPU options in their static order ({probe.PROBE_ENV}=0: not measured)"
    settings = auto_probe if isinstance(auto_probe, probe.ProbeSettings) else probe.ProbeSettings()
    ordered, _ = probe.order_by_measurement(model, candidates, settings)
    return ordered, None


def plan_backends(
    model: DeployedModel,
    requested: str = "auto",
    precision: str | None = None,
    **probe: Any,
) -> tuple[list[Candidate], list[str]]:
    """Every runnable option for ``requested`` in preference order, and why the others are
    out. ``probe`` overrides what is probed: ``intra_op_threads``, and for tests
    ``ort_providers``, ``trt``, ``cudart`` (each backend's spec names the keys it reads)."""
    candidates, skipped, _ = _plan(model, requested, precision, probe)
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
    candidates, skipped, passed = _plan(model, requested, precision, probe)
    if not candidates:
        raise _unavailable(requested, precision, skipped)
    chosen = candidates[0]
    # Only the options that would have come first are worth explaining.
    return chosen.make(), _explain(requested, chosen, passed)


def check_outputs(
    backend: Backend, card: ModelCard, card_path: Path | str = "the card", artifact: str = ""
) -> None:
    """Run one zero window through the active ``backend``; BackendUnavailable (one line,
    naming ``artifact`` when given, else the backend) unless it gives ``[1, labels]``
    probabilities in [0, 1], as ``card`` needs.

    A graph's declared output shape is checked at load (``DeployedModel``), but it can lie
    (ONNX Runtime only warns when the real shape differs) or be missing, and a PyTorch model
    is built from the card's architecture: what the backend really returns is the proof,
    and it costs one inference at start, before the first real window.
    """
    x = np.zeros((1, len(card.leads), card.window_samples), np.float32)
    try:
        p = np.asarray(backend.infer(x))
    except Exception as e:  # any failure here means it cannot serve the card
        raise BackendUnavailable(
            artifact or backend.name, f"one zero window failed ({first_line(e)})"
        ) from e
    want = (1, len(card.labels))
    if p.shape != want or not np.all((p >= 0.0) & (p <= 1.0)):
        found = f"shape {p.shape}" if p.shape != want else "values outside [0, 1]"
        raise BackendUnavailable(
            artifact or backend.name,
            f"one zero window gives outputs of {found}; {card_path} needs {list(want)} "
            f"({want[1]} probabilities: {', '.join(card.labels)})",
        )


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
    candidates, skipped, passed = _plan(model, requested, precision, probe)
    failed: list[str] = []
    for i, cand in enumerate(candidates):
        backend = cand.make()
        try:
            backend.activate()
            check_outputs(backend, model.card, model.directory / CARD_FILE)
        except BackendUnavailable as e:
            backend.deactivate()  # a no-op when it never started
            failed.append(f"{cand.label} failed to start ({e.reason})")
            continue
        chain = candidates[i + 1 :]
        if requested != "auto" or precision is not None:
            everything, _ = plan_backends(model, "auto", None, **probe)
            labels = [c.label for c in everything]
            seen = {c.label for c in chain} | {c.label for c in candidates[: i + 1]}
            if cand.label in labels:
                after = everything[labels.index(cand.label) + 1 :]
                chain += [c for c in after if c.label not in seen]
            elif ":" in requested:  # a remote server falls back to every local option
                chain += [c for c in everything if c.label not in seen]
        return backend, _explain(requested, cand, passed + failed), chain
    raise _unavailable(requested, precision, failed + skipped)  # what failed here first
