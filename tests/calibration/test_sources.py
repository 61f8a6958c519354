"""Where calibration windows come from (``calibration/sources.py``): PTB-XL and CPSC 2018
trees give their training folds only, plain folders of WFDB / .mat recordings are cut into
windows, unusable sources are clear errors; held-out windows are the test folds."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.calibration.sources import held_out_windows, select_calibration_windows
from mrm_edge.calibration.windows import select_windows

from mrm_edge.data.cpsc2018 import read_cpsc_folds
from mrm_edge.data.errors import DataError
from mrm_edge.data.loaders import load_dataset
from mrm_edge.data.ptbxl import read_ptbxl_database
from tests.calibration import make_card

pytestmark = pytest.mark.realdata


def test_ptbxl_windows_come_only_from_training_folds(ptbxl_root: Path, pool) -> None:
    cset = select_calibration_windows(ptbxl_root, make_card(), n_windows=120, seed=0)
    fold_of = {str(r.ecg_id): r.strat_fold for r in read_ptbxl_database(ptbxl_root)}
    folds = {fold_of[r] for r in cset.record_ids}
    assert folds <= set(range(1, 9)) and len(folds) == 8
    # The pool holds every labelled training record and nothing else: 352 of folds 1-8.
    assert len(pool) == 352 and {fold_of[r] for r in pool.record_ids} == set(range(1, 9))
    assert cset.composition["folds"] == list(range(1, 9))
    assert cset.composition["source"] == {"kind": "ptbxl", "name": ptbxl_root.name}
    assert cset.x.shape == (120, 12, 1000) and cset.x.dtype == np.float32
    assert len(set(cset.record_ids)) == 120  # one window per record, none twice
    # The windows are the records' own samples, in mV.
    i = pool.record_ids.index(cset.record_ids[0])
    np.testing.assert_array_equal(cset.x[0], pool.x[i])
    # The one-call API and pool + selection agree exactly.
    assert select_windows(pool, 120, seed=0).fingerprint() == cset.fingerprint()


def test_cpsc_tree_uses_training_folds(cpsc_root: Path) -> None:
    cset = select_calibration_windows(cpsc_root, make_card(), n_windows=64, seed=0)
    folds = read_cpsc_folds(cpsc_root / "cpsc_database.csv")
    names = [f"A19{k}" for k in range(80, 90)]  # the sample's ten recordings
    expected = {r for r in names if 1 <= folds[r] <= 8}
    assert set(cset.record_ids) == expected and len(expected) == 7
    assert cset.composition["source"]["kind"] == "cpsc2018"
    assert cset.composition["task"] == "all"  # CPSC's nine classes, whatever the card's task
    assert cset.x.shape == (7, 12, 1000) and cset.y.shape == (7, 9)
    assert cset.composition["all_used"] and "only 7 windows available" in cset.composition["note"]


def _copy_record(root: Path, rel: str, dest: Path) -> None:
    for suffix in (".hea", ".dat"):
        shutil.copy(root / (rel + suffix), dest / (Path(rel).name + suffix))


def test_plain_folder_of_wfdb_and_mat_recordings(
    ptbxl_root: Path, cpsc_root: Path, tmp_path: Path
) -> None:
    records = read_ptbxl_database(ptbxl_root)[:3]
    sub = tmp_path / "ward" / "bed1"
    sub.mkdir(parents=True)
    for r in records:  # 500 Hz records: resampled to the model's 100 Hz
        _copy_record(ptbxl_root, r.filename_hr, sub)
    shutil.copy(cpsc_root / "A1986.mat", tmp_path / "ward")  # 43 s long
    (tmp_path / "ward" / "broken.hea").write_text("not a header\n")
    (tmp_path / "ward" / "notes.txt").write_text("ignored")

    cset = select_calibration_windows(tmp_path / "ward", make_card(), n_windows=4, seed=0)
    assert cset.y is None and cset.labels == []
    comp = cset.composition
    assert comp["source"] == {"kind": "folder", "name": "ward"} and comp["folds"] is None
    assert comp["n_recordings_found"] == 5 and list(comp["skipped"]) == ["broken"]
    assert "broken.hea" in comp["skipped"]["broken"]
    # A1986 (43 s) gives four consecutive 10 s windows, the PTB-XL records one each.
    assert comp["n_windows_available"] == 3 + 4
    # Round-robin over recordings: four windows come from four different recordings.
    assert len(set(cset.record_ids)) == 4 and "round-robin over recordings" in comp["selection"]

    everything = select_calibration_windows(tmp_path / "ward", make_card(), 10_000)
    bed = f"bed1/{Path(records[0].filename_hr).name}"
    mine = everything.x[everything.record_ids.index(bed)]
    # The 500 Hz copy resampled here matches PTB-XL's own 100 Hz version of the record.
    ref = load_dataset("ptbxl", ptbxl_root, sampling_rate=100, folds=[records[0].strat_fold])
    theirs = ref.x[ref.record_ids.index(str(records[0].ecg_id))]
    corr = [np.corrcoef(mine[k], theirs[k])[0, 1] for k in range(12)]
    assert min(corr) > 0.95


def test_wfdb_mat_signal_file_is_read_once_through_its_header(
    ptbxl_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rel = read_ptbxl_database(ptbxl_root)[0].filename_lr
    _copy_record(ptbxl_root, rel, tmp_path)
    monkeypatch.chdir(tmp_path)  # wfdb_to_mat writes <name>m.hea + <name>m.mat here
    with warnings.catch_warnings():  # wfdb's own pandas deprecation chatter
        warnings.simplefilter("ignore")
        from wfdb.io.convert.matlab import wfdb_to_mat

        wfdb_to_mat(Path(rel).name)
    assert (tmp_path / f"{Path(rel).name}m.mat").is_file()
    cset = select_calibration_windows(tmp_path, make_card(), n_windows=10)
    # Two records (the .dat original and its WFDB-in-.mat copy), not three: the .mat is
    # not mistaken for a CPSC recording.
    assert cset.composition["n_recordings_found"] == 2 and cset.composition["skipped"] == {}
    assert sorted(cset.record_ids) == sorted([Path(rel).name, f"{Path(rel).name}m"])
    np.testing.assert_allclose(cset.x[0], cset.x[1], atol=1e-3)


def test_clear_errors_for_unusable_folders(tmp_path: Path) -> None:
    card = make_card()
    with pytest.raises(DataError, match=r"folder is empty"):
        select_calibration_windows(tmp_path, card)
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"holds no ECG recordings of a known format"):
        select_calibration_windows(tmp_path, card)
    (tmp_path / "bad.hea").write_text("garbage\n")
    with pytest.raises(DataError, match=r"no usable recordings: 1 found.*bad"):
        select_calibration_windows(tmp_path, card)
    with pytest.raises(DataError, match=r"no such directory"):
        select_calibration_windows(tmp_path / "missing", card)
    with pytest.raises(ValueError, match=r"n_windows must be a positive integer"):
        select_calibration_windows(tmp_path, card, n_windows=0)


def test_wrong_window_length_is_a_clear_error(ptbxl_root: Path) -> None:
    with pytest.raises(DataError, match=r"'window_samples' is 500; expected equal lengths"):
        select_calibration_windows(ptbxl_root, make_card(window_samples=500))


def test_held_out_windows_are_the_test_fold(ptbxl_root: Path, pool, tmp_path: Path) -> None:
    card = make_card(labels=["NORM", "MI", "CD", "HYP", "STTC"])  # another output order
    x, y = held_out_windows(ptbxl_root, card)
    ref = load_dataset("ptbxl", ptbxl_root, sampling_rate=100, folds=[10])
    assert x.shape == (64, 12, 1000) and y.shape == (64, 5)
    np.testing.assert_array_equal(x, ref.x)
    cols = [ref.labels.index(label) for label in card.labels]
    np.testing.assert_array_equal(y, ref.y[:, cols])
    # None of them is a calibration window.
    held = set(ref.record_ids)
    assert held.isdisjoint(pool.record_ids)
    with pytest.raises(DataError, match=r"plain folder of recordings has no labels or folds"):
        held_out_windows(tmp_path, card)


def test_a_folder_of_hospital_formats_calibrates_through_the_readers(
    ptbxl_root: Path, tmp_path: Path
) -> None:
    """A calibration folder of vendor files (written by the format tests' writers from one
    PTB-XL record): every file is found by its content and read, each giving the same
    window as the WFDB original within the format's quantisation; an XML file of no known
    format is not taken for a recording."""
    from mrm_edge.records import read_recording
    from tests.records.aecg_writer import write_aecg
    from tests.records.dicom_writer import write_dicom
    from tests.records.scp_writer import write_scp

    rec = read_recording(ptbxl_root / "records500" / "00000" / "00001_hr.hea")
    folder = tmp_path / "exports"
    folder.mkdir()
    write_dicom(folder / "a.dcm", rec)
    write_aecg(folder / "b.xml", rec)
    write_scp(folder / "c.scp", rec)
    (folder / "d.xml").write_text("<order>not an ECG</order>")
    cset = select_calibration_windows(folder, make_card(), n_windows=10, seed=0)
    assert sorted(cset.record_ids) == ["a", "b", "c"]
    assert cset.composition["n_recordings_found"] == 3
    for k in range(1, 3):
        np.testing.assert_allclose(cset.x[k], cset.x[0], atol=0.002)
