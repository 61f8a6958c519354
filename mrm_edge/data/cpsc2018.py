"""CPSC 2018 (the China Physiological Signal Challenge, a.k.a. ICBEB 2018).

Records are MATLAB files with a struct ``ECG`` (``data``: 12 × N mV at 500 Hz, 6 to 60 s).
Labels come from the challenge's ``REFERENCE.csv`` (up to three codes per record), the
10-fold split from the benchmark's PTB-XL-style ``cpsc_database.csv`` when present.

Liu et al., J. Med. Imaging Health Inform. 8(7), 2018.
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.errors import one_line

from .dataset import LEADS, EcgDataset, csv_int, read_csv, stack_records
from .errors import DataError, field_error
from .matfile import MatFileError, verified_level5_bytes
from .signal import fit_length, resample

#: Output order: sorted benchmark (PTB-XL style) names, as MultiLabelBinarizer orders them.
CPSC_LABELS: tuple[str, ...] = (
    "1AVB", "AFIB", "CLBBB", "CRBBB", "NORM", "PAC", "STD_", "STE_", "VPC",
)  # fmt: skip
#: REFERENCE.csv code → benchmark name.
CPSC_CODES: dict[int, str] = {
    1: "NORM", 2: "AFIB", 3: "1AVB", 4: "CLBBB", 5: "CRBBB",
    6: "PAC", 7: "VPC", 8: "STD_", 9: "STE_",
}  # fmt: skip
#: The single label task CPSC 2018 offers (all nine challenge classes).
CPSC_TASK = "all"
#: Sampling rate of the challenge files.
CPSC_FS = 500
REFERENCE_CSV = "REFERENCE.csv"
DATABASE_CSV = "cpsc_database.csv"
_LABEL_COLUMNS = ("First_label", "Second_label", "Third_label")


def read_cpsc_mat(
    path: str | PathLike[str], allow_nonfinite: bool = False
) -> tuple[np.ndarray, int]:
    """One challenge ``.mat`` file as (float64 ``[12, N]`` mV, 500).

    The files carry no sampling rate; 500 Hz is the challenge's documented rate.
    NaN / Inf samples are an error unless ``allow_nonfinite`` (the runtime's readers pass
    it: there a window-level quality check rejects the windows they touch, lead named).
    """
    from scipy.io import loadmat  # deferred: only this loader needs scipy.io

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    try:
        # Verified first: scipy's parser has segfaulted on a damaged deflate stream.
        mat = loadmat(verified_level5_bytes(raw), simplify_cells=True)
    except MatFileError as exc:
        raise DataError(f"{path.name}: not a readable MATLAB file ({exc})") from exc
    except Exception as exc:
        # A damaged file can fail anywhere in scipy's parser (MatReadError, IndexError on a
        # truncated header, NotImplementedError for v7.3/HDF5): all mean "unreadable".
        raise DataError(f"{path.name}: not a readable MATLAB file ({one_line(exc)})") from exc
    ecg = mat.get("ECG")
    if not isinstance(ecg, dict):
        found = "is missing" if ecg is None else f"is a {type(ecg).__name__}"
        raise field_error(path.name, "ECG", "a struct with field 'data'", found)
    if "data" not in ecg:
        raise field_error(path.name, "ECG.data", "a 12 x N array", f"is missing ({sorted(ecg)})")
    try:
        data = np.asarray(ecg["data"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise field_error(path.name, "ECG.data", "a numeric array", "is not numeric") from exc
    if data.ndim != 2:
        raise field_error(path.name, "ECG.data", "a 12 x N array", f"has shape {data.shape}")
    if data.shape[0] != len(LEADS):
        raise field_error(path.name, "ECG.data", str(len(LEADS)), f"has {data.shape[0]} leads")
    if data.shape[1] == 0:
        raise field_error(path.name, "ECG.data", "at least one sample", "has 0 samples")
    if not allow_nonfinite and not np.isfinite(data).all():
        n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise field_error(path.name, "ECG.data", "finite values", f"has {n_bad} non-finite")
    return data, CPSC_FS


def read_cpsc_reference(path: str | PathLike[str]) -> dict[str, list[str]]:
    """``REFERENCE.csv`` as {recording: sorted label names}, in file order."""
    path = Path(path)
    rows = read_csv(path, ["Recording", "First_label"], "CPSC 2018")
    out: dict[str, list[str]] = {}
    for line, row in enumerate(rows, start=2):
        rec = (row.get("Recording") or "").strip()
        if not rec:
            raise DataError(f"{path.name}: line {line} field 'Recording' is empty")
        names: set[str] = set()
        for col in _LABEL_COLUMNS:
            cell = (row.get(col) or "").strip()
            if not cell:
                continue
            try:
                names.add(CPSC_CODES[int(float(cell))])
            except (ValueError, KeyError) as exc:
                raise DataError(
                    f"{path.name}: {rec} field {col!r} is {cell!r}, expected a code 1..9"
                ) from exc
        if not names:
            raise DataError(f"{path.name}: {rec} has no label, expected at least First_label")
        out[rec] = sorted(names)
    if not out:
        raise DataError(f"{path.name}: lists no recordings, expected one row per recording")
    return out


def read_cpsc_folds(path: str | PathLike[str]) -> dict[str, int]:
    """``cpsc_database.csv`` as {recording: strat_fold}.

    The ``filename`` column holds the bare recording name (``A0001``); a directory prefix
    or extension is stripped so other exports of the table match too.
    """
    path = Path(path)
    rows = read_csv(path, ["filename", "strat_fold"], "CPSC 2018")
    folds: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        rec = Path(row["filename"].strip()).stem
        folds[rec] = csv_int(row["strat_fold"], f"{path.name} line {line}", "strat_fold")
    return folds


def _find_mat_files(root: Path) -> Mapping[str, Path]:
    # The official training set ships as TrainingSet1..3 folders; search below root.
    return {p.stem: p for p in sorted(root.rglob("*.mat"))}


def load_cpsc2018(
    root: str | PathLike[str],
    sampling_rate: int = 100,
    seconds: float = 10.0,
) -> EcgDataset:
    """Load every recording listed in ``REFERENCE.csv`` as a fixed-length dataset.

    Each record is resampled from 500 Hz to ``sampling_rate`` over its *whole* length,
    then the first ``seconds`` are kept (as the benchmark does) or zeros are appended at
    the end of shorter records. Folds come from ``cpsc_database.csv`` when present
    (recordings it does not list, or all when it is absent, get fold 0).
    """
    if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, int) or sampling_rate <= 0:
        raise DataError(f"CPSC 2018: sampling_rate is {sampling_rate!r}, expected a positive int")
    n_out = round(seconds * sampling_rate)
    if n_out <= 0:
        raise DataError(f"CPSC 2018: seconds is {seconds!r}, expected a positive duration")
    root = Path(root)
    reference = read_cpsc_reference(root / REFERENCE_CSV)
    db_path = root / DATABASE_CSV
    fold_of = read_cpsc_folds(db_path) if db_path.exists() else {}
    mats = _find_mat_files(root)
    absent = [rec for rec in reference if rec not in mats]
    if absent:
        raise DataError(
            f"{REFERENCE_CSV}: {len(absent)} listed recording(s) have no .mat file under "
            f"{root} (first: {absent[0]})"
        )

    def read(item: tuple[str, Any]) -> tuple[np.ndarray, Any]:
        rec, names = item
        data, fs = read_cpsc_mat(mats[rec])
        return fit_length(resample(data, fs, sampling_rate), n_out), names

    x, y = stack_records(list(reference.items()), CPSC_LABELS, n_out, read)
    return EcgDataset(
        x=x,
        y=y,
        labels=list(CPSC_LABELS),
        record_ids=list(reference),
        folds=np.array([fold_of.get(rec, 0) for rec in reference], dtype=np.int64),
        sampling_rate=sampling_rate,
        source="cpsc2018",
        task=CPSC_TASK,
    )
