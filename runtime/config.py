"""``MonitorConfig``: how a monitor runs, in one value. Each knob is checked where it is
used, with a one-line ValueError naming it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mrm_edge.runtime.batcher import OverloadPolicy
from mrm_edge.runtime.postprocess import PostprocessConfig
from mrm_edge.runtime.stream.quality import QualityConfig


@dataclass(frozen=True)
class MonitorConfig:
    """The knobs of a monitor run (what each does: docs/monitor.md). ``put_timeout_s``: under
    ``overload="block"``, how long the source waits for room; ``duration_s``: None runs until
    the source ends."""

    hop_s: float = 1.0
    max_batch: int = 32
    max_delay_ms: float = 50.0
    max_queue: int = 4096
    overload: OverloadPolicy = "drop-oldest"
    put_timeout_s: float = 1.0
    duration_s: float | None = None
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)

    def knobs(self) -> dict[str, Any]:
        """The knobs as the event log's start line and the summary record them (their keys
        are a file format: ``put_timeout_s`` and the quality thresholds were never in it)."""
        return {
            "hop_s": float(self.hop_s),
            "max_batch": self.max_batch,
            "max_delay_ms": self.max_delay_ms,
            "max_queue": self.max_queue,
            "overload": self.overload,
            "duration_s": self.duration_s,
            "smoothing": self.postprocess.describe(),
        }
