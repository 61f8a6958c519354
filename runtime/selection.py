"""Which backend runs the model here, and why: ``auto``'s plan, the explanation, activation.

Each backend's options come from its own ``plan`` (``backends/registry.py``), read from the
machine's facts (:class:`~mrm_edge.runtime.facts.MachineFacts`, probed once per call or
passed in as ``facts=``); this module orders them (the CPU ones by measurement,
``runtime/cpu_timing.py``), explains the choice and activates. The orders, the fallback and
the CPU timing: docs/monitor.md (Backends, Fallback), docs/cpu-runtimes.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
from mrm_edge.runtime import cpu_timing
from mrm_edge.runtime.backends.base import Backend, BackendUnavailable
from mrm_edge.runtime.backends.registry import (
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

#: ``--backend``'s choices with the built-in backends (``backend_choices()`` is the live list).
BACKEND_CHOICES: tuple[str, ...] = backend_choices()
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8", "bf16")
#: ``auto_probe``: the CPU timing's switch and bounds: None (``$MRM_EDGE_AUTO_PROBE``), False,
#: True, or :class:`~mrm_edge.runtime.cpu_timing.TimingSettings`.
AutoProbe = Union[bool, "cpu_timing.TimingSettings", None]


@dataclass(frozen=True)
class Plan:
    """One ordered list of options: the ``asked`` first are what was requested; the rest is
    the fallback tail a monitor moves along after them (see :func:`activate_backend`)."""

    options: list[Candidate]
    asked: int
    skipped: list[str]
    """Why the requested family offers nothing more (one line each)."""
    explained: list[str]
    """The reasons ``auto`` states for passing over faster options."""
    auto_rank: dict[str, int] = field(default_factory=dict)
    """For a tail: each option's place in ``auto``'s plan, by label (an option's label names
    it: family, device, precision, file)."""

    def chain(self, i: int) -> list[Candidate]:
        """The options to fall back along from option ``i`` (an asked one): the plan after
        it, less the tail options ``auto`` ranks before it (a request never falls "back" to
        what auto ranks above it; a remote server, not in auto's plan, reaches them all)."""
        after = self.auto_rank.get(self.options[i].label, -1)
        tail = [c for c in self.options[self.asked :] if self.auto_rank[c.label] > after]
        return self.options[i + 1 : self.asked] + tail


def _plan(
    model: DeployedModel,
    requested: str = "auto",
    precision: str | None = None,
    *,
    facts: MachineFacts | None = None,
    auto_probe: AutoProbe = None,
    with_tail: bool = False,
) -> Plan:
    """The plan for ``requested`` at ``precision`` (:func:`plan_backends`' arguments): the
    options, why the others are out, the reasons ``auto`` explains; ``with_tail``: then the
    fallback tail."""
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
    # A remote backend (named with its address) plans alone; auto never includes one.
    local = [s for s in backend_specs() if s.parse_target is None]
    specs = [remote] if remote else [s for s in local if requested in ("auto", s.family)]
    # BF16 is an explicit choice or auto's when the probe measures it: never a static default.
    precisions = (precision,) if precision else PRECISIONS
    candidates: list[Candidate] = []
    skipped: list[str] = []
    explained: list[str] = []
    for spec in specs:
        request = PlanRequest(model, precisions, requested != "auto", facts, target=target)
        found, why_nots = spec.plan(request)
        candidates += found
        skipped += why_nots
        if not spec.quiet_when_passed:
            explained += why_nots
    candidates, note = _measured(model, candidates, auto_probe)
    if note:
        explained.append(note)
    explained = explained if requested == "auto" else []
    if not with_tail or (requested == "auto" and precision is None):
        return Plan(candidates, len(candidates), skipped, explained)  # its own tail
    # The tail: auto's options (any precision) that are not asked for, in auto's order. The
    # asked ones are planned for the request (their reasons say what was requested), so
    # auto's list is matched to them by label.
    everything = _plan(model, facts=facts, auto_probe=auto_probe).options
    asked = {c.label for c in candidates}
    tail = [c for c in everything if c.label not in asked]
    rank = {c.label: n for n, c in enumerate(everything)}
    return Plan(candidates + tail, len(candidates), skipped, explained, rank)


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
    return plan.options, plan.skipped


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
    if not plan.options:
        raise _unavailable(requested, precision, plan.skipped)
    chosen = plan.options[0]
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

    The chain is the plan's list after the chosen option (:class:`Plan`): the rest of the
    requested options, then (for an explicit ``--backend``/``--precision`` choice or a
    remote server) every other option of ``auto``'s plan, at any precision, that auto ranks
    after the chosen one. So an explicit choice is honoured at the start but may still
    fall back beyond what was asked: a monitor on patients should keep classifying rather
    than reject every window, and the switch is loud (an event-log line, the live view, the
    summary). Options that failed to start here are left out; options auto ranks *before*
    the chosen one are too (asking for ONNX Runtime CPU never falls "back" to TensorRT)."""
    plan = _plan(model, requested, precision, facts=facts, auto_probe=auto_probe, with_tail=True)
    failed: list[str] = []
    for i, cand in enumerate(plan.options[: plan.asked]):
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
