"""The event log: one JSON object per line, written and flushed line by line.

Line types (``"type"``), in the order they can appear::

    start    once: model, labels, thresholds, rate, window/hop (s), backend and why, knobs
    stream   a stream started / ended (the source's reason) / failed (the error)
    window   one per window that reached a result, classified or rejected:
               stream, segment, start (first sample at the model's rate since the stream's
               start), start_s, end_s (window end, s since the stream's start),
               status "ok" | "rejected", reason + reason_kinds + bad_leads (rejected only),
               probabilities {label: p} (raw model output; null when rejected),
               smoothed {label: p} (null when rejected), positive [labels] and
               positive_basis "smoothed" (positive = smoothed p ≥ the card's threshold),
               findings [the positive labels that are alarm labels; [] = "no finding"],
               alarms [labels on after this window], latency_ms (window complete → result),
               time (Unix seconds when written)
    alarm    an alarm went on/off: stream, segment, label, state, start, start_s,
               probability (smoothed), threshold, cause ("" or "stream ended")
    dropped  a complete window never classified: stream, segment, start, start_s, end_s,
               cause ("overload (drop-oldest)", "overload (drop-newest)",
               "stopped before inference")
    backend  the run moved to a fallback backend: from, to, reason (the error that made it),
               skipped [fallbacks that failed to start, with why], windows (the batch
               re-run on the new backend), elapsed_s
    summary  once, last: the run's Summary (counts, latency percentiles, throughput, ...)

Each line is flushed to the OS as soon as it is written, so killing the process loses
nothing already written (a power cut can still lose what the OS had not yet synced; that
would take an fsync per line). Non-finite numbers are written as null: the file stays
strict JSON.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mrm_edge.runtime.sinks.base import BackendSwitch, DroppedWindow, RunInfo, Sink, StreamEvent

if TYPE_CHECKING:
    from mrm_edge.runtime.postprocess import AlarmEvent, WindowResult
    from mrm_edge.runtime.sinks.summary import Summary
    from mrm_edge.runtime.sources.base import SourceProblem

__all__ = ["JsonlSink"]

_DIGITS = 6  # probabilities to 1e-6: far below any threshold's meaning, and short lines


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats → None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _probs(p: dict[str, float] | None) -> dict[str, float] | None:
    return None if p is None else {k: round(float(v), _DIGITS) for k, v in p.items()}


class JsonlSink(Sink):
    """Write the event log to ``target``: a path (created or truncated now, so a bad path
    fails before the run starts; closed by ``close``) or an open text stream (flushed, left
    open)."""

    def __init__(self, target: str | Path | IO[str]) -> None:
        if isinstance(target, (str, Path)):
            path = Path(target)
            try:
                self._file: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115
            except OSError as e:
                raise ValueError(f"{path}: cannot write the event log ({e.strerror})") from e
            self._owned = True
            self.path: Path | None = path
        else:
            self._file = target
            self._owned = False
            self.path = None
        self._closed = False
        self.lines_written = 0

    def _write(self, doc: dict[str, Any]) -> None:
        if self._closed:
            return
        self._file.write(json.dumps(_clean(doc), allow_nan=False, separators=(",", ":")) + "\n")
        self._file.flush()
        self.lines_written += 1

    def open(self, info: RunInfo) -> None:
        self._write(
            {
                "type": "start",
                "model": info.model,
                "labels": list(info.labels),
                "thresholds": dict(info.thresholds),
                "sampling_rate": info.sampling_rate,
                "window_s": info.window_s,
                "hop_s": info.hop_s,
                "backend": info.backend,
                "backend_reason": info.backend_reason,
                "source": info.source,
                "knobs": dict(info.knobs),
                "time": round(time.time(), 3),
            }
        )

    def window(self, result: WindowResult) -> None:
        doc: dict[str, Any] = {
            "type": "window",
            "stream": result.stream_id,
            "segment": result.segment,
            "start": result.start,
            "start_s": result.start_s,
            "end_s": result.end_s,
            "status": result.status,
        }
        if not result.ok:
            doc["reason"] = result.reason
            doc["reason_kinds"] = list(result.reason_kinds)
            doc["bad_leads"] = list(result.bad_leads)
        doc.update(
            probabilities=_probs(result.probabilities),
            smoothed=_probs(result.smoothed),
            positive=list(result.positive),
            positive_basis="smoothed",
            findings=list(result.findings),
            alarms=list(result.alarms),
            latency_ms=round(result.latency_ms, 3),
            time=round(time.time(), 3),
        )
        self._write(doc)

    def alarm(self, event: AlarmEvent) -> None:
        self._write(
            {
                "type": "alarm",
                "stream": event.stream_id,
                "segment": event.segment,
                "label": event.label,
                "state": event.state,
                "start": event.start,
                "start_s": event.start_s,
                "probability": round(event.probability, _DIGITS)
                if math.isfinite(event.probability)
                else None,
                "threshold": event.threshold,
                "cause": event.cause,
                "time": round(time.time(), 3),
            }
        )

    def dropped(self, record: DroppedWindow) -> None:
        self._write(
            {
                "type": "dropped",
                "stream": record.stream_id,
                "segment": record.segment,
                "start": record.start,
                "start_s": record.start_s,
                "end_s": record.end_s,
                "cause": record.cause,
            }
        )

    def stream(self, event: StreamEvent) -> None:
        self._write(
            {
                "type": "stream",
                "stream": event.stream_id,
                "segment": event.segment,
                "event": event.kind,
                "detail": event.detail,
            }
        )

    def source_problem(self, event: SourceProblem) -> None:
        self._write(
            {
                "type": "source",
                "kind": event.kind,
                "where": event.where,
                "reason": event.reason,
                "time": round(time.time(), 3),
            }
        )

    def backend_switch(self, event: BackendSwitch) -> None:
        self._write(
            {
                "type": "backend",
                "from": event.from_backend,
                "to": event.to_backend,
                "reason": event.reason,
                "skipped": list(event.skipped),
                "windows": event.windows,
                "elapsed_s": round(event.elapsed_s, 3),
                "time": round(time.time(), 3),
            }
        )

    def close(self, summary: Summary | None) -> None:
        if self._closed:
            return
        try:
            if summary is not None:
                self._write({"type": "summary", **summary.to_dict()})
        finally:
            self._closed = True
            if self._owned:
                self._file.close()
            else:
                self._file.flush()
