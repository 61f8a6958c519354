"""Display decimation: a stream's raw chunks at any rate → ``DISPLAY_HZ`` samples per second
for ECG strips, keeping the peaks.

A plain "every n-th sample" at 100 Hz would land between the R peak's samples and shave
QRS complexes by a third at 500 Hz; a mean would too. Each output sample is the bucket's
maximum or minimum, whichever lies further from the local baseline (the mean of the last
``BASELINE_BUCKETS`` bucket means, 0.2 s: shorter than a beat, longer than a QRS), so R, S
and pacing spikes keep their height and a flat line stays flat. The baseline's history is
carried across chunks, so chunks of any sizes give the same strip. Buckets follow the input
rate exactly (boundaries
at ``floor(j · fs / DISPLAY_HZ)``), so rates that are not a multiple of 100 Hz (257, 360 Hz)
keep time. NaN in a bucket makes that output NaN: a strip shows the lead-off gap.
"""

from __future__ import annotations

import numpy as np

DISPLAY_HZ = 100
"""Strip samples per second: at 25 mm/s and ~4 px/mm, one sample per pixel."""
BASELINE_BUCKETS = 20


class DisplayDecimator:
    """One stream's decimator (chunks in order, one thread)."""

    def __init__(self, fs_in: int, fs_out: int = DISPLAY_HZ) -> None:
        if fs_in <= 0 or fs_out <= 0:
            raise ValueError(f"DisplayDecimator: rates must be > 0 Hz, got {fs_in}, {fs_out}")
        self.fs_in = int(fs_in)
        self.fs_out = min(int(fs_out), self.fs_in)  # never up-sample
        self.inputs = 0  # input samples consumed into complete buckets
        self.outputs = 0  # output samples produced
        self._pending: np.ndarray | None = None  # input samples of the incomplete bucket
        self._means: np.ndarray | None = None  # the last bucket means (baseline history)

    def _edge(self, j: int) -> int:
        """First input sample of output bucket ``j``."""
        return j * self.fs_in // self.fs_out

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Feed ``[n, leads]``; return the complete output samples ``[m, leads]`` float32."""
        x = np.asarray(samples, np.float32)
        if self._pending is not None and len(self._pending):
            x = np.concatenate([self._pending, x])
        start = self.inputs  # absolute input index of x[0]
        end = start + len(x)
        # The last bucket ending by ``end``: the largest j with floor(j·fs_in/fs_out) <= end.
        j_last = max(self.outputs, ((end + 1) * self.fs_out - 1) // self.fs_in)
        n_out = j_last - self.outputs
        if n_out == 0:
            self._pending = x
            return np.empty((0, x.shape[1] if x.ndim == 2 else 0), np.float32)
        edges = np.array([self._edge(j) - start for j in range(self.outputs, j_last + 1)])
        used = edges[-1]
        body, self._pending = x[:used], x[used:]
        lo = edges[:-1]
        counts = np.diff(edges).astype(np.float32)[:, None]
        mean = np.nan_to_num(np.add.reduceat(body, lo, axis=0) / counts)  # NaN: no baseline
        base = self._baseline(mean)
        hi_v = np.maximum.reduceat(body, lo, axis=0)
        lo_v = np.minimum.reduceat(body, lo, axis=0)
        out = np.where(np.abs(hi_v - base) >= np.abs(lo_v - base), hi_v, lo_v)
        self.inputs += used
        self.outputs = j_last
        return out.astype(np.float32, copy=False)

    def _baseline(self, means: np.ndarray) -> np.ndarray:
        """Per output bucket: the mean of the last ``BASELINE_BUCKETS`` bucket means
        (itself included), history carried over from earlier chunks."""
        past = self._means if self._means is not None else means[:0]
        hist = np.concatenate([past, means]).astype(np.float64)
        csum = np.concatenate([np.zeros((1, hist.shape[1])), np.cumsum(hist, axis=0)])
        pos = len(past) + np.arange(len(means))
        first = np.maximum(0, pos - BASELINE_BUCKETS + 1)
        base = (csum[pos + 1] - csum[first]) / (pos + 1 - first)[:, None]
        self._means = hist[-(BASELINE_BUCKETS - 1) :]
        return base
