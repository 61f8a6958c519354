"""The DICOM ECG reader (mrm_edge/records/dicom.py) on real files, PTB-XL round trips and
hostile files.

Real files: pydicom's bundled ``waveform_ecg.dcm`` (a Mortara device file, the one
``vendor-ecg/SOURCES.md`` names under "Not copied") and ``vendor-ecg/dicom/
ecgtoolkit_Example.dcm`` (SOURCES.md row 9, the same recording as the HL7 aECG ballot example,
row 6). Round trips: PTB-XL 00001 at 500 and 100 Hz written by ``dicom_writer.write_dicom``
(1 µV per count; PTB-XL stores whole µV, so they come back exact).
"""

from __future__ import annotations

import dataclasses
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mrm_edge.data.dataset import LEADS
from mrm_edge.records import Recording, read_recording
from tests.conftest import SHARED_DATA
from tests.records.dicom_writer import write_dicom
from tests.records.helpers import assert_classified_alike, refused, shipped_model

pydicom = pytest.importorskip("pydicom")
pytestmark = pytest.mark.realdata

VENDOR = SHARED_DATA / "vendor-ecg"
TOOLKIT_DCM = VENDOR / "dicom" / "ecgtoolkit_Example.dcm"
TOOLKIT_AECG = VENDOR / "hl7_aecg" / "hl7_example_aECG_fda.xml"


def shared(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"shared vendor file not found: {path}")
    return path


@pytest.fixture(scope="module")
def ptbxl_hr(ptbxl_root: Path) -> Recording:
    return read_recording(ptbxl_root / "records500/00000/00001_hr.hea")


def test_pydicoms_device_file_reads_its_rhythm_group_scaled_to_mv() -> None:
    """waveform_ecg.dcm: RHYTHM 12 × 10,000 at 1000 Hz, 1.25 µV per count, then MEDIAN BEAT."""
    path = Path(pydicom.data.get_testdata_file("waveform_ecg.dcm"))
    rec = read_recording(path)
    assert (rec.format, rec.sampling_rate, rec.signal.shape) == ("dicom", 1000, (12, 10000))
    assert rec.units == ("uV",) * 12 and rec.notes == ()
    assert rec.patient_id == "642341" and rec.start_time == "2013-01-25T10:59:19"
    assert rec.record_id == "1.3.6.1.4.1.20029.40.20130125105919.5407.1.1"
    # The counts decoded here from the bytes, independently of pydicom's scaling.
    group = pydicom.dcmread(path).WaveformSequence[0]
    counts = np.frombuffer(group.WaveformData, "<i2").reshape(10000, 12).T
    np.testing.assert_allclose(rec.signal, counts * 1.25e-3, atol=1e-6)
    assert rec.signal[0, 0] == pytest.approx(0.1) and rec.signal[3, 0] == pytest.approx(-0.10625)
    # All twelve are stored: the leads were named right if Einthoven's relation holds.
    lead = {name: rec.signal[i].astype(np.float64) for i, name in enumerate(LEADS)}
    assert np.abs(lead["III"] - (lead["II"] - lead["I"])).max() <= 2 * 1.25e-3 + 1e-6


def test_ecgtoolkit_file_equals_the_same_recordings_aecg_digits() -> None:
    """Rows 9 and 6: the DICOM rhythm equals the aECG's digits × scale, every sample."""
    rec = read_recording(shared(TOOLKIT_DCM))
    assert (rec.sampling_rate, rec.signal.shape, rec.patient_id) == (500, (12, 5000), "SBJ-123")
    assert rec.start_time == "2002-11-22T09:10:00"
    ns = {"h": "urn:hl7-org:v3"}
    rhythm = ET.parse(shared(TOOLKIT_AECG)).find(".//h:series/h:component/h:sequenceSet", ns)
    compared = 0
    for seq in rhythm.iterfind("h:component/h:sequence", ns):
        code = seq.find("h:code", ns).get("code")
        if not code.startswith("MDC_ECG_LEAD_"):
            continue  # the time sequence
        value = seq.find("h:value", ns)
        scale = float(value.find("h:scale", ns).get("value"))
        origin = float(value.find("h:origin", ns).get("value"))
        digits = np.array(value.find("h:digits", ns).text.split(), dtype=np.float64)
        lead = LEADS.index({"AVR": "aVR", "AVL": "aVL", "AVF": "aVF"}.get(code[13:], code[13:]))
        np.testing.assert_allclose(rec.signal[lead], (digits * scale + origin) / 1000, atol=1e-6)
        compared += 1
    assert compared == 12


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return shipped_model()


@pytest.mark.parametrize("record", ["records500/00000/00001_hr", "records100/00000/00001_lr"])
def test_ptbxl_round_trip_is_exact_and_classifies_the_same(
    record: str, ptbxl_root: Path, model_dir: Path, tmp_path: Path
) -> None:

    original = read_recording(ptbxl_root / f"{record}.hea")
    original = dataclasses.replace(original, patient_id="P-17", start_time="2001-02-03T04:05:06")
    back = read_recording(write_dicom(tmp_path / "rec.dcm", original, median_first=True))
    assert back.sampling_rate == original.sampling_rate
    assert (back.patient_id, back.start_time) == ("P-17", "2001-02-03T04:05:06")
    # Quantisation 1 µV, rounded: within 0.5 µV (PTB-XL's whole µV come back exactly).
    np.testing.assert_allclose(back.signal, original.signal, rtol=0, atol=0.5e-3 + 1e-6)
    assert_classified_alike(original, back, tolerance=1e-4)


def test_channels_coded_without_a_meaning_are_named_by_their_scp_codes(
    ptbxl_hr: Recording, tmp_path: Path
) -> None:
    path = write_dicom(tmp_path / "rec.dcm", ptbxl_hr)
    ds = pydicom.dcmread(path)
    channels = ds.WaveformSequence[0].ChannelDefinitionSequence
    for channel in channels:
        del channel.ChannelSourceSequence[0].CodeMeaning
    channels[0], channels[1] = channels[1], channels[0]  # II stored before I
    data = np.frombuffer(ds.WaveformSequence[0].WaveformData, "<i2").reshape(-1, 12).copy()
    data[:, [0, 1]] = data[:, [1, 0]]
    ds.WaveformSequence[0].WaveformData = data.tobytes()
    ds.save_as(path)
    back = read_recording(path)
    np.testing.assert_allclose(back.signal, ptbxl_hr.signal, atol=0.5e-3 + 1e-6)
    assert any("reordered" in n for n in back.notes), back.notes


def test_millivolt_channels_with_a_baseline_are_scaled_to_the_same_signal(
    ptbxl_hr: Recording, tmp_path: Path
) -> None:
    """Sensitivity 0.001 mV per count, correction factor 2 over half the counts, and a
    baseline of -0.25 mV over counts raised by 250: the same millivolts."""
    path = write_dicom(tmp_path / "rec.dcm", ptbxl_hr)
    ds = pydicom.dcmread(path)
    group = ds.WaveformSequence[0]
    counts = np.frombuffer(group.WaveformData, "<i2").astype(np.int32)
    group.WaveformData = ((counts + 250) // 2).astype("<i2").tobytes()
    for channel in group.ChannelDefinitionSequence:
        channel.ChannelSensitivity, channel.ChannelSensitivityCorrectionFactor = "0.001", "2"
        channel.ChannelBaseline = "-0.25"
        channel.ChannelSensitivityUnitsSequence[0].CodeValue = "mV"
    ds.save_as(path)
    back = read_recording(path)
    assert back.units == ("mV",) * 12
    # Halving rounds odd counts down: within 1 µV.
    np.testing.assert_allclose(back.signal, ptbxl_hr.signal, rtol=0, atol=1e-3 + 1e-6)


# ---------------------------------------------------------------- hostile files


def _group(ds):
    return ds.WaveformSequence[0]


def _channel(ds, i: int = 0):
    return _group(ds).ChannelDefinitionSequence[i]


def _set(keyword: str, value) -> Callable:
    return lambda ds: setattr(_group(ds), keyword, value)


def _deflated(ds) -> None:
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian


def _hemodynamic_11_leads(ds) -> None:
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.9.2.1"
    _drop_last_channel(ds)


def _drop_last_channel(ds) -> None:
    g = _group(ds)
    data = np.frombuffer(g.WaveformData, "<i2").reshape(-1, 12)[:, :11]
    g.WaveformData, g.NumberOfWaveformChannels = data.tobytes(), 11
    del g.ChannelDefinitionSequence[11]


def _code_says_i_meaning_says_ii(ds) -> None:
    _channel(ds, 1).ChannelSourceSequence[0].CodeValue = "5.6.3-9-1"


def _v6_twice(ds) -> None:
    _channel(ds, 10).ChannelSourceSequence = _channel(ds, 11).ChannelSourceSequence


def _two_rhythm_groups(ds) -> None:
    ds.WaveformSequence.append(ds.WaveformSequence[0])


HOSTILE = {
    "billions of samples": (
        _set("NumberOfWaveformSamples", 3_000_000_000),
        "NumberOfWaveformSamples' is 3000000000",
    ),
    "65535 channels": (_set("NumberOfWaveformChannels", 65535), "holds 120000 bytes, expected"),
    "more samples than bytes": (
        _set("NumberOfWaveformSamples", 6000),
        "holds 120000 bytes, expected 144000",
    ),
    "64-bit samples": (_set("WaveformBitsAllocated", 64), "are 64, 'SS', expected 8, 16 or 32"),
    "mu-law samples": (
        lambda ds: (
            _set("WaveformBitsAllocated", 8)(ds),
            _set("WaveformSampleInterpretation", "MB")(ds),
        ),
        "are 8, 'MB'",
    ),
    "unknown units": (
        lambda ds: setattr(
            _channel(ds, 3).ChannelSensitivityUnitsSequence[0], "CodeValue", "mm[Hg]"
        ),
        "ChannelSensitivityUnitsSequence' of lead aVR is 'mm[Hg]'",
    ),
    "no units": (
        lambda ds: delattr(_channel(ds, 2), "ChannelSensitivityUnitsSequence"),
        "of lead III is ''",
    ),
    "no sensitivity": (
        lambda ds: delattr(_channel(ds, 4), "ChannelSensitivity"),
        "'ChannelSensitivity' of channel 5 is missing",
    ),
    "sensitivity NaN": (
        lambda ds: setattr(_channel(ds, 4), "ChannelSensitivity", "NaN"),
        "'ChannelSensitivity' of channel 5 is 'NaN'",
    ),
    "correction factor 0": (
        lambda ds: setattr(_channel(ds, 5), "ChannelSensitivityCorrectionFactor", "0"),
        "'ChannelSensitivityCorrectionFactor' of channel 6 is 0",
    ),
    "rate 0": (_set("SamplingFrequency", "0"), "SamplingFrequency' is 0 Hz"),
    "rate absurd": (_set("SamplingFrequency", "1e9"), "SamplingFrequency' is 1e+09 Hz"),
    "no waveform": (lambda ds: delattr(ds, "WaveformSequence"), "no WaveformSequence"),
    "no rhythm group": (
        lambda ds: (
            _set("MultiplexGroupLabel", "MEDIAN BEAT")(ds),
            _set("WaveformOriginality", "DERIVED")(ds),
        ),
        "0 rhythm group(s)",
    ),
    "two rhythm groups": (_two_rhythm_groups, "has 2 rhythm group(s)"),
    "fewer channel definitions": (
        lambda ds: _group(ds).ChannelDefinitionSequence.pop(),
        "has 11 item(s), expected one per channel (12)",
    ),
    "missing lead": (_drop_last_channel, "lacks lead(s) V6"),
    "V5 a second V6": (_v6_twice, "lacks lead(s) V5"),
    "code and meaning disagree": (
        _code_says_i_meaning_says_ii,
        "codes lead I (SCPECG 5.6.3-9-1) but means 'Lead II'",
    ),
    "hemodynamic, 11 leads": (
        _hemodynamic_11_leads,
        "SOP class 'Hemodynamic Waveform Storage': field 'ChannelSourceSequence' lacks lead(s) V6",
    ),
    "deflated": (_deflated, "'TransferSyntaxUID' is '1.2.840.10008.1.2.1.99'"),
}


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")  # the test writes 'NaN'
@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_file_is_one_line_naming_file_and_field(
    case: str, ptbxl_hr: Recording, tmp_path: Path
) -> None:
    mutate, expected = HOSTILE[case]
    path = write_dicom(tmp_path / "bad.dcm", ptbxl_hr)
    ds = pydicom.dcmread(path)
    mutate(ds)
    ds.save_as(path)
    tracemalloc.start()
    try:
        refused(path, expected)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # the file is 120 kB of samples: nothing declared was allocated


def test_a_hemodynamic_file_with_the_12_leads_is_read(ptbxl_hr: Recording, tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "hemo.dcm", ptbxl_hr)
    ds = pydicom.dcmread(path)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.9.2.1"
    ds.save_as(path)
    assert read_recording(path).signal.shape == (12, 5000)


@pytest.mark.parametrize("keep", [300, 60_000, -100])
def test_a_truncated_file_is_one_line(keep: int, ptbxl_hr: Recording, tmp_path: Path) -> None:
    """pydicom reads a value cut short without a word: the byte count catches it."""
    path = write_dicom(tmp_path / "rec.dcm", ptbxl_hr)
    path.write_bytes(path.read_bytes()[:keep])
    refused(path, "")


def test_a_file_over_the_dicom_size_limit_is_not_parsed(ptbxl_hr: Recording, tmp_path: Path):
    from mrm_edge.records.dicom import MAX_DICOM_BYTES

    path = write_dicom(tmp_path / "big.dcm", ptbxl_hr)
    with open(path, "r+b") as f:
        f.truncate(MAX_DICOM_BYTES + 1)  # sparse: a valid DICOM head, then zeros
    refused(path, f"{MAX_DICOM_BYTES + 1} bytes, larger than the {MAX_DICOM_BYTES} bytes")


def test_dicom_files_that_hold_no_ecg_are_one_line(tmp_path: Path) -> None:
    """pydicom's CT_small.dcm (an image) and image_dfl.dcm (Deflated: never inflated here)."""
    ct = Path(pydicom.data.get_testdata_file("CT_small.dcm"))
    refused(ct, "SOP class 'CT Image Storage': no WaveformSequence")
    refused(Path(pydicom.data.get_testdata_file("image_dfl.dcm")), "1.2.840.10008.1.2.1.99")
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)) * 8)
    refused(garbage, "")
