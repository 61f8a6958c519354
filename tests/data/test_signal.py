"""mrm_edge.data.signal: resampling and length fitting."""

import numpy as np
import pytest

from mrm_edge.data.errors import DataError
from mrm_edge.data.signal import fit_length, resample


def test_resample_changes_the_length_by_the_rate_ratio() -> None:
    t = np.arange(500) / 500
    x = np.stack([np.sin(2 * np.pi * 5 * t)] * 12)
    y = resample(x, 500, 100)
    assert y.shape == (12, 100)
    np.testing.assert_allclose(y[0, 10:90], np.sin(2 * np.pi * 5 * np.arange(100) / 100)[10:90],
                               atol=0.05)  # fmt: skip
    assert resample(x, 500, 500) is x or np.array_equal(resample(x, 500, 500), x)


def test_resample_refuses_bad_rates() -> None:
    with pytest.raises(DataError, match="positive integer rate"):
        resample(np.zeros((12, 10)), 0, 100)


def test_fit_length_truncates_and_pads_with_zeros() -> None:
    x = np.ones((2, 5))
    assert fit_length(x, 3).shape == (2, 3)
    padded = fit_length(x, 7)
    assert padded.shape == (2, 7) and padded[:, 5:].sum() == 0
    with pytest.raises(DataError):
        fit_length(x, -1)
