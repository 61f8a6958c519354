"""Windower: every window k · hop exactly once, as soon as it is complete; gaps flag."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mrm_edge.runtime.stream.buffer import RingBuffer
from mrm_edge.runtime.stream.windower import Windower, WindowRef, samples_from_seconds, window_count


@settings(max_examples=100, deadline=None)
@given(
    window=st.integers(1, 1200),
    hop=st.integers(1, 300),
    sizes=st.lists(st.integers(0, 900), max_size=30),
)
def test_any_chunking_gives_every_window_once_and_on_time(window, hop, sizes) -> None:
    w = Windower("bed-7", window, hop)
    emitted: list[WindowRef] = []
    available = 0
    for n in sizes:
        available += n
        new = w.poll(available)
        emitted += new
        # On time: everything complete is out, the next window is not complete yet.
        assert all(r.end <= available for r in new)
        assert w.next_start + window > available
    assert [r.start for r in emitted] == [k * hop for k in range(len(emitted))]
    assert len(emitted) == window_count(available, window, hop) == w.next_start // hop
    expect = 0 if available < window else (available - window) // hop + 1
    assert len(emitted) == expect
    assert all(r.stream_id == "bed-7" and r.end - r.start == window for r in emitted)
    assert not any(r.gap_reasons for r in emitted)


def test_the_monitor_defaults_ten_second_windows_every_second() -> None:
    w = Windower("s", 1000, samples_from_seconds(1.0, 100))
    assert w.poll(999) == []
    assert [r.start for r in w.poll(1000)] == [0]
    assert [r.start for r in w.poll(1250)] == [100, 200]
    assert w.poll(1250) == []  # asking again repeats nothing


def test_windows_touching_a_gap_are_emitted_flagged() -> None:
    buf = RingBuffer(5000, 1)
    buf.append(np.zeros((1500, 1)))
    buf.mark_gap(1200, 10, "10 samples missing")
    buf.mark_gap(1205, 3, "10 samples missing")  # same reason twice: listed once
    buf.mark_gap(1400, 1, "timestamp jumped back")
    refs = Windower("s", 1000, 100).poll(buf.sample_count, buf)
    assert [r.start for r in refs] == [0, 100, 200, 300, 400, 500]
    by_start = {r.start: r.gap_reasons for r in refs}
    # [200, 1200) ends where the first gap starts; [400, 1400) where the last one starts.
    assert by_start[0] == by_start[100] == by_start[200] == ()
    assert by_start[300] == by_start[400] == ("10 samples missing",)
    assert by_start[500] == ("10 samples missing", "timestamp jumped back")


def test_hop_longer_than_window_skips_samples() -> None:
    assert [r.start for r in Windower("s", 10, 25).poll(100)] == [0, 25, 50, 75]


def test_samples_from_seconds() -> None:
    assert samples_from_seconds(1.0, 100) == 100
    assert samples_from_seconds(0.25, 100) == 25
    assert samples_from_seconds(2, 500) == 1000
    with pytest.raises(
        ValueError, match=r"hop must be a positive whole number of samples at 100 Hz, got 0.125 s"
    ):
        samples_from_seconds(0.125, 100)
    with pytest.raises(ValueError, match="hop must be a positive whole number"):
        samples_from_seconds(0.0, 100)
    with pytest.raises(ValueError, match="must be a number of seconds"):
        samples_from_seconds("1s", 100)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="window must be a positive integer"):
        Windower("s", 0, 100)
    with pytest.raises(ValueError, match="hop must be a positive integer"):
        Windower("s", 1000, 1.5)
    w = Windower("s", 10, 5)
    w.poll(20)
    with pytest.raises(ValueError, match="available went back from 20 to 19"):
        w.poll(19)


def test_skip_gives_up_the_windows_before_a_sample_in_constant_time() -> None:
    w = Windower("s", window=10, hop=3)
    assert [r.start for r in w.poll(13)] == [0, 3]
    assert w.skip(2**50 + 1) == -(-(2**50 + 1) // 3) - 2  # windows 6 .. up to the sample
    refs = w.poll(2**50 + 20)
    assert refs[0].start >= 2**50 + 1 and refs[0].start % 3 == 0
    assert w.next_start // 3 == -(-(2**50 + 1) // 3) + len(refs)
    assert w.skip(5) == 0  # never backwards
