"""Test helper: a :class:`Recording` written as GE MUSE XML the way GE stores it: 8 leads
(I, II, V1–V6; the reader derives the other four), 16-bit at 4.88 µV per bit, base64, a
Median waveform before the Rhythm one. Quantisation: ±2.44 µV per stored lead."""

from __future__ import annotations

import base64
import zlib
from pathlib import Path
from xml.etree.ElementTree import Element, SubElement, tostring

import numpy as np

from mrm_edge.data.dataset import LEADS
from mrm_edge.records.recording import Recording

UV_PER_BIT = 4.88
STORED = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
MEDIAN_SAMPLES = 600


def write_muse(path: Path, rec: Recording) -> Path:
    root = Element("RestingECG")
    SubElement(SubElement(root, "MuseInfo"), "MuseVersion").text = "9.0.9.18167"
    if rec.patient_id:
        SubElement(SubElement(root, "PatientDemographics"), "PatientID").text = rec.patient_id
    if rec.start_time:  # ISO 8601 → MUSE's MM-DD-YYYY and HH:MM:SS
        date, _, time = rec.start_time.partition("T")
        year, month, day = date.split("-")
        test = SubElement(root, "TestDemographics")
        SubElement(test, "AcquisitionTime").text = time[:8]
        SubElement(test, "AcquisitionDate").text = f"{month}-{day}-{year}"
    digits = np.round(rec.signal.astype(np.float64) * 1000 / UV_PER_BIT)
    if np.abs(digits).max() > 32767:
        raise ValueError(f"{rec.name}: beyond ±{32767 * UV_PER_BIT / 1000:.0f} mV, not 16-bit")
    digits = digits.astype("<i2")
    _waveform(root, "Median", rec.sampling_rate, digits[:, :MEDIAN_SAMPLES])
    _waveform(root, "Rhythm", rec.sampling_rate, digits)
    head = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE RestingECG SYSTEM "restecg.dtd">\n'
    )
    path.write_bytes(head.encode("latin-1") + tostring(root, encoding="unicode").encode("latin-1"))
    return path


def _waveform(root: Element, kind: str, rate: int, digits: np.ndarray) -> None:
    waveform = SubElement(root, "Waveform")
    for tag, text in (("WaveformType", kind), ("WaveformStartTime", "0"),
                      ("NumberofLeads", str(len(STORED))), ("SampleType", "CONTINUOUS_SAMPLES"),
                      ("SampleBase", str(rate)), ("SampleExponent", "0")):  # fmt: skip
        SubElement(waveform, tag).text = text
    for name in STORED:
        raw = digits[LEADS.index(name)].tobytes()
        lead = SubElement(waveform, "LeadData")
        for tag, text in (("LeadByteCountTotal", str(len(raw))), ("LeadTimeOffset", "0"),
                          ("LeadSampleCountTotal", str(len(raw) // 2)),
                          ("LeadAmplitudeUnitsPerBit", str(UV_PER_BIT)),
                          ("LeadAmplitudeUnits", "MICROVOLTS"), ("LeadID", name),
                          ("LeadSampleSize", "2"), ("LeadDataCRC32", str(zlib.crc32(raw))),
                          ("WaveFormData", base64.encodebytes(raw).decode())):  # fmt: skip
            SubElement(lead, tag).text = text
