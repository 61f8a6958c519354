"""StreamPreprocessor: streaming equals offline on real records, gaps, quality, layout."""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mrm_edge.runtime.stream.preprocess import StreamPreprocessor, Window, to_model_batch

from mrm_edge.data.dataset import LEADS
from mrm_edge.data.signal import resample
from mrm_edge.records import read_recording

RATE, WINDOW, HOP = 100, 1000, 100  # the shipped card's rate and window; hop 1 s


@cache
def record(path: Path) -> tuple[np.ndarray, int]:
    """[samples, 12] float32 mV (the runtime layout) and the rate."""
    rec = read_recording(path)
    return np.ascontiguousarray(rec.signal.T), rec.sampling_rate


def offline_windows(x: np.ndarray, fs: int) -> np.ndarray:
    """What the offline path computes: resample the whole record, cut at k · hop."""
    y = resample(x.T, fs, RATE).T
    n = 0 if len(y) < WINDOW else (len(y) - WINDOW) // HOP + 1
    return np.stack([y[k * HOP : k * HOP + WINDOW] for k in range(n)])


def feed(
    pp: StreamPreprocessor,
    x: np.ndarray,
    sizes: list[int],
    fs: int,
    timestamps: bool = True,
    t0: float = 1_700_000_000.0,
) -> list[Window]:
    out, pos, i = [], 0, 0
    while pos < len(x):
        n = sizes[i % len(sizes)]
        out += pp.push(x[pos : pos + n], t0 + pos / fs if timestamps else None)
        pos, i = pos + n, i + 1
    return out + pp.finish()


def assert_matches_offline(windows: list[Window], expect: np.ndarray) -> float:
    assert [w.start for w in windows] == [k * HOP for k in range(len(expect))]
    err = 0.0
    for w, ref in zip(windows, expect, strict=True):
        assert w.data.shape == (WINDOW, 12) and w.data.dtype == np.float32
        err = max(err, float(np.abs(w.data - ref).max()))
    assert err <= 1e-5
    return err


def real_records(ptbxl_root: Path, cpsc_root: Path) -> list[Path]:
    return [
        ptbxl_root / "records100/00000/00001_lr.hea",
        ptbxl_root / "records100/00000/00002_lr.hea",
        ptbxl_root / "records500/00000/00001_hr.hea",
        ptbxl_root / "records500/00000/00003_hr.hea",
        *sorted(cpsc_root.glob("A19*.mat")),  # 500 Hz, 10 to 54 s
    ]


@pytest.mark.realdata
def test_streaming_equals_offline_on_every_real_record(ptbxl_root: Path, cpsc_root: Path) -> None:
    """The issue's acceptance test: random chunk sizes, every window equal to the offline
    window within 1e-5 mV, (samples − window) // hop + 1 of them, none missing or doubled."""
    rng = np.random.default_rng(2018)
    paths = real_records(ptbxl_root, cpsc_root)
    assert len(paths) == 14
    for path in paths:
        x, fs = record(path)
        sizes = [int(s) for s in rng.integers(1, 3 * fs, 30)]
        pp = StreamPreprocessor(path.stem, fs, RATE, WINDOW, HOP)
        windows = feed(pp, x, sizes, fs)
        n_model = -(-len(x) * RATE // fs)
        assert len(windows) == (n_model - WINDOW) // HOP + 1
        assert_matches_offline(windows, offline_windows(x, fs))
        assert not any(w.gap_reasons for w in windows)


@pytest.mark.realdata
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_streaming_equals_offline_for_any_chunking(ptbxl_root: Path, cpsc_root: Path, data) -> None:
    path = data.draw(st.sampled_from(real_records(ptbxl_root, cpsc_root)), label="record")
    x, fs = record(path)
    sizes = data.draw(st.lists(st.integers(1, 4 * fs), min_size=1, max_size=10), label="sizes")
    with_timestamps = data.draw(st.booleans(), label="timestamps")
    windows = feed(StreamPreprocessor("s", fs, RATE, WINDOW, HOP), x, sizes, fs, with_timestamps)
    assert_matches_offline(windows, offline_windows(x, fs))


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 2000), min_size=1, max_size=6),
    hop=st.integers(1, 150),
)
def test_a_buffer_one_hop_longer_than_the_window_loses_no_window(sizes, hop) -> None:
    """Even a buffer one sample longer than the window (hop 1), fed huge chunks, cuts every
    window."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (3000, 12)).astype(np.float32)
    pp = StreamPreprocessor("s", 500, 100, 200, hop)
    windows = feed(pp, x, sizes, 500, timestamps=False)
    y = resample(x.T, 500, 100).T
    assert [w.start for w in windows] == list(range(0, len(y) - 200 + 1, hop))
    for w in windows:
        np.testing.assert_allclose(w.data, y[w.start : w.start + 200], atol=1e-5)


@pytest.mark.realdata
def test_dropped_input_is_filled_flagged_and_keeps_time(cpsc_root: Path) -> None:
    """0.8 s of input never arrives. Timestamps reveal it; zeros take its place, so every
    window equals the offline window of the record with that span zeroed; the windows the
    fill influences (filter reach included) are rejected with the reason, the others pass."""
    x, fs = record(cpsc_root / "A1986.mat")  # 43 s, clean
    lost = slice(10_000, 10_400)  # input samples at 500 Hz, 20.0 s to 20.8 s
    pp = StreamPreprocessor("A1986", fs, RATE, WINDOW, HOP)
    windows = []
    for pos in range(0, len(x), 400):
        if pos != lost.start:
            windows += pp.push(x[pos : pos + 400], 5.0 + pos / fs)
    windows += pp.finish()
    zeroed = x.copy()
    zeroed[lost] = 0
    assert_matches_offline(windows, offline_windows(zeroed, fs))
    # Affected model samples: [ceil((10000 − 50) / 5), (10399 + 50) // 5 + 1) = [1990, 2090).
    flagged = [w.start for w in windows if w.gap_reasons]
    assert flagged == list(range(1000, 2100, 100))
    for w in windows:
        assert w.ok == (w.start not in flagged)
        if not w.ok:
            assert w.reason.startswith("400 samples (0.800 s) missing before t=25.800 s")


@pytest.mark.realdata
def test_backwards_clock_jump_flags_the_windows_across_it(cpsc_root: Path) -> None:
    x, fs = record(cpsc_root / "A1986.mat")
    pp = StreamPreprocessor("A1986", fs, RATE, WINDOW, HOP)
    windows = []
    for pos in range(0, len(x), 500):
        t = pos / fs - (3.0 if pos >= 10_000 else 0.0)  # the source's clock steps back 3 s
        windows += pp.push(x[pos : pos + 500], t)
    windows += pp.finish()
    assert_matches_offline(windows, offline_windows(x, fs))  # no data invented or dropped
    # The junction is at model sample 2000; samples that read input on both sides of it are
    # [1990, 2011) (conservative by the filter's ~1e-18 end taps), so windows 1000 to 2000.
    flagged = [w.start for w in windows if w.gap_reasons]
    assert flagged == list(range(1000, 2100, 100))
    assert "timestamp jumped back 3.000 s" in next(w.reason for w in windows if w.gap_reasons)


def test_nan_input_rejects_the_windows_it_reaches() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.3, (500 * 40, 12)).astype(np.float32)
    x[10_000, LEADS.index("V2")] = np.nan  # 20.0 s
    windows = feed(StreamPreprocessor("s", 500, RATE, WINDOW, HOP), x, [333], 500)
    bad = [w for w in windows if not w.ok]
    assert bad and all("lead V2 NaN/Inf" in w.reason for w in bad)
    # Input 10000 is model sample 2000; the filter spreads it over [1990, 2010].
    assert [w.start for w in bad] == list(range(1000, 2100, 100))
    assert windows[0].ok and windows[-1].ok  # the filter forgets the NaN


def test_ready_time_comes_from_the_clock_when_the_window_completes() -> None:
    ticks = iter(range(1000))
    pp = StreamPreprocessor("s", 100, 100, 10, 5, clock=lambda: float(next(ticks)))
    assert pp.push(np.ones((9, 12))) == []
    first = pp.push(np.ones((6, 12)))
    assert [(w.start, w.ready_time) for w in first] == [(0, 0.0), (5, 1.0)]


def test_model_batch_layout() -> None:
    x = np.random.default_rng(0).normal(size=(1500, 12)).astype(np.float32)
    windows = feed(StreamPreprocessor("s", 100, 100, WINDOW, HOP), x, [250], 100)
    batch = to_model_batch(windows)
    assert batch.shape == (6, 12, WINDOW) and batch.dtype == np.float32
    assert batch.flags.c_contiguous
    np.testing.assert_array_equal(batch[2], x[200:1200].T)
    with pytest.raises(ValueError, match="no windows"):
        to_model_batch([])


def test_rate_window_and_lead_order() -> None:
    pp = StreamPreprocessor("bed-3", 500, 100, 1000, 100, lead_names=list(LEADS))
    assert (pp.sampling_rate, pp.window, pp.windower.hop, pp.lead_names) == (100, 1000, 100, LEADS)
    assert pp.resampler.fs_in == 500


def test_bad_input_is_named() -> None:
    pp = StreamPreprocessor("bed-3", 500, 100, 1000, 100)
    with pytest.raises(
        ValueError, match=r"bed-3: chunk must be \[samples, 12\], got shape \(12, 50\)"
    ):
        pp.push(np.zeros((12, 50)))
    pp.finish()
    assert pp.finish() == []
    with pytest.raises(ValueError, match="push after finish"):
        pp.push(np.zeros((1, 12)))


def test_runtime_modules_import_without_torch_and_defer_scipy() -> None:
    code = (
        "import sys\n"
        "import mrm_edge.runtime.stream.buffer, mrm_edge.runtime.stream.quality\n"
        "import mrm_edge.runtime.stream.resample\n"
        "import mrm_edge.runtime.stream.windower, mrm_edge.runtime.batcher\n"
        "import mrm_edge.runtime.stream.preprocess\n"
        "print(sorted(m for m in ('torch', 'scipy.signal') if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_a_jump_over_the_resync_limit_is_counted_not_cut_and_the_stream_goes_on() -> None:
    """Issue 20: a timestamp far ahead (one chunk is enough) costs O(1): the windows before
    the first sample after it are given up as one Resync, and the stream goes on at the new
    index, its windows clean."""
    fs, jump_s = 500, 2**47 / 500
    x = np.random.default_rng(3).normal(0, 0.5, (25 * fs, 12)).astype(np.float32)
    pp = StreamPreprocessor("hostile", fs, RATE, WINDOW, HOP)
    assert pp.resync_after == 3 * WINDOW * fs // RATE  # 30 s of input, 3 windows
    before = pp.push(x[: 12 * fs], 0.0)
    assert [w.start for w in before] == [0, 100] and all(w.ok for w in before)
    after = pp.push(x[12 * fs :], jump_s)
    [resync] = pp.take_resyncs()
    assert resync.start == 200 and "over the 30 s limit" in resync.reason
    # The first output computed after the jump: released once input 2**47 + 50 is in
    # (resample.py), i.e. output ceil((2**47 − 50) / 5); windows start on the next hop.
    first_out = -(-(2**47 - 50) // 5)
    first_kept = -(-first_out // HOP) * HOP
    assert resync.windows == first_kept // HOP - 2
    assert [w.start for w in after] == [first_kept + k * HOP for k in range(len(after))]
    assert len(after) == 3 and all(w.ok for w in after)  # past the filter's reach: clean
    assert pp.take_resyncs() == []
    assert len(before) + resync.windows + len(after) == pp.windower.next_start // HOP


def test_a_jump_under_the_resync_limit_is_filled_window_by_window() -> None:
    fs = 500
    x = np.random.default_rng(4).normal(0, 0.5, (12 * fs, 12)).astype(np.float32)
    pp = StreamPreprocessor("s", fs, RATE, WINDOW, HOP)
    pp.push(x, 0.0)
    windows = pp.push(x, 12.0 + 29.0)  # 29 s missing: under the 30 s limit
    assert pp.take_resyncs() == []
    gap_windows = [w for w in windows if w.gap_reasons]
    assert len(gap_windows) >= 29 and not any(w.ok for w in gap_windows)
    assert gap_windows[0].reason.startswith("14500 samples (29.000 s) missing")
    assert [w.start for w in windows] == [200 + k * HOP for k in range(len(windows))]
