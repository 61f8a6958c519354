"""Philips Sierra / PageWriter XML (mrm_edge/records/sierra.py), through the registry as every
command reads it: the three real files (vendor-ecg SOURCES.md rows 3, 4 and 5: SierraECG
1.03, PhilipsECG 1.04 and 1.04.01, XLI, 500 Hz, 11 s ending in a calibration pulse), PTB-XL
records written by tests/records/sierra_writer.py and read back, and hostile files."""

from __future__ import annotations

import re
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from mrm_edge.records import Recording
from mrm_edge.records.recording import MAX_SAMPLES
from mrm_edge.records.registry import read_recording
from tests.conftest import SHARED_DATA
from tests.records.helpers import refused
from tests.records.sierra_writer import (
    LZW_MAX_CODE,
    RESOLUTION_UV,
    pack_codes,
    sierra_xml,
    write_sierra,
)

SIERRA = SHARED_DATA / "vendor-ecg" / "philips_sierra"
MODEL = Path(__file__).resolve().parents[2] / "models/mrm-net-ptbxl-superdiagnostic"
QUANTUM_MV = RESOLUTION_UV / 1000 / 2  # half a count at 5 µV per count


def shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    return path


# ---------------------------------------------------------------- the real files

REAL = [  # file, SOURCES.md row, samples kept (ECG before the flat run), patient, start
    ("sierra_v103_129DYPRG.XML", 3, 5264, "1112010721168bdc", "2011-12-01T07:27:34"),
    ("sierra_v104_3191723_ZZDEMOPTONLY_orig.xml", 4, 5300, "9999", "2010-01-19T15:19:22"),
    ("sierra_v10401_2020-5-18_15-48-11.xml", 5, 5300, "xxxxxx", "2020-05-18T15:48:11"),
]


@pytest.mark.parametrize(("name", "row", "kept", "patient", "start"), REAL)
def test_real_files_read_with_the_calibration_pulse_trimmed(
    name: str, row: int, kept: int, patient: str, start: str
) -> None:
    """Rows 3-5: the leads equal sierraecg's own full decode (``read_file``) × 5 µV up to the
    trimmed tail, and that tail is exactly the cart's 0 / 1 mV (200 counts) / 0 segment, the
    pulse at samples 5350-5449 (row 3). The limb leads are stored, not derived: Einthoven's
    and Goldberger's relations hold to 10 µV, a check of the rebuilt residual leads."""
    import sierraecg

    path = shared(SIERRA / name)
    rec = read_recording(path)
    assert (rec.format, rec.sampling_rate, rec.signal.shape) == ("philips-sierra", 500, (12, kept))
    assert (rec.patient_id, rec.start_time) == (patient, start)
    assert rec.record_id and rec.record_id.endswith(".xml") and rec.units == ("uV",) * 12
    assert any("calibration pulse trimmed" in n and "200 ms" in n for n in rec.notes), rec.notes

    full = np.stack([lead.samples for lead in sierraecg.read_file(str(path)).leads]).astype(int)
    assert full.shape == (12, 5500)
    np.testing.assert_allclose(rec.signal, full[:, :kept] * RESOLUTION_UV / 1000, atol=1e-6)
    tail = full[:, kept:]
    assert (tail[:, 5350 - kept : 5450 - kept] == 200).all()  # 200 counts × 5 µV = 1 mV
    assert set(np.unique(tail)) == {0, 200} and (tail == 200).sum() == 12 * 100

    lead_i, lead_ii, lead_iii, avr, avl, avf = rec.signal[:6].astype(np.float64)
    for lead, derived in [
        (lead_iii, lead_ii - lead_i),
        (avr, -(lead_i + lead_ii) / 2),
        (avl, lead_i - lead_ii / 2),
        (avf, lead_ii - lead_i / 2),
    ]:
        assert np.abs(lead - derived).max() <= 0.010 + 1e-6
    assert np.abs(rec.signal).max() > 0.5  # QRS complexes, not a flat or mis-scaled record


# ---------------------------------------------------------------- round trips


@pytest.fixture(scope="module")
def classify_one():
    from mrm_edge.predict import classify

    def run(rec: Recording) -> list[tuple[dict[str, float], list[str]]]:
        windows, _ = classify([rec], MODEL, backend="onnxruntime")
        assert windows and all(w.status == "ok" for w in windows)
        return [(w.probabilities, w.positive) for w in windows]

    return run


@pytest.mark.parametrize("record", ["records500/00000/00001_hr", "records100/00000/00001_lr"])
def test_ptbxl_round_trip_within_quantisation_and_classified_alike(
    record: str, tmp_path: Path, classify_one
) -> None:
    """A PTB-XL record (500 and 100 Hz) written as XLI and read back: within half a 5 µV
    count of the WFDB original, ids and start time carried, the classification alike."""
    original = read_recording(shared(SHARED_DATA / "ptb-xl" / f"{record}.hea"))
    original.patient_id, original.start_time = "P-17 <&>", "2024-03-05T10:11:12"
    path = write_sierra(tmp_path / "ecg.xml", original)
    back = read_recording(path)
    assert back.format == "philips-sierra" and back.sampling_rate == original.sampling_rate
    assert back.signal.shape == original.signal.shape and back.notes == ()
    assert np.abs(back.signal - original.signal).max() <= QUANTUM_MV + 1e-6
    assert (back.patient_id, back.start_time, back.record_id) == (
        "P-17 <&>", "2024-03-05T10:11:12", original.name,
    )  # fmt: skip
    # The shipped model runs INT8 here: its probabilities move in steps of ~0.004, and
    # uniform ±2.5 µV noise on the original moves them by one such step too.
    for (want, want_positive), (got, got_positive) in zip(
        classify_one(original), classify_one(back), strict=True
    ):
        assert got_positive == want_positive
        assert max(abs(want[k] - got[k]) for k in want) < 0.01


def test_written_calibration_pulse_is_trimmed_to_the_original_samples(tmp_path: Path) -> None:
    """The writer's cart-style tail (0.1 s at 0, 1 mV for 0.2 s, 0.1 s at 0) comes off
    exactly: the record read back has the original's length and samples."""
    original = synthetic(rate=250)
    back = read_recording(write_sierra(tmp_path / "cal.xml", original, calibration_pulse=True))
    assert back.signal.shape == original.signal.shape
    assert np.abs(back.signal - original.signal).max() <= QUANTUM_MV + 1e-6
    assert back.notes == (
        "calibration pulse trimmed: the last 100 samples (0.40 s), all leads 0 and 1 mV for 200 ms",
    )


@pytest.mark.parametrize("leads", [12, 6])
def test_a_flat_tail_without_the_pulse_on_every_lead_is_kept(leads: int, tmp_path: Path) -> None:
    """Only the all-lead 0 / 1 mV pattern is trimmed: a flat 0 tail on all 12 leads (no
    pulse) or a 1 mV step on the limb leads alone is signal, left to the quality check."""
    rec = synthetic(rate=250)
    rec.signal[:, -50:] = 0.0
    rec.signal[:leads, -20:] = 1.0 if leads < 12 else 0.0
    back = read_recording(write_sierra(tmp_path / "flat.xml", rec))
    assert back.signal.shape == rec.signal.shape and back.notes == ()
    assert np.abs(back.signal - rec.signal).max() <= QUANTUM_MV + 1e-6


# ---------------------------------------------------------------- hostile files


def synthetic(rate: int = 500, seconds: int = 10) -> Recording:
    """A smooth 12-lead signal in mV (limb leads consistent with I and II)."""
    t = np.arange(rate * seconds) / rate
    lead_i, lead_ii = np.sin(2 * np.pi * 1.2 * t), 0.8 * np.cos(2 * np.pi * 1.1 * t)
    chest = [0.3 * k * np.sin(2 * np.pi * 0.9 * t + k) for k in range(1, 7)]
    limb = [lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2]
    limb += [lead_i - lead_ii / 2, lead_ii - lead_i / 2]
    return Recording("syn", np.stack(limb + chest).astype(np.float32), rate, record_id="syn")


def hostile(tmp_path: Path, edit, name: str = "bad.xml") -> Path:
    path = tmp_path / name
    path.write_text(edit(sierra_xml(synthetic())), encoding="utf-8")
    return path


def sub(old: str, new: str):
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


def payload(text: str) -> str:
    return re.search(r'bitspersample="16">\n(.*?)</parsedwaveforms>', text, re.S)[1]


def cut_base64(chars: int):
    """The waveform text cut to its first ``chars`` base64 characters."""
    return lambda text: text.replace(payload(text), payload(text).replace("\n", "")[:chars])


def split_chunks(text: str) -> list[bytes]:
    data, parts = chunks(text), []
    while data:
        end = 8 + int.from_bytes(data[:4], "little")
        parts, data = [*parts, data[:end]], data[end:]
    return parts


def first_chunks(count: int):
    """The waveform data cut to its first ``count`` XLI chunks."""
    return lambda text: with_payload(b"".join(split_chunks(text)[:count]))(text)


def v6_twice(text: str) -> str:
    """A 13th lead named V6 too, its data V6's."""
    parts = split_chunks(text)
    text = sub('numberofleads="12"', 'numberofleads="13"')(sub(' V6"', ' V6 V6"')(text))
    return with_payload(b"".join([*parts, parts[-1]]))(text)


def with_payload(data: bytes):
    import base64

    return lambda text: text.replace(payload(text), base64.encodebytes(data).decode())


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE restingecgdata [<!ENTITY a "aaaaaaaaaa">'
    + "".join(
        f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "]>\n<restingecgdata>&i;</restingecgdata>\n"
)
EXTERNAL = (
    '<?xml version="1.0"?>\n<!DOCTYPE restingecgdata [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    "\n<restingecgdata><documentinfo><documentname>&x;</documentname></documentinfo>"
    "</restingecgdata>\n"
)


@pytest.mark.parametrize("document", [BILLION_LAUGHS, EXTERNAL], ids=["bomb", "external"])
def test_entity_bomb_and_external_entity_are_refused(document: str, tmp_path: Path) -> None:
    path = tmp_path / "entities.xml"
    path.write_text(document)
    tracemalloc.start()
    try:
        refused(path, "DTD, entities or external references is refused")
        assert tracemalloc.get_traced_memory()[1] < 8 * 2**20
    finally:
        tracemalloc.stop()


HOSTILE = {
    "unknown version": (sub("<documentversion>1.04<", "<documentversion>1.05<"),
                        ["field 'documentversion' is '1.05'"]),
    "other vendor": (sub("PhilipsECG<", "MortaraECG<"), ["field 'documenttype'"]),
    "rate 0": (sub("<samplingrate>500<", "<samplingrate>0<"), ["field 'samplingrate' is 0 Hz"]),
    "rate absurd": (sub("<samplingrate>500<", "<samplingrate>5e9<"), ["'samplingrate'"]),
    "rates disagree": (sub('samplespersecond="500"', 'samplespersecond="250"'),
                       ["field 'samplespersecond'", "'samplingrate' 500"]),
    "resolution 0": (sub("<resolution>5<", "<resolution>0<"), ["field 'resolution' is 0"]),
    "resolution text": (sub("<resolution>5<", "<resolution>fine<"), ["'fine', expected a number"]),
    "offset": (sub("<signaloffset>0<", "<signaloffset>7<"), ["field 'signaloffset' is '7'"]),
    "8-bit": (sub('bitspersample="16"', 'bitspersample="8"'), ["'bitspersample' is '8'"]),
    "uncompressed": (sub('compression="XLI"', 'compression="Uncompressed"'),
                     ["field 'compression' is 'Uncompressed', expected XLI"]),
    "missing lead": (sub(' V6"', '"'), ["lacks lead(s) V6"]),
    "doubled lead": (v6_twice, ["field 'leadlabels' names lead(s) V6 more than once"]),
    "limb order": (sub('"I II III', '"II I III'), ["field 'leadlabels' starts 'II I III"]),
    "no duration": (sub('durationperchannel="10000"', 'durationperchannel=""'),
                    ["field 'durationperchannel' is ''"]),
    "hours long": (sub('durationperchannel="10000"', 'durationperchannel="3600000"'),
                   ["1800000 samples", "at most 131072"]),
    "billions of samples": (sub('="10000"', '="9000000000000"'),
                            [f"expected 1..{MAX_SAMPLES} samples"]),
    "longer than stored": (sub('durationperchannel="10000"', 'durationperchannel="10002"'),
                           ["XLI chunk 1 (lead I)", "decodes to 10000 bytes, expected 10002"]),
    "base64 cut mid-quad": (cut_base64(1001), ["not valid base64"]),
    "base64 cut at a quad": (cut_base64(1000), ["declares", "(truncated?)"]),
    "six chunks": (first_chunks(6), ["chunk 7 (lead V1)", "missing: the data ends after 6"]),
    "lzw before any string": (lambda t: with_payload(xli_raw(pack_codes([700, 1, 2])))(t),
                              ["chunk 1 (lead I)", "is corrupt"]),
    "not well-formed": (lambda t: t[: len(t) // 2], ["not well-formed XML"]),
}  # fmt: skip


def chunks(text: str) -> bytes:
    import base64

    return base64.b64decode(payload(text))


def xli_raw(stream: bytes, first: int = 0) -> bytes:
    return len(stream).to_bytes(4, "little") + b"\x01\x00" + first.to_bytes(2, "little") + stream


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_files_are_one_line_naming_the_field(case: str, tmp_path: Path) -> None:
    edit, needles = HOSTILE[case]
    refused(hostile(tmp_path, edit), *needles)


def test_lzw_bomb_stops_at_the_declared_size_in_bounded_memory(tmp_path: Path) -> None:
    """Codes 0, 256, ..., 1022 each one byte longer than the last, then code 1022 (768
    bytes) 100,000 times: 125 kB that expand to 77 MB (sierraecg's ``read_file`` would hold
    them as a list of Python ints, ~600 MB). Reading stops past the 10,000 bytes declared."""
    codes = [0, *range(256, LZW_MAX_CODE + 1), *[LZW_MAX_CODE] * 100_000]
    path = hostile(tmp_path, with_payload(xli_raw(pack_codes(codes))))
    tracemalloc.start()
    try:
        refused(path, "chunk 1 (lead I)", "more than the 10000 bytes declared")
        assert tracemalloc.get_traced_memory()[1] < 16 * 2**20
    finally:
        tracemalloc.stop()


def test_empty_garbage_and_deep_files_are_one_line(tmp_path: Path) -> None:
    for name, content in [("empty.xml", b""), ("noise.xml", bytes(range(256)) * 8)]:
        (tmp_path / name).write_bytes(content)
        refused(tmp_path / name, "not an ECG file of a known format")
    deep = tmp_path / "deep.xml"
    deep.write_text(f"<restingecgdata>{'<a>' * 200_000}{'</a>' * 200_000}</restingecgdata>")
    refused(deep, "too large or deep to read")


def test_without_sierraecg_the_extra_to_install_is_named(tmp_path: Path, monkeypatch) -> None:
    path = write_sierra(tmp_path / "ok.xml", synthetic())
    for name in [m for m in sys.modules if m == "sierraecg" or m.startswith("sierraecg.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sierraecg", None)
    refused(path, "needs sierraecg", "pip install 'mrm-edge[sierra]'")
