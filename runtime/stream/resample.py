"""Streaming polyphase resampling that reproduces the offline resampler sample for sample.

The offline reference is ``mrm_edge.data.signal.resample`` — ``scipy.signal.resample_poly``
with the gcd-reduced ratio ``up/down``, scipy's default Kaiser (β = 5) low-pass FIR and zero
padding beyond both ends of the record. Written out, resample_poly's output sample ``i`` is

    y[i] = Σ_n x[n] · h[half_len + i·down − n·up],     0 ≤ half_len + i·down − n·up ≤ 2·half_len

with ``h = firwin(2·half_len + 1, 1/max(up, down), window=("kaiser", 5.0)) · up``,
``half_len = 10·max(up, down)``, ``x[n] = 0`` outside the record, and
``ceil(n_in·up/down)`` outputs. (resample_poly's ``n_pre_pad``/``n_pre_remove`` bookkeeping
reduces exactly to this centring: ``n_pre_remove·down == half_len + n_pre_pad``.)

So output ``i`` depends on inputs up to ``n_max(i) = (i·down + half_len) // up`` and on
nothing later. ``StreamingResampler`` releases output ``i`` as soon as input ``n_max(i)`` has
arrived: released samples never change, chunk boundaries leave no trace, and ``flush()``
supplies the zeros past the end that the whole-record call uses. The release lag is
``half_len/up`` input samples, 10/min(fs_in, fs_out) s (0.1 s for anything → 100 Hz).

Layout: ``[samples, channels]`` (time-major), as everywhere in ``mrm_edge.runtime``.
Arithmetic is float64 (closer to exact than scipy's float32 path on float32 input; the
difference from it is float32 rounding); output is float32 mV.
"""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np

# scipy.signal.resample_poly's defaults: window ("kaiser", 5.0), 10 zero crossings a side.
KAISER_BETA = 5.0
HALF_LEN_PER_RATE = 10


def _positive_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"StreamingResampler: {field} must be a positive integer, got {value!r}")
    return int(value)


@lru_cache(maxsize=32)
def polyphase_filter(up: int, down: int) -> tuple[int, np.ndarray]:
    """``(half_len, taps)`` for the reduced ratio ``up/down``: resample_poly's FIR split into
    ``up`` phases. ``taps[p, k]`` multiplies input ``n_max − (K − 1 − k)`` for an output of
    phase ``p = (i·down + half_len) % up``; phases shorter than ``K = ceil((2·half_len + 1)/up)``
    are zero-padded at the old end. Cached: every stream at the same rates shares one design.
    """
    # Deferred: importing scipy.signal costs about a second, paid only by resampling streams.
    from scipy.signal import firwin

    max_rate = max(up, down)
    half_len = HALF_LEN_PER_RATE * max_rate
    h = firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", KAISER_BETA)) * up
    n_taps = -(-h.size // up)
    padded = np.zeros(n_taps * up)
    padded[: h.size] = h
    # Row p holds h[p], h[p + up], ... = weights of inputs n_max, n_max − 1, ...; reverse so
    # column k weighs the k-th oldest input of the K-sample stretch ending at n_max.
    taps = padded.reshape(n_taps, up).T[:, ::-1].copy()
    taps.setflags(write=False)
    return half_len, taps


class StreamingResampler:
    """Stateful resampler from ``fs_in`` to ``fs_out`` Hz for ``[samples, n_channels]`` chunks.

    ``push`` returns the output samples finalised by that chunk; concatenating every push and
    a final ``flush()`` gives exactly ``resample(whole_record, fs_in, fs_out)`` (transposed to
    ``[samples, channels]``). Equal rates pass chunks through unchanged (as float32 copies).
    Cost per chunk: O(outputs · K · channels) with ``K ≈ 20·max(up, down)/up`` taps per
    output (≈ 20 multiply-adds per input sample per channel for 500 → 100 Hz).
    """

    def __init__(self, fs_in: int, fs_out: int, n_channels: int = 12) -> None:
        self.fs_in = _positive_int(fs_in, "fs_in")
        self.fs_out = _positive_int(fs_out, "fs_out")
        self.n_channels = _positive_int(n_channels, "n_channels")
        g = gcd(self.fs_in, self.fs_out)
        self.up, self.down = self.fs_out // g, self.fs_in // g
        self.identity = self.up == self.down == 1
        if self.identity:
            self.half_len, self._taps = 0, np.ones((1, 1))
        else:
            self.half_len, self._taps = polyphase_filter(self.up, self.down)
        n_taps = self._taps.shape[1]
        # Input history: absolute input index of row 0 is _hist_start. It starts with the
        # K − 1 zeros before the record that resample_poly's zero padding supplies.
        self._hist = np.zeros((n_taps - 1, self.n_channels))
        self._hist_start = -(n_taps - 1)
        self._n_in = 0
        self._n_out = 0
        self._flushed = False

    # ------------------------------------------------------------------ indices

    @property
    def input_count(self) -> int:
        """Input samples (at ``fs_in``) pushed so far."""
        return self._n_in

    def _last_input_of(self, i: int) -> int:
        """Index of the newest input sample output ``i`` depends on."""
        return (i * self.down + self.half_len) // self.up

    def _releasable(self, n_in: int) -> int:
        """How many outputs are final once inputs ``[0, n_in)`` have arrived."""
        # Output i is final when n_max(i) < n_in  ⇔  i·down + half_len < n_in·up.
        return max(0, -(-(n_in * self.up - self.half_len) // self.down))

    def outputs_depending_on(self, start: int, end: int) -> tuple[int, int]:
        """``[lo, hi)`` of the output samples whose value depends on any input in
        ``[start, end)`` (input-rate indices): where a gap or a discontinuity in the input
        shows up at ``fs_out``, filter transients included. Empty (lo == hi) when end <= start.
        """
        if end <= start:
            return (0, 0)
        # Output i reads inputs n with |i·down − n·up| <= half_len.
        lo = max(0, -(-(start * self.up - self.half_len) // self.down))
        hi = ((end - 1) * self.up + self.half_len) // self.down + 1
        return (lo, max(lo, hi))

    # ------------------------------------------------------------------ streaming

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Feed ``chunk`` ``[n, n_channels]`` (n >= 0, at ``fs_in``); returns the newly final
        output samples as float32 ``[m, n_channels]`` (m may be 0)."""
        if self._flushed:
            raise ValueError("StreamingResampler.push: already flushed; start a new resampler")
        x = np.asarray(chunk)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(
                f"StreamingResampler.push: chunk must be [samples, {self.n_channels}], "
                f"got shape {x.shape}"
            )
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise ValueError(f"StreamingResampler.push: chunk must be numeric, got {x.dtype}")
        self._n_in += x.shape[0]
        if self.identity:
            self._n_out = self._n_in
            return x.astype(np.float32, copy=True)
        self._hist = np.concatenate([self._hist, x.astype(np.float64, copy=False)])
        return self._release(self._releasable(self._n_in))

    def skip_zeros(self, n: int) -> tuple[int, int]:
        """Account for ``n`` zero input samples without computing the outputs they finalise:
        returns ``[lo, hi)``, the outputs skipped. Afterwards the state is exactly that of
        ``push(zeros(n))`` (the next outputs are the same), at O(taps) cost whatever ``n``.
        For a long gap whose outputs nobody will read (preprocess.py's resynchronisation)."""
        if self._flushed:
            raise ValueError("StreamingResampler.skip_zeros: already flushed")
        n_taps = self._taps.shape[1]
        lo = self._n_out
        self._n_in += _positive_int(n, "n")
        if self.identity:
            self._n_out = self._n_in
            return lo, self._n_out
        self._n_out = self._releasable(self._n_in)
        # Keep what the next output reads (as _release does): real inputs, if the gap is
        # shorter than the filter's reach, then zeros up to the newest input.
        keep_from = max(self._last_input_of(self._n_out) - (n_taps - 1), self._hist_start)
        real = self._hist[keep_from - self._hist_start :]
        zeros = np.zeros((self._n_in - keep_from - len(real), self.n_channels))
        self._hist, self._hist_start = np.concatenate([real, zeros]), keep_from
        return lo, self._n_out

    def flush(self) -> np.ndarray:
        """End of record: release the remaining outputs, computed with zeros past the end as
        the whole-record call does, so the total is ``ceil(input_count · up / down)``."""
        if self._flushed:
            return np.zeros((0, self.n_channels), np.float32)
        self._flushed = True
        if self.identity:
            return np.zeros((0, self.n_channels), np.float32)
        n_total = -(-self._n_in * self.up // self.down)
        if n_total <= self._n_out:
            return np.zeros((0, self.n_channels), np.float32)
        needed = self._last_input_of(n_total - 1) + 1
        pad = needed - (self._hist_start + len(self._hist))
        if pad > 0:
            self._hist = np.concatenate([self._hist, np.zeros((pad, self.n_channels))])
        return self._release(n_total)

    def _release(self, end: int) -> np.ndarray:
        """Compute outputs ``[_n_out, end)`` from the history and drop the inputs no
        later output needs."""
        start = self._n_out
        n_taps = self._taps.shape[1]
        out = np.empty((max(0, end - start), self.n_channels), np.float32)
        if end > start:
            hist = self._hist  # C-contiguous [samples, channels] float64
            row, col = hist.strides
            # Outputs i, i + up, i + 2·up, ... share a phase and their K-sample stretches
            # start `down` inputs apart: per phase, one strided [count, channels, K] view of
            # the history (no copy) times one tap vector. (np.ndarray directly: the stride
            # helpers cost more than the arithmetic for small chunks.)
            for r in range(min(self.up, end - start)):
                i0 = start + r
                first = self._last_input_of(i0) - (n_taps - 1) - self._hist_start
                count = len(range(i0, end, self.up))
                view = np.ndarray(
                    (count, self.n_channels, n_taps),
                    hist.dtype,
                    buffer=hist,
                    offset=first * row,
                    strides=(self.down * row, col, row),
                )
                phase = (i0 * self.down + self.half_len) % self.up
                out[r :: self.up] = view @ self._taps[phase]
            self._n_out = end
        # Keep from the oldest input the next output reads (K − 1 before its n_max).
        keep_from = self._last_input_of(self._n_out) - (n_taps - 1)
        drop = min(max(0, keep_from - self._hist_start), len(self._hist))
        if drop:
            # A copy: a view would keep the whole concatenated chunk alive between pushes.
            self._hist = self._hist[drop:].copy()
            self._hist_start += drop
        return out
