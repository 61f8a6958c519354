"""Per-lead standardisation: fitting, applying and the JSON form shipped with a model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mrm_edge.data.dataset import LEADS
from mrm_edge.data.errors import DataError
from mrm_edge.data.normalization import LeadStandardizer


@pytest.fixture
def train_x() -> np.ndarray:
    rng = np.random.default_rng(0)
    offsets = np.linspace(-0.5, 0.5, 12)[None, :, None]
    scales = np.linspace(0.05, 2.0, 12)[None, :, None]
    return (offsets + scales * rng.standard_normal((40, 12, 500))).astype(np.float32)


def test_fit_matches_float64_reference(train_x: np.ndarray) -> None:
    st = LeadStandardizer.fit(train_x)
    ref = train_x.astype(np.float64).transpose(1, 0, 2).reshape(12, -1)
    np.testing.assert_allclose(st.mean, ref.mean(axis=1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(st.std, ref.std(axis=1), rtol=1e-10)


def test_applied_training_data_is_standard_per_lead(train_x: np.ndarray) -> None:
    z = LeadStandardizer.fit(train_x).apply(train_x)
    assert z.dtype == np.float32 and z.shape == train_x.shape
    np.testing.assert_allclose(z.mean(axis=(0, 2), dtype=np.float64), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2), dtype=np.float64), 1.0, atol=1e-4)


def test_apply_accepts_a_single_record(train_x: np.ndarray) -> None:
    st = LeadStandardizer.fit(train_x)
    np.testing.assert_allclose(st.apply(train_x[3]), st.apply(train_x)[3], rtol=1e-6)
    with pytest.raises(DataError, match="expected"):
        st.apply(train_x[:, :11])


def test_flat_lead_gets_the_std_floor(train_x: np.ndarray) -> None:
    x = train_x.copy()
    x[:, 4] = 0.25  # a disconnected electrode
    st = LeadStandardizer.fit(x)
    assert st.std[4] == pytest.approx(1e-6)
    z = st.apply(x)
    assert np.isfinite(z).all() and np.all(z[:, 4] == 0)


def test_json_round_trip(train_x: np.ndarray) -> None:
    st = LeadStandardizer.fit(train_x)
    d = json.loads(json.dumps(st.to_dict()))
    assert d["leads"] == list(LEADS) and d["units"] == "mV"
    assert all(isinstance(v, float) for v in d["mean"] + d["std"])
    back = LeadStandardizer.from_dict(d)
    np.testing.assert_array_equal(back.mean, st.mean)
    np.testing.assert_array_equal(back.std, st.std)
    np.testing.assert_array_equal(back.apply(train_x), st.apply(train_x))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mean": [0.0] * 11}, r"field 'mean' has shape \(11,\), expected 12"),
        ({"std": [[1.0] * 12]}, r"field 'std' has shape \(1, 12\)"),
        ({"std": [1.0] * 11 + [0.0]}, r"field 'std' has values <= 0"),
        ({"std": ["a"] * 12}, r"field 'std' is not a list of numbers"),
        ({"mean": [float("nan")] * 12}, r"expected 12 finite values"),
        ({"leads": list(reversed(LEADS))}, r"field 'leads' is"),
        ({"units": "uV"}, r"field 'units' is 'uV', expected 'mV'"),
    ],
)
def test_from_dict_rejects_bad_input(change: dict, message: str) -> None:
    good = LeadStandardizer(mean=np.zeros(12), std=np.ones(12)).to_dict()
    with pytest.raises(DataError, match=message):
        LeadStandardizer.from_dict(good | change)


def test_from_dict_requires_both_fields_and_fit_checks_shape() -> None:
    with pytest.raises(DataError, match="field 'std' is missing"):
        LeadStandardizer.from_dict({"mean": [0.0] * 12})
    with pytest.raises(DataError, match=r"x has shape \(12, 100\)"):
        LeadStandardizer.fit(np.zeros((12, 100)))
    with pytest.raises(DataError, match="non-finite"):
        LeadStandardizer.fit(np.full((2, 12, 10), np.inf))
