"""The EDF/EDF+/BDF reader (mrm_edge/records/edf.py) on real files, PTB-XL round trips and
hostile files.

vendor-ecg/ holds no EDF file (SOURCES.md lists none): the real EDF and BDF files are the
ones pyedflib ships for its tests (written by EDFbrowser's generator, no ECG leads), which
must be refused naming their signals. Round trips: PTB-XL 00001 at 500 and 100 Hz written as
EDF+ and BDF+ by ``edf_writer.write_edf`` (1 µV per count; PTB-XL's whole µV come back exact).
"""

from __future__ import annotations

import dataclasses
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from mrm_edge.data.dataset import LEADS
from mrm_edge.records import Recording, read_recording
from tests.records.edf_writer import signal_header, write_edf
from tests.records.helpers import assert_classified_alike, refused, shipped_model

pyedflib = pytest.importorskip("pyedflib")
pytestmark = pytest.mark.realdata

PYEDFLIB_DATA = Path(pyedflib.__file__).parent / "tests" / "data"


@pytest.fixture(scope="module")
def ptbxl_hr(ptbxl_root: Path) -> Recording:
    return read_recording(ptbxl_root / "records500/00000/00001_hr.hea")


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return shipped_model()


@pytest.mark.parametrize(
    ("name", "signals"),
    [("test_generator.edf", "'squarewave', 'ramp'"), ("test_generator.bdf", "'sine 5Hz'")],
)
def test_pyedflibs_real_files_without_ecg_leads_are_refused_naming_their_signals(
    name: str, signals: str
) -> None:
    path = PYEDFLIB_DATA / name
    if not path.is_file():
        pytest.skip(f"pyedflib's test file is not installed: {path}")
    refused(path, f"field 'label' names none of the 12 standard leads, found [{signals}")


@pytest.mark.parametrize("bdf", [False, True], ids=["edf+", "bdf+"])
@pytest.mark.parametrize("record", ["records500/00000/00001_hr", "records100/00000/00001_lr"])
def test_ptbxl_round_trip_is_exact_and_classifies_the_same(
    record: str, bdf: bool, ptbxl_root: Path, model_dir: Path, tmp_path: Path
) -> None:

    original = read_recording(ptbxl_root / f"{record}.hea")
    original = dataclasses.replace(original, patient_id="P-17", start_time="2001-02-03T04:05:06")
    back = read_recording(write_edf(tmp_path / "rec.edf", original, bdf=bdf))
    assert (back.format, back.sampling_rate) == ("edf", original.sampling_rate)
    assert (back.patient_id, back.start_time) == ("P-17", "2001-02-03T04:05:06")
    assert back.units == ("uV",) * 12
    assert back.notes == ()  # the EDF+ annotation signal is no lead and no "other signal"
    # Quantisation 1 µV, rounded: within 0.5 µV (PTB-XL's whole µV come back exactly).
    np.testing.assert_allclose(back.signal, original.signal, rtol=0, atol=0.5e-3 + 1e-6)
    assert_classified_alike(original, back, tolerance=1e-4)


def _write(path: Path, rec: Recording, headers: list[dict], rows: list, plus: bool = True) -> Path:
    """An EDF+ (or plain EDF) file of any signals: ``rows`` in µV, one per header."""
    kind = pyedflib.FILETYPE_EDFPLUS if plus else pyedflib.FILETYPE_EDF
    writer = pyedflib.EdfWriter(str(path), len(headers), kind)
    try:
        writer.setSignalHeaders(headers)
        writer.writeSamples([np.round(r).astype(np.int32) for r in rows], digital=True)
    finally:
        writer.close()
    return path


def _leads(rec: Recording, names: list[str]) -> tuple[list[dict], list]:
    uv = rec.signal.astype(np.float64) * 1000
    return [signal_header(n, rec.sampling_rate) for n in names], [uv[i] for i in range(len(names))]


def test_eight_stored_leads_other_channels_and_spellings(ptbxl_hr: Recording, tmp_path: Path):
    """I, II, V1-V6 spelled "EKG-I", "ECG.V1"...: the limb leads derived, a respiration
    channel at another rate left out, both said in the notes."""
    keep = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    uv = ptbxl_hr.signal.astype(np.float64) * 1000
    headers = [signal_header(f"EKG-{n}" if n[0] != "V" else f"ECG.{n}", 500) for n in keep]
    rows = [uv[LEADS.index(n)] for n in keep]
    resp = signal_header("Resp", 25, unit="Ohm")
    path = _write(tmp_path / "eight.edf", ptbxl_hr, [*headers, resp], [*rows, np.zeros(250)])
    rec = read_recording(path)
    assert any("derived from I and II" in n for n in rec.notes), rec.notes
    assert "other signals left out: Resp" in rec.notes
    assert rec.patient_id is None and rec.record_id is None  # EDF+ "X": not known
    np.testing.assert_allclose(rec.signal, ptbxl_hr.signal, atol=2e-3)  # derived: ≤ 1.5 µV


def _mixed_rates(rec: Recording, path: Path) -> Path:
    headers, rows = _leads(rec, [f"ECG {n}" for n in LEADS])
    headers[6] = signal_header("ECG V1", rec.sampling_rate // 2)
    rows[6] = rows[6][::2]
    return _write(path, rec, headers, rows)


def _unknown_unit(rec: Recording, path: Path) -> Path:
    headers, rows = _leads(rec, [f"ECG {n}" for n in LEADS])
    headers[7] = signal_header("ECG V2", rec.sampling_rate, unit="mmHg")
    return _write(path, rec, headers, rows)


def _missing_lead(rec: Recording, path: Path) -> Path:
    headers, rows = _leads(rec, [f"ECG {n}" for n in LEADS[:11]])
    return _write(path, rec, headers, rows)


def _doubled_lead(rec: Recording, path: Path) -> Path:
    headers, rows = _leads(rec, [f"ECG {n}" for n in LEADS])
    headers.append(headers[-1])
    rows.append(rows[-1])
    return _write(path, rec, headers, rows)


def _header(at: int, value: bytes):
    def mutate(rec: Recording, path: Path) -> Path:
        data = bytearray(write_edf(path, rec).read_bytes())
        data[at : at + len(value)] = value
        path.write_bytes(data)
        return path

    return mutate


def _absurd_rate(rec: Recording, path: Path) -> Path:
    """A plain EDF file whose records last 1 ms (EDF+ records carry their own time stamps,
    which pyedflib checks against the duration)."""
    _write(path, rec, *_leads(rec, [f"ECG {n}" for n in LEADS]), plus=False)
    data = bytearray(path.read_bytes())
    data[244:252] = b"0.001   "
    path.write_bytes(data)
    return path


def _truncated(rec: Recording, path: Path) -> Path:
    path.write_bytes(write_edf(path, rec).read_bytes()[:-1000])
    return path


SAMPLES_PER_RECORD_OF_I = 256 + 216 * 13  # 13 signals: the 12 leads and EDF+ annotations
HOSTILE = {
    "mixed rates": (_mixed_rates, "different rates (ECG I 100 Hz, ECG II 100 Hz"),
    "unknown unit": (_unknown_unit, "field 'physical dimension' of lead ECG V2 is 'mmHg'"),
    "missing lead": (_missing_lead, "field 'label' lacks lead(s) V6"),
    "doubled lead": (_doubled_lead, "field 'label' names lead(s) V6 more than once"),
    "billions of records": (
        _header(236, b"99999999"),
        "(99999999) × 'samples per record' (1257) declare",
    ),
    "huge records": (_header(SAMPLES_PER_RECORD_OF_I, b"99999999"), "declare"),
    "no records": (_header(236, b"-1      "), "'number of data records' is '-1'"),
    "truncated": (_truncated, "declare 28724 bytes, the file has 27724"),
    "absurd rate": (_absurd_rate, "sample rate is 100000 Hz"),
    "non-ASCII header": (_header(20, b"\xe9"), "refuses it: the file is not EDF(+) or BDF(+)"),
    "start date 07:12:26": (_header(168, b"07:12:26"), "the startdate is incorrect"),
    "discontinuous": (_header(192, b"EDF+D"), "pyedflib refuses it: The file is discontinuous"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_file_is_one_line_naming_file_and_field(
    case: str, ptbxl_root: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    build, expected = HOSTILE[case]
    rec = read_recording(ptbxl_root / "records100/00000/00001_lr.hea")  # 10 s at 100 Hz
    path = build(rec, tmp_path / "bad.edf")
    capfd.readouterr()
    tracemalloc.start()
    try:
        refused(path, expected)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # nothing the header declares was allocated
    assert capfd.readouterr().out == ""  # pyedflib's C library never got to print its size check


@pytest.mark.parametrize("content", [b"", b"0       ", b"0       " + b"x" * 600])
def test_an_empty_or_garbage_edf_is_one_line(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "junk.edf"
    path.write_bytes(content)
    refused(path, "")
