"""StreamingResampler: chunked streaming equals the offline whole-record resample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mrm_edge.runtime.stream.resample import StreamingResampler

from mrm_edge.data.signal import resample
from mrm_edge.records import read_recording

RATE_PAIRS = [(500, 100), (250, 100), (360, 100), (1000, 100), (100, 100), (128, 100)]


def stream(x: np.ndarray, fs_in: int, fs_out: int, sizes: list[int]) -> np.ndarray:
    """Push ``x`` [samples, channels] in chunks cycling through ``sizes``, then flush."""
    r = StreamingResampler(fs_in, fs_out, x.shape[1])
    out, pos, i = [], 0, 0
    while pos < len(x):
        n = sizes[i % len(sizes)]
        out.append(r.push(x[pos : pos + n]))
        pos, i = min(pos + n, len(x)), i + 1
        assert r.input_count == pos and r._n_out == sum(len(o) for o in out)
    out.append(r.flush())
    return np.concatenate(out)


def offline(x: np.ndarray, fs_in: int, fs_out: int) -> np.ndarray:
    """The reference, in the runtime's [samples, channels] layout."""
    return resample(x.T, fs_in, fs_out).T


def ecg_like(n: int, seed: int) -> np.ndarray:
    """mV-scale test signal with sharp features: a random walk plus spikes, float32."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(0, 0.05, (n, 12)), axis=0)
    x[rng.random((n, 12)) < 0.02] += 2.0
    return x.astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(
    pair=st.sampled_from(RATE_PAIRS),
    n=st.integers(0, 2500),
    sizes=st.lists(st.integers(1, 700), min_size=1, max_size=8),
    seed=st.integers(0, 2**16),
)
def test_any_chunking_equals_whole_record(pair, n, sizes, seed) -> None:
    fs_in, fs_out = pair
    x = ecg_like(n, seed)
    y = stream(x, fs_in, fs_out, sizes)
    ref = offline(x, fs_in, fs_out)
    assert y.shape == ref.shape == (-(-n * fs_out // fs_in), 12)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref, atol=1e-5, rtol=1e-6)


@pytest.mark.parametrize(("fs_in", "fs_out"), [(100, 500), (7, 3), (44, 100)])
def test_other_ratios_including_upsampling(fs_in: int, fs_out: int) -> None:
    x = ecg_like(999, 1)
    np.testing.assert_allclose(
        stream(x, fs_in, fs_out, [1, 13, 250]), offline(x, fs_in, fs_out), atol=1e-5
    )


@pytest.mark.parametrize(("fs_in", "fs_out"), [(500, 100), (360, 100), (128, 100)])
def test_released_samples_never_depend_on_later_input(fs_in: int, fs_out: int) -> None:
    """What push returns is final: two different continuations leave it unchanged."""
    rng = np.random.default_rng(0)
    prefix = ecg_like(1234, 2)
    r = StreamingResampler(fs_in, fs_out)
    released = r.push(prefix)
    assert len(released) > 0
    for _ in range(2):
        tail = rng.normal(0, 3, (500, 12)).astype(np.float32)
        ref = offline(np.concatenate([prefix, tail]), fs_in, fs_out)
        np.testing.assert_allclose(released, ref[: len(released)], atol=1e-5)
    # ... and it released everything that was final: the next sample needs more input.
    nxt = len(released)
    assert (nxt * r.down + r.half_len) // r.up >= len(prefix)


@pytest.mark.parametrize(("fs_in", "fs_out"), [(500, 100), (360, 100), (128, 100), (100, 100)])
def test_outputs_depending_on_matches_a_perturbation(fs_in: int, fs_out: int) -> None:
    x = ecg_like(3000, 3)
    a, b = 1000, 1037
    bumped = x.copy()
    bumped[a:b] += 1.0
    changed = np.flatnonzero(
        np.abs(offline(bumped, fs_in, fs_out) - offline(x, fs_in, fs_out)).max(axis=1) > 0
    )
    lo, hi = StreamingResampler(fs_in, fs_out).outputs_depending_on(a, b)
    # Covers every changed output, and is tight to one sample a side: the filter's end taps
    # sit on zero crossings of the sinc (~1e-18), too small to show in float32.
    assert lo <= changed.min() <= lo + 1 and hi - 2 <= changed.max() <= hi - 1


def test_identity_passes_chunks_through_as_float32_copies() -> None:
    r = StreamingResampler(100, 100)
    x = np.arange(24, dtype=np.float64).reshape(2, 12)
    y = r.push(x)
    assert y.dtype == np.float32 and np.array_equal(y, x) and not np.shares_memory(x, y)
    assert r._n_out == 2 and r.flush().shape == (0, 12)


def test_flush_pads_with_zeros_like_the_whole_record_call() -> None:
    x = np.ones((501, 12), np.float32)
    r = StreamingResampler(500, 100)
    y = np.concatenate([r.push(x), r.flush()])
    assert len(y) == 101  # ceil(501 / 5)
    np.testing.assert_allclose(y, offline(x, 500, 100), atol=1e-6)
    assert r.flush().shape == (0, 12)  # idempotent


def test_chunks_of_any_numeric_dtype_and_empty_chunks() -> None:
    r = StreamingResampler(500, 100, n_channels=2)
    assert r.push(np.zeros((0, 2))).shape == (0, 2)
    assert r.push(np.ones((400, 2), np.int16)).dtype == np.float32


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fs_in": 0, "fs_out": 100}, "fs_in must be a positive integer"),
        ({"fs_in": 500.0, "fs_out": 100}, "fs_in must be a positive integer"),
        ({"fs_in": 500, "fs_out": True}, "fs_out must be a positive integer"),
        ({"fs_in": 500, "fs_out": 100, "n_channels": 0}, "n_channels must be a positive integer"),
    ],
)
def test_bad_settings_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamingResampler(**kwargs)


def test_bad_chunks_are_named() -> None:
    r = StreamingResampler(500, 100)
    with pytest.raises(ValueError, match=r"chunk must be \[samples, 12\], got shape \(12, 500\)"):
        r.push(np.zeros((12, 500)))
    with pytest.raises(ValueError, match="must be numeric"):
        r.push(np.array([["a"] * 12]))
    r.flush()
    with pytest.raises(ValueError, match="already flushed"):
        r.push(np.zeros((1, 12)))


def _chunked_real(x: np.ndarray, fs: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    sizes = [int(s) for s in rng.integers(1, 2 * fs, 40)]
    return float(np.abs(stream(x, fs, 100, sizes) - offline(x, fs, 100)).max())


@pytest.mark.realdata
def test_real_ptbxl_500hz_record(ptbxl_root: Path) -> None:
    rec = read_recording(ptbxl_root / "records500/00000/00001_hr.hea")
    assert rec.sampling_rate == 500
    for seed in range(3):
        assert _chunked_real(rec.signal.T, 500, seed) <= 1e-5


@pytest.mark.realdata
def test_real_cpsc_record(cpsc_root: Path) -> None:
    rec = read_recording(cpsc_root / "A1980.mat")
    assert rec.sampling_rate == 500
    for seed in range(3):
        assert _chunked_real(rec.signal.T, 500, seed) <= 1e-5


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    rates=st.sampled_from([(500, 100), (50, 100), (100, 100), (360, 100), (257, 100)]),
    before=st.integers(0, 900),
    gap=st.integers(1, 5000),
)
def test_skip_zeros_leaves_the_state_push_zeros_would(rates, before, gap) -> None:
    """skip_zeros(n) is push(zeros(n)) without the outputs: what follows is identical, and
    it names the outputs it skipped."""
    rng = np.random.default_rng(gap)
    x, y = rng.normal(size=(before, 2)), rng.normal(size=(1234, 2))
    pushed, skipped = StreamingResampler(*rates, 2), StreamingResampler(*rates, 2)
    n0 = len(pushed.push(x))
    skipped.push(x)
    zeros_out = pushed.push(np.zeros((gap, 2)))
    assert skipped.skip_zeros(gap) == (n0, n0 + len(zeros_out))
    np.testing.assert_array_equal(pushed.push(y), skipped.push(y))
    np.testing.assert_array_equal(pushed.flush(), skipped.flush())


def test_skip_zeros_of_a_huge_gap_is_cheap() -> None:
    r = StreamingResampler(500, 100, 12)
    r.push(np.ones((777, 12)))
    lo, hi = r.skip_zeros(2**47)
    assert hi - lo > 2**47 // 5 - 100 and r.input_count == 777 + 2**47
    assert len(r.push(np.ones((500, 12)))) == 100  # and it goes on
