"""The folder scan and the window cutting that offline predict, the WFDB replay and the
calibration folders share (``mrm_edge.records``); reading one recording is tested in
tests/hardening/test_bad_records.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mrm_edge.data.signal import resample
from mrm_edge.records import Recording, cut_windows, find_recordings


def test_a_folder_scan_finds_headers_and_standalone_mats_sorted(tmp_path: Path) -> None:
    for rel in ("b/x.hea", "b/x.mat", "a/y.mat", "a-c/z.hea", "w.v.hea", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    found = [p.relative_to(tmp_path).as_posix() for p in find_recordings(tmp_path)]
    # b/x.mat is the signal file of b/x.hea; sorted as strings ("a-c" before "a/").
    assert found == ["a-c/z.hea", "a/y.mat", "b/x.hea", "w.v.hea"]
    assert find_recordings(tmp_path / "a-c") == [tmp_path / "a-c" / "z.hea"]
    (tmp_path / "empty").mkdir()
    assert find_recordings(tmp_path / "empty") == []


def test_cut_windows_consecutive_at_the_model_rate_tail_left_out() -> None:
    x = np.random.default_rng(0).normal(size=(12, 2500)).astype(np.float32)
    wins = cut_windows(Recording("r", x, 100), rate=100, window=1000)
    assert wins.shape == (2, 12, 1000) and wins.dtype == np.float32
    np.testing.assert_array_equal(wins[1], x[:, 1000:2000])
    hi = cut_windows(Recording("r", x, 500), rate=100, window=400)
    expected = resample(x, 500, 100)  # 500 samples at 100 Hz
    assert hi.shape == (1, 12, 400)
    np.testing.assert_array_equal(hi[0], expected[:, :400])
    none = cut_windows(Recording("r", x[:, :999], 100), rate=100, window=1000)
    assert none.shape == (0, 12, 1000) and none.dtype == np.float32


def test_eight_stored_leads_plan_derives_four_and_names_only_what_is_stored() -> None:
    from mrm_edge.data.errors import DataError
    from mrm_edge.records.recording import assemble, lead_plan

    order, notes = lead_plan("f", ["V1", "I", "II", "V2", "V3", "V4", "V5", "V6"])
    assert order == [1, 2, None, None, None, None, 0, 3, 4, 5, 6, 7]
    assert notes[0] == "leads reordered by name (stored as V1, I, II, V2, V3, V4, V5, V6)"
    assert "derived from I and II" in notes[1]
    x = np.arange(16, dtype=np.int16).reshape(8, 2) * 100
    mv, _, units = assemble("f", ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"], x, ["uV"] * 8)
    np.testing.assert_allclose(mv[2], (x[1] - x[0]) / 1000)  # III = II - I
    np.testing.assert_allclose(mv[3], -(x[0] + x[1]) / 2000)  # aVR
    assert units == ("uV",) * 12
    # Welch Allyn's set (SOURCES.md row 11): V3 and V5 missing, never guessed.
    welch = ["I", "II", "V3R", "V1", "V2", "V4", "V6", "V7"]
    with pytest.raises(DataError) as info:
        lead_plan("w.scp", welch, "lead codes")
    msg = str(info.value)
    assert "lacks lead(s) V3, V5; unknown lead name(s) ['V3R', 'V7']" in msg
    assert "found 8 signal(s)" in msg and "aVR" not in msg.split("found")[1]
