"""The ``Sink`` interface and the records a sink receives. ``open`` once, then the records one
at a time on the sink's own thread (``fanout.py``), then ``close`` once (in the reverse order
of opening): a sink needs no lock unless it has a thread of its own (LiveView does)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from mrm_edge.runtime.postprocess import AlarmEvent, WindowResult
    from mrm_edge.runtime.sinks.summary import LiveStats, Summary
    from mrm_edge.runtime.sources.base import Chunk, SourceProblem, StreamOrigin


@dataclass(frozen=True)
class DroppedWindow:
    """A complete window that was never classified: evicted by the batcher's overload
    policy, refused by a full queue, or still queued when the run was stopped."""

    stream_id: str
    start: int
    sampling_rate: int
    window_samples: int
    cause: str
    """E.g. "overload (drop-oldest)", "overload (drop-newest)", "stopped before inference"."""
    segment: int = 0

    @property
    def start_s(self) -> float:
        return self.start / self.sampling_rate

    @property
    def end_s(self) -> float:
        return (self.start + self.window_samples) / self.sampling_rate


@dataclass(frozen=True)
class StreamEvent:
    """A stream started, ended (with the source's reason), failed (with the error) or was
    resynchronised (a jump over the limit; its skipped windows counted as rejected)."""

    stream_id: str
    kind: Literal["start", "end", "error", "resync"]
    detail: str = ""
    """Start: "<rate> Hz"; end: the source's reason; error: the one-line error; resync:
    the jump, the limit and how many windows were rejected."""
    segment: int = 0


@dataclass(frozen=True)
class BackendSwitch:
    """The backend failed a batch twice and the monitor moved the run to a fallback
    (reported once per switch; the batch that failed is re-run on the new backend)."""

    from_backend: str
    """The backend given up (``describe()``)."""
    to_backend: str
    """The backend now running (``describe()``)."""
    reason: str
    """The one-line error that made the switch, e.g. "MemoryError: CUDA out of memory"."""
    skipped: tuple[str, ...] = ()
    """Fallbacks passed over because they failed to start, each "<label>: <why>"."""
    windows: int = 0
    """Windows in the batch that failed and is re-run on ``to_backend``."""
    elapsed_s: float = 0.0
    """Seconds since the run started."""

    def to_dict(self) -> dict[str, Any]:
        """As the event log's ``backend`` line and the summary's ``backend_switches`` hold it."""
        return {
            "from": self.from_backend,
            "to": self.to_backend,
            "reason": self.reason,
            "skipped": list(self.skipped),
            "windows": self.windows,
            "elapsed_s": self.elapsed_s,
        }


@dataclass(frozen=True)
class RunInfo:
    """What a sink may want to show up front, and a live view of the counters."""

    model: str
    labels: tuple[str, ...]
    thresholds: Mapping[str, float]
    sampling_rate: int
    window_s: float
    hop_s: float
    backend: str
    backend_reason: str
    source: str
    knobs: Mapping[str, Any] = field(default_factory=dict)
    """max_batch, max_delay_ms, max_queue, overload, duration_s, smoothing, ..."""
    stats: Callable[[], LiveStats] | None = None
    """A fresh snapshot of the engine's counters (thread-safe; None outside a run)."""
    refused: Mapping[str, str] = field(default_factory=dict)
    """Model files the model directory refused to load, each with why."""
    notify: Callable[[str], None] | None = None
    """Raise a system notice: one line every display shows (the terminal prints it, the
    station shows it), e.g. the event log's disk is full. Any thread, any time after
    ``open``; never blocks. None outside a run."""
    findings: tuple[str, ...] = ()
    """The labels that are alarm findings (the card's; NORM is not one)."""
    model_sha256: str = ""
    """The served ONNX graph's SHA-256 (``DeployedModel.graph_sha256``)."""
    origin: Callable[[str], StreamOrigin | None] | None = None
    """What the source knows of a stream's origin (patient id, acquisition time)."""
    gflop_per_window: float | None = None
    """What one window costs (``DeployedModel.gflop_per_window``); None if not recorded."""


class Sink:
    """Base sink: every method is a no-op, so a sink overrides only what it uses."""

    delivery: ClassVar[Literal["lossless", "lossy"]] = "lossless"
    """What a full queue does (fanout.py): ``lossless`` makes the producer wait (event
    logs); ``lossy`` skips the oldest window/waveform record and counts it (displays)."""
    wants_waveform: ClassVar[bool] = False
    """Whether this sink receives the raw chunks (``waveform``), e.g. for ECG strips."""

    def open(self, info: RunInfo) -> None:
        """The run starts."""

    def window(self, result: WindowResult) -> None:
        """A window was classified or rejected."""

    def waveform(self, chunk: Chunk) -> None:
        """A stream's raw chunk as it arrived (only with ``wants_waveform``; read-only)."""

    def alarm(self, event: AlarmEvent) -> None:
        """An alarm switched on or off."""

    def dropped(self, record: DroppedWindow) -> None:
        """A window was dropped without inference."""

    def stream(self, event: StreamEvent) -> None:
        """A stream started, ended or failed."""

    def backend_switch(self, event: BackendSwitch) -> None:
        """The run moved to a fallback backend."""

    def source_problem(self, event: SourceProblem) -> None:
        """The source reported a problem outside any stream (it goes on)."""

    def notice(self, text: str) -> None:
        """A system notice (``RunInfo.notify``): one line for the operator to see now."""

    def close(self, summary: Summary | None) -> None:
        """The run is over (``summary`` is None when it failed before producing one).
        Must be safe to call twice."""
