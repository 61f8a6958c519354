"""SCP-ECG files (EN 1064, ISO 11073-91064), protocol 1.x-3.0, read with struct and numpy (no
maintained Python reader exists): the record and section CRCs, Section 1's ids and acquisition
time, Section 2's Huffman tables, Section 3's leads, Section 6's rhythm data. What is read and
what is refused: docs/formats.md."""

from __future__ import annotations

import binascii
import datetime
import itertools
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrm_edge.data.dataset import LEADS
from mrm_edge.data.errors import DataError
from mrm_edge.data.leads import canonical_lead
from mrm_edge.records.recording import (
    Recording,
    assemble,
    checked_length,
    checked_rate,
    lead_plan,
)

FORMAT = "scp-ecg"
LEAD_FIELD = "Section 3 lead codes"
#: Section 2's table count that means the standard's default Huffman table.
DEFAULT_TABLE = 19999
#: Protocol versions (section headers' byte 9) whose sections 0-6 share version 2.0's layout.
PROTOCOLS = range(10, 31)
#: The longest Huffman prefix a custom table may use (the lookup holds 2**this entries).
MAX_PREFIX_BITS = 16

# Section 3's lead codes (the standard's lead table; the same numbers as MDC partition 2).
_LEAD_NAMES = {
    0: "unspecified lead", 1: "I", 2: "II", 3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5",
    8: "V6", 9: "V7", 10: "V2R", 11: "V3R", 12: "V4R", 13: "V5R", 14: "V6R", 15: "V7R",
    16: "X", 17: "Y", 18: "Z", 19: "CC5", 20: "CM5", 21: "LA", 22: "RA", 23: "LL",
    24: "Frank I", 25: "Frank E", 26: "Frank C", 27: "Frank A", 28: "Frank M", 29: "Frank F",
    30: "Frank H", 61: "III", 62: "aVR", 63: "aVL", 64: "aVF", 65: "-aVR", 66: "V8",
    67: "V9", 68: "V8R", 69: "V9R", 70: "Nehb D", 71: "Nehb A", 72: "Nehb J",
}  # fmt: skip
# Derived leads (computed by the device from others, e.g. a 12-lead from EASI) keep a name
# of their own: the model is never fed a derived lead as if it were measured.
_DERIVED_OF = {**{c: c - 30 for c in range(31, 61)}, **{c: c - 13 for c in range(79, 86)}}
_DERIVED_OF.update({c: c - 50 for c in range(111, 115)})


def lead_name(code: int) -> str:
    """The lead a Section 3 code stands for (``lead code N`` when the table has none)."""
    if code in _LEAD_NAMES:
        return _LEAD_NAMES[code]
    if code in _DERIVED_OF:
        return f"derived {_LEAD_NAMES[_DERIVED_OF[code]]}"
    return f"lead code {code}"


def crc_ccitt(data: bytes) -> int:
    """SCP-ECG's CRC: CRC-CCITT (polynomial 0x1021, initial 0xFFFF)."""
    return binascii.crc_hqx(data, 0xFFFF)


@dataclass(frozen=True)
class HuffmanCode:
    prefix_bits: int
    total_bits: int
    code: int  # the prefix, first bit sent as the most significant
    value: int  # the value itself, or the base added to the bits after the prefix


def _default_table() -> list[HuffmanCode]:
    codes = [HuffmanCode(1, 1, 0, 0)]
    for n in range(1, 9):  # n ones, a zero, the sign: ±n
        ones = ((1 << n) - 1) << 2
        codes += [HuffmanCode(n + 2, n + 2, ones, n), HuffmanCode(n + 2, n + 2, ones | 1, -n)]
    nine = ((1 << 9) - 1) << 1  # nine ones, then 0: an 8-bit value, 1: a 16-bit value
    return [*codes, HuffmanCode(10, 18, nine, 0), HuffmanCode(10, 26, nine | 1, 0)]


DEFAULT_HUFFMAN = _default_table()


def _sections(where: str, data: bytes) -> dict[int, bytes]:
    """Each present section's bytes after its 16-byte header, by id, every CRC checked."""
    if len(data) < 22 or data[16:22] != b"SCPECG":
        raise DataError(
            f"{where}: {len(data)} bytes with no SCP-ECG Section 0, not an SCP-ECG file"
        )
    size = struct.unpack_from("<I", data, 2)[0]
    if not 22 <= size <= len(data):
        raise DataError(
            f"{where}: record size field is {size} bytes, the file holds {len(data)} "
            "(truncated or damaged)"
        )
    record = data[:size]
    pointers = _section(where, record, 0, 6, None)
    version = record[6 + 9]
    if version not in PROTOCOLS:
        raise DataError(
            f"{where}: Section 0 protocol version is {version}, expected 10-30 (SCP-ECG 1.0-3.0)"
        )
    found: dict[int, bytes] = {0: pointers}
    covered = 6 + 16 + len(pointers)  # sections may not overlap: CRC work stays within size
    for sid, length, index in struct.iter_unpack("<HII", pointers[: len(pointers) // 10 * 10]):
        if length and sid not in found:
            covered += length
            if covered > size:
                raise DataError(
                    f"{where}: Section 0's pointers cover more than the record's {size} bytes "
                    f"(at Section {sid}: overlapping or truncated sections)"
                )
            found[sid] = _section(where, record, sid, index - 1, length)
    stored = struct.unpack_from("<H", record, 0)[0]
    if crc_ccitt(record[2:]) != stored:
        raise DataError(
            f"{where}: record CRC is {stored:#06x}, bytes 2-{size} give "
            f"{crc_ccitt(record[2:]):#06x} (damaged file)"
        )
    return found


def _section(where: str, record: bytes, sid: int, start: int, length: int | None) -> bytes:
    """Section ``sid``'s data at byte ``start`` (its pointer's length, if known), CRC checked."""
    if start < 0 or start + 16 > len(record):
        raise DataError(
            f"{where}: Section {sid} starts at byte {start + 1}, past the record's {len(record)}"
        )
    crc, stored_id, stored_length = struct.unpack_from("<HHI", record, start)
    if stored_id != sid or (length is not None and stored_length != length):
        raise DataError(
            f"{where}: Section {sid} expected at byte {start + 1}"
            + (f" ({length} bytes)" if length is not None else "")
            + f", which holds Section {stored_id} ({stored_length} bytes)"
        )
    if not 16 <= stored_length <= len(record) - start:
        raise DataError(
            f"{where}: Section {sid} declares {stored_length} bytes at byte {start + 1}, "
            f"the record holds {len(record) - start} from there"
        )
    body = record[start : start + stored_length]
    if crc_ccitt(body[2:]) != crc:
        raise DataError(
            f"{where}: Section {sid} CRC is {crc:#06x}, its bytes give "
            f"{crc_ccitt(body[2:]):#06x} (damaged section)"
        )
    return body[16:]


def header_fields(
    where: str, section1: bytes
) -> tuple[str | None, str | None, str | None, tuple[str, ...]]:
    """Section 1's patient id (tag 2), acquisition start (tags 25, 26), ECG sequence number
    (tag 31) and a note on a date that is no date (None for it, not an error: anonymisers
    write broken dates)."""
    tags: dict[int, bytes] = {}
    at = 0
    while at + 3 <= len(section1):
        tag, length = section1[at], struct.unpack_from("<H", section1, at + 1)[0]
        if tag == 255:
            break
        if at + 3 + length > len(section1):
            raise DataError(
                f"{where}: Section 1 tag {tag} declares {length} bytes, "
                f"{len(section1) - at - 3} remain in the section"
            )
        tags.setdefault(tag, section1[at + 3 : at + 3 + length])
        at += 3 + length

    def text(tag: int) -> str | None:
        value = tags.get(tag, b"").split(b"\0")[0].decode("latin-1").strip()
        return value or None

    start, notes = None, ()
    raw_date, raw_time = tags.get(25, b""), tags.get(26, b"")
    if len(raw_date) >= 4:
        year, month, day = struct.unpack_from("<HBB", raw_date)
        try:
            start = datetime.date(year, month, day).isoformat()
        except ValueError:
            notes = (
                f"Section 1 acquisition date {year}-{month}-{day} is no date: start time left out",
            )
        if start and len(raw_time) >= 3:
            try:
                start += "T" + datetime.time(*raw_time[:3]).isoformat()
            except ValueError:
                notes = (f"Section 1 acquisition time {tuple(raw_time[:3])} is no time: date only",)
    return text(2), start, text(31), notes


def _huffman_tables(where: str, section2: bytes | None) -> list[list[HuffmanCode]] | None:
    """Section 2's tables (the default one for 19999), or None: no Section 2, no Huffman
    coding (the samples are 16-bit integers)."""
    if section2 is None:
        return None
    if len(section2) < 2:
        raise DataError(f"{where}: Section 2 holds {len(section2)} bytes, expected a table count")
    count = struct.unpack_from("<H", section2)[0]
    if count == DEFAULT_TABLE:
        return [DEFAULT_HUFFMAN]
    tables, at = [], 2
    for table in range(1, count + 1):
        size = struct.unpack_from("<H", section2, at)[0] if at + 2 <= len(section2) else None
        if size is None or at + 2 + 9 * size > len(section2):
            raise DataError(f"{where}: Section 2 table {table} runs past the section's end")
        codes = []
        for prefix, total, mode, base, code in struct.iter_unpack(
            "<BBBhI", section2[at + 2 : at + 2 + 9 * size]
        ):
            if mode == 0:  # a switch to another table: the rare case this reader leaves out
                raise DataError(
                    f"{where}: Section 2 table {table} switches tables mid-stream, which this "
                    "reader does not follow (single custom tables and the default one are read)"
                )
            if not (1 <= prefix <= MAX_PREFIX_BITS and prefix <= total <= prefix + 16):
                raise DataError(
                    f"{where}: Section 2 table {table} has a code of {prefix} prefix and {total} "
                    f"total bits, expected 1-{MAX_PREFIX_BITS} prefix bits and up to 16 more"
                )
            msb_first = int(f"{code & ((1 << prefix) - 1):0{prefix}b}"[::-1], 2)  # stored reversed
            codes.append(HuffmanCode(prefix, total, msb_first, base))
        tables.append(codes)
        at += 2 + 9 * size
    return tables or None  # 0 tables: not Huffman coded


def _lookup(where: str, codes: list[HuffmanCode]) -> tuple[int, np.ndarray]:
    """The prefix width and, for each value of that many next bits, the matching code's index
    (-1: none); a table that is not prefix-free is refused."""
    width = max(c.prefix_bits for c in codes)
    entry = np.full(1 << width, -1, np.int64)
    for i, c in enumerate(codes):
        span = slice(c.code << (width - c.prefix_bits), (c.code + 1) << (width - c.prefix_bits))
        if (entry[span] != -1).any():
            raise DataError(f"{where}: Section 2 Huffman table is not prefix-free (code {i + 1})")
        entry[span] = i
    return width, entry


def _huffman_decode(
    where: str, lead: str, data: bytes, n: int, codes: list[HuffmanCode]
) -> np.ndarray:
    """``n`` values Huffman-decoded from ``data``. Every bit position's code is looked up at
    once (numpy); only the walk from code to code is a Python loop."""
    bits = 8 * len(data)
    if n > bits:  # every code has at least one bit
        raise DataError(
            f"{where}: Section 6 lead {lead} holds {len(data)} bytes, too few for {n} samples"
        )
    width, entry = _lookup(where, codes)
    prefix = np.array([c.prefix_bits for c in codes], np.uint64)
    total = np.array([c.total_bits for c in codes], np.int64)
    base = np.array([c.value for c in codes], np.int64)
    padded = np.frombuffer(data + bytes(8), np.uint8).astype(np.uint64)
    words = np.zeros(len(data), np.uint64)
    for j in range(8):  # the 64 bits from each byte on, first bit most significant
        words |= padded[j : j + len(data)] << np.uint64(56 - 8 * j)
    pos = np.arange(bits)
    window = words[pos >> 3] << (pos & 7).astype(np.uint64)  # >= 57 valid bits from pos
    index = entry[(window >> np.uint64(64 - width)).astype(np.int64)]
    following = np.where(index >= 0, pos + total[index], -1).tolist()
    starts, at = [0] * n, 0
    for i in range(n):
        if not 0 <= at < bits:
            break
        starts[i], at = at, following[at]
    else:
        i = n
    if at < 0:
        raise DataError(
            f"{where}: Section 6 lead {lead}: no Huffman code matches sample {i} of {n}"
        )
    if at > bits or i < n:
        done = i - (at > bits)
        raise DataError(
            f"{where}: Section 6 lead {lead}: Huffman data ({len(data)} bytes) ends after "
            f"{done} of {n} samples"
        )
    code = index[starts]
    extra = total[code] - prefix[code].astype(np.int64)  # bits after the prefix: a value
    tail = window[starts] << prefix[code]
    raw = (tail >> (64 - np.maximum(extra, 1)).astype(np.uint64)).astype(np.int64)
    raw = np.where(extra > 0, raw, 0)
    negative = (extra > 0) & ((raw >> np.maximum(extra - 1, 0)) & 1 == 1)  # two's complement
    return base[code] + np.where(negative, raw - (1 << extra), raw)


def _undifference(values: np.ndarray, order: int) -> np.ndarray:
    """Samples from Section 6's 1st (x[n] = d[n] + x[n-1]) or 2nd differences
    (x[n] = d[n] + 2 x[n-1] - x[n-2]); the first one or two values are samples."""
    if order == 0 or len(values) < order:
        return values
    if order == 1:
        return np.cumsum(values)
    steps = np.cumsum(np.concatenate([values[1:2] - values[:1], values[2:]]))
    return np.concatenate([values[:1], values[0] + np.cumsum(steps)])


def _lead_definition(where: str, section3: bytes) -> tuple[list[int], int]:
    """Section 3's lead codes and the samples per lead (leads recorded simultaneously)."""
    count = section3[0] if section3 else 0
    if count == 0 or 2 + 9 * count > len(section3):
        raise DataError(
            f"{where}: Section 3 declares {count} lead(s) in {len(section3)} bytes, expected "
            "at least one lead of 9 bytes"
        )
    if section3[1] & 1:
        raise DataError(
            f"{where}: Section 3 says the rhythm data were stored with reference beat "
            "subtraction, which this reader does not undo"
        )
    leads = [struct.unpack_from("<IIB", section3, 2 + 9 * i) for i in range(count)]
    ranges = sorted({(start, end) for start, end, _ in leads})
    if len(ranges) > 1:
        raise DataError(
            f"{where}: Section 3 leads cover different samples {ranges[:3]}, expected "
            "simultaneously recorded leads"
        )
    ((start, end),) = ranges
    n = checked_length(where, f"Section 3 sample range {start}..{end}", end - start + 1)
    return [code for _, _, code in leads], n


def _standard_leads(where: str, names: list[str]) -> tuple[list[int], tuple[str, ...]]:
    """The stored leads the 12 come from and a note on those left out: the shared lead checks
    run on the names before anything is decoded (a refused lead set costs nothing)."""
    lead_plan(where, names, LEAD_FIELD)
    used = [i for i, name in enumerate(names) if canonical_lead(name) in LEADS]
    unknown = [name for name in names if canonical_lead(name) not in LEADS]
    return used, (f"extra lead(s) left out: {', '.join(unknown)}",) if unknown else ()


def _rhythm(where: str, section6: bytes, leads: int) -> tuple[float, int, int, list[bytes]]:
    """Section 6's µV per unit, rate, difference order and each lead's bytes."""
    head = 6 + 2 * leads
    if len(section6) < head:
        raise DataError(
            f"{where}: Section 6 holds {len(section6)} bytes, its header for {leads} leads "
            f"needs {head}"
        )
    avm, interval, order, bimodal = struct.unpack_from("<HHBB", section6)
    if avm == 0:
        raise DataError(f"{where}: Section 6 field 'AVM' is 0 nV, expected the nV per stored unit")
    if interval == 0:
        raise DataError(f"{where}: Section 6 field 'sample time interval' is 0 µs, expected > 0")
    rate = checked_rate(where, f"Section 6 sample time interval ({interval} µs)", 1e6 / interval)
    if order not in (0, 1, 2):
        raise DataError(
            f"{where}: Section 6 field 'difference data used' is {order}, expected 0, 1 or 2"
        )
    if bimodal:
        raise DataError(
            f"{where}: Section 6 says bimodal compression was used (samples decimated outside "
            "the QRS), which this reader does not undo"
        )
    sizes = struct.unpack_from(f"<{leads}H", section6, 6)
    if head + sum(sizes) > len(section6):
        raise DataError(
            f"{where}: Section 6 lead byte counts total {sum(sizes)}, the section holds "
            f"{len(section6) - head} bytes of lead data"
        )
    ends = np.cumsum([head, *sizes]).tolist()
    return avm / 1000, rate, order, [section6[a:b] for a, b in itertools.pairwise(ends)]


def _samples(
    where: str, lead: str, data: bytes, n: int, tables: list | None, order: int
) -> np.ndarray:
    if tables is None:  # not Huffman coded: 16-bit little-endian integers
        if len(data) < 2 * n:
            raise DataError(
                f"{where}: Section 6 lead {lead} holds {len(data)} bytes, {n} samples need {2 * n}"
            )
        values = np.frombuffer(data[: 2 * n], "<i2").astype(np.int64)
    else:
        values = _huffman_decode(where, lead, data, n, tables[0])
    samples = _undifference(values, order)
    if samples.size and (samples.min() < -32768 or samples.max() > 32767):
        raise DataError(
            f"{where}: Section 6 lead {lead} decodes to values outside the 16-bit range "
            "(damaged data)"
        )
    return samples


def read(path: Path) -> Recording:
    """The rhythm data of the SCP-ECG file at ``path`` as the 12 leads, mV."""
    where = str(path)
    sections = _sections(where, path.read_bytes())
    for sid, what in ((3, "lead definition"), (6, "rhythm data")):
        if sid not in sections:
            raise DataError(f"{where}: no Section {sid} ({what})")
    codes, n = _lead_definition(where, sections[3])
    names = [lead_name(code) for code in codes]
    used, left_out = _standard_leads(where, names)
    uv_per_unit, rate, order, data = _rhythm(where, sections[6], len(codes))
    tables = _huffman_tables(where, sections.get(2))
    rows = [_samples(where, names[i], data[i], n, tables, order) for i in used]
    signal, notes, units = assemble(
        where, [names[i] for i in used], np.stack(rows) * uv_per_unit, ["uV"] * len(used),
        lead_field=LEAD_FIELD, unit_field="Section 6 AVM",
    )  # fmt: skip
    patient, start, record_id, header_notes = header_fields(where, sections.get(1, b""))
    return Recording(
        path.name, signal, rate, where, (*notes, *left_out, *header_notes), units, FORMAT,
        start, patient, record_id,
    )  # fmt: skip
