"""RingBuffer (absolute indexing, eviction, fixed memory, gaps) and GapDetector."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mrm_edge.runtime.stream.buffer import Gap, GapDetector, RingBuffer


def numbered(start: int, n: int, channels: int = 3) -> np.ndarray:
    """Rows whose values encode their absolute index, so any mix-up shows."""
    idx = np.arange(start, start + n, dtype=np.float32)[:, None]
    return idx + np.arange(channels, dtype=np.float32) / 10


@settings(max_examples=80, deadline=None)
@given(
    capacity=st.integers(1, 300),
    sizes=st.lists(st.integers(0, 400), min_size=1, max_size=25),
    data=st.data(),
)
def test_view_of_any_retained_range_equals_the_input(capacity, sizes, data) -> None:
    buf = RingBuffer(capacity, n_channels=3)
    storage = buf._data
    count = 0
    for n in sizes:
        buf.append(numbered(count, n))
        count += n
        assert buf.sample_count == count
        assert buf.oldest == max(0, count - capacity)
        if count:
            start = data.draw(st.integers(buf.oldest, count - 1))
            length = data.draw(st.integers(0, count - start))
            np.testing.assert_array_equal(buf.view(start, length), numbered(start, length))
    # Fixed memory: the same array, never grown or replaced.
    assert buf._data is storage and storage.nbytes == capacity * 3 * 4
    if buf.oldest > 0:
        with pytest.raises(ValueError, match="was evicted"):
            buf.view(buf.oldest - 1, 1)
    with pytest.raises(ValueError, match="has not fully arrived"):
        buf.view(buf.oldest, count - buf.oldest + 1)


def test_view_is_a_copy() -> None:
    buf = RingBuffer(10, 2)
    buf.append(np.ones((5, 2)))
    v = buf.view(0, 5)
    v[:] = 7
    assert np.all(buf.view(0, 5) == 1)


def test_append_gap_fills_with_zeros_and_records_the_span() -> None:
    buf = RingBuffer(100, 2)
    buf.append(np.full((10, 2), 3.0))
    gap = buf.append_gap(5, "5 samples missing")
    buf.append(np.full((10, 2), 3.0))
    assert gap == Gap(10, 15, "5 samples missing") and buf.sample_count == 25
    assert np.all(buf.view(10, 5) == 0) and np.all(buf.view(15, 10) == 3)
    assert buf.gaps_overlapping(0, 10) == []
    assert buf.gaps_overlapping(0, 11) == [gap] and buf.gaps_overlapping(14, 30) == [gap]
    assert buf.gaps_overlapping(15, 30) == []


def test_long_gap_fills_without_growing() -> None:
    buf = RingBuffer(8, 1)
    buf.append(np.ones((8, 1)))
    buf.append_gap(1000, "outage")
    assert buf.sample_count == 1008 and np.all(buf.view(1000, 8) == 0)


def test_mark_gap_records_only_and_may_point_ahead() -> None:
    buf = RingBuffer(50, 1)
    buf.append(np.ones((10, 1)))
    ahead = buf.mark_gap(12, 4, "resampled fill")
    assert buf.sample_count == 10  # no data written
    buf.append(np.ones((10, 1)))
    assert buf.gaps_overlapping(0, 12) == [] and buf.gaps_overlapping(15, 16) == [ahead]


def test_gaps_are_forgotten_once_evicted() -> None:
    buf = RingBuffer(10, 1)
    buf.append_gap(3, "old")
    buf.append(np.ones((12, 1)))  # oldest is now 5
    assert buf._gaps == [] and buf.gaps_overlapping(0, 100) == []
    buf.mark_gap(0, 2, "already evicted")  # nothing to keep
    assert buf._gaps == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: b.append(np.zeros((3, 4))), r"samples must be \[samples, 2\]"),
        (lambda b: b.append(np.zeros(3)), r"samples must be \[samples, 2\]"),
        (lambda b: b.mark_gap(-1, 2, "x"), "at_sample must be an integer >= 0"),
        (lambda b: b.mark_gap(0, 0, "x"), "n_missing must be an integer >= 1"),
        (lambda b: b.mark_gap(0, 1, ""), "reason must be a non-empty string"),
        (lambda b: b.append_gap(0, "x"), "n_missing must be an integer >= 1"),
        (lambda b: b.view(0, -1), "length must be an integer >= 0"),
    ],
)
def test_bad_calls_are_named(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(RingBuffer(10, 2))


def test_bad_construction_is_named() -> None:
    with pytest.raises(ValueError, match="capacity must be an integer >= 1"):
        RingBuffer(0)


# ---------------------------------------------------------------------------- GapDetector


def test_contiguous_timestamps_report_nothing() -> None:
    det = GapDetector(500)
    t = 1000.0
    for n in (7, 500, 1, 250):
        assert det.check(t, n).n_missing == 0
        t += n / 500
    assert det.expected_time() == pytest.approx(t)  # 1000.0 + 758 samples / 500 Hz


def test_a_late_chunk_reports_the_missing_samples() -> None:
    det = GapDetector(250)
    det.check(0.0, 250)
    check = det.check(1.0 + 40 / 250, 250)  # 40 samples never arrived
    assert check.n_missing == 40 and "40 samples (0.160 s) missing" in check.reason
    assert det.check(2.16, 10).n_missing == 0  # the timeline carries on after the gap


def test_jitter_within_tolerance_is_not_a_gap() -> None:
    det = GapDetector(500)  # default tolerance: 1.5 sample periods = 3 ms
    det.check(0.0, 100)
    assert det.check(0.2 + 0.0029, 100).n_missing == 0
    assert det.check(0.4 - 0.0029, 100).n_missing == 0
    assert det.check(0.6 + 0.004, 100).n_missing == 2


def test_backwards_jump_is_reported_and_reanchors() -> None:
    det = GapDetector(100)
    det.check(50.0, 100)
    check = det.check(49.0, 100)  # clock reset: expected 51.0
    assert check.n_missing == 0 and check.backwards_s == pytest.approx(2.0)
    assert "jumped back 2.000 s" in check.reason
    assert det.check(50.0, 100) == det.check(51.0, 0)  # continuing from the new anchor is fine
    assert det._accounted == 300


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(
        st.tuples(st.integers(2, 300), st.booleans(), st.floats(-0.2, 0.2)), max_size=30
    ),
    fs=st.sampled_from([100, 250, 360, 500]),
    start=st.floats(0, 1e6),
)
def test_dropped_chunks_are_counted_exactly(chunks, fs, start) -> None:
    """Chunks of 2 samples or more are dropped at random and timestamps jitter by up to 0.2
    sample periods; the missing counts are exactly what was dropped before each delivered
    chunk (a single lost sample is absorbed: the next test)."""
    det = GapDetector(fs)
    pos, dropped_since, delivered_any = 0, 0, False
    for n, drop, jitter in chunks:
        if drop and delivered_any:
            dropped_since += n
        else:
            check = det.check(start + (pos + jitter) / fs, n)
            assert check.n_missing == dropped_since and check.backwards_s == 0
            dropped_since, delivered_any = 0, True
        pos += n


def test_default_tolerance_absorbs_a_single_lost_sample_but_keeps_alignment() -> None:
    """1.5 periods by default: one lost sample is indistinguishable from jitter, so it is
    absorbed; the next loss brings the total over the tolerance and is counted with it."""
    det = GapDetector(100)
    det.check(0.0, 10)
    assert det.check(0.11, 10).n_missing == 0  # 1 sample lost: absorbed
    assert det.check(0.22, 10).n_missing == 2  # 1 more: both counted


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: GapDetector(0), "fs must be an integer >= 1"),
        (lambda: GapDetector(500).check(float("nan"), 1), "timestamp must be finite"),
        (lambda: GapDetector(500).check("12:00", 1), "timestamp must be seconds"),
        (lambda: GapDetector(500).check(0.0, -1), "n_samples must be an integer >= 0"),
    ],
)
def test_detector_bad_input_is_named(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_chunks_without_timestamps_are_counted() -> None:
    det = GapDetector(100)
    assert det.check(None, 50) == det.check(None, 50)  # nothing to check yet
    assert det.expected_time() is None
    det.check(1.0, 10)  # anchors as if the 100 untimed samples started at 0.0 s
    assert det.expected_time() == pytest.approx(1.1)
    det.check(None, 10)
    assert det.check(1.2, 10).n_missing == 0 and det.check(1.4, 10).n_missing == 10


def test_append_gap_costs_the_capacity_not_the_gap() -> None:
    """A gap of 2**47 samples (a device's absurd jump) is recorded and filled at once."""
    buf = RingBuffer(8, 2)
    buf.append(np.ones((8, 2)))
    gap = buf.append_gap(2**47, "resync")
    assert buf.sample_count == 8 + 2**47 and np.all(buf.view(buf.oldest, 8) == 0)
    assert buf.gaps_overlapping(buf.oldest, buf.sample_count) == [gap]
    buf.append(np.full((3, 2), 5.0))
    assert np.all(buf.view(buf.sample_count - 3, 3) == 5.0)
