"""Checked reading of MATLAB level-5 files before scipy parses them: every compressed element
inflated whole (zlib verifies its Adler-32) and every size checked, because scipy's parser
has crashed the interpreter on a damaged deflate stream (docs/architecture.md, "Failure
behaviour"). A damaged file is a :class:`MatFileError`, one line, never a crash."""

from __future__ import annotations

import io
import struct
import zlib

HEADER_BYTES = 128
TAG_BYTES = 8
MI_COMPRESSED = 15
MI_MATRIX = 14
#: The largest inflated element accepted (a 12-lead record of hours at 500 Hz is far below).
MAX_INFLATED_BYTES = 512 * 1024 * 1024


class MatFileError(ValueError):
    """The bytes are not a sound MATLAB level-5 file (the message says where and why)."""


def _byte_order(header: bytes) -> str:
    if header[:6] == b"MATLAB" and header[:10] != b"MATLAB 5.0":
        raise MatFileError(f"header says {header[:10].decode('latin-1')!r}, expected MATLAB 5.0")
    marker = header[126:128]
    if marker == b"IM":
        return "<"
    if marker == b"MI":
        return ">"
    raise MatFileError(f"endian marker at byte 126 is {marker!r}, expected b'IM' or b'MI'")


def _inflate(payload: bytes, offset: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(payload, MAX_INFLATED_BYTES)
    except zlib.error as exc:
        raise MatFileError(f"compressed element at byte {offset} is damaged ({exc})") from exc
    if inflater.unconsumed_tail:
        raise MatFileError(
            f"compressed element at byte {offset} inflates past {MAX_INFLATED_BYTES} bytes"
        )
    if not inflater.eof:
        raise MatFileError(f"compressed element at byte {offset} is truncated")
    return out


def _check_elements(body: bytes, order: str, where: str) -> None:
    """Every tag's size must fit in ``body`` (uncompressed elements only)."""
    pos = 0
    while pos < len(body):
        if len(body) - pos < TAG_BYTES:
            raise MatFileError(f"{where}: {len(body) - pos} stray bytes at byte {pos}")
        dtype, nbytes = struct.unpack_from(order + "II", body, pos)
        if dtype >> 16:  # small data element: size and data packed in these 8 bytes
            pos += TAG_BYTES
            continue
        if dtype == MI_COMPRESSED:
            raise MatFileError(f"{where}: a compressed element inside a compressed one")
        if dtype != MI_MATRIX:
            raise MatFileError(f"{where}: element type {dtype} at byte {pos}, expected a matrix")
        if nbytes > len(body) - pos - TAG_BYTES:
            raise MatFileError(
                f"{where}: element at byte {pos} declares {nbytes} bytes, "
                f"{len(body) - pos - TAG_BYTES} are there"
            )
        pos += TAG_BYTES + nbytes + (-nbytes % 8)


def verified_level5_bytes(raw: bytes) -> io.BytesIO:
    """``raw`` as an uncompressed level-5 file scipy can parse, or :class:`MatFileError`.

    Level-4 and v7.3 (HDF5) files are returned unchanged: scipy reads level 4 itself and
    refuses v7.3 with its own message."""
    if len(raw) < HEADER_BYTES or raw[:6] != b"MATLAB":
        return io.BytesIO(raw)
    order = _byte_order(raw[:HEADER_BYTES])
    if struct.unpack_from(order + "H", raw, 124)[0] == 0x0200:  # v7.3: HDF5, not level 5
        return io.BytesIO(raw)
    parts = [raw[:HEADER_BYTES]]
    pos = HEADER_BYTES
    while pos < len(raw):
        if len(raw) - pos < TAG_BYTES:
            raise MatFileError(f"{len(raw) - pos} stray bytes at byte {pos} (truncated?)")
        dtype, nbytes = struct.unpack_from(order + "II", raw, pos)
        body = raw[pos + TAG_BYTES : pos + TAG_BYTES + nbytes]
        if dtype >> 16 == 0 and len(body) < nbytes:
            raise MatFileError(
                f"element at byte {pos} declares {nbytes} bytes, {len(body)} are there"
            )
        if dtype == MI_COMPRESSED:
            inflated = _inflate(body, pos)
            _check_elements(inflated, order, f"compressed element at byte {pos}")
            parts.append(inflated)
            pos += TAG_BYTES + nbytes
        else:
            end = pos + TAG_BYTES + (nbytes + (-nbytes % 8) if dtype >> 16 == 0 else 0)
            _check_elements(raw[pos:end], order, "file")
            parts.append(raw[pos:end])
            pos = end
    return io.BytesIO(b"".join(parts))
