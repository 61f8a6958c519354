"""Philips Sierra / PageWriter XML (``restingecgdata``; SierraECG 1.03, PhilipsECG 1.04,
1.04.01 and 1.04.02): the header read here, the XLI-compressed waveforms decoded with
``sierraecg``'s LZW and delta decoders, counts × ``resolution`` µV, the cart's trailing
calibration pulse trimmed. What is refused and why: docs/formats.md.

``sierraecg.read_file`` itself is not used: its LZW output is unbounded (a crafted stream
expands ~600-fold), it reads none of the header fields, and it rebuilds III, aVR, aVL and
aVF from residuals for uncompressed data too, which the format's reference readers
(sierra-ecg-tools' C# and Java) do only for XLI."""

from __future__ import annotations

import base64
import binascii
import math
from pathlib import Path

import numpy as np

from mrm_edge.data.errors import DataError
from mrm_edge.records.recording import Recording, assemble, checked_length, checked_rate

#: A Sierra file holds one resting ECG (the real ones are 60-250 kB); the DOM of a bigger
#: file is not built.
MAX_BYTES = 32 * 1024 * 1024
#: The most samples per lead: ~4 minutes at 500 Hz. XLI is decoded in pure Python (about
#: 1 µs per byte), so this bounds a hostile file's decoding to seconds.
MAX_SIERRA_SAMPLES = 2**17
VERSIONS = ("1.03", "1.04", "1.04.01", "1.04.02")
#: XLI stores the limb leads in this order, III, aVR, aVL and aVF as residuals of I and II.
_LIMB = ("I", "II", "III", "aVR", "aVL", "aVF")
_STANDARD_12 = (*_LIMB, "V1", "V2", "V3", "V4", "V5", "V6")
#: The DXL algorithm writes up to 16 channels (12 leads and 4 blank ones).
_MAX_LEADS = 16
_CAL_MV = 1.0  # the cart's calibration pulse: 1 mV for 200 ms


def read(path: Path) -> Recording:
    root = _parse(path)
    _check_version(path, root)
    signal_info = _element(path, root, "signalcharacteristics")
    waves = _element(path, root, "parsedwaveforms")
    rate_text = _text(_element(path, signal_info, "samplingrate"))
    rate = checked_rate(path, "field 'samplingrate'", _number(path, "samplingrate", rate_text))
    _agrees(path, waves, "samplespersecond", rate, "samplingrate")
    samples = _sample_count(path, waves, rate)
    resolution = _resolution(path, signal_info, waves)
    _check_storage(path, signal_info, waves)
    labels, lead_field = _labels(path, signal_info, waves)
    counts = _decode_xli(path, _waveform_bytes(path, waves), labels, samples)
    _rebuild_limb_leads(counts)
    counts, notes = _trim_calibration(counts, resolution, rate)
    uv = counts * resolution
    signal, lead_notes, units = assemble(
        path, labels, uv, ["uV"] * len(labels), lead_field=lead_field
    )
    return Recording(
        path.name, signal, rate, str(path), (*notes, *lead_notes), units, "philips-sierra",
        _start_time(root), _first_text(root, "patientid"), _first_text(root, "documentname"),
    )  # fmt: skip


def _parse(path: Path):
    """The document element, parsed by defusedxml with DTDs refused (no entity expansion,
    no external references: a Sierra file has no DTD)."""
    from xml.parsers.expat import ExpatError

    from defusedxml import DefusedXmlException
    from defusedxml.minidom import parse

    size = path.stat().st_size
    if size > MAX_BYTES:
        raise DataError(f"{path}: {size} bytes, a Sierra XML file is read up to {MAX_BYTES}")
    try:
        return parse(str(path), forbid_dtd=True).documentElement
    except DefusedXmlException as e:
        raise DataError(
            f"{path}: XML with a DTD, entities or external references is refused ({e!r})"
        ) from None
    except ExpatError as e:
        raise DataError(f"{path}: not well-formed XML ({e})") from None


def _element(path: Path, parent, tag: str):
    found = parent.getElementsByTagName(tag)
    if not found:
        raise DataError(f"{path}: no <{tag}> element, expected one in a Sierra XML file")
    return found[0]


def _text(element) -> str:
    return "".join(n.data for n in element.childNodes if n.nodeType == n.TEXT_NODE).strip()


def _first_text(root, tag: str) -> str | None:
    found = root.getElementsByTagName(tag)
    return (_text(found[0]) or None) if found else None


def _number(path: Path, field: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataError(f"{path}: field {field!r} is {text!r}, expected a number")
    return value


def _check_version(path: Path, root) -> None:
    info = _element(path, root, "documentinfo")
    kind = _text(_element(path, info, "documenttype"))
    version = _text(_element(path, info, "documentversion"))
    if kind not in ("SierraECG", "PhilipsECG"):
        raise DataError(
            f"{path}: field 'documenttype' is {kind!r}, expected SierraECG or PhilipsECG"
        )
    if version not in VERSIONS:
        raise DataError(
            f"{path}: field 'documentversion' is {version!r}, expected one of {', '.join(VERSIONS)}"
        )


def _sample_count(path: Path, waves, rate: int) -> int:
    """Samples per lead from ``durationperchannel`` (ms), checked before anything is decoded."""
    text = waves.getAttribute("durationperchannel")
    if not text.strip().isdigit():
        raise DataError(f"{path}: field 'durationperchannel' is {text!r}, expected milliseconds")
    samples = checked_length(path, "field 'durationperchannel' × rate", int(text) * rate // 1000)
    if samples > MAX_SIERRA_SAMPLES:
        raise DataError(
            f"{path}: field 'durationperchannel' is {text} ms, {samples} samples at {rate} Hz; "
            f"expected at most {MAX_SIERRA_SAMPLES} (a Sierra file holds one resting ECG)"
        )
    return samples


def _resolution(path: Path, signal_info, waves) -> float:
    """µV per count: ``signalresolution`` (1.03) or ``resolution`` (1.04)."""
    tag = "resolution" if signal_info.getElementsByTagName("resolution") else "signalresolution"
    value = _number(path, tag, _text(_element(path, signal_info, tag)))
    if not 0 < value <= 1000:
        raise DataError(f"{path}: field {tag!r} is {value:g}, expected 0 < µV per count <= 1000")
    _agrees(path, waves, "resolution", value, tag)
    return value


def _agrees(path: Path, waves, attribute: str, value: float, field: str) -> None:
    """1.04 repeats the rate and resolution on ``parsedwaveforms``: the two must agree."""
    stated = waves.getAttribute(attribute)
    if stated and _number(path, attribute, stated) != value:
        raise DataError(
            f"{path}: field {attribute!r} of <parsedwaveforms> is {stated!r}, "
            f"field {field!r} {value:g}"
        )


def _check_storage(path: Path, signal_info, waves) -> None:
    """Base64 XLI of signed 16-bit counts with no offset, the only storage that was checked
    against real files (uncompressed data: see the module docstring)."""
    encoding = waves.getAttribute("dataencoding")
    if encoding != "Base64":
        raise DataError(f"{path}: field 'dataencoding' is {encoding!r}, expected Base64")
    method = waves.getAttribute("compressmethod") or waves.getAttribute("compression")
    if method != "XLI" or waves.getAttribute("compressflag") == "False":
        raise DataError(
            f"{path}: field 'compression' is {method or 'none'!r}, expected XLI (uncompressed "
            "Sierra waveforms are not read: their limb-lead layout is not documented)"
        )
    for tag, expected in (("nbitspersample", "16"), ("bitspersample", "16"), ("signaloffset", "0")):
        found = signal_info.getElementsByTagName(tag)
        for value in (waves.getAttribute(tag), _text(found[0]) if found else ""):
            if value and value.strip() != expected:
                raise DataError(f"{path}: field {tag!r} is {value!r}, expected {expected}")


def _labels(path: Path, signal_info, waves) -> tuple[list[str], str]:
    """The stored leads' names and the field they came from: 1.04's ``leadlabels``, else
    1.03's ``acquisitiontype``, whose standard sets are I..V6 in order."""
    if waves.getAttribute("leadlabels"):
        field, count_field = "leadlabels", "numberofleads"
        labels = waves.getAttribute("leadlabels").split()
        count_text = waves.getAttribute("numberofleads")
    else:
        field, count_field = "acquisitiontype", "numberchannelsallocated"
        kind = _text(_element(path, signal_info, "acquisitiontype"))
        if kind not in ("STD-12", "10-WIRE"):
            raise DataError(
                f"{path}: field 'acquisitiontype' is {kind!r} and there is no 'leadlabels', "
                "expected STD-12 or 10-WIRE (the lead sets whose order is known)"
            )
        labels = list(_STANDARD_12)
        count_text = _text(_element(path, signal_info, "numberchannelsallocated"))
    if not count_text.strip().isdigit() or not 6 <= int(count_text) <= _MAX_LEADS:
        raise DataError(
            f"{path}: field {count_field!r} is {count_text!r}, expected 6..{_MAX_LEADS}"
        )
    labels = labels[: int(count_text)]
    if tuple(labels[:6]) != _LIMB:
        raise DataError(
            f"{path}: field {field!r} starts {' '.join(labels[:6])!r}, expected "
            f"{' '.join(_LIMB)!r} (XLI stores III, aVR, aVL and aVF as residuals by position)"
        )
    return labels, field


def _waveform_bytes(path: Path, waves) -> bytes:
    try:
        return base64.b64decode(_text(waves))
    except (binascii.Error, ValueError) as e:
        raise DataError(f"{path}: field 'parsedwaveforms' is not valid base64 ({e})") from None


def _decode_xli(path: Path, data: bytes, labels: list[str], samples: int) -> np.ndarray:
    """int64 counts [leads, samples] from the XLI chunks (one per lead: an 8-byte header of
    size, a constant and the first residual, then an LZW stream of 10-bit codes over the
    planar bytes of second-difference residuals). Each chunk's LZW output is capped at the
    2 × ``samples`` bytes it must hold; chunks past the named leads are not decoded."""
    from sierraecg.lzw import LzwDecoder
    from sierraecg.xli import xli_decode_deltas

    counts = np.empty((len(labels), samples), np.int64)
    offset = 0
    for i, label in enumerate(labels):
        where = f"{path}: XLI chunk {i + 1} (lead {label}) of field 'parsedwaveforms'"
        if offset + 8 > len(data):
            raise DataError(f"{where} is missing: the data ends after {i} chunk(s)")
        size = int.from_bytes(data[offset : offset + 4], "little", signed=True)
        first = int.from_bytes(data[offset + 6 : offset + 8], "little", signed=True)
        chunk = data[offset + 8 : offset + 8 + max(size, 0)]
        if size <= 0 or len(chunk) < size:
            raise DataError(f"{where} declares {size} bytes, {len(chunk)} remain (truncated?)")
        offset += 8 + size
        stream = _lzw_output(where, LzwDecoder(chunk, bits=10), 2 * samples)
        try:
            counts[i] = xli_decode_deltas(list(stream), first)
        except (IndexError, OverflowError) as e:  # residuals past 16 bits: a corrupt stream
            raise DataError(f"{where} is corrupt ({e})") from None
    return counts


def _lzw_output(where: str, decoder, expected: int) -> bytearray:
    """The decoder's bytes, exactly ``expected`` of them, never more read."""
    out = bytearray()
    try:
        while (byte := decoder.read()) != -1:
            if len(out) == expected:
                raise DataError(f"{where} decodes to more than the {expected} bytes declared")
            out.append(byte)
    except IndexError:  # a code that refers to no string yet
        raise DataError(f"{where} is corrupt (an LZW code before any string)") from None
    if len(out) != expected:
        raise DataError(f"{where} decodes to {len(out)} bytes, expected {expected}")
    return out


def _rebuild_limb_leads(counts: np.ndarray) -> None:
    """III, aVR, aVL and aVF from their stored residuals, in place (sierraecg's and the
    reference readers' relations, in int64 rather than int16)."""
    lead_i, lead_ii = counts[0], counts[1]
    counts[2] = lead_ii - lead_i - counts[2]
    counts[3] = -counts[3] - (lead_i + lead_ii) // 2
    counts[4] = (lead_i - counts[2]) // 2 - counts[4]
    counts[5] = (lead_ii + counts[2]) // 2 - counts[5]


def _trim_calibration(
    counts: np.ndarray, resolution: float, rate: int
) -> tuple[np.ndarray, tuple[str, ...]]:
    """``counts`` without the cart's trailing calibration segment, and a note saying so.

    Philips carts end the record with every lead flat at 0, a 1 mV step for 200 ms, then 0
    again; the header says nothing of it. It is the trailing run of samples where all
    stored leads are equal (a real ECG never is: Einthoven's III = II − I makes I = II =
    III only at 0), trimmed when that run holds only 0 and 1 mV and reaches 1 mV."""
    agree = (counts == counts[:1]).all(axis=0)
    differs = np.flatnonzero(~agree)
    start = int(differs[-1]) + 1 if differs.size else 0
    tail = counts[0, start:]
    pulse = round(_CAL_MV * 1000 / resolution)
    levels = set(np.unique(tail).tolist())
    if start == 0 or pulse not in levels or not levels <= {0, pulse}:
        return counts, ()
    ms = 1000 * int((tail == pulse).sum()) / rate
    note = (
        f"calibration pulse trimmed: the last {tail.size} samples ({tail.size / rate:.2f} s), "
        f"all leads 0 and {_CAL_MV:g} mV for {ms:.0f} ms"
    )
    return counts[:, :start], (note,)


def _start_time(root) -> str | None:
    found = root.getElementsByTagName("dataacquisition")
    if not found or not found[0].getAttribute("date"):
        return None
    date, time = found[0].getAttribute("date"), found[0].getAttribute("time")
    return f"{date}T{time}" if time else date
