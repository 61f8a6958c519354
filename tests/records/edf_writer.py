"""A test helper: a :class:`Recording` written as EDF+ (or BDF+) with pyedflib, one signal
per lead labelled "ECG <lead>" in µV, one-second data records. Quantisation: 1 µV (physical
range ±32767 µV over the digital range ±32767; a value rounds to the nearest µV, so
PTB-XL's whole µV come back exactly)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from mrm_edge.data.dataset import LEADS
from mrm_edge.records import Recording

FULL_SCALE_UV = 32767


def signal_header(label: str, rate: int, unit: str = "uV") -> dict:
    return {
        "label": label, "dimension": unit, "sample_frequency": rate,
        "physical_max": FULL_SCALE_UV, "physical_min": -FULL_SCALE_UV,
        "digital_max": FULL_SCALE_UV, "digital_min": -FULL_SCALE_UV,
        "transducer": "", "prefilter": "",
    }  # fmt: skip


def write_edf(path: Path, rec: Recording, *, bdf: bool = False) -> Path:
    """``rec`` as an EDF+ file at ``path`` (BDF+ with ``bdf``); its length must be whole
    seconds (EDF stores whole data records)."""
    import pyedflib

    counts = np.round(np.asarray(rec.signal, np.float64) * 1000)
    if np.abs(counts).max(initial=0) > FULL_SCALE_UV:
        raise ValueError(f"{rec.name}: a sample beyond ±32.767 mV does not fit the range")
    if counts.shape[1] % rec.sampling_rate:
        raise ValueError(f"{rec.name}: {counts.shape[1]} samples are no whole seconds")
    kind = pyedflib.FILETYPE_BDFPLUS if bdf else pyedflib.FILETYPE_EDFPLUS
    writer = pyedflib.EdfWriter(str(path), len(LEADS), kind)
    try:
        writer.setSignalHeaders([signal_header(f"ECG {lead}", rec.sampling_rate) for lead in LEADS])
        if rec.patient_id:
            writer.setPatientCode(rec.patient_id)
        if rec.record_id:
            writer.setAdmincode(rec.record_id)
        if rec.start_time:
            writer.setStartdatetime(datetime.fromisoformat(rec.start_time))
        writer.writeSamples(list(counts.astype(np.int32)), digital=True)
    finally:
        writer.close()
    return path
