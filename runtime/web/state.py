"""What the central station shows, kept up to date by the web sink and read by the server.

One ``Bed`` per stream: the last ``STRIP_SECONDS`` of decimated 12-lead signal (a ring), the
latest findings (smoothed probability per label against the card's threshold), the alarm
state, the signal-quality state (lead off / NaN / flat / saturated / gap / stalled, with the
leads named) and the stream state (live, ended and why, failed). Alarms have a history
(onset with finding, bed and time; cleared; acknowledged).

Written by the web sink's thread, read by the server's event loop: every method takes the
one lock, holds it briefly and returns plain data (numbers, strings, lists), so JSON
encoding happens outside it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from mrm_edge.runtime.stream.buffer import RingBuffer
from mrm_edge.runtime.web.decimate import DISPLAY_HZ, DisplayDecimator

from mrm_edge.data.dataset import LEADS

if TYPE_CHECKING:
    from mrm_edge.runtime.postprocess import AlarmEvent, WindowResult
    from mrm_edge.runtime.sinks.base import BackendSwitch, RunInfo, StreamEvent
    from mrm_edge.runtime.sources.base import Chunk


STRIP_SECONDS = 30
"""Decimated signal kept per bed (144 KB): the 10 s window of the 12-lead view, plus the
time its result takes to arrive (latency under load, replay speed-ups)."""
ALARM_HISTORY = 500


def quality_text(result: WindowResult) -> tuple[str, str]:
    """(state, text) of a window's signal quality: ("ok", "signal ok") or e.g.
    ("lead-off", "lead off: V6 (flat)"), ("nan", "NaN: V2"), ("gap", "gap: ...")."""
    if result.ok:
        return "ok", "signal ok"
    kinds = result.reason_kinds
    leads = ", ".join(result.bad_leads)
    if "flat lead" in kinds:
        return "lead-off", f"lead off / flat: {leads}"
    if "non-finite samples" in kinds:
        return "nan", f"NaN samples: {leads}"
    if "saturation" in kinds:
        return "saturated", f"saturated: {leads}"
    if "samples missing" in kinds or "timestamp jump" in kinds:
        return "gap", f"gap: {result.reason}"
    if "backend error" in kinds:
        return "error", f"not classified: {result.reason}"
    return "rejected", result.reason


@dataclass
class Bed:
    """One stream's display state (guarded by the StationState lock)."""

    bed: str
    decimator: DisplayDecimator | None = None
    ring: RingBuffer = field(default_factory=lambda: _strip_ring())
    """The decimated samples, by absolute index since the stream started."""
    smoothed: dict[str, float] = field(default_factory=dict)
    probabilities: dict[str, float] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    quality: str = "waiting"
    quality_detail: str = "waiting for the first window"
    state: str = "live"
    state_detail: str = ""
    window_end: int = 0
    """Decimated index at which the last classified window ended (for the 12-lead view):
    its end in seconds since the stream's start x DISPLAY_HZ (both clocks count samples
    received, so they agree while the stream has no gap)."""
    windows: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "bed": self.bed,
            "smoothed": {k: round(v, 3) for k, v in self.smoothed.items()},
            "findings": list(self.findings),
            "alarms": list(self.alarms),
            "quality": self.quality,
            "quality_detail": self.quality_detail,
            "state": self.state,
            "state_detail": self.state_detail,
            "windows": self.windows,
        }


class StationState:
    """All beds, the alarm history and the run's header (see the module docstring)."""

    def __init__(self, clock: Any = time.time) -> None:
        self.clock = clock
        self.info: RunInfo | None = None
        self.backend = ""
        self.backend_reason = ""
        self.system_notice = ""  # the latest system notice (sinks' RunInfo.notify)
        self.beds: dict[str, Bed] = {}
        self.alarms: deque[dict[str, Any]] = deque(maxlen=ALARM_HISTORY)
        self.alarm_version = 0
        self._next_alarm = 1
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ writers (sink)

    def open(self, info: RunInfo) -> None:
        with self._lock:
            self.info = info
            self.backend, self.backend_reason = info.backend, info.backend_reason

    def backend_switch(self, event: BackendSwitch) -> None:
        with self._lock:
            self.backend = event.to_backend
            self.backend_reason = f"switched: {event.reason}"

    def notice(self, text: str) -> None:
        with self._lock:
            self.system_notice = text

    def _bed(self, sid: str) -> Bed:
        bed = self.beds.get(sid)
        if bed is None:
            bed = self.beds[sid] = Bed(sid)
        return bed

    def waveform(self, chunk: Chunk) -> None:
        """A raw chunk ``[n, 12]`` mV: decimated into the bed's ring."""
        with self._lock:
            bed = self._bed(chunk.stream_id)
            if bed.decimator is None or bed.decimator.fs_in != chunk.sample_rate:
                bed.decimator = DisplayDecimator(chunk.sample_rate)
        with np.errstate(all="ignore"):  # NaN/Inf/1e38 samples are data: drawn as gaps
            out = bed.decimator.push(chunk.samples)  # the sink's thread only: no lock needed here
        if not len(out):
            return
        with self._lock:
            bed.ring.append(out)

    def window(self, result: WindowResult) -> None:
        with self._lock:
            bed = self._bed(result.stream_id)
            bed.alarms = list(result.alarms)
            bed.quality, bed.quality_detail = quality_text(result)
            if result.ok and result.smoothed is not None:
                bed.smoothed = dict(result.smoothed)
                bed.probabilities = dict(result.probabilities or {})
                bed.findings = list(result.findings)
                bed.windows += 1
                bed.window_end = round(result.end_s * DISPLAY_HZ)

    def alarm(self, event: AlarmEvent) -> None:
        with self._lock:
            bed = self._bed(event.stream_id)
            on = set(bed.alarms)
            if event.state == "on":
                on.add(event.label)
                self.alarms.append(
                    {
                        "id": self._next_alarm,
                        "bed": event.stream_id,
                        "label": event.label,
                        "probability": round(event.probability, 3),
                        "threshold": round(event.threshold, 3),
                        "onset": self.clock(),
                        "onset_s": round(event.start_s, 1),
                        "active": True,
                        "cleared": None,
                        "acked": None,
                    }
                )
                self._next_alarm += 1
            else:
                on.discard(event.label)
                for a in reversed(self.alarms):
                    if a["bed"] == event.stream_id and a["label"] == event.label and a["active"]:
                        a["active"], a["cleared"] = False, self.clock()
                        a["cause"] = event.cause
                        break
            bed.alarms = sorted(on)
            self.alarm_version += 1

    def stream(self, event: StreamEvent) -> None:
        with self._lock:
            bed = self._bed(event.stream_id)
            if event.kind == "start":
                bed.state, bed.state_detail = "live", event.detail
                if event.segment:  # a resumed stream: its clock restarts
                    bed.decimator, bed.ring, bed.window_end = None, _strip_ring(), 0
            elif event.kind == "end":
                bed.state, bed.state_detail = "ended", event.detail
                if event.detail.startswith("stalled"):
                    bed.quality, bed.quality_detail = "stalled", event.detail
            elif event.kind == "error":
                bed.state, bed.state_detail = "failed", event.detail

    def acknowledge(self, alarm_id: int) -> bool:
        """Acknowledge alarm ``alarm_id``; False when there is no such alarm."""
        with self._lock:
            for a in self.alarms:
                if a["id"] == alarm_id:
                    if a["acked"] is None:
                        a["acked"] = self.clock()
                        self.alarm_version += 1
                    return True
        return False

    # ------------------------------------------------------------------ readers (server)

    def cursors(self) -> dict[str, int]:
        """Each bed's decimated sample count now."""
        with self._lock:
            return {sid: b.ring.sample_count for sid, b in self.beds.items()}

    def strips(
        self, since: dict[str, int], until: dict[str, int], lead: int
    ) -> dict[str, dict[str, Any]]:
        """Per bed, lead ``lead``'s samples from ``since`` to ``until`` (absolute decimated
        indices; what fell out of the ring is skipped), rounded to µV."""
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            for sid, end in until.items():
                bed = self.beds.get(sid)
                if bed is None:
                    continue
                start = max(since.get(sid, 0), bed.ring.oldest)
                end = min(end, bed.ring.sample_count)
                if end <= start:
                    continue
                seg = bed.ring.view(start, end - start)[:, lead]
                out[sid] = {"i0": start, "v": _rounded(seg)}
        return out

    def beds_summary(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {sid: b.summary() for sid, b in self.beds.items()}

    def alarm_list(self) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            return self.alarm_version, [dict(a) for a in self.alarms]

    def header(self) -> dict[str, Any]:
        with self._lock:
            info, backend, reason = self.info, self.backend, self.backend_reason
            notice = self.system_notice
        if info is None:
            return {}
        head: dict[str, Any] = {
            "notice": notice,
            "model": info.model,
            "backend": backend,
            "backend_reason": reason,
            "labels": list(info.labels),
            "thresholds": {k: round(float(v), 3) for k, v in info.thresholds.items()},
            "alarm_labels": list(info.knobs.get("alarm_labels") or []),
            "source": info.source,
            "fs": DISPLAY_HZ,
            "leads": list(LEADS),
        }
        if info.stats is not None:
            s = info.stats()
            head.update(
                windows_per_s=round(s.windows_per_s, 2),
                p50_ms=None if s.latency_p50_ms is None else round(s.latency_p50_ms, 1),
                p99_ms=None if s.latency_p99_ms is None else round(s.latency_p99_ms, 1),
                queue=s.queue_depth,
                dropped=s.dropped,
                classified=s.classified,
                rejected=s.rejected,
                streams=s.streams,
                streams_live=s.streams_live,
                elapsed_s=round(s.elapsed_s, 1),
            )
        return head

    def twelve_lead(self, sid: str, seconds: float = 10.0) -> dict[str, Any] | None:
        """The last classified window's 10 s of all 12 leads (decimated), with that window's
        probabilities; None for an unknown bed."""
        with self._lock:
            bed = self.beds.get(sid)
            if bed is None:
                return None
            n = int(seconds * DISPLAY_HZ)
            count = bed.ring.sample_count
            end = min(bed.window_end, count) if bed.windows else count
            start = max(bed.ring.oldest, end - n)
            seg = bed.ring.view(start, max(0, end - start))
            return {
                "bed": sid,
                "fs": DISPLAY_HZ,
                "leads": list(LEADS),
                "signal": [_rounded(seg[:, i]) for i in range(seg.shape[1])],
                "probabilities": {k: round(v, 3) for k, v in bed.probabilities.items()},
                "smoothed": {k: round(v, 3) for k, v in bed.smoothed.items()},
                "findings": list(bed.findings),
            }


def _strip_ring() -> RingBuffer:
    return RingBuffer(STRIP_SECONDS * DISPLAY_HZ, len(LEADS))


def _rounded(x: np.ndarray) -> list[float | None]:
    """mV to 3 decimals (1 µV: far below what a strip shows), NaN → None (JSON null)."""
    r = np.round(x.astype(np.float64), 3)
    return [None if v != v else float(v) for v in r.tolist()]
