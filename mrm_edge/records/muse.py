"""GE MUSE XML (``<RestingECG>``): the ``<Waveform>`` of type Rhythm (not the Median beat),
one ``<LeadData>`` per stored lead (base64 little-endian int16 samples × units per bit). GE
stores I, II and V1–V6: the shared ``assemble`` derives III, aVR, aVL and aVF."""

from __future__ import annotations

import base64
import binascii
import math
import re
import zlib
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from mrm_edge.data.errors import DataError
from mrm_edge.records.recording import Recording, assemble, checked_length, checked_rate
from mrm_edge.records.xmlsafe import number, parse_xml, required_text, text_of

_WHITESPACE = str.maketrans("", "", " \t\r\n")
_DATE = re.compile(r"(\d{2})-(\d{2})-(\d{4})$")  # MUSE writes MM-DD-YYYY


def read(path: Path) -> Recording:
    root = parse_xml(path)
    rhythm = _rhythm_waveform(path, root)
    rate = _rate(path, rhythm)
    names, rows, units = [], [], []
    for lead in rhythm.findall("LeadData"):
        name, row, unit = _lead(path, lead)
        names.append(name)
        rows.append(row)
        units.append(unit)
    if not rows:
        raise DataError(f"{path}: the Rhythm <Waveform> has no <LeadData>, expected one per lead")
    lengths = {len(r) for r in rows}
    if len(lengths) > 1:
        counts = ", ".join(f"{n} {len(r)}" for n, r in zip(names, rows, strict=True))
        raise DataError(f"{path}: leads hold different sample counts ({counts}), expected one")
    signal, notes, stored = assemble(
        path, names, np.stack(rows), units,
        lead_field="LeadID", unit_field="LeadAmplitudeUnits",
    )  # fmt: skip
    patient = text_of(root, "PatientDemographics/PatientID")
    return Recording(
        path.name, signal, rate, str(path), notes, stored, "ge-muse",
        _start_time(root), patient, None,
    )  # fmt: skip


def _rhythm_waveform(path: Path, root: Element) -> Element:
    waveforms = root.findall("Waveform")
    rhythm = [w for w in waveforms if (text_of(w, "WaveformType") or "").lower() == "rhythm"]
    if len(rhythm) != 1:
        types = [text_of(w, "WaveformType") for w in waveforms]
        raise DataError(
            f"{path}: {len(rhythm)} <Waveform> of WaveformType Rhythm (found {types}), "
            "expected exactly one"
        )
    return rhythm[0]


def _rate(path: Path, waveform: Element) -> int:
    """SampleBase × 10^SampleExponent Hz (the exponent is 0 in every file seen)."""
    base = number(path, "field 'SampleBase'", text_of(waveform, "SampleBase"), int)
    exponent = number(
        path, "field 'SampleExponent'", text_of(waveform, "SampleExponent") or "0", int
    )
    # As a decimal literal: an absurd exponent is inf (refused below), not an OverflowError.
    return checked_rate(path, "field 'SampleBase'", float(f"{base}e{exponent}"))


def _lead(path: Path, lead: Element) -> tuple[str, np.ndarray, str]:
    """One ``<LeadData>``: its name, its samples in its unit, and the unit."""
    name = required_text(path, lead, "LeadID", "a lead name")
    where = f"{path}: lead {name}"
    count = number(
        where, "field 'LeadSampleCountTotal'", text_of(lead, "LeadSampleCountTotal"), int
    )
    count = checked_length(where, "field 'LeadSampleCountTotal'", count)
    size = number(where, "field 'LeadByteCountTotal'", text_of(lead, "LeadByteCountTotal"), int)
    if size != 2 * count:
        raise DataError(
            f"{where}: field 'LeadByteCountTotal' is {size}, expected 2 × "
            f"LeadSampleCountTotal = {2 * count} (16-bit samples)"
        )
    sample_size = text_of(lead, "LeadSampleSize")
    if sample_size not in (None, "2"):
        raise DataError(f"{where}: field 'LeadSampleSize' is {sample_size!r}, expected 2")
    per_bit = number(
        where, "field 'LeadAmplitudeUnitsPerBit'", text_of(lead, "LeadAmplitudeUnitsPerBit")
    )
    if not (math.isfinite(per_bit) and per_bit > 0):
        raise DataError(f"{where}: field 'LeadAmplitudeUnitsPerBit' is {per_bit:g}, expected > 0")
    unit = required_text(where, lead, "LeadAmplitudeUnits", "MICROVOLTS or MILLIVOLTS")
    encoded = (text_of(lead, "WaveFormData") or "").translate(_WHITESPACE)
    if len(encoded) > 4 * (size // 3 + 1):  # far more data than declared: not decoded
        raise DataError(
            f"{where}: field 'WaveFormData' holds {len(encoded)} base64 characters, more than "
            f"the {size} bytes LeadByteCountTotal declares"
        )
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error as e:
        raise DataError(f"{where}: field 'WaveFormData' is not valid base64 ({e})") from None
    if len(raw) != size:
        raise DataError(
            f"{where}: field 'WaveFormData' decodes to {len(raw)} bytes, LeadByteCountTotal "
            f"declares {size}"
        )
    crc = text_of(lead, "LeadDataCRC32")  # MUSE's own check of the decoded bytes
    if crc is not None and number(where, "field 'LeadDataCRC32'", crc, int) != zlib.crc32(raw):
        raise DataError(
            f"{where}: field 'WaveFormData' does not match its LeadDataCRC32 {crc} "
            f"(CRC-32 of the data is {zlib.crc32(raw)})"
        )
    return name, np.frombuffer(raw, "<i2").astype(np.float64) * per_bit, unit


def _start_time(root: Element) -> str | None:
    """AcquisitionDate (MM-DD-YYYY) and AcquisitionTime as ISO 8601; as stored if the date
    has another form; None without a date."""
    date = text_of(root, "TestDemographics/AcquisitionDate")
    time = text_of(root, "TestDemographics/AcquisitionTime")
    if date is None:
        return None
    match = _DATE.match(date)
    if match:
        date = f"{match[3]}-{match[1]}-{match[2]}"
    return f"{date}T{time}" if time else date
