"""EDF/EDF+ and BDF/BDF+ recordings read with pyedflib: the 12 leads found by their signal
labels ("ECG I", "EKG V1", "I"), each signal's physical dimension its unit, all 12 at one
rate; annotation signals and other channels left out. The sizes the header declares are
checked against the file before pyedflib opens it (its C library prints a size mismatch
to stdout, where ``predict --json`` writes)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mrm_edge.data.dataset import LEADS
from mrm_edge.data.errors import DataError
from mrm_edge.data.leads import canonical_lead
from mrm_edge.records.recording import Recording, assemble, checked_length, checked_rate

# The fixed header (256 bytes), then 256 bytes per signal, field by field: label 16,
# transducer 80, dimension 8, physical min/max 8 + 8, digital min/max 8 + 8, prefilter 80,
# samples per record 8, reserved 32.
_SAMPLES_PER_RECORD_AT = 16 + 80 + 8 + 8 + 8 + 8 + 8 + 80
# "ECG-I", "EKG.V1": the separators the shared names do not take (leads.py takes "ECG I").
_SEPARATOR = re.compile(r"^(ECG|EKG)[-.]\s*", re.I)
_UNKNOWN = ("", "X")  # EDF+ writes X for a subfield it does not know


def read(path: Path) -> Recording:
    """The 12 leads of the EDF or BDF file at ``path``."""
    _check_declared_size(path)
    import pyedflib

    try:
        reader = pyedflib.EdfReader(str(path))
    except OSError as e:  # pyedflib's one error type for a file it refuses
        why = str(e).removeprefix(f"{path}: ")
        raise DataError(f"{path}: pyedflib refuses it: {why}") from None
    with reader:
        labels = [_SEPARATOR.sub(r"\1 ", label) for label in reader.getSignalLabels()]
        leads = [i for i, label in enumerate(labels) if canonical_lead(label) in LEADS]
        if not leads:
            raise DataError(
                f"{path}: field 'label' names none of the 12 standard leads, found {labels}"
            )
        rate = _one_rate(path, reader, labels, leads)
        what = "field 'number of data records' × 'samples per record'"
        checked_length(path, what, int(reader.getNSamples()[leads[0]]))  # one rate: one count
        signal = np.stack([reader.readSignal(i) for i in leads])
        units = [reader.getPhysicalDimension(i) for i in leads]
        names = [labels[i] for i in leads]
        signal, notes, stored = assemble(
            path, names, signal, units, lead_field="label", unit_field="physical dimension"
        )
        others = [label for i, label in enumerate(labels) if i not in leads]
        if others:
            notes = (*notes, f"other signals left out: {', '.join(others)}")
        start = reader.getStartdatetime().isoformat()
        patient, admin = reader.getPatientCode().strip(), reader.getAdmincode().strip()
    return Recording(
        path.name, signal, rate, str(path), notes, stored, "edf", start,
        None if patient in _UNKNOWN else patient, None if admin in _UNKNOWN else admin,
    )  # fmt: skip


def _one_rate(path: Path, reader, labels: list[str], leads: list[int]) -> int:
    """The leads' one sample rate; a file storing them at different rates is refused."""
    rates = {labels[i]: float(reader.getSampleFrequency(i)) for i in leads}
    if len(set(rates.values())) > 1:
        found = ", ".join(f"{label} {rate:g} Hz" for label, rate in rates.items())
        raise DataError(
            f"{path}: field 'samples per record' gives the leads different rates ({found}), "
            "expected one rate for all 12"
        )
    return checked_rate(path, "the leads' sample rate", next(iter(rates.values())))


def _check_declared_size(path: Path) -> None:
    """The header's data records × samples per record against the file's size."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(256)
        signals = _field(path, head[252:256], "number of signals")
        if size < 256 * (signals + 1):
            raise DataError(f"{path}: {size} bytes, shorter than its header of {signals} signals")
        f.seek(256 + _SAMPLES_PER_RECORD_AT * signals)
        per_signal = f.read(8 * signals)
    records = _field(path, head[236:244], "number of data records")
    per_record = sum(
        _field(path, per_signal[i : i + 8], "samples per record") for i in range(0, 8 * signals, 8)
    )
    width = 3 if head[:1] == b"\xff" else 2  # BDF stores 24-bit samples, EDF 16-bit
    declared = 256 * (signals + 1) + records * per_record * width
    if declared > size:
        raise DataError(
            f"{path}: fields 'number of data records' ({records}) × 'samples per record' "
            f"({per_record}) declare {declared} bytes, the file has {size}"
        )


def _field(path: Path, raw: bytes, name: str) -> int:
    """A header number that must be a whole number ≥ 1."""
    text = raw.decode("ascii", "replace").strip()
    if not text.isdigit() or int(text) < 1:
        raise DataError(f"{path}: field {name!r} is {text!r}, expected a whole number ≥ 1")
    return int(text)
