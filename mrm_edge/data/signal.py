"""Small signal helpers shared by the loaders, the trainer and the live runtime.

They operate on the last axis so one call handles a single lead ``[t]``, a record
``[12, t]`` or a batch ``[n, 12, t]``.
"""

from __future__ import annotations

from math import gcd

import numpy as np

from .errors import DataError

#: The sampling rates accepted from a file or a device (Hz): below 50 Hz a 12-lead ECG has
#: lost what the model reads; above 20 kHz it is no ECG recorder's rate.
MIN_RATE, MAX_RATE = 50, 20_000


def resample(x: np.ndarray, fs_in: int, fs_out: int) -> np.ndarray:
    """Resample ``x`` along its last axis from ``fs_in`` to ``fs_out`` Hz.

    Uses a polyphase FIR filter with the rational factor ``fs_out/fs_in`` reduced by
    their gcd (500 → 100 Hz is up=1, down=5): it is exact for integer rates, applies a
    proper anti-aliasing low-pass and, unlike FFT resampling, does not wrap the end of a
    record into its start. The output has ``ceil(t * fs_out / fs_in)`` samples and the
    input's floating dtype (float64 for integer input).
    """
    for name, fs in (("fs_in", fs_in), ("fs_out", fs_out)):
        if isinstance(fs, bool) or not isinstance(fs, (int, np.integer)) or fs <= 0:
            raise DataError(f"resample: {name} must be a positive integer rate in Hz, got {fs!r}")
    # Deferred: scipy.signal costs ~1 s to import, too much for edge start-up.
    from scipy.signal import resample_poly

    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
    if fs_in == fs_out:
        return x.astype(dtype, copy=True)
    g = gcd(int(fs_in), int(fs_out))
    y = resample_poly(x, int(fs_out) // g, int(fs_in) // g, axis=-1)
    return y.astype(dtype, copy=False)


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Truncate or zero-pad ``x`` along its last axis to exactly ``n`` samples.

    Truncation keeps the *first* ``n`` samples and padding appends zeros at the *end*,
    as the PTB-XL benchmark does for CPSC 2018: the record start stays aligned, and zero
    is the neutral value for baseline-referenced mV signals. Always returns a new array.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise DataError(f"fit_length: n must be a non-negative integer, got {n!r}")
    x = np.asarray(x)
    t = x.shape[-1]
    if t >= n:
        return x[..., :n].copy()
    out = np.zeros((*x.shape[:-1], n), dtype=x.dtype)
    out[..., :t] = x
    return out
