"""The backends backend selection knows: one registration per backend, and everything that
lists backends (``--backend``'s choices, ``auto``'s plan, the bench's CPU rows) reads it.

A registration (:class:`BackendSpec`) says:

- ``name`` and ``family``: the family is what ``--backend`` names (``tensorrt``,
  ``onnxruntime``, ``torch``); a family may hold several backends;
- ``rank``: where the family's options come in ``auto``'s plan (lower first: the fastest
  kind of option first, the reference last);
- ``plan``: the runnable options for a model at every precision (:class:`Candidate`, each
  with its factory ``make``) in the backend's own preference order, and one line per reason
  it offers none (at the asked precision, when one is asked);
- ``cpu_factory`` (optional): the backend for a model directory's ONNX variant on the CPU
  (what the bench times);
- ``quiet_when_passed``: its reasons are not worth explaining when ``auto`` chose a faster
  option (the reference backend, the last resort);
- ``parse_target`` (optional): a *remote* backend, named with an address
  (``--backend triton:HOST:PORT``): it parses and checks the text after ``family:``
  (ValueError, one line). A remote backend is never in ``auto``'s plan (it needs an address)
  and is not a plain choice; its form is listed by :func:`backend_target_forms`.

Adding a backend: one module with its spec, one ``register_backend(SPEC)`` in ``__init__``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mrm_edge.runtime.backends.base import Backend

if TYPE_CHECKING:
    from mrm_edge.runtime.facts import MachineFacts
    from mrm_edge.runtime.model import DeployedModel


#: The probe's accuracy gate (max |Δp| vs FP32 on its windows): FP32 files must agree with the
#: reference; a reduced precision may move as much as its export gate measured on held-out
#: windows (sidecar), times a headroom for another runtime's rounding; with no figure recorded,
#: the default bound of that precision.
FP32_GATE = 1e-4
GATE_HEADROOM = 1.5
DEFAULT_GATES = {"fp16": 1e-2, "bf16": 2e-2, "int8": 1e-1}


#: The sidecars' name for max |Δp| vs FP32 (the export writes only it), then the names older
#: sidecars used for it (FP16 accuracy and FP32 parity: ``max_abs_diff``; the BF16 gate
#: record: ``max_abs_dp``), still read.
MAX_ABS_PROB_DELTA = ("max_abs_prob_delta", "max_abs_diff", "max_abs_dp")


def sidecar_gate(sidecar: Mapping[str, Any], precision: str) -> float:
    """The max |Δp| vs FP32 the probe accepts for an artifact of ``precision`` (see above)."""
    if precision == "fp32":
        return FP32_GATE
    acc = sidecar.get("accuracy")
    if isinstance(acc, Mapping):
        for key in MAX_ABS_PROB_DELTA:
            if isinstance(acc.get(key), (int, float)):
                return GATE_HEADROOM * float(acc[key])
    return DEFAULT_GATES.get(precision, FP32_GATE)


#: The precisions a request may name (``--precision``).
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8", "bf16")


@dataclass
class Candidate:
    """One runnable option: what it is, how to build it, and why it is this far up."""

    label: str
    """E.g. ``"onnxruntime CPU int8 (model.int8.onnx)"``."""
    family: str
    """The ``--backend`` family: ``"tensorrt"``, ``"onnxruntime"``, ``"torch"``, ..."""
    make: Callable[[], Backend]
    why: str
    measurable: bool = False
    """A CPU option ``auto``'s probe may time (``runtime/cpu_timing.py``); GPU options and the
    PyTorch reference are not measured (they keep their place)."""
    precision: str | None = None
    """What it runs at: ``--precision`` selects the requested options by it."""
    gate: float | None = None
    """The largest max |Δp| vs FP32 the probe accepts for this option (None: not gated)."""


@dataclass(frozen=True)
class PlanRequest:
    """What a backend's ``plan`` is asked: its options for a model on a machine, at every
    precision (:data:`PRECISIONS`), and the request they answer, which its reasons and the
    asked options' ``why`` are worded for."""

    model: DeployedModel
    facts: MachineFacts
    precision: str | None = None
    """The precision asked of this family (None: any)."""
    explicit: bool = False
    """Whether its family was named (``--backend``) rather than reached by ``auto``."""
    target: Any = None
    """A remote backend's parsed address (``parse_target``'s result); None otherwise."""


@dataclass(frozen=True)
class BackendSpec:
    """One backend's registration (see the module docstring)."""

    name: str
    family: str
    rank: int
    plan: Callable[[PlanRequest], tuple[list[Candidate], list[str]]]
    cpu_factory: Callable[[Path, str], Backend] | None = None
    quiet_when_passed: bool = False
    parse_target: Callable[[str], Any] | None = None
    target_metavar: str = "ADDRESS"


_SPECS: dict[str, BackendSpec] = {}


def register_backend(spec: BackendSpec) -> BackendSpec:
    """Add ``spec`` (ValueError if its name is taken, or ``auto`` is its family)."""
    if spec.name in _SPECS:
        raise ValueError(f"backend {spec.name!r} is already registered")
    if spec.family == "auto":
        raise ValueError("'auto' is not a backend family: it is the plan over all of them")
    _SPECS[spec.name] = spec
    return spec


def backend_specs() -> list[BackendSpec]:
    """Every registered backend in ``auto``'s order (rank, then registration)."""
    return sorted(_SPECS.values(), key=lambda s: s.rank)


def get_remote_spec(family: str) -> BackendSpec | None:
    """The remote backend of ``family`` (``triton``), None when there is none."""
    return next(
        (s for s in backend_specs() if s.family == family and s.parse_target is not None), None
    )


def backend_target_forms() -> tuple[str, ...]:
    """The remote backends' ``--backend`` forms, e.g. ``("triton:HOST:PORT[/MODEL]",)``."""
    return tuple(
        f"{s.family}:{s.target_metavar}" for s in backend_specs() if s.parse_target is not None
    )


def backend_choices() -> tuple[str, ...]:
    """What ``--backend`` accepts: ``auto`` and every family, in ``auto``'s order (remote
    backends not included)."""
    local = (s.family for s in backend_specs() if s.parse_target is None)
    return ("auto", *dict.fromkeys(local))


def cpu_backend_names() -> tuple[str, ...]:
    """The backends that run a model directory's ONNX variants on the CPU (the bench)."""
    return tuple(
        s.name for s in backend_specs() if s.cpu_factory is not None and s.parse_target is None
    )


def make_cpu_backend(name: str, model_dir: Path, variant: str) -> Backend:
    """Backend ``name`` (not activated) for ``variant`` of ``model_dir`` on the CPU; KeyError
    when no such CPU backend is registered, ValueError when it cannot run that variant."""
    spec = _SPECS.get(name)
    if spec is None or spec.cpu_factory is None:
        raise KeyError(name)
    return spec.cpu_factory(Path(model_dir), variant)
