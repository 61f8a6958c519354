"""``mrm-edge predict`` across the hospital formats, through real subprocesses: the same PTB-XL
record written in every format classifies as its WFDB original does (within each format's
quantisation), every real vendor file (../shared/data/vendor-ecg, SOURCES.md) and pydicom's
12-lead sample gets a one-line answer, and the recording stored in three formats (SOURCES.md
rows 6, 9, 10) classifies identically from each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mrm_edge.records import read_recording
from tests.cli.test_cli import run
from tests.conftest import SHARED_DATA

VENDOR = SHARED_DATA / "vendor-ecg"
SHIPPED = Path(__file__).resolve().parents[2] / "models" / "mrm-net-ptbxl-superdiagnostic"

# What each real file must give: classified ("ok": its windows classified or rejected by the
# quality check), or refused with a reason containing the words given.
VENDOR_FILES = {
    "ge_muse/ml4h_muse_ecg_deidentified_1.xml": "ok",  # row 1: 240 Hz, 8 stored leads
    "ge_muse/easyrecg_muse_ecg1.xml": "ok",  # row 2
    "philips_sierra/sierra_v103_129DYPRG.XML": "ok",  # row 3
    "philips_sierra/sierra_v104_3191723_ZZDEMOPTONLY_orig.xml": "ok",  # row 4
    "philips_sierra/sierra_v10401_2020-5-18_15-48-11.xml": "ok",  # row 5
    "hl7_aecg/hl7_example_aECG_fda.xml": "ok",  # row 6
    "hl7_aecg/cvrg_hl7aecg-Example2.xml": "ok",  # row 7
    "dicom/ecgtoolkit_Example.dcm": "ok",  # row 9
    "scp_ecg/ecgtoolkit_Example.scp": "ok",  # row 10
    # Row 11: I, II, V3R, V1, V2, V4, V6, V7: no V3 or V5, so refused, never guessed.
    "scp_ecg/welchallyn_ECG_20060620_112352_ANON000002.SCP": "V3",
    "scp_ecg/welchallyn_ECG_20170504_163507_test.SCP": "ok",  # row 12: I, II, V1-V6
}


def _predict(*files: Path) -> tuple[int, dict[str, list[dict]], str]:
    r = run("predict", "--model", str(SHIPPED), "--json", *map(str, files), timeout=600)
    assert "Traceback" not in r.stderr, r.stderr
    by_file: dict[str, list[dict]] = {}
    for line in r.stdout.splitlines():
        row = json.loads(line)
        by_file.setdefault(row["recording"], []).append(row)
    return r.returncode, by_file, r.stderr


@pytest.fixture(scope="module")
def vendor_files() -> list[Path]:
    if not VENDOR.is_dir():
        pytest.skip(f"{VENDOR}: the vendor ECG files are not here")
    pydicom_data = pytest.importorskip("pydicom.data")
    sample = Path(pydicom_data.get_testdata_file("waveform_ecg.dcm"))
    return [*(VENDOR / rel for rel in VENDOR_FILES), sample]


def test_every_vendor_file_gets_one_answer(vendor_files: list[Path]) -> None:
    code, by_file, err = _predict(*vendor_files)
    refusals = [line for line in err.splitlines() if line.startswith("refused: ")]
    expected = {**VENDOR_FILES, "waveform_ecg.dcm": "ok"}
    for path in vendor_files:
        rel = next(k for k in expected if path.as_posix().endswith(k))
        name = read_name(path)
        rows = by_file.get(name)
        assert rows, f"{path.name}: no answer in {sorted(by_file)}"
        if expected[rel] == "ok":
            assert all(row["status"] in ("ok", "rejected") for row in rows), rows
            assert any(row["status"] == "ok" for row in rows), (path.name, rows)
        else:
            (row,) = rows
            assert row["status"] == "refused" and expected[rel] in row["reason"], row
            assert path.name in row["reason"] and "\n" not in row["reason"]
    n_refused = sum(v != "ok" for v in expected.values())
    assert len(refusals) == n_refused and code == 1


def read_name(path: Path) -> str:
    """The recording name predict reports for ``path`` (a refused file: its file name)."""
    try:
        return read_recording(path).name
    except ValueError:
        return path.name


def test_the_recording_stored_in_three_formats_classifies_identically(
    vendor_files: list[Path],
) -> None:
    """SOURCES.md: rows 6 (HL7 aECG), 9 (DICOM) and 10 (SCP-ECG) hold one recording, sample
    for sample."""
    three = [
        VENDOR / "hl7_aecg/hl7_example_aECG_fda.xml",
        VENDOR / "dicom/ecgtoolkit_Example.dcm",
        VENDOR / "scp_ecg/ecgtoolkit_Example.scp",
    ]
    signals = [read_recording(p).signal for p in three]
    for other in signals[1:]:
        assert other.shape == signals[0].shape
        assert abs(other - signals[0]).max() < 1e-6
    code, by_file, err = _predict(*three)
    assert code == 0, err
    probs = [[row["probabilities"] for row in by_file[read_name(p)]] for p in three]
    assert len(probs[0]) == 1
    for other in probs[1:]:
        for label, p in probs[0][0].items():
            assert other[0][label] == pytest.approx(p, abs=1e-5)


def test_one_ptbxl_record_classifies_alike_from_every_format(ptbxl_root: Path, tmp_path: Path):
    """PTB-XL 00001_hr written by each format's test writer (tests/records/*_writer.py) and
    classified by one ``predict`` run: every copy's probabilities equal the WFDB original's
    within the format's quantisation (1-5 µV a step: within 0.02 here; the INT8 model moves
    in steps of about 0.004) and the positive labels are the same."""
    from tests.records.aecg_writer import write_aecg
    from tests.records.dicom_writer import write_dicom
    from tests.records.edf_writer import write_edf
    from tests.records.muse_writer import write_muse
    from tests.records.scp_writer import write_scp
    from tests.records.sierra_writer import write_sierra

    original = ptbxl_root / "records500" / "00000" / "00001_hr.hea"
    rec = read_recording(original)
    copies = [
        write(tmp_path / name, rec)
        for write, name in (
            (write_dicom, "ecg.dcm"),
            (write_aecg, "ecg-aecg.xml"),
            (write_sierra, "ecg-sierra.xml"),
            (write_muse, "ecg-muse.xml"),
            (write_edf, "ecg.edf"),
            (write_scp, "ecg.scp"),
        )
    ]
    code, by_file, err = _predict(original, *copies)
    assert code == 0, err
    (reference,) = by_file["00001_hr"]
    for copy in copies:
        (row,) = by_file[copy.name]
        assert row["positive"] == reference["positive"], copy.name
        for label, p in reference["probabilities"].items():
            assert row["probabilities"][label] == pytest.approx(p, abs=0.02), (copy.name, label)
