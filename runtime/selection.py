"""Which backend runs the model here, and why: ``auto``'s plan, the explanation, activation.

Each backend's options come from its own ``plan`` (``backends/registry.py``), read from the
machine's facts (:class:`~mrm_edge.runtime.facts.MachineFacts`, probed once per call or
passed in as ``facts=``); this module orders them (the CPU ones by measurement,
``runtime/cpu_timing.py``), explains the choice and activates. The orders, the fallback and
the CPU timing: docs/monitor.md (Backends, Fallback), docs/cpu-runtimes.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from mrm_edge.runtime import cpu_timing
from mrm_edge.runtime.backends.base import Backend, BackendUnavailable
from mrm_edge.runtime.backends.registry import (
    PRECISIONS,
    Candidate,
    PlanRequest,
    backend_choices,
    backend_specs,
    backend_target_forms,
    get_remote_spec,
)
from mrm_edge.runtime.facts import MachineFacts, probe_machine
from mrm_edge.runtime.model import DeployedModel

from mrm_edge.card import CARD_FILE, ModelCard
from mrm_edge.errors import first_line

#: ``auto_probe``: the CPU timing's switch and bounds: None (``$MRM_EDGE_AUTO_PROBE``), False,
#: True, or :class:`~mrm_edge.runtime.cpu_timing.TimingSettings`.
AutoProbe = Union[bool, "cpu_timing.TimingSettings", None]


@dataclass(frozen=True)
class Plan:
    """``auto``'s one ordered list of options (a remote server's option first), the places
    in it of the ``asked`` ones (what was requested), and the reasons."""

    options: list[Candidate]
    asked: list[int]
    skipped: list[str]
    """Why the requested families offer nothing more (one line each)."""
    explained: list[str]
    """The reasons ``auto`` states for passing over faster options."""

    def requested(self) -> list[Candidate]:
        return [self.options[i] for i in self.asked]

    def chain(self, k: int) -> list[Candidate]:
        """The options to fall back along from the ``k``-th asked option: the asked ones after
        it, then the others that the list ranks after it (a request never falls "back" to
        what auto ranks above it; a remote server, first in the list, reaches them all)."""
        at = self.asked[k]
        others = [c for i, c in enumerate(self.options) if i > at and i not in self.asked]
        return self.requested()[k + 1 :] + others


def _plan(
    model: DeployedModel,
    requested: str = "auto",
    precision: str | None = None,
    *,
    facts: MachineFacts | None = None,
    auto_probe: AutoProbe = None,
) -> Plan:
    """The plan for ``requested`` at ``precision`` (:func:`plan_backends`' arguments): every
    local backend planned once at every precision, the CPU options measured once; the asked
    options are those of the requested family (any, for ``auto``) and precision."""
    choices = backend_choices()
    family, _, text = requested.partition(":")
    remote = get_remote_spec(family) if text else None
    target = remote.parse_target(text) if remote and remote.parse_target else None
    if remote is None and requested not in choices:
        forms = ", ".join((*choices, *backend_target_forms()))
        raise ValueError(f"backend {requested!r}: expected one of {forms}")
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    facts = facts or probe_machine()
    options: list[Candidate] = []
    skipped: list[str] = []
    explained: list[str] = []
    if remote is not None:
        # Named with its address, a remote backend plans alone; auto never includes one.
        request = PlanRequest(model, facts, precision, explicit=True, target=target)
        options, skipped = remote.plan(request)
    for spec in backend_specs():
        if spec.parse_target is not None:
            continue
        # A family not asked for plans as auto's (its reasons and wording unasked).
        asked = remote is None and requested in ("auto", spec.family)
        request = PlanRequest(
            model, facts, precision if asked else None, explicit=requested == spec.family
        )
        found, why_nots = spec.plan(request)
        options += found
        if asked:
            skipped += why_nots
            explained += [] if spec.quiet_when_passed else why_nots
    options, note = _measured(model, options, auto_probe)
    if note:
        explained.append(note)
    asked_at = [
        i
        for i, c in enumerate(options)
        if (requested == "auto" or c.family == family) and precision in (None, c.precision)
    ]
    return Plan(options, asked_at, skipped, explained if requested == "auto" else [])


def plan_backends(
    model: DeployedModel,
    requested: str = "auto",
    precision: str | None = None,
    *,
    facts: MachineFacts | None = None,
    auto_probe: AutoProbe = None,
) -> tuple[list[Candidate], list[str]]:
    """Every runnable option for ``requested`` in preference order, and why the others are
    out. ``facts``: the machine (None: :func:`probe_machine` now); ``auto_probe``: the CPU
    timing (:data:`AutoProbe`)."""
    plan = _plan(model, requested, precision, facts=facts, auto_probe=auto_probe)
    return plan.requested(), plan.skipped


def _measured(
    model: DeployedModel, candidates: list[Candidate], auto_probe: AutoProbe
) -> tuple[list[Candidate], str | None]:
    """The candidates ordered by the CPU timing (``runtime/cpu_timing.py``) when it is on,
    and a note when it is off."""
    if sum(c.measurable for c in candidates) < 2:
        return candidates, None
    if not cpu_timing.timing_enabled(auto_probe):
        return candidates, (
            f"CPU options in their static order ({cpu_timing.TIMING_ENV}=0: not measured)"
        )
    settings = (
        auto_probe
        if isinstance(auto_probe, cpu_timing.TimingSettings)
        else cpu_timing.TimingSettings()
    )
    ordered, _ = cpu_timing.order_by_measurement(model, candidates, settings)
    return ordered, None


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
    *,
    facts: MachineFacts | None = None,
    auto_probe: AutoProbe = None,
) -> tuple[Backend, str]:
    """The preferred backend (not activated) and one line saying which and why.

    Raises BackendUnavailable (``"<requested>: <reasons>"``) when nothing can run. The
    arguments are :func:`plan_backends`'s."""
    plan = _plan(model, requested, precision, facts=facts, auto_probe=auto_probe)
    if not plan.asked:
        raise _unavailable(requested, precision, plan.skipped)
    chosen = plan.options[plan.asked[0]]
    # Only the options that would have come first are worth explaining.
    return chosen.make(), _explain(requested, chosen, plan.explained)


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
    *,
    facts: MachineFacts | None = None,
    auto_probe: AutoProbe = None,
) -> tuple[Backend, str, list[Candidate]]:
    """Like :func:`select_backend`, then activate it (an option that fails to start or
    fails :func:`check_outputs` is skipped for the next one, and the reason says so), and
    the fallback chain for a monitor: the options to move to, in order, if the chosen one
    starts failing mid-run (not built, not activated). The caller owns the returned, active
    backend (``with backend: ...`` or ``deactivate()``).

    The chain comes from the one plan (:class:`Plan`): ``auto``'s ordered list, in which the
    requested options are picked out. It is the requested options after the chosen one, then
    (for an explicit ``--backend``/``--precision`` choice or a remote server) every other
    option of that list, at any precision, that comes after the chosen one. So an explicit
    choice is honoured at the start but may still fall back beyond what was asked: a
    monitor on patients should keep classifying rather than reject every window, and the
    switch is loud (an event-log line, the live view, the summary). Options that failed to
    start here are left out; options auto ranks *before* the chosen one are too (asking
    for ONNX Runtime CPU never falls "back" to TensorRT)."""
    plan = _plan(model, requested, precision, facts=facts, auto_probe=auto_probe)
    failed: list[str] = []
    for i, cand in enumerate(plan.requested()):
        backend = cand.make()
        try:
            backend.activate()
            check_outputs(backend, model.card, model.directory / CARD_FILE)
        except BackendUnavailable as e:
            backend.deactivate()  # a no-op when it never started
            failed.append(f"{cand.label} failed to start ({e.reason})")
            continue
        return backend, _explain(requested, cand, plan.explained + failed), plan.chain(i)
    raise _unavailable(requested, precision, failed + plan.skipped)  # what failed here first
