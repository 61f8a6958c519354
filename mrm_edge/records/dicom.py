"""DICOM ECG waveforms (12-lead and General ECG Waveform Storage; any other waveform class
only when it holds the 12 leads) read with pydicom: the rhythm multiplex group, never the
median beat; every declared size, code and number checked before pydicom's
``waveform_array`` scales the counts (sensitivity × correction factor + baseline)."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

from mrm_edge.data.dataset import LEADS
from mrm_edge.data.errors import DataError
from mrm_edge.data.leads import canonical_lead
from mrm_edge.records.recording import Recording, assemble, checked_length, checked_rate

# 12-lead ECG, General ECG and General 32-bit ECG Waveform Storage; other waveform classes
# are read when they hold the 12 leads (their refusals name the class).
ECG_CLASSES = {f"1.2.840.10008.5.1.4.1.1.9.1.{n}" for n in (1, 2, 4)}
#: The largest DICOM file read: pydicom keeps every element as an object, so a file packed
#: with tiny elements costs ~40 bytes of memory per byte (16 MiB of them inside the waveform
#: group measured 664 MB and 12 s here). A resting 12-lead ECG is under 1 MB; 16 MiB holds
#: 23 min of 12 leads at 500 Hz.
MAX_DICOM_BYTES = 16 * 2**20
# Only these are read: pydicom inflates a Deflated file whole, without a bound, and its
# waveform decoder assumes little-endian bytes (Big Endian, retired, would come out wrong).
TRANSFER_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
# Sample encodings read: signed/unsigned 8, 16, 32 bits. Mu-law and A-law (MB, AB) are
# left out: pydicom returns their codes undecoded, which would be a wrong signal.
SAMPLE_TYPES = {(8, "SB"), (8, "UB"), (16, "SS"), (16, "US"), (32, "SL"), (32, "UL")}
# Lead codes where a channel has no code meaning: SCP-ECG's lead numbers, which DICOM's
# SCPECG codes ("5.6.3-9-<n>") and MDC codes ("2:<n>") both use.
_LEAD_NUMBER = {
    1: "I", 2: "II", 3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6",
    61: "III", 62: "aVR", 63: "aVL", 64: "aVF",
}  # fmt: skip
_LEAD_CODE = {"SCPECG": re.compile(r"5\.6\.3-9-(\d+)"), "MDC": re.compile(r"2:(\d+)")}


def read(path: Path) -> Recording:
    """The rhythm of the DICOM ECG at ``path``."""
    import pydicom
    from pydicom.filereader import read_file_meta_info

    size = path.stat().st_size
    if size > MAX_DICOM_BYTES:
        raise DataError(
            f"{path}: {size} bytes, larger than the {MAX_DICOM_BYTES} bytes a DICOM ECG is "
            "read up to (pydicom holds every element in memory)"
        )
    syntax = str(read_file_meta_info(path).get("TransferSyntaxUID", ""))
    if syntax not in TRANSFER_SYNTAXES:
        raise DataError(
            f"{path}: field 'TransferSyntaxUID' is {syntax!r}, expected Implicit or Explicit "
            "VR Little Endian (1.2.840.10008.1.2 or 1.2.840.10008.1.2.1)"
        )
    with warnings.catch_warnings():  # pydicom warns of every malformed value: not ours
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        sop = str(ds.get("SOPClassUID", ""))
        # A class other than ECG is said in every error: "Hemodynamic ... lacks lead(s) V1".
        where = path if sop in ECG_CLASSES else f"{path}: SOP class {_class_name(ds)!r}"
        index, group = _rhythm_group(where, ds)
        rate = checked_rate(
            where, "field 'SamplingFrequency'", _number(where, group, "SamplingFrequency")
        )
        names, units = _channels(where, group)
        counts = ds.waveform_array(index).T  # [channels, samples], sensitivity and baseline applied
        signal, notes, stored = assemble(
            where, names, counts, units,
            lead_field="ChannelSourceSequence", unit_field="ChannelSensitivityUnitsSequence",
        )  # fmt: skip
        return Recording(
            path.name, signal, rate, str(path), notes, stored, "dicom", _start_time(ds),
            str(ds.get("PatientID", "")).strip() or None,
            str(ds.get("SOPInstanceUID", "")).strip() or None,
        )  # fmt: skip


def _class_name(ds) -> str:
    uid = ds.get("SOPClassUID")
    return uid.name if uid is not None else ""


def _rhythm_group(where: object, ds) -> tuple[int, object]:
    """The multiplex group labelled RHYTHM, else the one ORIGINAL group (a median beat is
    DERIVED), with its declared sizes checked against the bytes it holds."""
    groups = ds.get("WaveformSequence") or []
    if not groups:
        raise DataError(f"{where}: no WaveformSequence, expected a DICOM ECG waveform")
    labels = [str(g.get("MultiplexGroupLabel", "")).strip().upper() for g in groups]
    origin = [str(g.get("WaveformOriginality", "")).strip().upper() for g in groups]
    picked = [i for i, label in enumerate(labels) if label == "RHYTHM"]
    picked = picked or [i for i, o in enumerate(origin) if o == "ORIGINAL"]
    if len(picked) != 1:
        found = ", ".join(f"{lab or '?'} ({o or '?'})" for lab, o in zip(labels, origin))  # noqa: B905
        raise DataError(
            f"{where}: field 'WaveformSequence' has {len(picked)} rhythm group(s) among "
            f"[{found}], expected one labelled RHYTHM or one ORIGINAL"
        )
    group = groups[picked[0]]
    bits = int(_number(where, group, "WaveformBitsAllocated"))
    kind = str(group.get("WaveformSampleInterpretation", ""))
    if (bits, kind) not in SAMPLE_TYPES:
        raise DataError(
            f"{where}: fields 'WaveformBitsAllocated', 'WaveformSampleInterpretation' are "
            f"{bits}, {kind!r}, expected 8, 16 or 32 bits of SB/UB, SS/US or SL/UL"
        )
    samples = checked_length(
        where,
        "field 'NumberOfWaveformSamples'",
        int(_number(where, group, "NumberOfWaveformSamples")),
    )
    channels = int(_number(where, group, "NumberOfWaveformChannels"))
    declared = samples * max(channels, 0) * bits // 8
    held = len(group.get("WaveformData") or b"")
    if channels < 1 or held not in (declared, declared + 1):  # +1: the even-length pad
        raise DataError(
            f"{where}: field 'WaveformData' holds {held} bytes, expected {declared} "
            f"({channels} channels × {samples} samples × {bits} bits)"
        )
    return picked[0], group


def _channels(where: object, group) -> tuple[list[str], list[str]]:
    """Each channel's lead name and sensitivity unit, its scaling numbers checked."""
    defs = group.get("ChannelDefinitionSequence") or []
    count = int(group.NumberOfWaveformChannels)
    if len(defs) != count:
        raise DataError(
            f"{where}: field 'ChannelDefinitionSequence' has {len(defs)} item(s), expected "
            f"one per channel ({count})"
        )
    names, units = [], []
    for i, channel in enumerate(defs, 1):
        what = f"channel {i}"
        for keyword, default in (
            ("ChannelSensitivity", None),
            ("ChannelSensitivityCorrectionFactor", 1.0),
        ):
            if _number(where, channel, keyword, what, default) == 0:  # a flat line
                raise DataError(f"{where}: field {keyword!r} of {what} is 0")
        _number(where, channel, "ChannelBaseline", what, default=0.0)
        unit = (channel.get("ChannelSensitivityUnitsSequence") or [{}])[0]
        units.append(str(unit.get("CodeValue") or unit.get("CodeMeaning") or ""))
        names.append(_lead_name(where, what, channel))
    return names, units


def _lead_name(where: object, what: str, channel) -> str:
    """The channel's lead: its code meaning ("Lead I (Einthoven)") or, without one, its
    SCPECG/MDC code; a meaning naming another standard lead than the code is refused."""
    source = channel.get("ChannelSourceSequence") or [None]
    if source[0] is None:
        raise DataError(f"{where}: {what} has no ChannelSourceSequence, expected its lead code")
    code = source[0]
    value, scheme = str(code.get("CodeValue", "")), str(code.get("CodingSchemeDesignator", ""))
    meaning = str(code.get("CodeMeaning", "")).strip()
    match = _LEAD_CODE[scheme].fullmatch(value) if scheme in _LEAD_CODE else None
    by_code = _LEAD_NUMBER.get(int(match[1])) if match else None
    by_meaning = canonical_lead(meaning)
    if by_code and by_meaning in LEADS and by_meaning != by_code:
        raise DataError(
            f"{where}: ChannelSourceSequence of {what} codes lead {by_code} ({scheme} "
            f"{value}) but means {meaning!r}"
        )
    return by_code or (by_meaning if meaning else f"{scheme} {value}")


def _number(
    where: object, item, keyword: str, what: str = "", default: float | None = None
) -> float:
    """The finite number in ``item``'s field ``keyword``, or ``default`` where it is absent."""
    value = item.get(keyword)
    of = f" of {what}" if what else ""
    if value is None or value == "":
        if default is None:
            raise DataError(f"{where}: field {keyword!r}{of} is missing")
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise DataError(f"{where}: field {keyword!r}{of} is {str(value)!r}, expected a number")
    return number


def _start_time(ds) -> str | None:
    """AcquisitionDateTime (else AcquisitionDate + AcquisitionTime) in ISO 8601; the text
    as stored where it is no valid DICOM date-time."""
    from pydicom.valuerep import DT

    stamp = str(ds.get("AcquisitionDateTime", "")).strip()
    stamp = stamp or f"{ds.get('AcquisitionDate', '')}{ds.get('AcquisitionTime', '')}".strip()
    if not stamp:
        return None
    try:
        return DT(stamp).isoformat()
    except ValueError:
        return stamp
