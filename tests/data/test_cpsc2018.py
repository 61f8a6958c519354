"""CPSC 2018 loading on the real 10-recording sample, plus the shared signal helpers."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from mrm_edge.data.cpsc2018 import (
    CPSC_CODES,
    CPSC_LABELS,
    load_cpsc2018,
    read_cpsc_folds,
    read_cpsc_mat,
)
from mrm_edge.data.dataset import EcgDataset
from mrm_edge.data.errors import DataError
from mrm_edge.data.loaders import load_dataset
from mrm_edge.data.signal import fit_length, resample

RECORDINGS = [f"A{i}" for i in range(1980, 1990)]


@pytest.fixture(scope="module")
def cpsc(cpsc_root: Path) -> EcgDataset:
    return load_cpsc2018(cpsc_root, sampling_rate=100, seconds=10.0)


@pytest.fixture(scope="module")
def reference(cpsc_root: Path) -> dict[str, set[str]]:
    with (cpsc_root / "REFERENCE.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    return {r[0]: {CPSC_CODES[int(c)] for c in r[1:] if c.strip()} for r in rows}


@pytest.mark.realdata
def test_all_recordings_load_at_fixed_length(cpsc: EcgDataset) -> None:
    assert cpsc.record_ids == RECORDINGS
    assert cpsc.x.shape == (10, 12, 1000) and cpsc.x.dtype == np.float32
    assert np.isfinite(cpsc.x).all()
    assert cpsc.labels == list(CPSC_LABELS) == sorted(CPSC_LABELS)
    assert (cpsc.source, cpsc.task, cpsc.sampling_rate) == ("cpsc2018", "all", 100)


@pytest.mark.realdata
def test_labels_match_reference_csv(cpsc: EcgDataset, reference: dict[str, set[str]]) -> None:
    for rec, row in zip(cpsc.record_ids, cpsc.y, strict=True):
        assert {cpsc.labels[j] for j in np.flatnonzero(row)} == reference[rec]
    assert cpsc.label_counts() == {
        "1AVB": 3, "AFIB": 0, "CLBBB": 0, "CRBBB": 2, "NORM": 1,
        "PAC": 1, "STD_": 3, "STE_": 0, "VPC": 0,
    }  # fmt: skip


@pytest.mark.realdata
def test_folds_come_from_cpsc_database(
    cpsc: EcgDataset, cpsc_root: Path, reference: dict[str, set[str]]
) -> None:
    assert cpsc.folds.tolist() == [5, 6, 4, 10, 4, 9, 7, 9, 5, 1]
    folds = read_cpsc_folds(cpsc_root / "cpsc_database.csv")
    assert len(folds) == 6877 and set(folds.values()) == set(range(1, 11))
    # The benchmark's table and the challenge's label file agree on these recordings.
    with (cpsc_root / "cpsc_database.csv").open(newline="") as fh:
        codes = {Path(r["filename"]).stem: r["scp_codes"] for r in csv.DictReader(fh)}
    assert all(set(ast.literal_eval(codes[rec])) == reference[rec] for rec in RECORDINGS)


@pytest.mark.realdata
def test_long_record_keeps_its_first_ten_seconds(cpsc: EcgDataset, cpsc_root: Path) -> None:
    raw, fs = read_cpsc_mat(cpsc_root / "A1988.mat")
    assert fs == 500 and raw.shape == (12, 27157)
    i = cpsc.record_ids.index("A1988")
    head = resample(raw[:, :2000], 500, 100)  # 4 s: its cut is far from the first second
    np.testing.assert_allclose(cpsc.x[i, :, :100], head[:, :100], atol=1e-5)
    ten = resample(raw[:, :5500], 500, 100)[:, :1000]
    np.testing.assert_allclose(cpsc.x[i, :, :990], ten[:, :990], atol=1e-5)


@pytest.mark.realdata
def test_ten_second_record_is_exactly_1000_samples(cpsc: EcgDataset, cpsc_root: Path) -> None:
    raw, _ = read_cpsc_mat(cpsc_root / "A1980.mat")
    assert raw.shape == (12, 5000)
    i = cpsc.record_ids.index("A1980")
    np.testing.assert_allclose(cpsc.x[i], resample(raw, 500, 100), atol=1e-6)
    assert np.abs(cpsc.x[i, :, -10:]).max() > 0  # nothing padded


@pytest.mark.realdata
def test_load_dataset_dispatches_and_guards_the_task(cpsc_root: Path) -> None:
    ds = load_dataset("cpsc2018", cpsc_root, sampling_rate=250, seconds=2.0)
    assert ds.x.shape == (10, 12, 500) and ds.task == "all"
    with pytest.raises(DataError, match="task 'superdiagnostic' is not available for cpsc2018"):
        load_dataset("cpsc2018", cpsc_root, task="superdiagnostic")


def _write_mat(path: Path, ecg: object) -> None:
    savemat(path, {"ECG": ecg} if ecg is not None else {"other": 1})


def test_short_record_is_zero_padded_at_the_end(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(0, 0.3, (12, 3000))  # 6 s at 500 Hz
    _write_mat(tmp_path / "A0001.mat", {"sex": "Male", "age": 50, "data": data})
    (tmp_path / "REFERENCE.csv").write_text(
        "Recording,First_label,Second_label,Third_label\nA0001,2,7,\n"
    )
    ds = load_cpsc2018(tmp_path)
    assert ds.x.shape == (1, 12, 1000)
    assert np.all(ds.x[0, :, 600:] == 0)
    np.testing.assert_allclose(ds.x[0, :, :600], resample(data, 500, 100), atol=1e-6)
    assert [ds.labels[j] for j in np.flatnonzero(ds.y[0])] == ["AFIB", "VPC"]
    assert ds.folds.tolist() == [0]  # no cpsc_database.csv here


@pytest.mark.parametrize(
    ("ecg", "message"),
    [
        (None, r"A0001\.mat: field 'ECG' is missing"),
        ({"sex": "Male"}, r"A0001\.mat: field 'ECG\.data' is missing"),
        ({"data": np.zeros((11, 500))}, r"A0001\.mat: field 'ECG\.data' has 11 leads, expected 12"),
        ({"data": np.full((12, 500), np.nan)}, r"field 'ECG\.data' has 6000 non-finite"),
        ({"data": np.zeros(500)}, r"field 'ECG\.data' has shape \(500,\)"),
    ],
)
def test_malformed_mat_files_raise_one_line_data_errors(
    tmp_path: Path, ecg: object, message: str
) -> None:
    _write_mat(tmp_path / "A0001.mat", ecg)
    with pytest.raises(DataError, match=message) as info:
        read_cpsc_mat(tmp_path / "A0001.mat")
    assert "\n" not in str(info.value)


def test_bad_reference_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "garbage.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(DataError, match=r"garbage\.mat: not a readable MATLAB file"):
        read_cpsc_mat(tmp_path / "garbage.mat")
    header = "Recording,First_label,Second_label,Third_label\n"
    (tmp_path / "REFERENCE.csv").write_text(header + "A0001,12,,\n")
    with pytest.raises(
        DataError, match=r"A0001 field 'First_label' is '12', expected a code 1\.\.9"
    ):
        load_cpsc2018(tmp_path)
    (tmp_path / "REFERENCE.csv").write_text(header + "A0001,1,,\n")
    with pytest.raises(DataError, match=r"no \.mat file .* \(first: A0001\)"):
        load_cpsc2018(tmp_path)
    with pytest.raises(DataError, match="file not found"):
        load_cpsc2018(tmp_path / "nowhere")


def test_resample_preserves_a_sine() -> None:
    fs_in, fs_out = 500, 100
    t_in = np.arange(10 * fs_in) / fs_in
    y = resample(np.sin(2 * np.pi * 5.0 * t_in), fs_in, fs_out)
    assert y.shape == (1000,)
    t_out = np.arange(1000) / fs_out
    # Away from the edges the 5 Hz sine passes unchanged: same amplitude, phase, frequency.
    np.testing.assert_allclose(y[50:-50], np.sin(2 * np.pi * 5.0 * t_out)[50:-50], atol=0.01)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.fft.rfftfreq(1000, 1 / fs_out)[spectrum.argmax()] == pytest.approx(5.0)


def test_resample_shapes_dtypes_and_arguments() -> None:
    x = np.ones((2, 12, 5000), dtype=np.float32)
    assert resample(x, 500, 100).shape == (2, 12, 1000)
    assert resample(x, 500, 100).dtype == np.float32
    assert resample(x, 500, 250).shape == (2, 12, 2500)  # gcd: up 1, down 2
    assert resample(x[0, 0], 500, 360).shape == (3600,)  # gcd 20: up 18, down 25
    same = resample(x, 500, 500)
    assert same is not x and np.array_equal(same, x)
    with pytest.raises(DataError, match="fs_out must be a positive integer"):
        resample(x, 500, 0)


def test_fit_length_truncates_from_the_end_and_pads_with_zeros() -> None:
    x = np.arange(24, dtype=np.float32).reshape(2, 12)
    np.testing.assert_array_equal(fit_length(x, 5), x[:, :5])
    padded = fit_length(x, 15)
    assert padded.shape == (2, 15) and padded.dtype == np.float32
    np.testing.assert_array_equal(padded[:, :12], x)
    assert np.all(padded[:, 12:] == 0)
    out = fit_length(x, 12)
    assert out is not x and np.array_equal(out, x)
    with pytest.raises(DataError):
        fit_length(x, -1)
