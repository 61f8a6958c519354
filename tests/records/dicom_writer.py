"""A test helper: a :class:`Recording` written as a DICOM 12-Lead ECG Waveform Storage file
with pydicom (one RHYTHM multiplex group, 16-bit SS at 1 µV per count, baseline 0, SCP-ECG
lead codes with their meanings, UCUM units). Quantisation: 1 µV (a value rounds to the
nearest µV; PTB-XL stores whole µV, so its records come back exactly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrm_edge.data.dataset import LEADS
from mrm_edge.records import Recording

TWELVE_LEAD_ECG = "1.2.840.10008.5.1.4.1.1.9.1.1"
# SCP-ECG lead numbers (EN 1064 table 28), coded in DICOM as "5.6.3-9-<n>".
SCPECG_NUMBER = {
    "I": 1, "II": 2, "V1": 3, "V2": 4, "V3": 5, "V4": 6, "V5": 7, "V6": 8,
    "III": 61, "aVR": 62, "aVL": 63, "aVF": 64,
}  # fmt: skip
MEANING = {"I": "Lead I (Einthoven)", "II": "Lead II", "III": "Lead III"}


def code_item(value: str, scheme: str, meaning: str):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def channel_item(lead: str, sensitivity: float = 1.0, unit: str = "uV"):
    """The ChannelDefinitionSequence item of ``lead`` (a standard lead name)."""
    from pydicom.dataset import Dataset

    channel = Dataset()
    meaning = MEANING.get(lead, f"Lead {lead}")
    channel.ChannelSourceSequence = [code_item(f"5.6.3-9-{SCPECG_NUMBER[lead]}", "SCPECG", meaning)]
    channel.ChannelSensitivity = f"{sensitivity:g}"
    channel.ChannelSensitivityUnitsSequence = [code_item(unit, "UCUM", unit)]
    channel.ChannelSensitivityCorrectionFactor = "1"
    channel.ChannelBaseline = "0"
    channel.WaveformBitsStored = 16
    return channel


def rhythm_group(counts: np.ndarray, rate: int, label: str = "RHYTHM"):
    """One multiplex group of int16 ``counts`` [12, samples] (1 µV each) in LEADS order."""
    from pydicom.dataset import Dataset

    group = Dataset()
    group.MultiplexGroupLabel = label
    group.WaveformOriginality = "ORIGINAL" if label == "RHYTHM" else "DERIVED"
    group.NumberOfWaveformChannels = counts.shape[0]
    group.NumberOfWaveformSamples = counts.shape[1]
    group.SamplingFrequency = str(rate)
    group.ChannelDefinitionSequence = [channel_item(lead) for lead in LEADS]
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    group.WaveformData = np.ascontiguousarray(counts.T, dtype="<i2").tobytes()  # interleaved
    return group


def write_dicom(path: Path, rec: Recording, *, median_first: bool = False) -> Path:
    """``rec`` as a 12-lead ECG DICOM file at ``path``; ``median_first`` puts a MEDIAN BEAT
    group (the first second) before the RHYTHM group, as carts may."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    counts = np.round(np.asarray(rec.signal, np.float64) * 1000)
    if np.abs(counts).max(initial=0) > 32767:
        raise ValueError(f"{rec.name}: a sample beyond ±32.767 mV does not fit 16 bits at 1 µV")
    counts = counts.astype(np.int16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = TWELVE_LEAD_ECG
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[rec.name])  # repeatable
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = TWELVE_LEAD_ECG, meta.MediaStorageSOPInstanceUID
    ds.Modality = "ECG"
    ds.PatientID = rec.patient_id or ""
    if rec.start_time:  # ISO 8601 to DICOM DT
        ds.AcquisitionDateTime = rec.start_time.replace("-", "").replace(":", "").replace("T", "")
    groups = [rhythm_group(counts, rec.sampling_rate)]
    if median_first:
        groups.insert(
            0, rhythm_group(counts[:, : rec.sampling_rate], rec.sampling_rate, "MEDIAN BEAT")
        )
    ds.WaveformSequence = groups
    ds.save_as(path, enforce_file_format=True)
    return path
