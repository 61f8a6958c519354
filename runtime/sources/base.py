"""What every source yields, and the pieces sources share.

A source is an iterable of :class:`Chunk` (samples of one stream) and
:class:`StreamEnd` (that stream is over), interleaved across its streams in
arrival order. Iterating blocks as a live device would (pacing); ``close()``
from another thread makes the iteration end promptly. Layout everywhere in the
runtime: ``[samples, leads]`` float32 mV, leads in the model card's order.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

# Live sources (tcp, stdin) mark a connected but silent device's stream stalled after this
# long: several missed device frames (0.2-1 s each), yet well under one 10 s window.
DEFAULT_STALL_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Chunk:
    stream_id: str
    samples: np.ndarray  # [n, leads] float32 mV
    sample_rate: int  # Hz of these samples (the source's rate, not the model's)
    timestamp: float | None = None  # seconds, source clock, of samples[0]; None: unknown


@dataclass(frozen=True)
class StreamEnd:
    stream_id: str
    reason: str = "end of record"  # or "disconnected", "stalled", ...


@dataclass(frozen=True)
class SourceProblem:
    """Something wrong at the source that belongs to no stream (a connection that sent
    garbage before opening a stream, a refused connection): reported, never fatal."""

    where: str  # e.g. "tcp 127.0.0.1:51234"
    reason: str  # one line: what was wrong and what was expected
    kind: str = "protocol"  # or "tls", "ownership", "limit", "insecure" (tcp, see tcp.py)


Event = Chunk | StreamEnd | SourceProblem


@dataclass(frozen=True)
class StreamOrigin:
    """Where a stream comes from, as far as its source knows (a file's patient id and
    acquisition time; a device's): what result messages name as the subject."""

    subject: str | None = None
    started_at: datetime | None = None


class SpecError(ValueError):
    """A malformed ``--source`` argument of a known kind (the registry adds which spec)."""


class Source(ABC):
    """Base of every source. Subclasses implement ``events()``."""

    name: str = "source"

    def __init__(self) -> None:
        self._closed = threading.Event()

    @abstractmethod
    def events(self) -> Iterator[Event]:
        """Chunks and stream ends in arrival order; returns when done or closed."""

    def __iter__(self) -> Iterator[Event]:
        return self.events()

    def close(self) -> None:
        """Ask the iteration to end soon (safe from any thread)."""
        self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def describe(self) -> str:
        return self.name

    def stream_finished(self, stream_id: str, reason: str, dropped: int) -> None:  # noqa: B027
        """Called by the monitor (any thread) once ``stream_id``'s end is delivered to the
        sinks, every window of it having its result: ``reason`` is the end's ("failed",
        "stopped" by a stop, or the source's), ``dropped`` its windows dropped unclassified.
        A no-op here; the watched inbox completes a file on it."""

    def origin(self, stream_id: str) -> StreamOrigin | None:
        """What is known of ``stream_id``'s origin (None: nothing but its id). Any thread."""
        return None


class Pacer:
    """Releases data at ``speed`` × real time (``None``: as fast as possible).

    Keeps to an absolute schedule from the first call, so sleeping jitter does
    not accumulate into drift over an hour of replay.
    """

    def __init__(self, speed: float | None, stop: threading.Event | None = None) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be positive or None (max), got {speed}")
        self.speed = speed
        self.stop = stop or threading.Event()
        self._t0: float | None = None

    def wait_until(self, media_seconds: float) -> bool:
        """Sleep until ``media_seconds`` of signal are due; False if stopped meanwhile."""
        if self.speed is None:
            return not self.stop.is_set()
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        due = self._t0 + media_seconds / self.speed
        if due > now:
            return not self.stop.wait(due - now)
        return not self.stop.is_set()


def parse_speed(text: str) -> float | None:
    """``realtime`` → 1.0, ``max`` → None, ``4x`` / ``4`` → 4.0."""
    t = text.strip().lower()
    if t == "realtime":
        return 1.0
    if t == "max":
        return None
    try:
        v = float(t[:-1] if t.endswith("x") else t)
    except ValueError:
        raise ValueError(f"speed {text!r}: expected realtime, max or a factor like 4x") from None
    if v <= 0:
        raise ValueError(f"speed {text!r}: the factor must be positive")
    return v


class ArraySource(Source):
    """Replays in-memory recordings ``{stream_id: ([n, leads] mV, rate)}`` in chunks,
    round-robin across streams, paced like a live device. Used by tests and by
    file-backed sources once they have read their records."""

    name = "array"

    def __init__(
        self,
        recordings: dict[str, tuple[np.ndarray, int]],
        chunk_seconds: float | Sequence[float] = 0.2,
        speed: float | None = None,
        loop: bool = False,
    ) -> None:
        super().__init__()
        for sid, (x, fs) in recordings.items():
            if x.ndim != 2 or fs <= 0:
                raise ValueError(f"stream {sid}: expected [samples, leads] and a positive rate")
        self.recordings = recordings
        self.chunk_seconds = chunk_seconds
        self.speed = speed
        self.loop = loop

    def _chunk_len(self, i: int, fs: int) -> int:
        cs = self.chunk_seconds
        sec = cs[i % len(cs)] if isinstance(cs, Sequence) else cs
        return max(1, round(sec * fs))

    def events(self) -> Iterator[Event]:
        pacer = Pacer(self.speed, self._closed)
        pos = {sid: 0 for sid in self.recordings}
        base = {sid: 0.0 for sid in self.recordings}  # media time offset per loop
        active = list(self.recordings)
        i = 0
        while active and not self.closed:
            # The stream that is furthest behind in media time goes next.
            sid = min(active, key=lambda s: base[s] + pos[s] / self.recordings[s][1])
            x, fs = self.recordings[sid]
            n = self._chunk_len(i, fs)
            i += 1
            start = pos[sid]
            chunk = x[start : start + n]
            t = base[sid] + start / fs
            if not pacer.wait_until(t + len(chunk) / fs):
                return
            # A copy: consumers may keep or modify chunks; the recording must stay intact.
            yield Chunk(sid, np.array(chunk, dtype=np.float32, copy=True), fs, t)
            pos[sid] = start + len(chunk)
            if pos[sid] >= len(x):
                if self.loop:
                    base[sid] += len(x) / fs
                    pos[sid] = 0
                else:
                    active.remove(sid)
                    yield StreamEnd(sid)
