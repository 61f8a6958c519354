"""A test helper: a Recording written as an SCP-ECG file (sections 0, 1, 2, 3 and 6, CRCs
valid), so tests can round-trip PTB-XL records through mrm_edge.records.scp and build
hostile files from a valid one (``sections`` and ``reseal``)."""

from __future__ import annotations

import datetime
import struct
from pathlib import Path

import numpy as np

from mrm_edge.data.dataset import LEADS
from mrm_edge.records import Recording
from mrm_edge.records.scp import DEFAULT_HUFFMAN, DEFAULT_TABLE, HuffmanCode, crc_ccitt

#: Section 3's code of each of the 12 leads.
LEAD_CODES = {
    "I": 1, "II": 2, "V1": 3, "V2": 4, "V3": 5, "V4": 6, "V5": 7, "V6": 8,
    "III": 61, "aVR": 62, "aVL": 63, "aVF": 64,
}  # fmt: skip


def write_scp(
    path: Path,
    rec: Recording,
    *,
    avm_nv: int = 1000,
    differences: int = 2,
    huffman: str | None = "default",
    leads: tuple[str, ...] = tuple(LEADS),
) -> Path:
    """``rec``'s ``leads`` at ``avm_nv`` nV per unit (1000: 1 µV, PTB-XL's own step) as
    ``differences`` (0, 1, 2); ``huffman``: "default" (Section 2 says 19999), "custom" (the
    default table written out as a custom one) or None (no Section 2: 16-bit samples)."""
    units = np.rint(rec.signal.astype(np.float64) * 1e6 / avm_nv).astype(np.int64)
    interval_us = round(1e6 / rec.sampling_rate)
    n = units.shape[1]
    streams = [
        _encode(_difference(units[LEADS.index(lead)], differences), huffman) for lead in leads
    ]
    longest = max(map(len, streams))
    if longest > 65535:  # Section 6 counts each lead's bytes in 16 bits
        raise ValueError(f"{longest} bytes for one lead, SCP-ECG holds up to 65535 per lead")
    sections = {1: _patient(rec)}
    if huffman:
        sections[2] = _table_section(huffman)
    sections[3] = bytes([len(leads), 0b100 | len(leads) << 3]) + b"".join(
        struct.pack("<IIB", 1, n, LEAD_CODES[lead]) for lead in leads
    )
    sections[6] = struct.pack(
        f"<HHBB{len(leads)}H", avm_nv, interval_us, differences, 0, *map(len, streams)
    ) + b"".join(streams)
    path.write_bytes(_record(sections))
    return path


def sections(data: bytes) -> dict[int, tuple[int, int]]:
    """Each section's (byte offset, length) in an SCP-ECG record, from Section 0."""
    length = struct.unpack_from("<I", data, 6 + 4)[0]
    found = {}
    for at in range(6 + 16, min(6 + length, len(data) - 9), 10):
        sid, size, index = struct.unpack_from("<HII", data, at)
        if size:
            found[sid] = (index - 1, size)
    return found


def reseal(data: bytes | bytearray, skip: tuple[int, ...] = ()) -> bytes:
    """``data`` with every section's CRC (but those in ``skip``) and the record's recomputed
    after an edit; sections whose length points past the record are left as they are."""
    out = bytearray(data)
    for sid, (at, _) in sections(out).items():
        size = struct.unpack_from("<I", out, at + 4)[0] if 0 <= at <= len(out) - 8 else -1
        if sid not in skip and 0 <= size <= len(out) - at:
            struct.pack_into("<H", out, at, crc_ccitt(bytes(out[at + 2 : at + size])))
    struct.pack_into("<H", out, 0, crc_ccitt(bytes(out[2:])))
    return bytes(out)


def _difference(x: np.ndarray, order: int) -> np.ndarray:
    d = x.copy()
    if order == 1:
        d[1:] = x[1:] - x[:-1]
    elif order == 2:
        d[2:] = x[2:] - 2 * x[1:-1] + x[:-2]
    return d


def _encode(values: np.ndarray, huffman: str | None) -> bytes:
    if huffman is None:
        return values.astype("<i2").tobytes()
    codes = {c.value: c for c in DEFAULT_HUFFMAN if c.prefix_bits == c.total_bits}
    escape8, escape16 = DEFAULT_HUFFMAN[-2:]
    bits = []
    for v in values.tolist():
        c = codes.get(v) or (escape8 if -128 <= v < 128 else escape16)
        bits.append(f"{c.code:0{c.prefix_bits}b}")
        if c.total_bits > c.prefix_bits:
            extra = c.total_bits - c.prefix_bits
            bits.append(f"{v & ((1 << extra) - 1):0{extra}b}")
    text = "".join(bits)
    text += "0" * (-len(text) % 8)
    return int(text, 2).to_bytes(len(text) // 8, "big") if text else b""


def _table_section(huffman: str) -> bytes:
    if huffman == "default":
        return struct.pack("<H", DEFAULT_TABLE)
    rows = b"".join(
        struct.pack("<BBBhI", c.prefix_bits, c.total_bits, 1, c.value, _reversed(c))
        for c in DEFAULT_HUFFMAN
    )
    return struct.pack("<HH", 1, len(DEFAULT_HUFFMAN)) + rows


def _reversed(code: HuffmanCode) -> int:
    """The code as Section 2 stores it: its first bit the lowest."""
    return int(f"{code.code:0{code.prefix_bits}b}"[::-1], 2)


def _patient(rec: Recording) -> bytes:
    def tag(number: int, value: bytes) -> bytes:
        return struct.pack("<BH", number, len(value)) + value

    out = tag(2, (rec.patient_id or rec.name).encode() + b"\0")
    if rec.start_time:
        start = datetime.datetime.fromisoformat(rec.start_time)
        out += tag(25, struct.pack("<HBB", start.year, start.month, start.day))
        out += tag(26, bytes([start.hour, start.minute, start.second]))
    if rec.record_id:
        out += tag(31, rec.record_id.encode() + b"\0")
    return out + tag(255, b"")


def _record(bodies: dict[int, bytes]) -> bytes:
    """Sections 0-11 (Section 0's pointers, absent ones as zero) laid out after the 6-byte
    record header, each padded to an even length."""
    pointer_size = 16 + 10 * 12
    laid, index = {}, 6 + pointer_size + 1
    for sid, body in sorted(bodies.items()):
        body += b"\0" * (len(body) % 2)
        laid[sid] = (index, 16 + len(body), body)
        index += 16 + len(body)
    pointers = b"".join(
        struct.pack("<HII", sid, *laid[sid][1::-1])
        if sid in laid
        else struct.pack("<HII", sid, 0, 0)
        for sid in range(12)
    )
    pointers = struct.pack("<HII", 0, pointer_size, 7) + pointers[10:]
    out = _section(0, pointers, b"SCPECG") + b"".join(
        _section(sid, body, bytes(6)) for sid, (_, _, body) in sorted(laid.items())
    )
    record = struct.pack("<I", 6 + len(out)) + out
    return struct.pack("<H", crc_ccitt(record)) + record


def _section(sid: int, body: bytes, reserved: bytes) -> bytes:
    rest = struct.pack("<HIBB", sid, 16 + len(body), 20, 20) + reserved + body
    return struct.pack("<H", crc_ccitt(rest)) + rest
