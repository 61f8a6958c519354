"""What one result message says, whatever its wire format (HL7 v2, FHIR): a classified
record (one stream's classified windows) or an alarm switching on or off, with the model
that said it, the subject and the period, and the message id receivers drop duplicates by.
The formats (``hl7.py``, ``fhir.py``) turn a :class:`ResultReport` into bytes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from mrm_edge.runtime.postprocess import AlarmEvent, WindowResult

# Message ids are UUID 5 in this namespace: the same result composed twice (a record
# classified again after a crash) has the same id, so the receiver can drop the second.
_NAMESPACE = uuid.UUID("6f0f6b5e-4e8a-5f0e-9d7c-3b1f2a9c8e11")


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    sha256: str  # of the ONNX graph the run serves (its sidecar's)
    backend: str  # the backend's describe(): runtime, device, precision


@dataclass(frozen=True)
class LabelResult:
    label: str
    probability: float
    """Raw model output (a record: the highest over its classified windows)."""
    smoothed: float | None
    """After the monitor's smoothing (a record: the highest; None where not smoothed)."""
    threshold: float
    positive: bool
    """Smoothed ≥ threshold (a record: in any of its classified windows)."""
    finding: bool
    """An alarm finding of the model card (NORM is a label, not a finding)."""


@dataclass(frozen=True)
class ResultReport:
    kind: Literal["record", "alarm"]
    message_id: str
    stream_id: str
    segment: int
    subject: str | None
    """The patient id the file or device gave; None: only the stream id identifies it."""
    start: datetime
    end: datetime
    labels: tuple[LabelResult, ...]
    conclusions: tuple[str, ...]
    """The positive findings (record), or the alarm's label (alarm "on")."""
    model: ModelIdentity
    windows: int = 0
    rejected: int = 0
    alarm_state: Literal["on", "off"] | None = None
    notes: tuple[str, ...] = field(default=())


def message_id(model: ModelIdentity, stream_id: str, segment: int, *parts: object) -> str:
    key = "|".join(map(str, (model.sha256, stream_id, segment, *parts)))
    return str(uuid.uuid5(_NAMESPACE, key))


def record_report(
    windows: Sequence[WindowResult],
    thresholds: dict[str, float],
    findings: Sequence[str],
    model: ModelIdentity,
    subject: str | None,
    began: datetime,
) -> ResultReport | None:
    """The report of one stream segment's windows (None when none was classified);
    ``began``: the wall-clock time of the segment's first sample."""
    ok = [w for w in windows if w.ok and w.probabilities]
    if not ok:
        return None
    first, last = windows[0], windows[-1]
    labels = tuple(
        LabelResult(
            label,
            max(w.probabilities[label] for w in ok),  # type: ignore[index]
            max((w.smoothed or {}).get(label, 0.0) for w in ok),
            threshold,
            any(label in w.positive for w in ok),
            label in findings,
        )
        for label, threshold in thresholds.items()
    )
    return ResultReport(
        "record",
        message_id(model, first.stream_id, first.segment, "record", first.start, last.start),
        first.stream_id,
        first.segment,
        subject,
        began + timedelta(seconds=first.start_s),
        began + timedelta(seconds=last.end_s),
        labels,
        tuple(r.label for r in labels if r.positive and r.finding),
        model,
        windows=len(ok),
        rejected=len(windows) - len(ok),
    )


def alarm_report(
    event: AlarmEvent,
    window_s: float,
    model: ModelIdentity,
    subject: str | None,
    began: datetime,
) -> ResultReport:
    """The report of one alarm switching on or off (the window that switched it)."""
    result = LabelResult(
        event.label, event.probability, event.probability, event.threshold,
        event.state == "on", True,
    )  # fmt: skip
    start = began + timedelta(seconds=event.start_s)
    return ResultReport(
        "alarm",
        message_id(model, event.stream_id, event.segment, event.label, event.state, event.start),
        event.stream_id,
        event.segment,
        subject,
        start,
        start + timedelta(seconds=window_s),
        (result,),
        (event.label,) if event.state == "on" else (),
        model,
        alarm_state=event.state,
        notes=(event.cause,) if event.cause else (),
    )


def now() -> datetime:
    return datetime.now(timezone.utc)
