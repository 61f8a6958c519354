"""Calibration windows from real ECG: training folds only, stratified, seeded; held-out windows."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.calibration.sources import held_out_windows, select_calibration_windows
from mrm_edge.calibration.windows import CalibrationSet, select_windows

from mrm_edge.data.cpsc2018 import read_cpsc_folds
from mrm_edge.data.errors import DataError
from mrm_edge.data.loaders import load_dataset
from mrm_edge.data.ptbxl import read_ptbxl_database
from tests.calibration import LABELS, make_card, ptbxl_pool

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def pool(ptbxl_root: Path):
    return ptbxl_pool(ptbxl_root)


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


def test_selection_is_stratified_rare_labels_over_represented(pool) -> None:
    cset = select_windows(pool, 100, seed=0)
    comp = cset.composition
    assert comp["labels"] == LABELS and comp["n_windows"] == 100 and comp["n_records"] == 100
    counts = comp["label_windows"]
    assert counts == {k: int(v) for k, v in zip(LABELS, cset.y.sum(axis=0), strict=True)}
    assert all(c > 0 for c in counts.values())
    available = comp["label_windows_available"]
    prevalence = {k: v / len(pool) for k, v in available.items()}
    share = {k: v / len(cset) for k, v in counts.items()}
    rarest = min(available, key=available.get)
    commonest = max(available, key=available.get)
    assert rarest == "HYP" and commonest == "NORM"
    assert share[rarest] > 2 * prevalence[rarest]  # 25 % of the set vs 7 % of the pool
    assert share[commonest] < prevalence[commonest]
    assert comp["seed"] == 0 and "round-robin over labels" in comp["selection"]
    assert not comp["all_used"] and "note" not in comp


def test_selection_is_deterministic_by_seed(pool) -> None:
    a, b, c = (select_windows(pool, 64, seed=s) for s in (7, 7, 8))
    assert a.record_ids == b.record_ids and a.x.tobytes() == b.x.tobytes()
    assert a.fingerprint() == b.fingerprint()
    assert a.record_ids != c.record_ids and a.fingerprint() != c.fingerprint()


def test_fewer_windows_than_requested_uses_all_and_says_so(pool) -> None:
    cset = select_windows(pool, 10_000, seed=0)
    assert len(cset) == len(pool) == 352
    assert (
        cset.composition["all_used"]
        and "fewer than the 10000 requested" in (cset.composition["note"])
    )


def test_cpsc_tree_uses_training_folds(cpsc_root: Path) -> None:
    cset = select_calibration_windows(cpsc_root, make_card(), n_windows=64, seed=0)
    folds, _ = read_cpsc_folds(cpsc_root / "cpsc_database.csv")
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
    with pytest.raises(DataError, match=r"holds no WFDB \(\.hea\) or \.mat"):
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


def test_calibration_set_checks_and_fingerprint(pool) -> None:
    cset = select_windows(pool, 8, seed=1)
    x = cset.x.copy()
    x[3, 5, 100] += 0.001  # one sample, 1 µV
    other = CalibrationSet(x, cset.record_ids, cset.y, cset.labels, cset.composition, 100)
    assert other.fingerprint() != cset.fingerprint()
    with pytest.raises(DataError, match=r"field 'x' has shape"):
        CalibrationSet(x[:, :6], cset.record_ids, None, [], {}, 100)
    with pytest.raises(DataError, match=r"'record_ids' has 7 entries, expected 8"):
        CalibrationSet(x, cset.record_ids[:7], None, [], {}, 100)
    x[0, 0, 0] = np.nan
    with pytest.raises(DataError, match=r"non-finite"):
        CalibrationSet(x, cset.record_ids, None, [], {}, 100)


def test_calibration_package_imports_without_torch() -> None:
    code = (
        "import sys, mrm_edge.calibration, mrm_edge.calibration.ranges, "
        "mrm_edge.calibration.cache, mrm_edge.calibration.tensorrt_calibrator, "
        "mrm_edge.export.int8; print('torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
