"""WFDB / CPSC replay on the real records: exact samples, media-time timestamps and
interleaving, pacing, loops, the PTB-XL twin rule, and one-line errors for bad files."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.sources.base import Chunk, StreamEnd
from mrm_edge.runtime.sources.wfdb import (
    WfdbReplaySource,
    find_records,
    load_records,
    unique_ids,
)

from mrm_edge.data.errors import DataError
from mrm_edge.records import read_recording
from tests.runtime.sources import collect

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def records(ptbxl_root: Path, cpsc_root: Path) -> list[Path]:
    return [
        ptbxl_root / "records100/00000/00001_lr.hea",
        ptbxl_root / "records500/00000/00002_hr.hea",
        cpsc_root / "A1980.mat",
    ]


def test_replay_concatenates_back_to_each_record(records: list[Path]) -> None:
    rng = np.random.default_rng(0)
    sizes = list(rng.uniform(0.01, 0.7, size=37))  # random chunking
    src = WfdbReplaySource(records, chunk_seconds=sizes, speed=None)
    got = collect(src, n_ends=3)
    assert not got.timed_out
    assert set(got.chunks) == {"00001_lr", "00002_hr", "A1980"}
    for path in records:
        rec = read_recording(path)
        sid = rec.name
        np.testing.assert_array_equal(got.signal(sid), rec.signal.T)  # bit-exact
        chunks = got.chunks[sid]
        assert {c.sample_rate for c in chunks} == {rec.sampling_rate}
        starts = np.cumsum([0] + [len(c.samples) for c in chunks[:-1]]) / rec.sampling_rate
        np.testing.assert_allclose([c.timestamp for c in chunks], starts, atol=1e-9)
        assert got.ends[sid] == ["end of record"]
        last_chunk = max(i for i, e in enumerate(got.order) if e is chunks[-1])
        ends = [i for i, e in enumerate(got.order) if isinstance(e, StreamEnd)]
        assert [got.order[i].stream_id for i in ends].count(sid) == 1
        assert next(i for i in ends if got.order[i].stream_id == sid) > last_chunk
    # Interleaved by media time: no chunk starts before one already delivered.
    times = [e.timestamp for e in got.order if isinstance(e, Chunk)]
    assert times == sorted(times)


def test_pacing_is_respected(records: list[Path]) -> None:
    # Two 10 s records at 20x take about 0.5 s, not 0 (max) and not 10 (real time).
    src = WfdbReplaySource(records[:2], chunk_seconds=0.5, speed=20.0)
    t0 = time.monotonic()
    got = collect(src, n_ends=2)
    elapsed = time.monotonic() - t0
    assert not got.timed_out
    assert 0.45 <= elapsed < 3.0, elapsed


def test_loop_continues_timestamps_and_close_stops_it(records: list[Path]) -> None:
    src = WfdbReplaySource(records[:1], chunk_seconds=0.25, speed=None, loop=True)
    got = collect(src, n_chunks=100)  # 2.5 passes over a 10 s record
    src.close()
    assert not got.ends  # a looping replay does not end
    x = read_recording(records[0]).signal.T
    sig = got.signal("00001_lr")
    np.testing.assert_array_equal(sig[: 2 * len(x)], np.concatenate([x, x]))
    ts = [c.timestamp for c in got.chunks["00001_lr"]]
    np.testing.assert_allclose(ts, np.arange(100) * 0.25, atol=1e-9)
    assert list(src.events()) == []  # closed: nothing more


def test_directory_replays_one_rate_per_ptbxl_ecg(ptbxl_root: Path) -> None:
    found, skipped = find_records([ptbxl_root])
    assert [p.name for p in found[:2]] == ["00001_hr.hea", "00002_hr.hea"]
    assert "00001_lr.hea: skipped, ECG 00001 is replayed from 00001_hr.hea (500 Hz)" in (skipped[0])
    default = WfdbReplaySource(found[:2], speed=None)
    assert list(default.recordings) == ["00001_hr", "00002_hr"]
    assert {fs for _, fs in default.recordings.values()} == {500}
    low, _ = find_records([ptbxl_root], prefer_rate=100)  # mrm-edge send --prefer-rate
    assert [p.name for p in low[:2]] == ["00001_lr.hea", "00002_lr.hea"]
    assert WfdbReplaySource(low[:2], speed=None).describe() == (
        "wfdb: 2 records at 100 Hz, max speed"
    )
    # Without the twin, a record is kept whatever its rate.
    only_lr, skipped = find_records([ptbxl_root / "records100"], prefer_rate=500)
    assert len(only_lr) == 500 and skipped == []


def test_record_stem_and_dat_paths_name_the_same_record(ptbxl_root: Path) -> None:
    stem = ptbxl_root / "records100/00000/00001_lr"
    found, _ = find_records([stem, stem.with_suffix(".dat"), stem.with_suffix(".hea")])
    assert found == [Path(os.path.abspath(stem.with_suffix(".hea")))]


def test_name_collisions_get_a_suffix(ptbxl_root: Path, tmp_path: Path) -> None:
    src_dir = ptbxl_root / "records100/00000"
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        for ext in (".hea", ".dat"):
            (tmp_path / d / f"00001_lr{ext}").symlink_to(src_dir / f"00001_lr{ext}")
    src = WfdbReplaySource([tmp_path], speed=None)
    assert list(src.recordings) == ["00001_lr", "00001_lr-2"]
    paths = {sid: path for sid, path, _, _ in load_records([tmp_path])}
    assert paths["00001_lr-2"].parent.name == "b"
    assert unique_ids(["x", "x", "x-2", "y"]) == ["x", "x-2", "x-2-2", "y"]


def test_bad_records_fail_at_construction_naming_the_file(ptbxl_root: Path, tmp_path: Path) -> None:
    good = ptbxl_root / "records100/00000/00001_lr.hea"
    bad_hea = tmp_path / "broken.hea"
    bad_hea.write_text("broken 12 500 5000\nnot a signal line\n")
    bad_mat = tmp_path / "A9999.mat"
    bad_mat.write_bytes(b"not a MATLAB file")
    truncated = tmp_path / "00001_lr.hea"
    shutil.copy(good, truncated)
    (tmp_path / "00001_lr.dat").write_bytes(b"\x00" * 10)
    cases = [
        ([good, bad_hea], "broken.hea"),
        ([bad_mat], "A9999.mat"),
        ([truncated], "00001_lr"),
        ([tmp_path / "missing.hea"], "missing.hea: no such file"),
        ([tmp_path / "nothing"], "nothing: not a directory, a record file or a WFDB record stem"),
    ]
    for paths, needle in cases:
        with pytest.raises(DataError) as info:
            WfdbReplaySource(paths, speed=None)
        assert needle in str(info.value) and "\n" not in str(info.value), str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no ECG recordings of a known format"):
        WfdbReplaySource([tmp_path / "empty"])
