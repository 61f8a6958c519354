"""MRME: the binary framing live devices use to send 12-lead ECG to the monitor (HELLO,
DATA frames, END; several sessions may follow one another on one byte stream), with its
encoder and incremental decoder. The format, its bounds and what a receiver rejects:
docs/devices.md#the-device-framing."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from mrm_edge.data.dataset import LEADS
from mrm_edge.data.errors import DataError
from mrm_edge.data.signal import MAX_RATE, MIN_RATE

MAGIC = b"MRME"
VERSION = 1
N_LEADS = len(LEADS)
MAX_ID_BYTES = 255
MAX_FRAME_SECONDS = 60.0
# Exclusive (446 years at 20 kHz): below it, ``index / rate`` as a float64 second still
# tells samples apart, which the gap detector relies on.
MAX_FIRST_INDEX = 2**48
INT16_NO_SAMPLE = -32768  # WFDB's "invalid sample" value
DEFAULT_INT16_GAIN = 1000.0  # counts per mV: 1 µV steps, ±32.767 mV, PTB-XL's own ADC gain

FRAME_DATA = 0x01
FRAME_END = 0x02

_FIXED = struct.Struct("<4sBBBIH")  # magic, version, format, leads, rate, id length
_DATA_HEADER = struct.Struct("<BIQ")  # type, count, first-sample index
_GAINS = struct.Struct(f"<{N_LEADS}f")


class SampleFormat(IntEnum):
    INT16 = 1
    FLOAT32 = 2

    @property
    def width(self) -> int:
        return 2 if self is SampleFormat.INT16 else 4

    @property
    def dtype(self) -> np.dtype:
        return np.dtype("<i2" if self is SampleFormat.INT16 else "<f4")

    @classmethod
    def parse(cls, value: str | SampleFormat) -> SampleFormat:
        if isinstance(value, SampleFormat):
            return value
        names = {"int16": cls.INT16, "float32": cls.FLOAT32}
        if value.lower() in names:
            return names[value.lower()]
        raise ValueError(f"sample format {value!r}: expected float32 or int16")


class FramingError(DataError):
    """Malformed MRME input. ``events`` holds what was decoded before the problem, so a
    receiver can deliver a device's good data up to the byte where it went wrong."""

    def __init__(self, message: str, events: list[FrameEvent] | None = None) -> None:
        super().__init__(message)
        self.events: list[FrameEvent] = events or []


@dataclass(frozen=True)
class Hello:
    stream_id: str
    sample_rate: int
    sample_format: SampleFormat
    gains: tuple[float, ...] | None  # counts per mV per lead (int16 only)


@dataclass(frozen=True)
class Data:
    first_index: int
    samples: np.ndarray  # [n, 12] float32 mV


@dataclass(frozen=True)
class End:
    pass


FrameEvent = Hello | Data | End


# --- validation shared by encoder and decoder ------------------------------------------
def _check_rate(rate: int) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise FramingError(f"sample rate {rate} Hz, expected {MIN_RATE}..{MAX_RATE} Hz")


def _check_stream_id(raw: bytes) -> str:
    if not 1 <= len(raw) <= MAX_ID_BYTES:
        raise FramingError(f"stream id of {len(raw)} bytes, expected 1..{MAX_ID_BYTES}")
    try:
        sid = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FramingError(f"stream id {raw[:40]!r} is not UTF-8") from None
    if not sid.isprintable():
        raise FramingError(f"stream id {sid[:40]!r} has control characters")
    return sid


def _check_gains(gains: Sequence[float]) -> tuple[float, ...]:
    if len(gains) != N_LEADS:
        raise FramingError(f"{len(gains)} gains, expected {N_LEADS} (one per lead)")
    for lead, g in zip(LEADS, gains, strict=True):
        if not (math.isfinite(g) and g > 0):
            raise FramingError(f"gain of lead {lead} is {g}, expected finite counts/mV > 0")
    return tuple(float(g) for g in gains)


def max_frame_samples(rate: int) -> int:
    return max(1, int(MAX_FRAME_SECONDS * rate))


# --- encoder -----------------------------------------------------------------------------
class FrameEncoder:
    """Bytes of one session: ``hello()``, then ``data(samples)`` as often as needed
    (the first-sample index counts on by itself), then ``end()``.

    ``gains`` (int16 only): counts per mV, one number for all leads or twelve; default
    1000. ``clipped`` counts finite int16 samples that did not fit and were clipped.
    """

    def __init__(
        self,
        stream_id: str,
        sample_rate: int,
        sample_format: str | SampleFormat = "float32",
        gains: float | Sequence[float] | None = None,
        first_index: int = 0,
    ) -> None:
        self.sample_format = SampleFormat.parse(sample_format)
        if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate:
            raise FramingError(f"sample rate {sample_rate!r}, expected a whole number of Hz")
        self.sample_rate = int(sample_rate)
        _check_rate(self.sample_rate)
        self._id_bytes = str(stream_id).encode("utf-8")
        self.stream_id = _check_stream_id(self._id_bytes)
        self.gains: tuple[float, ...] | None = None
        if self.sample_format is SampleFormat.INT16:
            g = DEFAULT_INT16_GAIN if gains is None else gains
            self.gains = _check_gains([float(g)] * N_LEADS if np.isscalar(g) else list(g))
        elif gains is not None:
            raise FramingError("gains are only sent with the int16 sample format")
        if not 0 <= first_index < MAX_FIRST_INDEX:
            raise FramingError(f"first-sample index {first_index}, expected 0..2**48 - 1")
        self.next_index = int(first_index)
        self.max_samples = max_frame_samples(self.sample_rate)
        self.clipped = 0

    def hello(self) -> bytes:
        fixed = _FIXED.pack(
            MAGIC, VERSION, self.sample_format, N_LEADS, self.sample_rate, len(self._id_bytes)
        )
        gains = _GAINS.pack(*self.gains) if self.gains is not None else b""
        return fixed + self._id_bytes + gains

    def data(self, samples: np.ndarray, first_index: int | None = None) -> bytes:
        """DATA frame(s) for ``samples`` [n, 12] mV (split when over the frame cap)."""
        x = np.asarray(samples)
        if x.ndim != 2 or x.shape[1] != N_LEADS:
            raise ValueError(f"samples of shape {x.shape}, expected [n, {N_LEADS}]")
        if first_index is not None:
            if not 0 <= first_index < MAX_FIRST_INDEX:
                raise ValueError(f"first-sample index {first_index}, expected 0..2**48 - 1")
            self.next_index = int(first_index)
        out = []
        for a in range(0, len(x), self.max_samples):
            block = x[a : a + self.max_samples]
            header = _DATA_HEADER.pack(FRAME_DATA, len(block), self.next_index)
            out.append(header + self._payload(block))
            self.next_index += len(block)
        return b"".join(out)

    def _payload(self, x: np.ndarray) -> bytes:
        if self.sample_format is SampleFormat.FLOAT32:
            return np.ascontiguousarray(x, dtype="<f4").tobytes()
        assert self.gains is not None
        counts = np.rint(np.asarray(x, dtype=np.float64) * np.asarray(self.gains))
        missing = ~np.isfinite(counts)
        over = ~missing & (np.abs(counts) > 32767)
        self.clipped += int(np.count_nonzero(over))
        counts = np.clip(np.where(missing, 0.0, counts), -32767, 32767)
        counts[missing] = INT16_NO_SAMPLE
        return counts.astype("<i2").tobytes()

    def end(self) -> bytes:
        return bytes([FRAME_END])


# --- decoder -----------------------------------------------------------------------------
class FrameDecoder:
    """Incremental MRME decoder: ``feed(bytes)`` returns the events completed by those
    bytes, whatever the byte boundaries; ``eof()`` says whether the end was clean.

    Errors are :class:`FramingError` with a one-line message ending in the byte offset;
    after one, the decoder refuses further input (the byte stream cannot be resynchronised).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._offset = 0  # absolute byte offset of _buf[0], for messages
        self.hello: Hello | None = None  # the current session's HELLO, None between sessions
        self._gains: np.ndarray | None = None
        self._failed: str | None = None

    def feed(self, data: bytes) -> list[FrameEvent]:
        if self._failed is not None:
            raise FramingError(self._failed)
        self._buf += data
        events: list[FrameEvent] = []
        pos = 0
        try:
            while True:
                parsed = self._parse_hello(pos) if self.hello is None else self._parse_frame(pos)
                if parsed is None:
                    break
                event, pos = parsed
                events.append(event)
        except FramingError as e:
            self._failed = f"{e} (at byte {self._offset + pos})"
            raise FramingError(self._failed, events) from None
        finally:
            del self._buf[:pos]
            self._offset += pos
        return events

    def eof(self) -> None:
        """The byte stream ended: raises FramingError when it ended inside a HELLO or frame."""
        if self._failed is None and self._buf:
            raise FramingError(f"disconnected mid-frame ({self.pending()})")

    def pending(self) -> str:
        """What a partial HELLO or frame in the buffer amounts to, e.g. "40 of 493 bytes of
        a frame type 0x01 at byte 1000"; "" when nothing is pending (or after an error)."""
        if self._failed is not None or not self._buf:
            return ""
        what = "HELLO" if self.hello is None else f"frame type 0x{self._buf[0]:02x}"
        need = self._needed()
        of = f" of {need}" if need else ""
        return f"{len(self._buf)}{of} bytes of a {what} at byte {self._offset}"

    def _needed(self) -> int | None:
        """Total size of the partial HELLO or frame in the buffer, when already known."""
        b = self._buf
        if self.hello is None:
            if len(b) < _FIXED.size:
                return None
            fmt, id_len = b[5], int.from_bytes(b[11:13], "little")
            return _FIXED.size + id_len + (_GAINS.size if fmt == SampleFormat.INT16 else 0)
        if b[0] == FRAME_DATA and len(b) >= 5:
            n = int.from_bytes(b[1:5], "little")
            return _DATA_HEADER.size + n * N_LEADS * self.hello.sample_format.width
        return None

    def _parse_hello(self, pos: int) -> tuple[Hello, int] | None:
        b = self._buf
        avail = len(b) - pos
        # Check each field as soon as its bytes are here: a client speaking some other
        # protocol is turned away on its first bytes, not after it has sent a header's worth.
        head = bytes(b[pos : pos + 4])
        if head != MAGIC[: len(head)]:
            raise FramingError(f"bad magic {head!r}, expected {MAGIC!r}")
        if avail > 4 and b[pos + 4] != VERSION:
            raise FramingError(f"unsupported version {b[pos + 4]}, expected {VERSION}")
        if avail > 5 and b[pos + 5] not in (SampleFormat.INT16, SampleFormat.FLOAT32):
            raise FramingError(
                f"unknown sample format {b[pos + 5]}, expected 1 (int16) or 2 (float32)"
            )
        if avail > 6 and b[pos + 6] != N_LEADS:
            raise FramingError(f"lead count {b[pos + 6]}, expected {N_LEADS} ({', '.join(LEADS)})")
        if avail < _FIXED.size:
            return None
        _, _, fmt_code, _, rate, id_len = _FIXED.unpack_from(b, pos)
        _check_rate(rate)
        if not 1 <= id_len <= MAX_ID_BYTES:
            raise FramingError(f"stream id length {id_len}, expected 1..{MAX_ID_BYTES}")
        fmt = SampleFormat(fmt_code)
        end = pos + _FIXED.size + id_len
        total = end + (_GAINS.size if fmt is SampleFormat.INT16 else 0)
        if len(b) < total:
            return None
        sid = _check_stream_id(bytes(b[pos + _FIXED.size : end]))
        gains = _check_gains(_GAINS.unpack_from(b, end)) if fmt is SampleFormat.INT16 else None
        self.hello = Hello(sid, rate, fmt, gains)
        self._gains = None if gains is None else np.asarray(gains, dtype=np.float32)
        return self.hello, total

    def _parse_frame(self, pos: int) -> tuple[Data | End, int] | None:
        b = self._buf
        if len(b) <= pos:
            return None
        hello = self.hello
        assert hello is not None
        kind = b[pos]
        if kind == FRAME_END:
            self.hello, self._gains = None, None  # the next bytes, if any, are a new HELLO
            return End(), pos + 1
        if kind != FRAME_DATA:
            raise FramingError(
                f"unknown frame type 0x{kind:02x}, expected 0x01 (DATA) or 0x02 (END)"
            )
        if len(b) - pos >= 5:
            n = int.from_bytes(b[pos + 1 : pos + 5], "little")
            cap = max_frame_samples(hello.sample_rate)
            if not 1 <= n <= cap:
                raise FramingError(
                    f"DATA frame of {n} samples, expected 1..{cap} "
                    f"({MAX_FRAME_SECONDS:g} s at {hello.sample_rate} Hz)"
                )
        if len(b) - pos < _DATA_HEADER.size:
            return None
        _, n, first = _DATA_HEADER.unpack_from(b, pos)
        if first >= MAX_FIRST_INDEX:
            raise FramingError(f"first-sample index {first}, expected < 2**48")
        start = pos + _DATA_HEADER.size
        end = start + n * N_LEADS * hello.sample_format.width
        if len(b) < end:
            return None
        raw = np.frombuffer(bytes(b[start:end]), dtype=hello.sample_format.dtype)
        raw = raw.reshape(n, N_LEADS)
        if self._gains is None:
            samples = raw.astype(np.float32)
        else:
            samples = raw.astype(np.float32) / self._gains
            samples[raw == INT16_NO_SAMPLE] = np.nan
        return Data(int(first), samples), end
