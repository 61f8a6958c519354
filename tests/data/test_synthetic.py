"""Synthetic 12-lead generator: physiology, lead relations, determinism and streaming."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import find_peaks

from mrm_edge.data.dataset import LEADS, EcgDataset
from mrm_edge.data.errors import DataError
from mrm_edge.data.synthetic import (
    RHYTHMS,
    SyntheticPatient,
    SyntheticStream,
    make_patients,
    synthesize,
)

FS = 500


def r_peaks(lead_ii: np.ndarray, fs: int = FS) -> np.ndarray:
    """R peaks as a simple detector would find them: tall and >= 250 ms apart."""
    height = 0.5 * np.percentile(lead_ii, 99.5)
    peaks, _ = find_peaks(lead_ii, height=height, distance=int(0.25 * fs))
    return peaks


def rr_cv(x: np.ndarray) -> float:
    rr = np.diff(r_peaks(x[1]))
    return float(rr.std() / rr.mean())


def test_shape_dtype_and_units() -> None:
    x = synthesize(SyntheticPatient(), seconds=10, fs=FS)
    assert x.shape == (len(LEADS), 10 * FS) and x.dtype == np.float32
    assert synthesize(SyntheticPatient(), seconds=2.5, fs=100).shape == (12, 250)
    clean = synthesize(SyntheticPatient(noise_mv=0, wander_mv=0), seconds=10)
    r_ii = clean[1].max()
    assert 0.5 < r_ii < 1.5  # R in lead II, mV
    assert max(clean[8:11].max(axis=1)) > r_ii  # taller R somewhere in V3-V5
    assert clean[3].min() < -0.5  # aVR is negative


@pytest.mark.parametrize("rhythm", ["sinus", "af", "pvc"])
def test_einthoven_and_goldberger_hold_with_noise(rhythm: str) -> None:
    # Noise and wander are added to I, II (and V1-V6) before the others are derived,
    # so the relations are exact up to float32 rounding, not only for the clean signal.
    p = SyntheticPatient(rhythm=rhythm, noise_mv=0.05, emg_mv=0.05, powerline_mv=0.05, seed=3)
    x = synthesize(p, seconds=5).astype(np.float64)
    i, ii, iii, avr, avl, avf = x[:6]
    for derived, expected in ((iii, ii - i), (avr, -(i + ii) / 2), (avl, i - ii / 2),
                              (avf, ii - i / 2)):  # fmt: skip
        np.testing.assert_allclose(derived, expected, atol=1e-5)


@pytest.mark.parametrize("heart_rate", [45.0, 72.0, 110.0, 160.0])
def test_sinus_heart_rate_is_detected_within_ten_percent(heart_rate: float) -> None:
    p = SyntheticPatient(heart_rate=heart_rate, noise_mv=0.02, wander_mv=0.1, seed=1)
    x = synthesize(p, seconds=30)
    detected = 60.0 * FS / np.diff(r_peaks(x[1])).mean()
    assert detected == pytest.approx(heart_rate, rel=0.10)


def test_af_is_irregularly_irregular_and_has_no_p_waves() -> None:
    sinus = synthesize(SyntheticPatient(rhythm="sinus", seed=2), seconds=60)
    af = synthesize(SyntheticPatient(rhythm="af", seed=2), seconds=60)
    assert rr_cv(af) > 3 * rr_cv(sinus)
    assert rr_cv(sinus) < 0.08
    # Without P waves, the 100-250 ms before each R in lead II is flat (only f-waves).
    clean = dict(noise_mv=0.0, wander_mv=0.0, fwave_mv=0.0, seed=2)
    for rhythm, has_p in (("sinus", True), ("af", False)):
        s = SyntheticStream(SyntheticPatient(rhythm=rhythm, **clean))
        x = s.read(20 * FS)
        pre = [x[1, k - 110 : k - 50].max() for k, _ in s.last_beats if k > 200]
        assert (np.median(pre) > 0.1) == has_p


def test_pvc_beats_are_premature_and_annotated() -> None:
    s = SyntheticStream(SyntheticPatient(rhythm="pvc", pvc_rate=0.3, seed=5))
    s.read(60 * FS)
    beats = s.last_beats
    kinds = [k for _, k in beats]
    assert 0 < kinds.count("V") < kinds.count("N")
    samples = np.array([b for b, _ in beats])
    rr = np.diff(samples)
    before_v = np.array([kinds[j + 1] == "V" for j in range(len(rr))])
    assert rr[before_v].mean() < 0.75 * rr[~before_v].mean()  # premature coupling


def test_make_patients_is_varied_and_reproducible() -> None:
    cohort = make_patients(12, seed=4)
    assert cohort == make_patients(12, seed=4)
    assert cohort != make_patients(12, seed=5)
    assert len({p.seed for p in cohort}) == 12
    assert len({p.rhythm for p in cohort}) >= 2
    assert max(p.heart_rate for p in cohort) - min(p.heart_rate for p in cohort) > 15
    assert [p.patient_id for p in cohort[:2]] == ["syn-000", "syn-001"]


def test_same_seed_same_signal_and_different_seed_differs() -> None:
    a = synthesize(SyntheticPatient(seed=11, emg_mv=0.02), seconds=5)
    b = synthesize(SyntheticPatient(seed=11, emg_mv=0.02), seconds=5)
    c = synthesize(SyntheticPatient(seed=12, emg_mv=0.02), seconds=5)
    assert np.array_equal(a, b)
    assert np.abs(a - c).mean() > 0.01


@settings(max_examples=25, deadline=None)
@given(
    rhythm=st.sampled_from(["sinus", "af", "pvc"]),
    seed=st.integers(0, 2**31 - 1),
    fs=st.sampled_from([100, 250, 360, 500]),
    chunks=st.lists(st.integers(0, 900), min_size=1, max_size=12),
)
def test_chunked_stream_equals_one_synthesize_call(
    rhythm: str, seed: int, fs: int, chunks: list[int]
) -> None:
    p = SyntheticPatient(rhythm=rhythm, seed=seed, pvc_rate=0.3, emg_mv=0.02, powerline_mv=0.01)
    stream = SyntheticStream(p, fs=fs)
    parts = [stream.read(n) for n in chunks]
    assert [part.shape for part in parts] == [(12, n) for n in chunks]
    whole = synthesize(p, seconds=sum(chunks) / fs, fs=fs)
    # Bit-exact, not merely close: a monitor replaying a stream must see the same numbers.
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    assert stream.position == sum(chunks)


def test_stream_runs_far_into_the_future_with_bounded_state() -> None:
    stream = SyntheticStream(SyntheticPatient(rhythm="af", seed=9), fs=250)
    for _ in range(50):
        chunk = stream.read(250 * 20)  # 1000 s in total
    assert np.isfinite(chunk).all() and np.abs(chunk).max() < 5
    stream.read(25)
    assert len(stream._beats) < 6  # only beats near the read position are kept


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rhythm": "vf"}, "rhythm"),
        ({"heart_rate": 10}, "heart_rate"),
        ({"noise_mv": -1}, "noise_mv"),
        ({"seed": -3}, "seed"),
        ({"pvc_rate": 2}, "pvc_rate"),
    ],
)
def test_bad_configuration_is_a_data_error(kwargs: dict, field: str) -> None:
    with pytest.raises(DataError, match=f"field '{field}'"):
        SyntheticPatient(**kwargs)


def test_bad_stream_arguments() -> None:
    with pytest.raises(DataError, match="fs"):
        SyntheticStream(SyntheticPatient(), fs=0)
    with pytest.raises(DataError, match="n_samples"):
        SyntheticStream(SyntheticPatient()).read(-1)
    assert SyntheticStream(SyntheticPatient()).read(0).shape == (12, 0)


def test_a_synthetic_cohort_makes_a_well_behaved_ecg_dataset() -> None:
    # The demo path with no real data: synthetic records in the common container.
    cohort = make_patients(6, seed=1)
    x = np.stack([synthesize(p, seconds=2, fs=100) for p in cohort])
    rhythms = sorted(RHYTHMS)
    y = np.array([[p.rhythm == r for r in rhythms] for p in cohort], dtype=np.float32)
    ds = EcgDataset(
        x=x, y=y, labels=rhythms, record_ids=[p.patient_id for p in cohort],
        folds=[1, 1, 2, 9, 10, 10], sampling_rate=100, source="synthetic", task="rhythm",
    )  # fmt: skip
    assert len(ds) == 6 and ds.n_samples == 200
    assert sum(ds.label_counts().values()) == 6
    assert json.loads(json.dumps(ds.describe()))["fold_counts"] == {"1": 2, "2": 1, "9": 1, "10": 2}
    fold10 = ds.select_folds([10])
    assert fold10.record_ids == ["syn-004", "syn-005"]
    np.testing.assert_array_equal(fold10.x, x[4:])
    assert len(ds.select_folds([3])) == 0
    train, val, test = ds.split()
    assert (len(train), len(val), len(test)) == (3, 1, 2)
    with pytest.raises(DataError, match=r"y has shape \(6, 3\), expected \(6, 2\)"):
        EcgDataset(x, y, rhythms[:2], ds.record_ids, ds.folds, 100, "synthetic", "rhythm")
    with pytest.raises(DataError, match=r"x has shape \(6, 200\)"):
        EcgDataset(x[:, 0], y, rhythms, ds.record_ids, ds.folds, 100, "synthetic", "rhythm")
