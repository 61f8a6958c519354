"""PTB-XL loading and the benchmark's label aggregation, on the real 500-record subset."""

from __future__ import annotations

import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mrm_edge.data.dataset import LEADS, EcgDataset
from mrm_edge.data.errors import DataError
from mrm_edge.data.loaders import load_dataset
from mrm_edge.data.ptbxl import (
    TASKS,
    aggregate_labels,
    label_table,
    load_ptbxl,
    read_ptbxl_database,
    read_ptbxl_record,
    read_scp_statements,
)
from mrm_edge.data.signal import resample

pytestmark = pytest.mark.realdata

SUPER_COUNTS = {"NORM": 297, "STTC": 96, "CD": 78, "MI": 73, "HYP": 40}


@pytest.fixture(scope="module")
def superdiag(ptbxl_root: Path) -> EcgDataset:
    """All 500 records at 100 Hz for the headline task, loaded once for this module."""
    return load_ptbxl(ptbxl_root, "superdiagnostic", 100)


@pytest.fixture(scope="module")
def tables(ptbxl_root: Path):
    return read_ptbxl_database(ptbxl_root), read_scp_statements(ptbxl_root)


def test_superdiagnostic_counts_match_the_subset_readme(superdiag: EcgDataset) -> None:
    assert superdiag.labels == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert superdiag.label_counts() == {k: SUPER_COUNTS[k] for k in superdiag.labels}
    # 12 records carry no diagnostic superclass: dropped, as the benchmark does, and counted.
    assert len(superdiag) == 488 and sum(superdiag.dropped_unlabelled.values()) == 12
    assert (superdiag.y.sum(axis=1) > 0).all()


def test_fold_sizes_including_unlabelled(ptbxl_root: Path, superdiag: EcgDataset) -> None:
    per_fold = dict(Counter(r.strat_fold for r in read_ptbxl_database(ptbxl_root)))
    assert sum(per_fold.values()) == 500
    assert sum(per_fold[f] for f in range(1, 9)) == 353
    assert (per_fold[9], per_fold[10]) == (81, 66)
    # The loaded records and those dropped for lacking a label are the source's folds.
    assert (
        dict(Counter(superdiag.fold_counts()) + Counter(superdiag.dropped_unlabelled)) == per_fold
    )
    expected_dropped = {f: 0 for f in range(1, 11)} | {1: 1, 9: 9, 10: 2}
    assert superdiag.dropped_unlabelled == expected_dropped


def test_split_by_fold_keeps_the_dropped_counts(superdiag: EcgDataset) -> None:
    train, val, test = superdiag.split()
    assert len(train) + len(val) + len(test) == len(superdiag)
    sizes = [len(part) + sum(part.dropped_unlabelled.values()) for part in (train, val, test)]
    assert sizes == [353, 81, 66]
    assert set(test.folds) == {10} and set(val.folds) == {9}
    assert val.dropped_unlabelled == {9: 9}
    assert train.labels == val.labels == test.labels == superdiag.labels
    with pytest.raises(DataError, match="more than one split"):
        superdiag.split(train_folds=range(1, 10))


def test_signals_are_finite_mv_in_lead_order(superdiag: EcgDataset) -> None:
    x = superdiag.x
    assert x.shape == (488, 12, 1000) and x.dtype == np.float32
    assert np.isfinite(x).all()
    # mV: QRS peaks are around 1 mV; a µV or V scale error would be off by 1000x.
    peak = np.abs(x).max(axis=(1, 2))
    assert 0.2 < np.median(peak) < 5.0 and peak.max() < 30.0
    # Lead order is right iff the limb leads obey Einthoven / Goldberger (1 µV quantisation).
    i, ii, iii, avr = x[:, 0], x[:, 1], x[:, 2], x[:, 3]
    assert np.abs(iii - (ii - i)).max() < 0.003
    assert np.abs(avr + (i + ii) / 2).max() < 0.003


def test_500hz_agrees_with_100hz_after_decimation(ptbxl_root: Path, superdiag: EcgDataset) -> None:
    hr = load_ptbxl(ptbxl_root, sampling_rate=500, folds=[10])
    lr = superdiag.select_folds([10])
    assert hr.x.shape == (64, 12, 5000) and lr.x.shape == (64, 12, 1000)
    assert hr.record_ids == lr.record_ids and np.array_equal(hr.y, lr.y)
    dec = resample(hr.x, 500, 100)
    # PTB-XL made its 100 Hz files with another filter, so agreement is loose: compare away
    # from the record edges and relative to the signal power (measured median ≈ 9 %).
    err = np.sqrt(np.mean((dec - lr.x)[..., 20:-20] ** 2, axis=(1, 2)))
    power = np.sqrt(np.mean(lr.x**2, axis=(1, 2)))
    assert np.median(err / power) < 0.15 and (err / power).max() < 0.3


@pytest.mark.parametrize("task", TASKS)
def test_label_tables_are_sorted_and_consistent(task: str, tables) -> None:
    records, statements = tables
    labels, per_record = label_table(records, statements, task)
    assert labels == sorted(labels) and len(set(labels)) == len(labels)
    assert all(lab == sorted(set(lab)) and set(lab) <= set(labels) for lab in per_record)
    if task == "diagnostic":
        assert set(labels) <= {c for c, s in statements.items() if s.diagnostic}
    if task == "form":
        assert set(labels) <= {c for c, s in statements.items() if s.form}
    if task == "rhythm":
        assert set(labels) <= {c for c, s in statements.items() if s.rhythm}
    if task == "subdiagnostic":
        assert set(labels) <= {s.diagnostic_subclass for s in statements.values()}


def test_task_facts_on_the_subset(tables) -> None:
    records, statements = tables
    n_unlabelled = {}
    for task in TASKS:
        _, per_record = label_table(records, statements, task)
        n_unlabelled[task] = sum(not lab for lab in per_record)
    # A record has a diagnostic code iff it has a superclass iff it has a subclass.
    assert n_unlabelled["diagnostic"] == n_unlabelled["subdiagnostic"] == 12
    assert n_unlabelled["all"] == 0
    rhythm_labels, rhythm = label_table(records, statements, "rhythm")
    assert "SR" in rhythm_labels and sum("SR" in lab for lab in rhythm) == 407


def test_codes_count_regardless_of_likelihood(tables) -> None:
    records, statements = tables
    first = records[0]  # ecg_id 1: {'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}
    assert first.scp_codes["SR"] == 0.0
    assert aggregate_labels(first.scp_codes, statements, "rhythm") == ["SR"]
    assert aggregate_labels(first.scp_codes, statements, "all") == ["LVOLT", "NORM", "SR"]
    # Duplicated superclasses collapse to one label.
    codes = {"IMI": 100.0, "ASMI": 50.0, "UNKNOWN": 100.0}
    assert aggregate_labels(codes, statements, "superdiagnostic") == ["MI"]
    assert aggregate_labels(codes, statements, "subdiagnostic") == ["AMI", "IMI"]


def test_label_order_does_not_depend_on_loaded_folds(ptbxl_root: Path) -> None:
    ds = load_ptbxl(ptbxl_root, task="rhythm", folds=[10])
    assert (
        ds.labels
        == label_table(read_ptbxl_database(ptbxl_root), read_scp_statements(ptbxl_root), "rhythm")[
            0
        ]
    )


def test_load_dataset_dispatch(ptbxl_root: Path) -> None:
    ds = load_dataset("ptb-xl", ptbxl_root, folds=[10])
    assert ds.source == "ptbxl" and ds.task == "superdiagnostic"


def test_bad_arguments_raise_data_error(ptbxl_root: Path) -> None:
    with pytest.raises(DataError, match="100 or 500"):
        load_ptbxl(ptbxl_root, sampling_rate=250)
    with pytest.raises(DataError, match="task 'nope' is unknown"):
        load_ptbxl(ptbxl_root, task="nope")
    with pytest.raises(DataError, match="file not found"):
        load_ptbxl(ptbxl_root / "missing")
    with pytest.raises(DataError, match=r"no records in fold\(s\) \[0, 11\]"):
        load_ptbxl(ptbxl_root, folds=[0, 10, 11])
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("mitbih", ptbxl_root)


def _write_record(root: Path, x: np.ndarray, names: list[str], units: str = "mV") -> str:
    """Write ``x [leads, t]`` as a 100 Hz WFDB record under ``root``; returns its filename."""
    import wfdb

    folder = root / "records100" / "00000"
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # wfdb's own pandas deprecation warnings
        warnings.simplefilter("ignore")
        wfdb.wrsamp(
        "00001_lr", fs=100, units=[units] * len(names), sig_name=names,
            p_signal=x.T.astype(np.float64), fmt=["16"] * len(names),
            adc_gain=[1000.0] * len(names), baseline=[0] * len(names), write_dir=str(folder),
        )  # fmt: skip
    return "records100/00000/00001_lr"


def test_reordered_leads_are_put_back_in_order(ptbxl_root: Path, tmp_path: Path) -> None:
    original = read_ptbxl_record(ptbxl_root, "records100/00000/00001_lr", 100)
    perm = [11, 3, 0, 7, 1, 2, 10, 4, 6, 5, 9, 8]
    names = [LEADS[i].upper() if i % 2 else LEADS[i] for i in perm]  # mixed "AVR"/"aVR" case
    filename = _write_record(tmp_path, original[perm], names)
    restored = read_ptbxl_record(tmp_path, filename, 100)
    np.testing.assert_allclose(restored, original, atol=1e-3)


def test_missing_lead_or_wrong_units_names_the_file(ptbxl_root: Path, tmp_path: Path) -> None:
    original = read_ptbxl_record(ptbxl_root, "records100/00000/00001_lr", 100)
    filename = _write_record(tmp_path, original[:11], list(LEADS[:11]))
    with pytest.raises(
        DataError, match=r"00001_lr\.hea: field 'sig_name' lacks lead\(s\) V6; expected"
    ):
        read_ptbxl_record(tmp_path, filename, 100)
    filename = _write_record(tmp_path, original, list(LEADS), units="uV")
    with pytest.raises(DataError, match="field 'units' is \\['uV'\\], expected 'mV'"):
        read_ptbxl_record(tmp_path, filename, 100)
    with pytest.raises(DataError, match="field 'fs' is 100, expected 500"):
        read_ptbxl_record(tmp_path, filename, 500)
    with pytest.raises(DataError, match="not found"):
        read_ptbxl_record(tmp_path, "records100/00000/00002_lr", 100)
    (tmp_path / f"{filename}.hea").write_text("this is not a header\n")
    with pytest.raises(DataError, match=r"00001_lr\.hea: field 'n_sig' is 'is'") as info:
        read_ptbxl_record(tmp_path, filename, 100)
    assert "\n" not in str(info.value)


def test_malformed_metadata_is_a_one_line_data_error(ptbxl_root: Path, tmp_path: Path) -> None:
    shutil.copy(ptbxl_root / "scp_statements.csv", tmp_path)
    text = (ptbxl_root / "ptbxl_database.csv").read_text().splitlines()
    text[1] = text[1].replace("\"{'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}\"", '"{NORM: 1"')
    (tmp_path / "ptbxl_database.csv").write_text("\n".join(text[:3]) + "\n")
    with pytest.raises(DataError, match="ecg_id 1: field 'scp_codes'") as info:
        load_ptbxl(tmp_path)
    assert "\n" not in str(info.value)
    (tmp_path / "ptbxl_database.csv").write_text("ecg_id,scp_codes\n1,{}\n")
    with pytest.raises(DataError, match="missing column"):
        load_ptbxl(tmp_path)
