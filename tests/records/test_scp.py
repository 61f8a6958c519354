"""SCP-ECG (mrm_edge/records/scp.py): the real files of ../shared/data/vendor-ecg/scp_ecg
(SOURCES.md rows 10-12, row 6 for the cross-format check), PTB-XL records written by
tests/records/scp_writer.py and read back, and hostile files, each a one-line DataError."""

from __future__ import annotations

import dataclasses
import struct
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mrm_edge.artifacts import default_model_dir
from mrm_edge.data.dataset import LEADS
from mrm_edge.data.errors import DataError
from mrm_edge.data.leads import canonical_lead
from mrm_edge.records import read_recording
from mrm_edge.records.scp import header_fields
from tests.conftest import SHARED_DATA
from tests.records.scp_writer import LEAD_CODES, reseal, sections, write_scp

pytestmark = pytest.mark.realdata

VENDOR = SHARED_DATA / "vendor-ecg"
TOOLKIT = VENDOR / "scp_ecg" / "ecgtoolkit_Example.scp"  # row 10
WA_V3R = VENDOR / "scp_ecg" / "welchallyn_ECG_20060620_112352_ANON000002.SCP"  # row 11
WA_12 = VENDOR / "scp_ecg" / "welchallyn_ECG_20170504_163507_test.SCP"  # row 12
AECG = VENDOR / "hl7_aecg" / "hl7_example_aECG_fda.xml"  # row 6
UV = 1e-3  # mV


def shared(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"shared vendor file not found: {path}")
    return path


def assert_one_line(msg: str, *needles: str) -> None:
    assert "\n" not in msg.strip() and "Traceback" not in msg, msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"


def refusal(path: Path) -> str:
    with pytest.raises(DataError) as info:
        read_recording(path)
    return str(info.value)


# ---------------------------------------------------------------- real files


def aecg_rhythm_mv(path: Path) -> np.ndarray:
    """The rhythm series of an HL7 aECG file, [12, t] mV in LEADS order: origin + scale ×
    digits per lead (standard library: a trusted test file)."""
    ns = {"v3": "urn:hl7-org:v3"}
    series = ET.parse(path).getroot().find(".//v3:series", ns)
    leads = {}
    for seq in series.findall("v3:component/v3:sequenceSet/v3:component/v3:sequence", ns):
        code = seq.find("v3:code", ns).get("code")
        if code.startswith("MDC_ECG_LEAD_"):
            value = seq.find("v3:value", ns)
            origin, scale = value.find("v3:origin", ns), value.find("v3:scale", ns)
            assert origin.get("unit") == scale.get("unit") == "uV"
            digits = np.array(value.find("v3:digits", ns).text.split(), float)
            mv = (float(origin.get("value")) + float(scale.get("value")) * digits) * UV
            leads[canonical_lead(code)] = mv
    return np.stack([leads[lead] for lead in LEADS])


def test_the_ecg_toolkit_file_holds_the_aecg_ballot_examples_samples() -> None:
    """Rows 10 and 6: one recording, SCP-ECG (default Huffman, 2nd differences, 2.5 µV) and
    HL7 aECG: equal sample for sample."""
    rec = read_recording(shared(TOOLKIT))
    assert (rec.format, rec.sampling_rate, rec.signal.shape) == ("scp-ecg", 500, (12, 5000))
    assert (rec.patient_id, rec.start_time) == ("SBJ-123", "2002-11-22T09:10:00")
    assert rec.units == ("uV",) * 12 and rec.signal.dtype == np.float32
    assert any("reordered" in note for note in rec.notes)  # stored I, II, V1-V6, III, aVR...
    np.testing.assert_allclose(rec.signal, aecg_rhythm_mv(shared(AECG)), rtol=0, atol=1e-6)


def test_welch_allyns_v3r_v7_lead_set_is_refused_naming_what_is_missing() -> None:
    """Row 11 stores I, II, V3R, V1, V2, V4, V6, V7: no V3, no V5; never mapped by position."""
    msg = refusal(shared(WA_V3R))
    assert_one_line(
        msg, str(WA_V3R), "Section 3 lead codes", "lacks lead(s) V3, V5", "'V3R'", "'V7'"
    )


def test_the_anonymisers_broken_date_is_no_start_time_not_an_error() -> None:
    """Row 11's Section 1: the dates written big-endian (year 53255) by its anonymiser."""
    data = shared(WA_V3R).read_bytes()
    at, size = sections(data)[1]
    patient, start, _, notes = header_fields("f", data[at + 16 : at + size])
    assert (patient, start) == ("ANON000002", None)
    assert_one_line(notes[0], "53255-1-1 is no date")


def test_welch_allyns_eight_leads_read_with_the_limb_leads_derived() -> None:
    """Row 12: I, II, V1-V6 at 1667 µs (600 Hz), a simulator with RR of 1002-1003 ms."""
    rec = read_recording(shared(WA_12))
    assert (rec.sampling_rate, rec.signal.shape) == (600, (12, 6000))
    assert (rec.patient_id, rec.start_time) == ("123456789", "2017-05-04T16:35:07")
    assert any("derived from I and II" in note for note in rec.notes)
    x = rec.signal.astype(np.float64)
    np.testing.assert_allclose(x[2], x[1] - x[0], atol=1e-6)  # III = II - I
    ii = x[1]
    top = ii[1:-1]
    peaks = np.flatnonzero((top >= ii.min() + 0.6 * np.ptp(ii)) & (top >= ii[:-2]) & (top > ii[2:]))
    assert len(peaks) == 10 and set(np.diff(peaks)) <= {601, 602}  # 1001.7-1003.3 ms
    assert 0.5 < ii.max() < 2  # mV: AVM 3.75 µV applied


# ---------------------------------------------------------------- PTB-XL round trips

ROUND_TRIPS = [  # record, difference order, Huffman coding
    ("records500/00000/00001_hr", 2, "default"),
    ("records100/00000/00001_lr", 1, "custom"),
    ("records500/00000/00001_hr", 0, None),
]


@pytest.mark.parametrize(("record", "order", "huffman"), ROUND_TRIPS)
def test_ptbxl_records_written_as_scp_read_back_exactly(
    record: str, order: int, huffman: str | None, ptbxl_root: Path, tmp_path: Path
) -> None:
    """AVM 1000 nV = 1 µV, PTB-XL's own step: equal to the µV (quantisation ±0.5 µV)."""
    original = read_recording(ptbxl_root / f"{record}.hea")
    original = dataclasses.replace(
        original, patient_id="P-7", record_id="42", start_time="2001-02-03T04:05:06"
    )
    path = write_scp(tmp_path / "rec.scp", original, differences=order, huffman=huffman)
    back = read_recording(path)
    assert (back.format, back.sampling_rate) == ("scp-ecg", original.sampling_rate)
    assert back.signal.shape == original.signal.shape and back.notes == ()
    assert np.abs(back.signal - original.signal).max() <= 0.5 * UV
    assert (back.patient_id, back.record_id, back.start_time) == (
        "P-7",
        "42",
        "2001-02-03T04:05:06",
    )


def test_scp_copies_classify_as_the_wfdb_originals(ptbxl_root: Path, tmp_path: Path) -> None:
    from mrm_edge.predict import classify

    model_dir = default_model_dir()
    if not (model_dir / "model.onnx").is_file():
        pytest.skip(f"shipped model not found at {model_dir}")
    originals = [read_recording(ptbxl_root / f"{r}.hea") for r, _, _ in ROUND_TRIPS[:2]]
    copies = [read_recording(write_scp(tmp_path / f"{i}.scp", r)) for i, r in enumerate(originals)]
    want, _ = classify(originals, model_dir, backend="onnxruntime")
    got, _ = classify(copies, model_dir, backend="onnxruntime")
    assert len(got) == len(want) >= 2
    for g, w in zip(got, want, strict=True):
        assert g.status == w.status == "ok"
        assert max(abs(g.probabilities[k] - w.probabilities[k]) for k in w.probabilities) < 1e-5


# ---------------------------------------------------------------- hostile files

Edit = Callable[[bytearray, dict[int, tuple[int, int]]], bytes]


def _field(section: int, offset: int, fmt: str, value: int, every: int = 0) -> Edit:
    """Set a field at ``offset`` into ``section``'s data (each lead's, ``every`` bytes apart)."""

    def edit(data: bytearray, where: dict[int, tuple[int, int]]) -> bytes:
        at = where[section][0] + 16 + offset
        for lead in range(data[where[3][0] + 16] if every else 1):
            struct.pack_into(fmt, data, at + lead * every, value)
        return reseal(data)

    return edit


def _lead_code(lead: str, code: int) -> Edit:
    return _field(3, 2 + 9 * LEADS.index(lead) + 8, "<B", code)


def _section_length(section: int, length: int) -> Edit:
    def edit(data: bytearray, where: dict[int, tuple[int, int]]) -> bytes:
        struct.pack_into("<I", data, where[section][0] + 4, length)
        pointer = next(
            a for a in range(22, 142, 10) if struct.unpack_from("<H", data, a)[0] == section
        )
        struct.pack_into("<I", data, pointer + 2, length)
        return reseal(data)

    return edit


def _flip_in_section(section: int) -> Edit:
    def edit(data: bytearray, where: dict[int, tuple[int, int]]) -> bytes:
        data[where[section][0] + 40] ^= 0x5A
        return reseal(data, skip=(section,))

    return edit


SAMPLES = 1000  # the 100 Hz record's samples per lead
HOSTILE: dict[str, tuple[Edit, tuple[str, ...]]] = {
    "bad section CRC": (_flip_in_section(6), ("Section 6 CRC", "damaged section")),
    "bad record CRC": (lambda d, w: bytes([d[0] ^ 1]) + bytes(d[1:]), ("record CRC",)),
    "truncated": (lambda d, w: bytes(d[: len(d) // 2]), ("record size", "truncated")),
    "garbage after the tag": (lambda d, w: bytes(d[:22]), ("record size",)),
    "section past the file": (
        _section_length(6, 2**31),
        (
            "pointers cover more than the record's",
            "at Section 6",
        ),
    ),
    "no rhythm section": (_section_length(6, 0), ("no Section 6",)),
    "lead bytes past the section": (_field(6, 6, "<H", 65535), ("lead byte counts total",)),
    "billions of samples": (_field(3, 6, "<I", 4_000_000_000, 9), ("sample range 1..4000000000",)),
    "too few bytes": (_field(3, 6, "<I", 200_000, 9), ("too few for 200000 samples",)),
    "Huffman runs out": (
        _field(3, 6, "<I", SAMPLES + 8, 9),
        ("Huffman data", f"of {SAMPLES + 8} samples"),
    ),
    "leads not simultaneous": (_field(3, 6, "<I", 500), ("different samples",)),
    "AVM 0": (_field(6, 0, "<H", 0), ("'AVM' is 0 nV",)),
    "sample interval 0": (_field(6, 2, "<H", 0), ("'sample time interval' is 0",)),
    "sample interval 3 µs": (_field(6, 2, "<H", 3), ("(3 µs) is 333333 Hz",)),
    "difference order 3": (_field(6, 4, "<B", 3), ("'difference data used' is 3",)),
    "bimodal compression": (_field(6, 5, "<B", 1), ("bimodal compression",)),
    "reference beat subtraction": (_field(3, 1, "<B", 0b101), ("reference beat subtraction",)),
    "unknown lead code": (_lead_code("V1", 200), ("lacks lead(s) V1", "'lead code 200'")),
    "derived lead": (_lead_code("V1", 33), ("lacks lead(s) V1", "'derived V1'")),
    "doubled lead": (_lead_code("V2", LEAD_CODES["V1"]), ("lacks lead(s) V2", "'V1', 'V1'")),
    "protocol 9.9": (lambda d, w: reseal(d[:15] + b"\x63" + d[16:]), ("protocol version is 99",)),
    "Section 1 tag overrun": (_field(1, 1, "<H", 5000), ("Section 1 tag 2 declares 5000 bytes",)),
    "Huffman table switch": (_field(2, 4 + 2, "<B", 0), ("switches tables",)),
    "Huffman table not prefix-free": (_field(2, 4 + 5, "<I", 1), ("not prefix-free",)),
    "Huffman code not in the table": (_field(2, 2, "<H", 17), ("no Huffman code matches",)),
}


@pytest.fixture(scope="module")
def valid_scp(ptbxl_root: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    rec = read_recording(ptbxl_root / "records100/00000/00001_lr.hea")
    assert rec.signal.shape[1] == SAMPLES
    return write_scp(
        tmp_path_factory.mktemp("scp") / "valid.scp", rec, huffman="custom"
    ).read_bytes()


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_files_are_one_line_naming_the_file(
    case: str, valid_scp: bytes, tmp_path: Path
) -> None:
    edit, needles = HOSTILE[case]
    path = tmp_path / "hostile.scp"
    path.write_bytes(edit(bytearray(valid_scp), sections(valid_scp)))
    tracemalloc.start()
    try:
        msg = refusal(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_one_line(msg, str(path), *needles)
    assert peak < 32 * 2**20, f"{peak} bytes traced reading a {len(valid_scp)}-byte file"
