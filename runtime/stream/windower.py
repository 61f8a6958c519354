"""Which windows of one stream are ready: ``start = k · hop``, emitted once complete.

A window is the model-rate samples ``[start, start + window)``. The windower only tracks
indices; it is told how many samples have arrived and answers with the windows that just
became complete, each once, in order. For a stream of N samples it emits exactly
``(N − window) // hop + 1`` windows (none if N < window) — the same windows an offline cut of
the whole record at ``k · hop`` gives, less those a resynchronisation gave up (``skip``,
counted by the caller). Windows that touch a recorded gap are emitted too,
flagged with the gap's reasons, so the caller reports them rather than classifying them and
no window silently disappears.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class GapIndex(Protocol):
    """Anything that can list the gaps touching a sample range (``RingBuffer`` does)."""

    def gaps_overlapping(self, start: int, end: int) -> list: ...


@dataclass(frozen=True)
class WindowRef:
    """Identity of one window: ``stream_id`` and model-rate samples ``[start, end)``;
    ``gap_reasons`` lists why it touches missing/invalid input (empty when it does not)."""

    stream_id: str
    start: int
    end: int
    gap_reasons: tuple[str, ...] = ()


def window_count(n_samples: int, window: int, hop: int) -> int:
    """Windows of ``window`` samples every ``hop`` samples in a stream of ``n_samples``."""
    return 0 if n_samples < window else (n_samples - window) // hop + 1


def samples_from_seconds(seconds: float, sampling_rate: int, field: str = "hop") -> int:
    """``seconds`` as a whole, positive number of samples at ``sampling_rate`` Hz (the CLI
    takes the hop in seconds; windows must land on samples, so 0.25 s at 100 Hz is fine and
    0.125 s is an error)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ValueError(f"{field} must be a number of seconds, got {seconds!r}")
    n = seconds * sampling_rate
    if not math.isfinite(n) or n < 1 or abs(n - round(n)) > 1e-9 * max(1.0, n):
        raise ValueError(
            f"{field} must be a positive whole number of samples at {sampling_rate} Hz, "
            f"got {seconds!r} s = {n:g} samples"
        )
    return round(n)


class Windower:
    """Emits ``WindowRef`` s of one stream as samples arrive.

    ``window`` and ``hop`` are in model-rate samples (1000 and 100 for 10 s every 1 s at
    100 Hz). ``hop`` > ``window`` is allowed (windows then skip samples).
    """

    def __init__(self, stream_id: str, window: int, hop: int) -> None:
        for name, value in (("window", window), ("hop", hop)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(
                    f"Windower: {name} must be a positive integer of samples, got {value!r}"
                )
        self.stream_id = stream_id
        self.window = int(window)
        self.hop = int(hop)
        self._next_k = 0
        self._available = 0

    @property
    def next_start(self) -> int:
        """Start sample of the next window to be emitted."""
        return self._next_k * self.hop

    def skip(self, to_sample: int) -> int:
        """Give up the windows not yet emitted that start before ``to_sample`` (their samples
        will never be stored: a resynchronisation); returns how many, in O(1). Samples
        ``[0, to_sample)`` count as arrived."""
        first_kept = -(-int(to_sample) // self.hop)
        skipped = max(0, first_kept - self._next_k)
        self._next_k += skipped
        self._available = max(self._available, int(to_sample))
        return skipped

    def poll(self, available: int, gaps: GapIndex | None = None) -> list[WindowRef]:
        """Windows that became complete now that samples ``[0, available)`` have arrived.
        ``available`` never decreases; ``gaps`` (e.g. the stream's ``RingBuffer``) is asked
        for the gaps each window touches."""
        if isinstance(available, bool) or not isinstance(available, (int, np.integer)):
            raise ValueError(f"Windower.poll: available must be an integer, got {available!r}")
        if available < self._available:
            raise ValueError(
                f"Windower.poll: available went back from {self._available} to {available}"
            )
        self._available = int(available)
        total = window_count(self._available, self.window, self.hop)
        refs = []
        for k in range(self._next_k, total):
            start = k * self.hop
            end = start + self.window
            reasons: tuple[str, ...] = ()
            if gaps is not None:
                # dict.fromkeys: one line per distinct reason, in order of appearance.
                found = gaps.gaps_overlapping(start, end)
                reasons = tuple(dict.fromkeys(g.reason for g in found))
            refs.append(WindowRef(self.stream_id, start, end, reasons))
        self._next_k = max(self._next_k, total)
        return refs
