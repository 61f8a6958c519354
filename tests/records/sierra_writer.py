"""A test helper: a :class:`Recording` written as a PhilipsECG 1.04 XML file the way
PageWriter carts store it: Base64 XLI (per lead an LZW stream of 10-bit codes over the planar
bytes of second-difference residuals; III, aVR, aVL and aVF stored as residuals of I and II),
built as the inverse of ``sierraecg``'s decoders. Uncompressed Sierra data is not what the
reader takes (mrm_edge/records/sierra.py). Quantisation: 5 µV per count, the carts'
resolution (a value comes back within 2.5 µV)."""

from __future__ import annotations

import base64
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from mrm_edge.data.dataset import LEADS
from mrm_edge.records import Recording

RESOLUTION_UV = 5
LZW_BITS = 10
LZW_MAX_CODE = (1 << LZW_BITS) - 2  # sierraecg's decoder adds strings up to this code
RESIDUAL_BIAS = 64  # XLI stores residual + 64


def write_sierra(path: Path, rec: Recording, *, calibration_pulse: bool = False) -> Path:
    """``rec`` written to ``path``; with ``calibration_pulse`` the cart's trailing segment
    (0.1 s at 0, 1 mV for 0.2 s, 0.1 s at 0 on every lead) is appended as real files have."""
    path.write_text(sierra_xml(rec, calibration_pulse=calibration_pulse), encoding="utf-8")
    return path


def sierra_xml(rec: Recording, *, calibration_pulse: bool = False) -> str:
    """The XML text of ``rec`` (tests edit it into hostile files)."""
    counts = np.rint(np.asarray(rec.signal, np.float64) * 1000 / RESOLUTION_UV).astype(np.int64)
    if calibration_pulse:
        zeros = np.zeros((len(LEADS), rec.sampling_rate // 10), np.int64)
        pulse = np.full((len(LEADS), rec.sampling_rate // 5), 1000 // RESOLUTION_UV)
        counts = np.hstack([counts, zeros, pulse, zeros])
    ms, rest = divmod(counts.shape[1] * 1000, rec.sampling_rate)
    assert rest == 0, "durationperchannel is whole milliseconds"
    chunks = b"".join(xli_chunk(lead) for lead in limb_residuals(counts))
    date, _, time = (rec.start_time or "").partition("T")
    when = f" date={quoteattr(date)} time={quoteattr(time)}" if date else ""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<restingecgdata xmlns="http://www3.medical.philips.com">
  <documentinfo>
    <documentname>{escape(rec.record_id or rec.name)}</documentname>
    <documenttype>PhilipsECG</documenttype>
    <documentversion>1.04</documentversion>
  </documentinfo>
  <dataacquisition{when}>
    <signalcharacteristics>
      <samplingrate>{rec.sampling_rate}</samplingrate>
      <resolution>{RESOLUTION_UV}</resolution>
      <acquisitiontype>STD-12</acquisitiontype>
      <bitspersample>16</bitspersample>
      <signaloffset>0</signaloffset>
      <numberchannelsallocated>12</numberchannelsallocated>
    </signalcharacteristics>
  </dataacquisition>
  <patient><generalpatientdata><patientid>{escape(rec.patient_id or "")}</patientid>\
</generalpatientdata></patient>
  <waveforms>
    <parsedwaveforms dataencoding="Base64" compression="XLI" numberofleads="12" \
leadlabels="{" ".join(LEADS)}" durationperchannel="{ms}" samplespersecond="{rec.sampling_rate}" \
resolution="{RESOLUTION_UV}" signaloffset="0" bitspersample="16">
{base64.encodebytes(chunks).decode("ascii")}</parsedwaveforms>
  </waveforms>
</restingecgdata>
"""


def limb_residuals(counts: np.ndarray) -> np.ndarray:
    """The stored form of [12, n] counts in LEADS order: III, aVR, aVL and aVF as the
    residuals the reader's reconstruction turns back into them exactly."""
    stored = counts.copy()
    lead_i, lead_ii, lead_iii = counts[0], counts[1], counts[2]
    stored[2] = lead_ii - lead_i - lead_iii
    stored[3] = -counts[3] - (lead_i + lead_ii) // 2
    stored[4] = (lead_i - lead_iii) // 2 - counts[4]
    stored[5] = (lead_ii + lead_iii) // 2 - counts[5]
    return stored


def xli_chunk(samples: np.ndarray) -> bytes:
    """One lead as an XLI chunk: size, the constant 1, the first residual, then the LZW
    stream. The decoder predicts x[i] = 2·x[i-1] − x[i-2] − r[i-1] from x[0], x[1] stored
    as they are; r[1] goes in the header, r[2..n-2] + 64 in the payload, the last is unused."""
    x = np.asarray(samples, np.int64)
    residual = 2 * x[1:-1] - x[:-2] - x[2:]  # r[1] .. r[n-2]
    payload = np.concatenate([x[:2], residual[1:] + RESIDUAL_BIAS, [RESIDUAL_BIAS]])
    assert np.abs(payload).max() < 2**15 and abs(residual[0]) < 2**15, "16-bit residuals"
    words = payload.astype(np.int16).view(np.uint16)
    planar = np.concatenate([words >> 8, words & 0xFF]).astype(np.uint8).tobytes()
    stream = pack_codes(lzw_codes(planar))
    header = len(stream).to_bytes(4, "little") + (1).to_bytes(2, "little")
    return header + int(residual[0]).to_bytes(2, "little", signed=True) + stream


def lzw_codes(data: bytes) -> list[int]:
    """LZW codes of ``data``: single bytes are codes 0-255, new strings 256..LZW_MAX_CODE,
    then the table is frozen (sierraecg's decoder adds no more and never resets)."""
    table = {bytes([b]): b for b in range(256)}
    codes, word = [], b""
    for b in data:
        longer = word + bytes([b])
        if longer in table:
            word = longer
            continue
        codes.append(table[word])
        if len(table) <= LZW_MAX_CODE:
            table[longer] = len(table)
        word = bytes([b])
    return [*codes, table[word]] if word else codes


def pack_codes(codes: list[int]) -> bytes:
    """``codes`` as 10-bit fields, most significant bit first, the last byte 0-padded."""
    acc = nbits = 0
    out = bytearray()
    for code in codes:
        acc, nbits = (acc << LZW_BITS) | code, nbits + LZW_BITS
        while nbits >= 8:
            nbits -= 8
            out.append((acc >> nbits) & 0xFF)
        acc &= (1 << nbits) - 1
    if nbits:
        out.append((acc << (8 - nbits)) & 0xFF)
    return bytes(out)
