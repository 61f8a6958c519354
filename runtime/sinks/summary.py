"""Counting what the monitor did: ``Tally`` during the run, ``Summary`` at its end. Latency
percentiles are over classified windows, from a uniform reservoir of ``RESERVOIR`` values:
bounded memory in a long run, unbiased percentiles."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from mrm_edge.runtime.sinks.base import BackendSwitch

from mrm_edge.stats import Reservoir, latency_summary

RESERVOIR = 200_000
_RECENT_S = 5.0  # the live view's rates and percentiles cover this many seconds


@dataclass
class StreamCounts:
    """One stream's tally."""

    classified: int = 0
    rejected: int = 0
    dropped: int = 0
    alarms_on: list[str] = field(default_factory=list)
    ended: str | None = None
    """Why it ended (the source's reason), or None while live."""
    error: str | None = None
    segments: int = 1

    @property
    def windows(self) -> int:
        return self.classified + self.rejected + self.dropped


@dataclass(frozen=True)
class LiveStats:
    """A snapshot for the live view."""

    elapsed_s: float
    windows_per_s: float
    """Classified windows per second over the last few seconds."""
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    classified: int
    rejected: int
    dropped: int
    queue_depth: int
    streams: int
    streams_live: int


@dataclass
class Summary:
    """The end-of-run report (``to_dict()`` is what the JSONL summary line holds)."""

    model: str
    backend: str
    backend_reason: str
    source: str
    elapsed_s: float
    stopped_by: str
    windows: int
    classified: int
    rejected: int
    dropped: int
    rejected_by_reason: dict[str, int]
    dropped_by_cause: dict[str, int]
    per_stream: dict[str, dict[str, Any]]
    latency_ms: dict[str, float | None]
    """p50, p90, p99, max, mean over classified windows (None when there were none)."""
    throughput_wps: float
    """Classified windows per second of wall time."""
    inference_wps: float | None
    """Classified windows per second of backend time (None before any batch)."""
    batches: int
    mean_batch: float | None
    max_queue_depth: int
    alarms: dict[str, int]
    backend_errors: int
    errors: list[str]
    knobs: dict[str, Any] = field(default_factory=dict)
    backend_switches: list[dict[str, Any]] = field(default_factory=list)
    """One entry per fallback switch, in order: from, to, reason, skipped, windows,
    elapsed_s (see ``BackendSwitch``). ``backend`` is then the one running at the end."""
    source_problems: int = 0
    """Problems the source reported outside any stream (e.g. a TCP connection that sent
    garbage before opening one); each is a ``source`` line in the event log."""
    source_problems_by_kind: dict[str, int] = field(default_factory=dict)
    """The same by kind: protocol, tls, ownership, limit, insecure (see sources/tcp.py)."""
    events_not_written: int = 0
    """Event log records lost to write errors (a full disk): set by the event log sink as it
    closes, before the report prints this summary."""

    @property
    def ok(self) -> bool:
        """No source, sink or worker error (backend errors on batches are counted apart)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The report as plain text lines (the CLI prints them after the run)."""
        lat = self.latency_ms

        def ms(v: float | None) -> str:
            return "–" if v is None else f"{v:.1f}"

        rejected = ", ".join(f"{k} {v}" for k, v in self.rejected_by_reason.items())
        dropped = ", ".join(f"{k} {v}" for k, v in self.dropped_by_cause.items())
        out = [
            f"model {self.model}; backend {self.backend}",
            f"  why: {self.backend_reason}",
            f"source {self.source}; {len(self.per_stream)} stream(s); {self.elapsed_s:.1f} s "
            f"({self.stopped_by})",
            f"windows {self.windows}: classified {self.classified}, rejected {self.rejected}"
            + (f" ({rejected})" if rejected else "")
            + f", dropped {self.dropped}"
            + (f" ({dropped})" if dropped else ""),
            f"latency window-complete→result ms: p50 {ms(lat['p50'])}, p90 {ms(lat['p90'])}, "
            f"p99 {ms(lat['p99'])}, max {ms(lat['max'])}",
            f"throughput {self.throughput_wps:.1f} windows/s"
            + (f" (backend alone {self.inference_wps:.0f} windows/s)" if self.inference_wps else "")
            + f"; {self.batches} batches, mean size "
            + (f"{self.mean_batch:.1f}" if self.mean_batch else "–")
            + f", max queue {self.max_queue_depth}",
            f"alarms: {self.alarms.get('on', 0)} on, {self.alarms.get('off', 0)} off"
            + _alarm_policy(self.knobs),
        ]
        for sw in self.backend_switches:
            out.append(
                f"backend switched at {sw['elapsed_s']:.1f} s: {sw['from']} → {sw['to']} "
                f"({sw['reason']})"
                + (f"; skipped {'; '.join(sw['skipped'])}" if sw["skipped"] else "")
            )
        if self.source_problems:
            kinds = ", ".join(f"{k} {v}" for k, v in self.source_problems_by_kind.items())
            out.append(f"source problems: {self.source_problems} (outside any stream: {kinds})")
        if self.backend_errors:
            out.append(
                f"backend errors: {self.backend_errors} batch(es) failed on every backend left"
                if self.backend_switches
                else f"backend errors: {self.backend_errors} batch(es) failed twice"
            )
        out += [f"error: {e}" for e in self.errors]
        return out

    def render(self) -> Any:
        """A rich renderable: the lines, then a per-stream table."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(title=None, box=None, padding=(0, 1))
        for col in ("stream", "classified", "rejected", "dropped", "alarms on", "ended"):
            table.add_column(col, justify="right" if col in ("classified", "rejected") else "left")
        for sid, c in self.per_stream.items():
            table.add_row(
                sid,
                str(c["classified"]),
                str(c["rejected"]),
                str(c["dropped"]),
                ", ".join(c["alarms_on"]) or "–",
                c["error"] or c["ended"] or "live",
            )
        return Group(*(Text(line) for line in self.lines()), table)


def _alarm_policy(knobs: dict[str, Any]) -> str:
    """ " (findings that alarm: CD, MI)" from the run's knobs; "" when not recorded."""
    labels = knobs.get("alarm_labels")
    if labels is None:
        return ""
    return f" (alarm findings: {', '.join(labels) or 'none'})"


class Tally:
    """Thread-safe counters of one run. The engine sets ``started`` when the run starts and
    ``max_queue_depth`` from the batcher at its end; ``queue_depth`` reads the batcher's."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        queue_depth: Callable[[], int] = lambda: 0,
    ) -> None:
        self.clock = clock
        self.queue_depth = queue_depth
        self.started = clock()
        self.streams: dict[str, StreamCounts] = {}
        self.rejected_by_reason: Counter[str] = Counter()
        self.dropped_by_cause: Counter[str] = Counter()
        self.alarms: Counter[str] = Counter()
        self.batches = 0
        self.batched_windows = 0
        self.backend_s = 0.0
        self.backend_errors = 0
        self.backend_switches: list[dict[str, Any]] = []
        self.source_problems_by_kind: Counter[str] = Counter()
        self.max_queue_depth = 0
        self.errors: list[str] = []
        # Preallocated (1.6 MB): a list of Python floats would grow ~32 bytes per window up to
        # the reservoir's size, which a long soak sees as resident-memory creep.
        self._latencies = Reservoir(RESERVOIR, random.Random(0))
        self._recent: deque[tuple[float, float]] = deque()  # (time, latency ms), last 5 s
        self._lock = threading.Lock()

    def _stream(self, sid: str) -> StreamCounts:
        c = self.streams.get(sid)
        if c is None:
            c = self.streams[sid] = StreamCounts()
        return c

    # ------------------------------------------------------------------ recording

    def stream_started(self, sid: str, segment: int = 0) -> None:
        with self._lock:
            c = self._stream(sid)
            c.ended = None
            c.segments = max(c.segments, segment + 1)

    def stream_ended(self, sid: str, reason: str) -> None:
        with self._lock:
            self._stream(sid).ended = reason

    def stream_failed(self, sid: str, error: str) -> None:
        with self._lock:
            self._stream(sid).error = error
            self.errors.append(f"stream {sid}: {error}")

    def classified(self, sid: str, latency_ms: float, alarms_on: tuple[str, ...]) -> None:
        now = self.clock()
        with self._lock:
            c = self._stream(sid)
            c.classified += 1
            c.alarms_on = list(alarms_on)
            self._latencies.add(latency_ms)  # reservoir: each kept with equal probability
            self._recent.append((now, latency_ms))
            self._trim(now)

    def rejected(
        self, sid: str, kinds: tuple[str, ...], alarms_on: tuple[str, ...], n: int = 1
    ) -> None:
        with self._lock:
            c = self._stream(sid)
            c.rejected += n
            c.alarms_on = list(alarms_on)
            self.rejected_by_reason[" + ".join(kinds) or "other"] += n

    def dropped(self, sid: str, cause: str) -> None:
        with self._lock:
            self._stream(sid).dropped += 1
            self.dropped_by_cause[cause] += 1

    def alarm(self, sid: str, state: str, alarms_on: tuple[str, ...]) -> None:
        with self._lock:
            self.alarms[state] += 1
            self._stream(sid).alarms_on = list(alarms_on)

    def batch(self, size: int, backend_s: float, failed: bool = False) -> None:
        with self._lock:
            self.batches += 1
            self.batched_windows += size
            self.backend_s += backend_s
            self.backend_errors += int(failed)

    def source_problem(self, kind: str) -> None:
        with self._lock:
            self.source_problems_by_kind[kind] += 1

    def backend_switch(self, event: BackendSwitch) -> BackendSwitch:
        """Record a fallback switch; returns ``event`` stamped with the run's elapsed time."""
        event = replace(event, elapsed_s=self.clock() - self.started)
        with self._lock:
            self.backend_switches.append(event.to_dict())
        return event

    def error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - _RECENT_S:
            self._recent.popleft()

    # ------------------------------------------------------------------ reading

    def _totals(self) -> tuple[int, int, int]:
        cs = self.streams.values()
        return (
            sum(c.classified for c in cs),
            sum(c.rejected for c in cs),
            sum(c.dropped for c in cs),
        )

    def live(self) -> LiveStats:
        now = self.clock()
        depth = int(self.queue_depth())
        with self._lock:
            self._trim(now)
            classified, rejected, dropped = self._totals()
            span = min(_RECENT_S, max(now - self.started, 1e-9))
            recent = [lat for _, lat in self._recent]
            p50, p99 = np.percentile(recent, [50, 99]) if recent else (None, None)
            return LiveStats(
                elapsed_s=now - self.started,
                windows_per_s=len(recent) / span,
                latency_p50_ms=None if p50 is None else float(p50),
                latency_p99_ms=None if p99 is None else float(p99),
                classified=classified,
                rejected=rejected,
                dropped=dropped,
                queue_depth=depth,
                streams=len(self.streams),
                streams_live=sum(
                    1 for c in self.streams.values() if c.ended is None and c.error is None
                ),
            )

    def summary(
        self,
        *,
        model: str,
        backend: str,
        backend_reason: str,
        source: str,
        stopped_by: str,
        knobs: dict[str, Any] | None = None,
    ) -> Summary:
        elapsed = self.clock() - self.started
        with self._lock:
            classified, rejected, dropped = self._totals()
            return Summary(
                model=model,
                backend=backend,
                backend_reason=backend_reason,
                source=source,
                elapsed_s=elapsed,
                stopped_by=stopped_by,
                windows=classified + rejected + dropped,
                classified=classified,
                rejected=rejected,
                dropped=dropped,
                rejected_by_reason=dict(self.rejected_by_reason),
                dropped_by_cause=dict(self.dropped_by_cause),
                per_stream={
                    sid: {**asdict(c), "windows": c.windows} for sid, c in self.streams.items()
                },
                latency_ms=latency_summary(self._latencies.values()),
                throughput_wps=classified / elapsed if elapsed > 0 else 0.0,
                inference_wps=(
                    self.batched_windows / self.backend_s if self.backend_s > 0 else None
                ),
                batches=self.batches,
                mean_batch=self.batched_windows / self.batches if self.batches else None,
                max_queue_depth=self.max_queue_depth,
                alarms={"on": self.alarms["on"], "off": self.alarms["off"]},
                backend_errors=self.backend_errors,
                errors=list(self.errors),
                knobs=dict(knobs or {}),
                backend_switches=[dict(sw) for sw in self.backend_switches],
                source_problems=sum(self.source_problems_by_kind.values()),
                source_problems_by_kind=dict(self.source_problems_by_kind),
            )
