"""Checks a WFDB header (``.hea``) and the size of its signal files before ``wfdb`` reads them
(``wfdb`` trusts headers), raising a one-line :class:`DataError` naming the file and the
field. Stricter than the spec on purpose: docs/model.md, "Reading recordings". Pure Python,
no numpy: the fuzz tests call it thousands of times."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError, field_error
from .signal import MAX_RATE, MIN_RATE

#: Bytes per sample of the uncompressed formats ``wfdb`` reads (212: 3 bytes per 2 samples,
#: 310/311: 4 bytes per 3). FLAC formats (508, 516, 524) are compressed: no size check.
_BYTES = {"8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2, "212": 1.5,
          "310": 4 / 3, "311": 4 / 3}  # fmt: skip
_COMPRESSED = {"508", "516", "524"}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# fs[/counter_freq[(base_counter)]]
_FS = re.compile(rf"^(?P<fs>{_NUMBER})(?:/{_NUMBER}(?:\({_NUMBER}\))?)?$")
# fmt[xsamps_per_frame][:skew][+byte_offset]
_FMT = re.compile(r"^(?P<fmt>\d+)(?:x(?P<spf>\d+))?(?::(?P<skew>\d+))?(?:\+(?P<offset>\d+))?$")
# gain[(baseline)][/units]
_GAIN = re.compile(rf"^(?P<gain>{_NUMBER})(?:\((?P<baseline>[-+]?\d+)\))?(?:/(?P<units>\S*))?$")


@dataclass(frozen=True)
class WfdbHeader:
    """What the checks established (``sig_len`` None: not given, the file decides)."""

    n_sig: int
    fs: float
    sig_len: int | None


def _lines(header: Path) -> list[str]:
    try:
        raw = header.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{header}: no such WFDB header") from None
    except OSError as e:
        raise DataError(f"{header}: unreadable WFDB header ({e.strerror or e})") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as e:
        raise DataError(f"{header}: not a WFDB header (byte {e.start} is not ASCII text)") from None
    # Comments ('#', whole line or trailing) and blank lines carry no fields.
    out = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    return [ln for ln in out if ln]


def check_wfdb_header(header: str | Path) -> WfdbHeader:
    """Parse and check ``header`` and the size of its signal files; DataError if bad."""
    header = Path(header)
    lines = _lines(header)
    if not lines:
        raise DataError(f"{header}: empty WFDB header, expected a record line")
    rec = lines[0].split()
    if len(rec) < 2:
        raise DataError(
            f"{header}: record line {lines[0][:40]!r} has {len(rec)} field(s), "
            "expected 'name n_sig fs [sig_len]'"
        )
    multi = "/" in rec[0]
    if not rec[1].isdigit() or int(rec[1]) < 1:
        raise field_error(header, "n_sig", "a positive whole number of signals", f"is {rec[1]!r}")
    n_sig = int(rec[1])
    if len(rec) < 3:
        raise DataError(
            f"{header}: field 'fs' is missing from the record line, expected the "
            f"sampling rate in Hz ({MIN_RATE}..{MAX_RATE})"
        )
    m = _FS.match(rec[2])
    fs = float(m["fs"]) if m else math.nan
    if not (MIN_RATE <= fs <= MAX_RATE):
        rate = f"a sampling rate of {MIN_RATE}..{MAX_RATE} Hz"
        raise field_error(header, "fs", rate, f"is {rec[2]!r}")
    sig_len = None
    if len(rec) > 3:
        if not rec[3].isdigit():
            raise field_error(header, "sig_len", "a whole number of samples", f"is {rec[3]!r}")
        sig_len = int(rec[3])
        if sig_len == 0:
            raise field_error(header, "sig_len", "at least one sample", f"is {rec[3]!r}")
    if multi:
        return WfdbHeader(n_sig, fs, sig_len)

    signals = lines[1:]
    if len(signals) != n_sig:  # more lines than n_sig is as malformed as fewer
        raise DataError(
            f"{header}: has {len(signals)} signal line(s), field 'n_sig' of the "
            f"record line expects {n_sig}"
        )
    frame_bytes: dict[str, float] = {}  # signal file -> bytes per frame
    file_info: dict[str, tuple[str, int]] = {}  # signal file -> (fmt, byte offset)
    for i, line in enumerate(signals, start=1):
        parts = line.split(maxsplit=8)
        where = f"signal {i}"
        if len(parts) < 2:
            raise DataError(
                f"{header}: {where} line {line[:40]!r} has {len(parts)} field(s), "
                "expected 'file format gain(baseline)/units ... description'"
            )
        fname, fmt_text = parts[0], parts[1]
        fm = _FMT.match(fmt_text)
        if not fm or (fm["fmt"] not in _BYTES and fm["fmt"] not in _COMPRESSED):
            supported = ", ".join(sorted(_BYTES, key=int))
            expected = f"a WFDB format ({supported})"
            raise field_error(header, f"format ({where})", expected, f"is {fmt_text!r}")
        gm = _GAIN.match(parts[2]) if len(parts) > 2 else None
        gain = float(gm["gain"]) if gm else math.nan
        if not (gain > 0 and math.isfinite(gain)):
            found = parts[2] if len(parts) > 2 else "missing"
            raise field_error(
                header, f"gain ({where})", "a positive ADC gain (units per mV); "
                "a missing or zero gain means uncalibrated", f"is {found!r}"
            )  # fmt: skip
        fmt, spf, offset = fm["fmt"], int(fm["spf"] or 1), int(fm["offset"] or 0)
        if fname == "~":  # a null signal: no file
            continue
        known = file_info.setdefault(fname, (fmt, offset))
        if known[0] != fmt:
            expected = f"{known[0]}, as the other signals in {fname}"
            raise field_error(header, f"format ({where})", expected, f"is {fmt!r}")
        frame_bytes[fname] = frame_bytes.get(fname, 0.0) + _BYTES.get(fmt, 0.0) * spf
    for fname, per_frame in frame_bytes.items():
        _check_signal_file(header, fname, per_frame, file_info[fname], sig_len)
    return WfdbHeader(n_sig, fs, sig_len)


def _check_signal_file(
    header: Path, fname: str, per_frame: float, info: tuple[str, int], sig_len: int | None
) -> None:
    """The signal file exists and holds ``sig_len`` frames (whole frames if no sig_len)."""
    fmt, offset = info
    path = header.parent / fname
    if not path.is_file():
        raise DataError(f"{header}: signal file {fname!r} named in the header is missing")
    if fmt in _COMPRESSED or per_frame == 0:
        return
    size = path.stat().st_size - offset
    if sig_len is not None:
        need = math.ceil(sig_len * per_frame)
        if size < need:
            raise DataError(
                f"{path}: has {max(size, 0)} bytes of samples, field 'sig_len' of "
                f"{header.name} ({sig_len} samples, format {fmt}) needs {need}; truncated?"
            )
    elif size < per_frame or (per_frame == int(per_frame) and size % int(per_frame)):
        raise DataError(
            f"{path}: has {max(size, 0)} bytes of samples, expected a whole number of "
            f"{per_frame:g}-byte frames (format {fmt}; {header.name} gives no 'sig_len')"
        )
