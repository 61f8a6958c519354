"""From per-window probabilities to findings and alarms, per stream: smoothing, the card's
thresholds and alarm labels, alarms with hysteresis (``PostprocessConfig``). The policy and
why each knob is what it is: docs/monitor.md (Findings and alarms).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from mrm_edge.runtime.stream.preprocess import Window


@dataclass(frozen=True)
class PostprocessConfig:
    """Knobs of smoothing and alarm hysteresis (see the module docstring)."""

    smoothing: int = 3
    """k: mean of the last k classified windows (1 = no smoothing)."""
    n_on: int = 2
    """Consecutive classified windows at or above the threshold to switch an alarm on."""
    n_off: int = 3
    """Consecutive classified windows below threshold − off_margin to switch it off."""
    off_margin: float = 0.05
    """Hysteresis band under the threshold (probability units)."""

    def __post_init__(self) -> None:
        for name in ("smoothing", "n_on", "n_off"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"PostprocessConfig: {name} must be an integer >= 1, got {v!r}")
        m = self.off_margin
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m < 1:
            raise ValueError(f"PostprocessConfig: off_margin must be in [0, 1), got {m!r}")

    def describe(self) -> str:
        return (
            f"mean of the last {self.smoothing} classified windows; alarm on after {self.n_on} "
            f"at/above threshold, off after {self.n_off} below threshold − {self.off_margin:g}"
        )


@dataclass(frozen=True)
class AlarmEvent:
    """An alarm switched on or off for one label of one stream."""

    stream_id: str
    label: str
    state: Literal["on", "off"]
    start: int
    """First sample (model rate, from the stream's start) of the window that switched it."""
    sampling_rate: int
    probability: float
    """The smoothed probability at that window (the last one seen, for "stream ended")."""
    threshold: float
    cause: str = ""
    """Empty for a hysteresis transition; "stream ended" when closed at the stream's end."""
    segment: int = 0

    @property
    def start_s(self) -> float:
        return self.start / self.sampling_rate


@dataclass(frozen=True)
class WindowResult:
    """What one window came to: classified (with probabilities) or rejected (with why)."""

    stream_id: str
    start: int
    sampling_rate: int
    window_samples: int
    status: Literal["ok", "rejected"]
    reason: str
    """Empty when ok; why it was rejected otherwise (one line, ``; ``-separated)."""
    latency_ms: float
    """Window complete (``Window.ready_time``) to this result."""
    probabilities: dict[str, float] | None = None
    """Raw model output for this window (None when rejected)."""
    smoothed: dict[str, float] | None = None
    """After smoothing (None when rejected)."""
    positive: tuple[str, ...] = ()
    """Labels with smoothed probability ≥ threshold (empty when rejected)."""
    findings: tuple[str, ...] = ()
    """The positive labels that are alarm findings (empty: "no finding", e.g. only NORM)."""
    alarms: tuple[str, ...] = ()
    """Labels whose alarm is on after this window."""
    reason_kinds: tuple[str, ...] = ()
    """Coarse categories of ``reason`` (see :func:`reason_kinds`), for counting."""
    bad_leads: tuple[str, ...] = ()
    segment: int = 0

    @property
    def start_s(self) -> float:
        return self.start / self.sampling_rate

    @property
    def end_s(self) -> float:
        return (self.start + self.window_samples) / self.sampling_rate

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def reason_kinds(window: Window) -> tuple[str, ...]:
    """Categories of why a window was rejected, for counting: "samples missing",
    "timestamp jump", "non-finite samples", "flat lead", "saturation", "implausible
    amplitude", "implausible slew" (in that order)."""
    kinds: list[str] = []
    for r in window.gap_reasons:
        kind = "timestamp jump" if "jumped back" in r else "samples missing"
        if kind not in kinds:
            kinds.append(kind)
    leads = window.quality.leads
    if any(q.nonfinite for q in leads):
        kinds.append("non-finite samples")
    if any(q.flat_s for q in leads):
        kinds.append("flat lead")
    if any(q.saturated_s for q in leads):
        kinds.append("saturation")
    if any(q.out_of_range for q in leads):
        kinds.append("implausible amplitude")
    if any(q.too_steep for q in leads):
        kinds.append("implausible slew")
    if not kinds and window.reason:
        kinds.append("other")
    return tuple(kinds)


class StreamPostprocessor:
    """Smoothing and alarm state of one stream (one thread at a time)."""

    def __init__(
        self,
        stream_id: str,
        labels: Sequence[str],
        thresholds: np.ndarray,
        config: PostprocessConfig,
        segment: int,
        alarmable: np.ndarray,
    ) -> None:
        self.stream_id = stream_id
        self.labels = tuple(labels)
        self.thresholds = np.asarray(thresholds, np.float64)
        self.alarmable = np.asarray(alarmable, bool)  # which labels may alarm (the card's policy)
        self.off_level = np.maximum(self.thresholds - config.off_margin, 0.0)
        self.config = config
        self.segment = segment
        n = len(self.labels)
        self._history: deque[np.ndarray] = deque(maxlen=config.smoothing)
        self.on = np.zeros(n, bool)
        self._above = np.zeros(n, np.int64)  # consecutive windows ≥ threshold (while off)
        self._below = np.zeros(n, np.int64)  # consecutive windows < off level (while on)
        self.last_smoothed: np.ndarray | None = None

    def update(
        self, probabilities: np.ndarray, start: int, sampling_rate: int
    ) -> tuple[np.ndarray, list[AlarmEvent]]:
        """Take one classified window's probabilities ``[labels]``; return the smoothed
        probabilities and the alarm transitions this window completed."""
        p = np.asarray(probabilities, np.float64)
        self._history.append(p)
        s = np.mean(self._history, axis=0)
        self.last_smoothed = s
        above = s >= self.thresholds
        below = s < self.off_level
        # Counters run only in the state they can change: "above" while off, "below" while on.
        self._above = np.where(~self.on & above, self._above + 1, 0)
        self._below = np.where(self.on & below, self._below + 1, 0)
        switch_on = ~self.on & (self._above >= self.config.n_on) & self.alarmable
        switch_off = self.on & (self._below >= self.config.n_off)
        events: list[AlarmEvent] = []
        for i in np.flatnonzero(switch_on | switch_off):
            state: Literal["on", "off"] = "on" if switch_on[i] else "off"
            events.append(self._event(int(i), state, start, sampling_rate, float(s[i])))
        self.on = (self.on | switch_on) & ~switch_off
        self._above[switch_on] = 0
        self._below[switch_off] = 0
        return s, events

    def close(
        self, start: int, sampling_rate: int, cause: str = "stream ended"
    ) -> list[AlarmEvent]:
        """The stream ended: an "off" event with ``cause`` for every alarm on."""
        last = self.last_smoothed
        events = [
            self._event(
                int(i),
                "off",
                start,
                sampling_rate,
                float(last[i]) if last is not None else float("nan"),
                cause=cause,
            )
            for i in np.flatnonzero(self.on)
        ]
        self.on[:] = False
        return events

    def active(self) -> tuple[str, ...]:
        return tuple(self.labels[i] for i in np.flatnonzero(self.on))

    def _event(
        self,
        i: int,
        state: Literal["on", "off"],
        start: int,
        sampling_rate: int,
        probability: float,
        cause: str = "",
    ) -> AlarmEvent:
        return AlarmEvent(
            stream_id=self.stream_id,
            label=self.labels[i],
            state=state,
            start=start,
            sampling_rate=sampling_rate,
            probability=probability,
            threshold=float(self.thresholds[i]),
            cause=cause,
            segment=self.segment,
        )


class Postprocessor:
    """All streams' post-processing: per-label thresholds and alarm labels (the card's, which
    it checked: a threshold for every label, alarm labels among them), one
    :class:`StreamPostprocessor` per stream created on its first window. Not thread-safe:
    the engine calls it under its emit lock."""

    def __init__(
        self,
        labels: Sequence[str],
        thresholds: Mapping[str, float],
        config: PostprocessConfig | None = None,
        *,
        alarm_labels: Sequence[str],
    ) -> None:
        self.labels = tuple(labels)
        self.alarm_labels = tuple(lab for lab in self.labels if lab in alarm_labels)
        self._alarmable = np.array([lab in self.alarm_labels for lab in self.labels], bool)
        self.config = config or PostprocessConfig()
        self._thresholds = np.array([float(thresholds[lab]) for lab in self.labels])
        # Keyed by (stream, segment): a stream that restarts (same id after its end) starts
        # afresh, even while windows of its previous segment are still in flight.
        self._streams: dict[tuple[str, int], StreamPostprocessor] = {}

    def stream(self, stream_id: str, segment: int = 0) -> StreamPostprocessor:
        """The state of ``stream_id`` (created on first use)."""
        sp = self._streams.get((stream_id, segment))
        if sp is None:
            sp = StreamPostprocessor(
                stream_id, self.labels, self._thresholds, self.config, segment, self._alarmable
            )
            self._streams[(stream_id, segment)] = sp
        return sp

    def classified(
        self, window: Window, probabilities: np.ndarray, latency_ms: float, segment: int = 0
    ) -> tuple[WindowResult, list[AlarmEvent]]:
        sp = self.stream(window.stream_id, segment)
        smoothed, events = sp.update(probabilities, window.start, window.sampling_rate)
        positive = tuple(
            lab for lab, s, t in zip(self.labels, smoothed, self._thresholds, strict=True) if s >= t
        )
        result = WindowResult(
            stream_id=window.stream_id,
            start=window.start,
            sampling_rate=window.sampling_rate,
            window_samples=window.data.shape[0],
            status="ok",
            reason="",
            latency_ms=latency_ms,
            probabilities=dict(zip(self.labels, map(float, probabilities), strict=True)),
            smoothed=dict(zip(self.labels, map(float, smoothed), strict=True)),
            positive=positive,
            findings=tuple(lab for lab in positive if lab in self.alarm_labels),
            alarms=sp.active(),
            segment=segment,
        )
        return result, events

    def rejected(
        self, window: Window, latency_ms: float, segment: int = 0, reason: str | None = None
    ) -> WindowResult:
        """A window that was not classified; ``reason`` overrides the window's own (e.g. a
        backend error). The stream's smoothing and alarm counters are left as they were."""
        sp = self.stream(window.stream_id, segment)
        own = reason is None
        return WindowResult(
            stream_id=window.stream_id,
            start=window.start,
            sampling_rate=window.sampling_rate,
            window_samples=window.data.shape[0],
            status="rejected",
            reason=window.reason if own else str(reason),
            latency_ms=latency_ms,
            alarms=sp.active(),
            reason_kinds=reason_kinds(window) if own else ("backend error",),
            bad_leads=tuple(q.lead for q in window.quality.leads if not q.ok) if own else (),
            segment=segment,
        )

    def end_stream(
        self,
        stream_id: str,
        at_sample: int,
        sampling_rate: int,
        segment: int = 0,
        cause: str = "stream ended",
    ) -> list[AlarmEvent]:
        """Close the stream's open alarms (``cause``) and forget its state."""
        sp = self._streams.pop((stream_id, segment), None)
        return sp.close(at_sample, sampling_rate, cause) if sp is not None else []
