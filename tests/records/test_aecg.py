"""HL7 aECG (mrm_edge/records/aecg.py): the real files (SOURCES.md rows 6 and 7; row 6 is
the recording of the DICOM file, row 9), the PTB-XL round trip, and hostile files, one line
each."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from mrm_edge.data.dataset import LEADS
from mrm_edge.data.leads import canonical_lead
from mrm_edge.records import Recording, read_recording
from mrm_edge.records.recording import MAX_SAMPLES
from tests.records.aecg_writer import SCALE_UV, write_aecg
from tests.records.helpers import (
    PTBXL,
    assert_classified_alike,
    peak_bytes,
    ptbxl,
    refused,
    shared_file,
)

FDA = "vendor-ecg/hl7_aecg/hl7_example_aECG_fda.xml"
CVRG = "vendor-ecg/hl7_aecg/cvrg_hl7aecg-Example2.xml"


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("rel", "rate", "samples", "patient", "record", "start"),
    [
        # row 6: the HL7 ballot example (Mortara, via FDA), 500 Hz
        (FDA, 500, 5000, "SBJ-123", "61d1a24f-b47e-41aa-ae95-f8ac302f4eeb", "2002-11-22T09:10:00"),
        # row 7: AMPS CalECG2, 1000 Hz, relative time (GLIST_PQ)
        (
            CVRG,
            1000,
            10000,
            "106_ABC",
            "3484B72F-B3BC-4949-93A9-1F9BBEA4A5C5",
            "2004-01-15T11:20:04.000",
        ),
    ],
)
def test_real_aecg_files(
    rel: str, rate: int, samples: int, patient: str, record: str, start: str
) -> None:
    """The RHYTHM series (not the representative beat, 599 or 1200 samples), 12 stored
    leads, which keep Einthoven's and Goldberger's relations within one 2.5 µV step."""
    rec = read_recording(shared_file(rel))
    assert (rec.format, rec.sampling_rate, rec.signal.shape) == ("hl7-aecg", rate, (12, samples))
    assert (rec.patient_id, rec.record_id, rec.start_time) == (patient, record, start)
    assert set(rec.units) == {"uV"} and not any("derived" in n for n in rec.notes)
    lead = dict(zip(LEADS, rec.signal.astype(np.float64), strict=True))
    step = 2.5e-3 + 1e-6  # mV
    assert np.abs(lead["III"] - (lead["II"] - lead["I"])).max() <= step
    assert np.abs(lead["aVR"] + lead["aVL"] + lead["aVF"]).max() <= step
    assert np.abs(rec.signal).max() > 0.3


@pytest.mark.realdata
def test_the_ballot_example_equals_its_dicom_copy() -> None:
    """Rows 6 and 9 hold one recording: every lead equal (pydicom applies the DICOM file's
    channel sensitivity, in µV), up to float32 rounding."""
    pydicom = pytest.importorskip("pydicom")
    rec = read_recording(shared_file(FDA))
    dicom = pydicom.dcmread(shared_file("vendor-ecg/dicom/ecgtoolkit_Example.dcm"))
    group = dicom.WaveformSequence[0]
    assert group.MultiplexGroupLabel == "RHYTHM"
    channels = dicom.waveform_array(0)
    for i, channel in enumerate(group.ChannelDefinitionSequence):
        lead = canonical_lead(channel.ChannelSourceSequence[0].CodeMeaning)
        np.testing.assert_allclose(rec.signal[LEADS.index(lead)], channels[:, i] / 1000, atol=1e-6)


@pytest.mark.realdata
@pytest.mark.parametrize("rel", PTBXL)
def test_ptbxl_round_trip(rel: str, tmp_path: Path) -> None:
    """A PTB-XL record written at scale 2.5 µV reads back within ±1.25 µV (PTB-XL's 1 µV
    steps: at most 1 µV), with its ids, and is classified alike."""
    original = dataclasses.replace(ptbxl(rel), patient_id="PTB-1", start_time=None)
    back = read_recording(write_aecg(tmp_path / "ecg.xml", original))
    assert (back.sampling_rate, back.signal.shape) == (
        original.sampling_rate,
        original.signal.shape,
    )
    assert (back.patient_id, back.record_id) == ("PTB-1", original.record_id)
    error = np.abs(back.signal.astype(np.float64) - original.signal).max()
    assert error <= SCALE_UV / 2 / 1000 + 1e-6
    assert_classified_alike(original, back)


# ---------------------------------------------------------------- hostile files


@pytest.fixture
def aecg(tmp_path: Path) -> Path:
    """A valid 10 s, 500 Hz aECG file of noise with an absolute start time (GLIST_TS)."""
    signal = np.random.default_rng(0).normal(0, 0.5, (12, 5000)).astype(np.float32)
    rec = Recording("noise", signal, 500, start_time="2021-05-10T13:15:18", record_id="R-1")
    return write_aecg(tmp_path / "ecg.xml", rec)


def _edit(path: Path, pattern: str, new: str) -> Path:
    """``path`` with the first match of ``pattern`` replaced (of the RHYTHM series: its
    sequences come before the derived beat's)."""
    text, n = re.subn(pattern, new, path.read_text(), count=1)
    assert n == 1, pattern
    path.write_text(text)
    return path


def test_the_written_file_reads_with_its_start_time(aecg: Path) -> None:
    rec = read_recording(aecg)
    assert (rec.signal.shape, rec.sampling_rate) == ((12, 5000), 500)
    assert (rec.start_time, rec.record_id) == ("2021-05-10T13:15:18", "R-1")


def test_origin_and_scale_in_other_units_and_an_increment_in_ms(aecg: Path) -> None:
    """value = origin + scale × digit, each converted from its unit."""
    before = read_recording(aecg).signal[LEADS.index("V2")]
    v2 = r'(MDC_ECG_LEAD_V2".*?)<origin value="0" unit="uV" />\s*<scale value="2.5" unit="uV" />'
    _edit(aecg, v2, r'\1<origin value="0.1" unit="mV" /><scale value="0.0025" unit="mV" />')
    _edit(aecg, r'<increment value="0.002" unit="s" />', '<increment value="2" unit="ms" />')
    rec = read_recording(aecg)
    assert rec.sampling_rate == 500
    np.testing.assert_allclose(rec.signal[LEADS.index("V2")], before + 0.1, atol=1e-6)


V2_DIGITS = r'(MDC_ECG_LEAD_V2".*?<digits>)(-?\d+) '


@pytest.mark.parametrize(
    ("pattern", "new", "needles"),
    [
        (r'<increment value="0.002" unit="s" />', "", ["time sequence has no increment"]),
        (r'unit="s" />', 'unit="min" />', ["increment's unit is 'min'", "s or ms"]),
        (r'<increment value="0.002"', '<increment value="0"', ["1 / time increment", "inf Hz"]),
        (r'<increment value="0.002"', '<increment value="2e-9"', ["5e+08 Hz"]),
        (r'code="RHYTHM"', 'code="ARRHYTHMIA"', ["no series coded RHYTHM", "ARRHYTHMIA"]),
        (V2_DIGITS, r"\1", ["different numbers of digits", "V2 4999", "V3 5000"]),
        (V2_DIGITS, r"\1x\2 ", ["lead MDC_ECG_LEAD_V2", "'digits' is not a list of numbers"]),
        (r'(MDC_ECG_LEAD_V2".*?<digits>)[^<]*', r"\1 ", ["lead MDC_ECG_LEAD_V2", "empty"]),
        (
            r'(MDC_ECG_LEAD_V2".*?)<scale value="2.5" unit="uV"',
            r'\1<scale value="2.5" unit="mmHg"',
            ["lead MDC_ECG_LEAD_V2", "scale' unit is 'mmHg'", "mV or uV"],
        ),
        (r'(MDC_ECG_LEAD_V2".*?)<scale value="2.5"', r'\1<scale value="-2.5"', ["'scale' is -2.5"]),
        (r'(MDC_ECG_LEAD_V2".*?)<origin value="0"', r'\1<origin value="nan"', ["'origin' is nan"]),
        (r'(MDC_ECG_LEAD_V2".*?)xsi:type="SLIST_PQ"', r'\1xsi:type="SLIST_INT"', ["SLIST_INT"]),
        (r'MDC_ECG_LEAD_V2"', 'MDC_ECG_LEAD_V3R"', ["lacks lead(s) V2", "MDC_ECG_LEAD_V3R"]),
        (
            r'(<component><sequence><code code="MDC_ECG_LEAD_V2".*?</component>)',
            r"\1\1",
            ["V2 more than once"],
        ),
        (r"(<AnnotatedECG[^>]*>)", r"\1<component>", ["not well-formed XML", "line 2, column"]),
    ],
)
def test_a_bad_file_is_one_line(aecg: Path, pattern: str, new: str, needles: list[str]) -> None:
    refused(_edit(aecg, pattern, new), *needles)


def test_a_digits_list_beyond_the_limit_is_counted_not_built(aecg: Path) -> None:
    """MAX_SAMPLES + 1 digits (25 MB of text; a file cannot hold billions under the
    registry's 256 MiB cap, so this is the largest refusal that matters): refused by count,
    before a number is parsed. Splitting it into Python strings alone would take ~0.5 GB."""
    _edit(aecg, r'(MDC_ECG_LEAD_V2".*?<digits>)[^<]*', r"\g<1>" + "10 " * (MAX_SAMPLES + 1))
    msg = []
    peak = peak_bytes(lambda: msg.append(refused(aecg, "V2", f"is {MAX_SAMPLES + 1}")))
    assert "the number of digits" in msg[0]
    assert peak < 160_000_000, peak


BOMB = (
    '<!DOCTYPE AnnotatedECG [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + "]>"
)


@pytest.mark.parametrize(
    ("doctype", "needles"),
    [
        (BOMB, ["entity", "refused"]),
        (
            '<!DOCTYPE AnnotatedECG [<!ENTITY e SYSTEM "file:///etc/passwd">]>',
            ["entity", "file:///etc/passwd", "refused"],
        ),
    ],
)
def test_entities_are_refused(aecg: Path, doctype: str, needles: list[str]) -> None:
    """A billion laughs and an external entity: refused at the declaration."""
    _edit(aecg, r"(<\?xml[^>]*>)", r"\1" + doctype)
    _edit(aecg, r'(<id root="R-1" />)', r"\1<title>&j;&e;</title>")
    peak = peak_bytes(lambda: refused(aecg, *needles))
    assert peak < 20_000_000


@pytest.mark.parametrize(
    ("head", "needles"),
    [
        ("20210510131519", ["different time bases", "'20210510131519', 500"]),
        ("20210510131518", ["I, II, III", "more than once"]),  # joined: every lead twice
    ],
)
def test_sequence_sets_are_joined_only_on_one_time_base(
    aecg: Path, head: str, needles: list[str]
) -> None:
    """A second sequence set: joined to the first when its time sequence starts at the same
    head at the same rate, refused when not (its leads were not recorded together)."""
    text = aecg.read_text()
    first = re.search(r"<component><sequenceSet>.*?</sequenceSet></component>", text)
    second = first[0].replace('<head value="20210510131518"', f'<head value="{head}"')
    aecg.write_text(text[: first.end()] + second + text[first.end() :])
    refused(aecg, *needles)
