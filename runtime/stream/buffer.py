"""Per-stream storage at the model's rate (``RingBuffer``), and detection of missing input
from timestamps at the input rate (``GapDetector``).

Layout: ``[samples, channels]`` (time-major), as everywhere in ``mrm_edge.runtime``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Gap:
    """Samples ``[start, end)`` (absolute indices at the buffer's rate) that are missing or
    invalid, and why (one line for a report)."""

    start: int
    end: int
    reason: str

    def overlaps(self, start: int, end: int) -> bool:
        return self.start < end and start < self.end


def _int_at_least(value: object, minimum: int, field: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{owner}: {field} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class RingBuffer:
    """The last ``capacity`` samples of one stream, ``[capacity, n_channels]`` float32 mV,
    allocated once.

    Absolute index ``t`` lives at row ``t % capacity``. ``sample_count`` is the absolute
    index of the next sample; samples ``[oldest, sample_count)`` can be read, older ones
    have been overwritten (evicted).

    Gaps: ``mark_gap`` only *records* an interval (the caller delivers that span's samples,
    e.g. the resampled zeros a gap was filled with), and may name samples that have not
    arrived yet; ``append_gap`` appends zeros and records them, for a caller with nothing
    to put there. Zero is the neutral value of baseline-referenced mV, and the input-rate
    filler uses zeros too, so a gap's samples look the same whichever side filled them. Gaps
    are never silent — readers see them through ``gaps_overlapping`` — and intervals wholly
    older than ``oldest`` are forgotten.
    """

    def __init__(self, capacity: int, n_channels: int = 12) -> None:
        self.capacity = _int_at_least(capacity, 1, "capacity", "RingBuffer")
        self.n_channels = _int_at_least(n_channels, 1, "n_channels", "RingBuffer")
        self._data = np.zeros((self.capacity, self.n_channels), np.float32)
        self._count = 0
        self._gaps: list[Gap] = []

    @property
    def sample_count(self) -> int:
        """Samples appended since the stream started: the absolute index of the next one."""
        return self._count

    @property
    def oldest(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(0, self._count - self.capacity)

    def append(self, samples: np.ndarray) -> None:
        """Append ``samples`` ``[n, n_channels]`` (n >= 0). When n exceeds the capacity only
        the last ``capacity`` rows are kept, as if appended one by one."""
        x = np.asarray(samples)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(
                f"RingBuffer.append: samples must be [samples, {self.n_channels}], "
                f"got shape {x.shape}"
            )
        n = x.shape[0]
        if n == 0:
            return
        keep = x[-self.capacity :]
        first = self._count + n - len(keep)  # absolute index of keep[0]
        self._write(first, keep)
        self._count += n
        self._forget_evicted_gaps()

    def append_gap(self, n_missing: int, reason: str) -> Gap:
        """Append ``n_missing`` zeros and record them as a gap; returns the gap.
        O(capacity) whatever ``n_missing``: only the last ``capacity`` of them are kept."""
        n = _int_at_least(n_missing, 1, "n_missing", "RingBuffer.append_gap")
        gap = self.mark_gap(self._count, n, reason)
        if n >= self.capacity:
            self._data[:] = 0.0
        else:
            self._write(self._count, np.zeros((n, self.n_channels), np.float32))
        self._count += n
        self._forget_evicted_gaps()
        return gap

    def mark_gap(self, at_sample: int, n_missing: int, reason: str) -> Gap:
        """Record samples ``[at_sample, at_sample + n_missing)`` as missing/invalid (absolute
        indices; the span may extend past ``sample_count``). Writes no data."""
        start = _int_at_least(at_sample, 0, "at_sample", "RingBuffer.mark_gap")
        n = _int_at_least(n_missing, 1, "n_missing", "RingBuffer.mark_gap")
        if not isinstance(reason, str) or not reason:
            raise ValueError("RingBuffer.mark_gap: reason must be a non-empty string")
        gap = Gap(start, start + n, reason)
        if gap.end > self.oldest:
            self._gaps.append(gap)
        return gap

    def gaps_overlapping(self, start: int, end: int) -> list[Gap]:
        """Recorded gaps that share at least one sample with ``[start, end)``, oldest first."""
        return [g for g in self._gaps if g.overlaps(start, end)]

    def view(self, start: int, length: int) -> np.ndarray:
        """A copy of samples ``[start, start + length)`` (absolute indices) as float32
        ``[length, n_channels]``."""
        start = _int_at_least(start, 0, "start", "RingBuffer.view")
        length = _int_at_least(length, 0, "length", "RingBuffer.view")
        if start < self.oldest:
            raise ValueError(
                f"RingBuffer.view: start {start} was evicted; samples from {self.oldest} "
                f"to {self._count} are held (capacity {self.capacity})"
            )
        if start + length > self._count:
            raise ValueError(
                f"RingBuffer.view: [{start}, {start + length}) has not fully arrived; "
                f"{self._count} samples so far"
            )
        rows = (start + np.arange(length)) % self.capacity
        return self._data[rows]

    def _write(self, first: int, rows: np.ndarray) -> None:
        """Write ``rows`` at absolute indices ``first, first + 1, ...`` (at most capacity)."""
        pos = first % self.capacity
        head = min(len(rows), self.capacity - pos)
        self._data[pos : pos + head] = rows[:head]
        self._data[: len(rows) - head] = rows[head:]

    def _forget_evicted_gaps(self) -> None:
        oldest = self.oldest
        if self._gaps and self._gaps[0].end <= oldest:
            self._gaps = [g for g in self._gaps if g.end > oldest]


@dataclass(frozen=True)
class TimingCheck:
    """What ``GapDetector.check`` found about one chunk.

    ``n_missing``: input-rate samples lost *before* this chunk (insert that many fill
    samples first); ``backwards_s``: seconds by which the chunk's timestamp came earlier than
    expected (0 if not), after which the timeline is re-anchored on this chunk;
    ``reason``: one line when either is non-zero, else None.
    """

    n_missing: int = 0
    backwards_s: float = 0.0
    reason: str | None = None


class GapDetector:
    """Finds lost samples and clock jumps from chunk timestamps, at the input rate.

    A chunk's timestamp is the time, in seconds on the source's clock, of its *first*
    sample. The first chunk anchors the timeline; chunk k is then expected at
    ``anchor + accounted / fs`` where ``accounted`` counts samples received plus samples
    declared missing. A timestamp later than that by more than ``tolerance_s`` means
    ``round(delay · fs)`` samples were lost; earlier by more than ``tolerance_s`` is a
    backwards jump (clock reset, replay): nothing is inserted or dropped, the timeline is
    re-anchored, and the check reports it so the caller can flag the discontinuity.

    ``tolerance_s`` is 1.5 sample periods: less than that is timestamp jitter, not a lost
    sample. So a single lost sample is absorbed (its neighbours close up), yet alignment
    never drifts by more than the tolerance: the next loss pushes the total over it and all
    of it is counted.
    """

    def __init__(self, fs: int) -> None:
        self.fs = _int_at_least(fs, 1, "fs", "GapDetector")
        self.tolerance_s = 1.5 / self.fs
        self._anchor: float | None = None
        self._accounted = 0

    def expected_time(self) -> float | None:
        """Timestamp (s) the next chunk should carry; None before the first chunk."""
        if self._anchor is None:
            return None
        return self._anchor + self._accounted / self.fs

    def check(self, timestamp: float | None, n_samples: int) -> TimingCheck:
        """Account for a chunk of ``n_samples`` whose first sample is at ``timestamp`` s.
        A chunk without a timestamp (None) is counted but cannot be checked."""
        n = _int_at_least(n_samples, 0, "n_samples", "GapDetector.check")
        if timestamp is None:
            self._accounted += n
            return TimingCheck()
        if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float, np.number)):
            raise ValueError(f"GapDetector.check: timestamp must be seconds, got {timestamp!r}")
        t = float(timestamp)
        if not math.isfinite(t):
            raise ValueError(f"GapDetector.check: timestamp must be finite, got {timestamp!r}")
        result = TimingCheck()
        expected = self.expected_time()
        if expected is None:
            self._anchor = t - self._accounted / self.fs  # samples before it had no times
        else:
            late = t - expected
            if late > self.tolerance_s:
                missing = round(late * self.fs)
                result = TimingCheck(
                    n_missing=missing,
                    reason=f"{missing} samples ({missing / self.fs:.3f} s) missing before "
                    f"t={t:.3f} s",
                )
                self._accounted += missing
            elif late < -self.tolerance_s:
                result = TimingCheck(
                    backwards_s=-late,
                    reason=f"timestamp jumped back {-late:.3f} s at t={t:.3f} s",
                )
                self._anchor = t - self._accounted / self.fs
        self._accounted += n
        return result
