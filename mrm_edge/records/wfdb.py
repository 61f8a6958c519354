"""WFDB records (PhysioNet; PTB-XL): the header checked before ``wfdb`` reads it (``wfdb``
trusts headers), leads taken by name, units to mV."""

from __future__ import annotations

import warnings
from pathlib import Path

from mrm_edge.data.errors import DataError
from mrm_edge.data.wfdb_header import check_wfdb_header
from mrm_edge.errors import first_line
from mrm_edge.records.recording import Recording, assemble, checked_rate


def read(header: Path) -> Recording:
    """The record whose header is ``header`` (its signal files beside it)."""
    if not header.is_file():
        raise DataError(f"{header}: no such WFDB header (give a .hea, its record stem, or a .mat)")
    info = check_wfdb_header(header)
    with warnings.catch_warnings():  # wfdb's import-time pandas deprecations: not ours
        warnings.filterwarnings("ignore", module=r"wfdb(\.|$)")
        import wfdb

    stem = header.with_suffix("")
    try:
        rec = wfdb.rdrecord(str(stem), physical=True)
    except Exception as e:  # wfdb raises many types for malformed files
        msg = first_line(e, with_type=False)
        raise DataError(f"{header}: unreadable WFDB record ({msg})") from e
    if rec.p_signal is None or rec.p_signal.ndim != 2 or rec.p_signal.shape[1] != info.n_sig:
        raise DataError(f"{header}: wfdb returned no {info.n_sig}-signal array for this record")
    if info.sig_len is not None and rec.p_signal.shape[0] != info.sig_len:
        raise DataError(
            f"{header}: field 'sig_len' is {info.sig_len}, the signal file holds "
            f"{rec.p_signal.shape[0]} samples"
        )
    names = list(rec.sig_name or [])
    units = [(u or "").strip() for u in (rec.units or [""] * len(names))]
    rate = checked_rate(header, "field 'fs'", float(rec.fs))
    signal, notes, stored = assemble(header, names, rec.p_signal.T, units, lead_field="sig_name")
    start = None
    if rec.base_date is not None and rec.base_time is not None:
        start = f"{rec.base_date.isoformat()}T{rec.base_time.isoformat()}"
    return Recording(
        stem.name, signal, rate, str(header), notes, stored, "wfdb", start, None, stem.name
    )
