"""Display decimation: chunk-invariant, keeps time at any rate, keeps QRS peaks."""

from __future__ import annotations

import numpy as np
import pytest
from mrm_edge.runtime.web.decimate import DISPLAY_HZ, DisplayDecimator

from mrm_edge.data.synthetic import SyntheticPatient, synthesize


@pytest.mark.parametrize("fs", [500, 360, 257, 100, 50])
def test_chunks_of_any_size_give_the_same_output_at_the_display_rate(fs):
    x = np.random.default_rng(fs).normal(size=(fs * 7 + 3, 12)).astype(np.float32)
    whole = DisplayDecimator(fs).push(x)
    d, parts, i = DisplayDecimator(fs), [], 0
    for n in [1, 7, fs // 3, fs, 2 * fs, 13, 10 * fs]:
        parts.append(d.push(x[i : i + n]))
        i += n
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    out = min(fs, DISPLAY_HZ)  # complete buckets only: bucket j ends at floor((j+1)·fs/out)
    assert len(whole) == ((len(x) + 1) * out - 1) // fs


def test_r_peaks_keep_their_height_at_500_hz():
    ecg = synthesize(SyntheticPatient(seed=3), 10, fs=500)[1]  # lead II
    out = DisplayDecimator(500).push(ecg[:, None])[:, 0]
    assert out.max() == pytest.approx(ecg.max())  # the peak sample itself is kept
    assert ecg[::5].max() < out.max() or ecg[::5].max() == pytest.approx(out.max())


def test_nan_shows_as_a_gap():
    x = np.zeros((500, 12), np.float32)
    x[100:110, 6] = np.nan
    out = DisplayDecimator(500).push(x)
    assert np.isnan(out[20:22, 6]).all() and not np.isnan(out[:, :6]).any()
