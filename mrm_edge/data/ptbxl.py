"""PTB-XL: metadata, the benchmark's label aggregation (``utils.compute_label_aggregations`` and
``select_data`` of github.com/helme/ecg_ptbxl_benchmarking, with the standard library instead
of pandas; the rules kept: docs/model.md, "Reading recordings"), and signal loading.

Wagner et al., "PTB-XL, a large publicly available electrocardiography dataset",
Scientific Data 7, 154 (2020), CC BY 4.0."""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.records import read_recording

from .dataset import UNITS, EcgDataset, csv_int, read_csv, stack_records
from .errors import DataError

TASKS = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")
DATABASE_CSV = "ptbxl_database.csv"
STATEMENTS_CSV = "scp_statements.csv"
RECORD_SECONDS = 10
_FILENAME_COLUMN = {100: "filename_lr", 500: "filename_hr"}


@dataclass(frozen=True)
class ScpStatement:
    """One row of ``scp_statements.csv`` (only the columns the label tasks use)."""

    diagnostic: bool
    form: bool
    rhythm: bool
    diagnostic_class: str | None
    diagnostic_subclass: str | None


@dataclass(frozen=True)
class PtbxlRecord:
    """One row of ``ptbxl_database.csv`` (only the columns loading needs)."""

    ecg_id: int
    scp_codes: dict[str, float]
    strat_fold: int
    filename_lr: str
    filename_hr: str


def _flag(value: str) -> bool:
    # The table stores flags as "1.0" or an empty cell.
    return value.strip() not in ("", "0", "0.0", "nan", "NaN")


def _text(value: str) -> str | None:
    value = value.strip()
    return None if value in ("", "nan", "NaN") else value


def read_scp_statements(root: str | PathLike[str]) -> dict[str, ScpStatement]:
    """The SCP statement table keyed by statement code.

    The code is the file's unnamed first column (pandas' ``index_col=0`` in the benchmark).
    """
    path = Path(root) / STATEMENTS_CSV
    rows = read_csv(path, ["diagnostic", "form", "rhythm", "diagnostic_class"], "PTB-XL")
    statements: dict[str, ScpStatement] = {}
    for i, row in enumerate(rows, start=2):
        code = (row.get("") or "").strip()
        if not code:
            raise DataError(f"{path.name}: line {i} has an empty statement code (first column)")
        statements[code] = ScpStatement(
            diagnostic=_flag(row["diagnostic"]),
            form=_flag(row["form"]),
            rhythm=_flag(row["rhythm"]),
            diagnostic_class=_text(row["diagnostic_class"]),
            diagnostic_subclass=_text(row.get("diagnostic_subclass") or ""),
        )
    return statements


def _parse_scp_codes(text: str, where: str) -> dict[str, float]:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise DataError(
            f"{where}: field 'scp_codes' is {text[:60]!r}, expected a dict literal"
        ) from exc
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise DataError(
            f"{where}: field 'scp_codes' is {text[:60]!r}, expected a dict of code -> likelihood"
        )
    try:
        return {k: float(v) for k, v in value.items()}
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{where}: field 'scp_codes' is {text[:60]!r}, expected numeric likelihoods"
        ) from exc


def read_ptbxl_database(root: str | PathLike[str]) -> list[PtbxlRecord]:
    """All rows of ``ptbxl_database.csv`` in file order, with ``scp_codes`` parsed."""
    path = Path(root) / DATABASE_CSV
    required = ["ecg_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr"]
    records = []
    for i, row in enumerate(read_csv(path, required, "PTB-XL"), start=2):
        where = f"{path.name} line {i}"
        ecg_id = csv_int(row["ecg_id"], where, "ecg_id")
        where = f"{path.name} ecg_id {ecg_id}"
        records.append(
            PtbxlRecord(
                ecg_id=ecg_id,
                scp_codes=_parse_scp_codes(row["scp_codes"], where),
                strat_fold=csv_int(row["strat_fold"], where, "strat_fold"),
                filename_lr=row["filename_lr"].strip(),
                filename_hr=row["filename_hr"].strip(),
            )
        )
    if not records:
        raise DataError(f"{path.name}: has no rows, expected one per record")
    return records


def aggregate_labels(
    scp_codes: Mapping[str, float], statements: Mapping[str, ScpStatement], task: str
) -> list[str]:
    """The sorted, de-duplicated labels of one record for ``task``.

    Codes absent from the statement table are ignored (for ``"all"`` too), as are
    diagnostic codes without a sub/superclass. ``task`` is one of :data:`TASKS` (checked by
    :func:`load_ptbxl`).
    """
    out: set[str] = set()
    for code in scp_codes:
        st = statements.get(code)
        if st is None:
            continue
        if task == "all" or (task == "form" and st.form) or (task == "rhythm" and st.rhythm):
            out.add(code)
        elif st.diagnostic:
            if task == "diagnostic":
                out.add(code)
            elif task == "subdiagnostic" and st.diagnostic_subclass:
                out.add(st.diagnostic_subclass)
            elif task == "superdiagnostic" and st.diagnostic_class:
                out.add(st.diagnostic_class)
    return sorted(out)


def label_table(
    records: Sequence[PtbxlRecord],
    statements: Mapping[str, ScpStatement],
    task: str,
) -> tuple[list[str], list[list[str]]]:
    """Label order (every label seen in ``records``, the benchmark's ``min_samples=0``) and
    per-record labels for ``task``; a record can have an empty list."""
    per_record = [aggregate_labels(r.scp_codes, statements, task) for r in records]
    return sorted({label for labels in per_record for label in labels}), per_record


def read_ptbxl_record(root: str | PathLike[str], filename: str, sampling_rate: int) -> np.ndarray:
    """One WFDB record as float32 ``[12, 10 * sampling_rate]`` mV in :data:`LEADS` order.

    Read by :func:`mrm_edge.records.read_recording` (header checked, leads taken by name),
    then held to what training needs: this sampling rate, 10 s, mV, finite samples.
    """
    path = Path(root) / filename
    name = f"{filename}.hea"
    if not Path(f"{path}.hea").is_file():
        raise DataError(f"{path}: WFDB record not found (no {path.name}.hea)")
    rec = read_recording(f"{path}.hea")
    if rec.sampling_rate != sampling_rate:
        raise DataError(f"{name}: field 'fs' is {rec.sampling_rate}, expected {sampling_rate}")
    n_expected = RECORD_SECONDS * sampling_rate
    if rec.signal.shape[1] != n_expected:
        raise DataError(f"{name}: field 'sig_len' is {rec.signal.shape[1]}, expected {n_expected}")
    bad_units = set(rec.units) - {UNITS}
    if bad_units:
        raise DataError(f"{name}: field 'units' is {sorted(bad_units)}, expected {UNITS!r}")
    if not np.isfinite(rec.signal).all():
        raise DataError(f"{name}: signal has non-finite samples, expected finite mV values")
    return rec.signal


def load_ptbxl(
    root: str | PathLike[str],
    task: str = "superdiagnostic",
    sampling_rate: int = 100,
    folds: Iterable[int] | None = None,
) -> EcgDataset:
    """Load PTB-XL (or a subset in its layout) for one benchmark label task.

    Args:
        root: directory holding ``ptbxl_database.csv`` and ``records100``/``records500``.
        task: one of :data:`TASKS`.
        sampling_rate: 100 (``filename_lr``) or 500 (``filename_hr``); PTB-XL ships no other.
        folds: ``strat_fold`` values to load (default all). The label order is still
            computed from the whole table so every fold selection yields the same columns.

    Records without a label for ``task`` are dropped, as the benchmark does; how many is kept
    per fold in ``EcgDataset.dropped_unlabelled``.
    """
    if sampling_rate not in _FILENAME_COLUMN:
        raise DataError(
            f"PTB-XL: sampling_rate is {sampling_rate!r}, expected 100 or 500 "
            "(the two rates PTB-XL provides; resample afterwards for others)"
        )
    if task not in TASKS:
        raise DataError(f"PTB-XL: task {task!r} is unknown, expected one of {TASKS}")
    root = Path(root)
    records = read_ptbxl_database(root)
    labels, per_record = label_table(records, read_scp_statements(root), task)
    wanted = None if folds is None else {int(f) for f in folds}
    unknown = sorted((wanted or set()) - {r.strat_fold for r in records})
    if unknown:
        raise DataError(
            f"{DATABASE_CSV}: field 'strat_fold' has no records in fold(s) {unknown}, "
            f"expected folds from {sorted({r.strat_fold for r in records})}"
        )

    chosen: list[tuple[PtbxlRecord, list[str]]] = []
    dropped: Counter[int] = Counter()
    for rec, rec_labels in zip(records, per_record, strict=True):
        if wanted is not None and rec.strat_fold not in wanted:
            continue
        if not rec_labels:
            dropped[rec.strat_fold] += 1
            continue
        chosen.append((rec, rec_labels))
    loaded_folds = sorted(wanted if wanted is not None else {r.strat_fold for r in records})

    column_name = _FILENAME_COLUMN[sampling_rate]

    def read(item: tuple[Any, list[str]]) -> tuple[np.ndarray, list[str]]:
        rec, rec_labels = item
        filename = getattr(rec, column_name)
        if not filename:
            raise DataError(f"{DATABASE_CSV} ecg_id {rec.ecg_id}: field {column_name!r} is empty")
        return read_ptbxl_record(root, filename, sampling_rate), rec_labels

    x, y = stack_records(chosen, labels, RECORD_SECONDS * sampling_rate, read)
    return EcgDataset(
        x=x,
        y=y,
        labels=labels,
        record_ids=[str(rec.ecg_id) for rec, _ in chosen],
        folds=np.array([rec.strat_fold for rec, _ in chosen], dtype=np.int64),
        sampling_rate=sampling_rate,
        source="ptbxl",
        task=task,
        dropped_unlabelled={f: dropped[f] for f in loaded_folds},
    )
