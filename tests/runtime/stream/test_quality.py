"""Per-lead quality: synthetic signals with injected faults, and real records."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mrm_edge.runtime.stream.quality import (
    QualityConfig,
    _rolling_max,
    assess_quality,
)

from mrm_edge.data.dataset import LEADS
from mrm_edge.data.signal import resample
from mrm_edge.data.synthetic import SyntheticPatient, synthesize
from mrm_edge.records import read_recording

FS = 100
LEAD = {name: i for i, name in enumerate(LEADS)}


def clean(rhythm: str = "sinus", seed: int = 0, seconds: float = 10.0) -> np.ndarray:
    """A synthetic window, [samples, leads] at 100 Hz (synthesize gives [leads, samples])."""
    return synthesize(SyntheticPatient(rhythm=rhythm, seed=seed), seconds, fs=FS).T.copy()


@pytest.mark.parametrize("rhythm", ["sinus", "af", "pvc"])
def test_clean_synthetic_windows_pass(rhythm: str) -> None:
    report = assess_quality(clean(rhythm, seed=3), FS)
    assert report.ok and report.reasons == () and report.bad_leads == ()
    assert len(report.leads) == 12 and all(q.ok for q in report.leads)


def test_nan_in_a_lead_is_reported() -> None:
    x = clean()
    x[500:503, LEAD["II"]] = np.nan
    x[10, LEAD["V4"]] = np.inf
    report = assess_quality(x, FS)
    assert not report.ok and report.bad_leads == ("II", "V4")
    assert "lead II NaN/Inf in 3 of 1000 samples" in report.reasons
    assert "lead V4 NaN/Inf in 1 of 1000 samples" in report.reasons


def test_disconnected_lead_is_flat_for_the_whole_window() -> None:
    x = clean()
    x[:, LEAD["V3"]] = np.random.default_rng(0).normal(0, 0.001, 1000)  # µV-level noise
    report = assess_quality(x, FS)
    assert report.bad_leads == ("V3",)
    assert report.reasons == ("lead V3 flat for 10.0 s (peak-to-peak < 0.01 mV)",)


@pytest.mark.parametrize(
    ("flat_s", "flagged"), [(0.5, False), (0.99, False), (1.0, True), (2.5, True)]
)
def test_flat_stretch_is_reported_from_the_configured_span(flat_s: float, flagged: bool) -> None:
    x = clean()
    n = round(flat_s * FS)
    x[300 : 300 + n, LEAD["aVL"]] = 0.2  # electrode lost contact, then came back
    q = assess_quality(x, FS).leads[LEAD["aVL"]]
    assert (not q.ok) == flagged
    if flagged:
        assert q.flat_s == pytest.approx(flat_s)


def test_lead_held_at_the_rail_is_flat_and_saturated_when_the_rail_is_set() -> None:
    x = clean()
    x[:, LEAD["V1"]] = 5.16
    assert assess_quality(x, FS).bad_leads == ("V1",)  # flat, whatever the rail
    report = assess_quality(x, FS, QualityConfig(saturation_mv=5.0))
    assert "lead V1 at the ±5 mV rail for 10.00 s" in report.reasons


def test_clipping_needs_the_configured_run_length() -> None:
    x = clean()
    x[200:203, LEAD["I"]] = -5.2  # 30 ms at the rail: shorter than saturation_min_s
    x[600:610, LEAD["II"]] = 5.3  # 100 ms
    report = assess_quality(x, FS, QualityConfig(saturation_mv=5.0))
    assert report.bad_leads == ("II",)
    assert report.leads[LEAD["II"]].saturated_s == pytest.approx(0.1)
    assert assess_quality(x, FS).ok  # no rail configured: no saturation check


def test_other_lead_orders_and_counts() -> None:
    x = np.zeros((300, 2))
    x[:, 1] = np.sin(np.arange(300) / 5)
    report = assess_quality(x, FS, lead_names=("A", "B"))
    assert report.bad_leads == ("A",) and report.reasons[0].startswith("lead A flat for 3.0 s")


def test_windows_shorter_than_the_flat_span_are_not_called_flat() -> None:
    assert assess_quality(np.zeros((50, 12)), FS).ok


# ---------------------------------------------------------------------------- plausibility


def test_huge_float32_samples_are_implausible_not_classified() -> None:
    """Finding 6: a real-looking signal scaled to ~1e29 mV (float32 holds it) is flagged."""
    x = (clean() * np.float32(1e29)).astype(np.float32)
    report = assess_quality(x, FS)
    assert not report.ok and report.bad_leads == LEADS
    q = report.leads[LEAD["II"]]
    assert q.out_of_range > 0 and q.nonfinite == 0
    assert any(
        r.startswith("lead II implausible:") and "beyond ±50 mV" in r for r in report.reasons
    )


@pytest.mark.parametrize(
    ("peak_mv", "flagged"), [(49.9, False), (50.0, False), (50.1, True), (-80.0, True)]
)
def test_amplitude_limit_is_the_configured_range(peak_mv: float, flagged: bool) -> None:
    x = clean()
    x[400:420, LEAD["V2"]] = peak_mv  # 0.2 s plateau: the steps in and out stay in slew
    x[380:400, LEAD["V2"]] = np.linspace(0, peak_mv, 20)
    x[420:440, LEAD["V2"]] = np.linspace(peak_mv, 0, 20)
    q = assess_quality(x, FS).leads[LEAD["V2"]]
    assert (q.out_of_range > 0) == flagged and q.too_steep == 0
    assert assess_quality(x, FS, QualityConfig(range_mv=100.0)).ok


def test_square_wave_within_range_is_too_steep() -> None:
    """±20 mV alternating every sample at 100 Hz: 40 mV per 10 ms = 4,000 mV/s."""
    x = clean()
    x[:, LEAD["V5"]] = np.where(np.arange(1000) % 2, 20.0, -20.0)
    report = assess_quality(x, FS)
    q = report.leads[LEAD["V5"]]
    assert report.bad_leads == ("V5",) and q.out_of_range == 0 and q.too_steep == 999
    assert "faster than 2000 mV/s (peak 4e+03 mV/s)" in report.reasons[0]


def test_slew_limit_is_per_second_at_the_window_rate() -> None:
    step = np.zeros((1000, 12))
    step[500:, 0] = 2_000.0 / FS * 1.01  # one step of 2,020 mV/s, then flat
    step[:, 1:] = np.sin(np.arange(1000) / 5)[:, None]  # the other leads: not flat
    assert assess_quality(step, FS).leads[0].too_steep == 1
    step[500:, 0] = 2_000.0 / FS * 0.99
    assert assess_quality(step, FS).leads[0].too_steep == 0


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan, 1e29, 3e38])
@pytest.mark.parametrize("fs_in", [100, 250, 500])
def test_non_finite_and_huge_input_leaks_no_warning(value: float, fs_in: int) -> None:
    """Through the stream path (resampler + checks) with warnings as errors: rejected, and
    nothing for numpy to warn about on the terminal."""
    from mrm_edge.runtime.stream.preprocess import StreamPreprocessor

    x = synthesize(SyntheticPatient(seed=1), 12.0, fs=fs_in).T.astype(np.float32)
    x[:, LEAD["aVF"]] = value
    pre = StreamPreprocessor("bed", fs_in, FS, 1000, 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        windows = pre.push(x) + pre.finish()
    assert windows and all(not w.ok and "lead aVF" in w.reason for w in windows)
    assert all("aVF" in w.quality.bad_leads for w in windows)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 120), span=st.integers(1, 40), seed=st.integers(0, 1000))
def test_rolling_max_equals_brute_force(n: int, span: int, seed: int) -> None:
    if span > n:
        return
    x = np.random.default_rng(seed).normal(size=(3, n))  # [rows, samples]
    expect = np.stack([x[:, i : i + span].max(axis=1) for i in range(n - span + 1)], axis=1)
    np.testing.assert_array_equal(_rolling_max(x, span), expect)


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(100, 400),
    segments=st.lists(
        st.tuples(st.integers(0, 399), st.integers(1, 250), st.floats(0, 0.02)), max_size=4
    ),
    seed=st.integers(0, 1000),
)
def test_flat_duration_equals_brute_force(n: int, segments, seed: int) -> None:
    """Quiet stretches of random length and ripple, checked against every 1 s stretch."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.3, (n, 12))
    for start, length, ripple in segments:
        lead = int(rng.integers(12))
        seg = x[start : start + length, lead]
        x[start : start + length, lead] = 0.1 + rng.uniform(-ripple / 2, ripple / 2, len(seg))
    flat_at = np.stack(
        [np.ptp(x[p : p + 100], axis=0) < 0.01 for p in range(n - 100 + 1)]
    )  # [stretches, leads]
    covered = np.zeros((n, 12), bool)
    for p in range(n - 100 + 1):
        covered[p : p + 100] |= flat_at[p]
    expect = covered.sum(axis=0) / FS
    got = [q.flat_s for q in assess_quality(x, FS).leads]
    np.testing.assert_allclose(got, expect)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: assess_quality(np.zeros((12, 1000)), FS), r"window must be \[samples, 12\]"),
        (lambda: assess_quality(np.zeros((1000, 12)), 0), "sampling_rate must be positive"),
        (lambda: assess_quality(np.zeros((1000, 12)), 100.0), "sampling_rate must be an integer"),
        (lambda: QualityConfig(flat_ptp_mv=0), "flat_ptp_mv must be a positive number"),
        (lambda: QualityConfig(saturation_mv=-5), "saturation_mv must be None or > 0 mV"),
        (lambda: QualityConfig(range_mv=0), "range_mv must be a positive number"),
        (lambda: QualityConfig(slew_mv_per_s=float("inf")), "slew_mv_per_s must be a positive"),
    ],
)
def test_bad_input_is_named(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------------------- real records


@pytest.mark.realdata
def test_real_ptbxl_records_raise_no_false_alarms(ptbxl_root: Path) -> None:
    """The first 40 records at 100 Hz and the first 10 at 500 → 100 Hz, every 10 s window."""
    records = sorted((ptbxl_root / "records100/00000").glob("*_lr.hea"))[:40]
    windows = [read_recording(p).signal.T for p in records]
    for p in sorted((ptbxl_root / "records500/00000").glob("*_hr.hea"))[:10]:
        rec = read_recording(p)
        windows.append(resample(rec.signal, 500, FS).T)
    assert len(windows) == 50
    for w in windows:
        assert assess_quality(w[:1000], FS).reasons == ()


@pytest.mark.realdata
def test_real_cpsc_lead_off_is_caught(cpsc_root: Path) -> None:
    """A1988's V6 sits at ~0.01 mV for ~5 s around 30 s, then swings to the ±5.16 mV rail;
    the other leads stay clean. A clean CPSC record passes."""
    rec = read_recording(cpsc_root / "A1988.mat")
    x = resample(rec.signal, 500, FS).T
    flat = assess_quality(x[2800:3800], FS)
    assert flat.bad_leads == ("V6",) and flat.leads[LEAD["V6"]].flat_s > 3.0
    rail = assess_quality(x[3400:4400], FS, QualityConfig(saturation_mv=5.0))
    assert rail.bad_leads == ("V6",) and rail.leads[LEAD["V6"]].saturated_s >= 0.1
    assert assess_quality(x[:1000], FS).ok
    other = read_recording(cpsc_root / "A1980.mat")
    assert assess_quality(resample(other.signal, 500, FS).T[:1000], FS).ok


@pytest.mark.realdata
def test_plausibility_limits_reject_no_real_window(ptbxl_root: Path, cpsc_root: Path) -> None:
    """Every 10 s window of all 500 PTB-XL records (100 Hz, and 500 → 100 Hz) and of the
    CPSC 2018 sample passes range and slew; the largest seen (11.4 mV, 427 mV/s) is printed."""
    signals = [read_recording(p).signal for p in sorted(ptbxl_root.glob("records100/*/*.hea"))]
    for p in sorted(ptbxl_root.glob("records500/*/*.hea")):
        signals.append(resample(read_recording(p).signal, 500, FS))
    for p in sorted(cpsc_root.glob("*.mat")):
        signals.append(resample(read_recording(p).signal, 500, FS))
    assert len(signals) >= 1000
    peak = slew = 0.0
    for sig in signals:
        x = sig.T
        peak = max(peak, float(np.nanmax(np.abs(x))))
        slew = max(slew, float(np.nanmax(np.abs(np.diff(x, axis=0)))) * FS)
        for start in range(0, len(x) - 999, 1000):
            leads = assess_quality(x[start : start + 1000], FS).leads
            assert not any(q.out_of_range or q.too_steep for q in leads)
    print(f"largest |x| {peak:.2f} mV, fastest step {slew:.0f} mV/s")
    assert peak < QualityConfig().range_mv / 4 and slew < QualityConfig().slew_mv_per_s / 4
