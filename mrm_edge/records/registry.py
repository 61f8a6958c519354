"""The record formats, recognised by content: a format is one reader module plus one
``register_format`` line here. ``read_recording`` is the one way every command reads an ECG
file (predict, monitor replay, calibration, evaluation, the watched inbox); the formats and
what each reader checks: docs/formats.md."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mrm_edge.data.errors import DataError
from mrm_edge.errors import one_line
from mrm_edge.records.recording import Recording

#: How much of a file the recognisers see.
HEAD_BYTES = 4096
#: The largest file a reader opens: a resting ECG is kilobytes to a few MB, a long EDF
#: recording hundreds of MB; beyond this is no record this toolkit classifies.
MAX_FILE_BYTES = 256 * 1024 * 1024

Reader = Callable[[Path], Recording]


@dataclass(frozen=True)
class RecordFormat:
    """One file format: its ``name``, a ``title`` for messages, ``recognise(path, head)``
    (is this file of the format, from its name and first HEAD_BYTES bytes; cheap, no
    imports), ``load`` (returns the reader, importing its module only then) and the
    optional ``extra`` that installs the reader's library."""

    name: str
    title: str
    recognise: Callable[[Path, bytes], bool]
    load: Callable[[], Reader]
    extra: str | None = None


_FORMATS: dict[str, RecordFormat] = {}


def register_format(fmt: RecordFormat) -> None:
    """Make ``fmt`` readable (a second registration of a name replaces it)."""
    _FORMATS[fmt.name] = fmt


def record_formats() -> list[RecordFormat]:
    return list(_FORMATS.values())


def _wfdb_header(path: Path) -> Path | None:
    """The WFDB header ``path`` names: itself (.hea), its record's (.dat, a .mat signal
    file beside its header) or the record stem's; None when it names no WFDB record."""
    if path.suffix in (".hea", ".dat", ".mat"):
        header = path.with_suffix(".hea")
        return header if path.suffix != ".mat" or header.is_file() else None
    header = Path(f"{path}.hea")  # not with_suffix: a record name may contain dots
    return header if header.is_file() and not path.is_file() else None


def detect(path: Path) -> RecordFormat | None:
    """The format of the file at ``path``, or None. A WFDB record is recognised by its
    header's name (its header is plain text with no signature)."""
    if _wfdb_header(path) is not None:
        return _FORMATS["wfdb"]
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        return None
    return next((f for f in _FORMATS.values() if f.recognise(path, head)), None)


def read_recording(path: str | Path) -> Recording:
    """The recording in the file at ``path`` (a WFDB record also by its stem), whatever its
    registered format; a :class:`DataError` of one line naming the file for anything else."""
    path = Path(path)
    header = _wfdb_header(path)
    if header is None and not path.is_file():
        raise DataError(f"{path}: no such file")
    fmt = detect(path)
    if fmt is None:
        titles = ", ".join(f.title for f in _FORMATS.values())
        raise DataError(f"{path}: not an ECG file of a known format, expected one of: {titles}")
    if header is None and path.stat().st_size > MAX_FILE_BYTES:
        raise DataError(
            f"{path}: {path.stat().st_size} bytes, larger than the {MAX_FILE_BYTES} bytes a "
            f"{fmt.title} file is read up to"
        )
    try:
        return fmt.load()(header or path)
    except DataError:
        raise
    except ModuleNotFoundError as e:
        extra = f": pip install 'mrm-edge[{fmt.extra}]'" if fmt.extra else ""
        raise DataError(f"{path}: reading {fmt.title} files needs {e.name}{extra}") from None
    except (MemoryError, RecursionError) as e:
        raise DataError(
            f"{path}: {fmt.title} file too large or deep to read ({one_line(e)})"
        ) from None
    except Exception as e:  # a parser's own failure on a malformed file is bad input
        raise DataError(f"{path}: unreadable {fmt.title} file ({one_line(e)})") from None


def find_recordings(folder: Path) -> list[Path]:
    """Every recording under ``folder`` (sub-folders too), sorted by path: the WFDB headers
    and every other file of a registered format (a ``.mat`` beside a ``.hea`` of its name is
    that WFDB record's signal file, read through its header). Dot-files are left out.
    Empty when there are none: each caller says what it expected."""
    found = []
    for path in folder.rglob("*"):
        if path.name.startswith(".") or path.suffix == ".dat" or not path.is_file():
            continue
        if path.suffix == ".mat":  # level-4 files have no signature: the name decides
            keep = _wfdb_header(path) is None
        else:
            keep = path.suffix == ".hea" or detect(path) is not None
        if keep:
            found.append(path)
    return sorted(found, key=str)


# XML formats are told apart by their root element: a regex over the head, not a parser,
# so recognising a hostile file costs nothing.
_FIRST_TAG = re.compile(r"<(?![?!])(?:[\w.-]+:)?([\w.-]+)")
_COMMENT = re.compile(r"<!--.*?-->", re.S)


def xml_root(head: bytes) -> str | None:
    """The local name of the first element in ``head``, or None."""
    utf16 = head[:2] in (b"\xff\xfe", b"\xfe\xff")
    text = head.decode("utf-16" if utf16 else "utf-8", "replace").lstrip("\ufeff \t\r\n")
    if not text.startswith("<"):
        return None
    match = _FIRST_TAG.search(_COMMENT.sub("", text))
    return match[1] if match else None


def _reader(module: str) -> Callable[[], Reader]:
    """The ``read`` of ``mrm_edge.records.<module>``, imported on first use."""
    return lambda: importlib.import_module(f"mrm_edge.records.{module}").read


def _xml(root: str) -> Callable[[Path, bytes], bool]:
    return lambda path, head: xml_root(head) == root


register_format(
    RecordFormat("wfdb", "WFDB record (.hea)", lambda path, head: False, _reader("wfdb"))
)
register_format(
    RecordFormat(
        "cpsc-mat",
        "CPSC 2018 MATLAB file (.mat)",
        lambda path, head: path.suffix == ".mat" or head.startswith(b"MATLAB"),
        _reader("matlab"),
    )
)
register_format(
    RecordFormat(
        "dicom",
        "DICOM 12-lead ECG waveform (.dcm)",
        lambda path, head: head[128:132] == b"DICM",
        _reader("dicom"),
        extra="dicom",
    )
)
register_format(
    RecordFormat("hl7-aecg", "HL7 aECG XML", _xml("AnnotatedECG"), _reader("aecg"), extra="xml")
)
register_format(
    RecordFormat("ge-muse", "GE MUSE XML", _xml("RestingECG"), _reader("muse"), extra="xml")
)
register_format(
    RecordFormat(
        "philips-sierra",
        "Philips Sierra/PageWriter XML",
        _xml("restingecgdata"),
        _reader("sierra"),
        extra="sierra",
    )
)
register_format(
    RecordFormat(
        "edf",
        "EDF/EDF+ or BDF file",
        lambda path, head: head[:8] in (b"0       ", b"\xffBIOSEMI"),
        _reader("edf"),
        extra="edf",
    )
)
register_format(
    RecordFormat(
        "scp-ecg",
        "SCP-ECG file (EN 1064)",
        lambda path, head: head[16:22] == b"SCPECG",
        _reader("scp"),
    )
)
