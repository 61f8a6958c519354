"""Bad records through every entry point: one clear line, never a traceback, never a
silent wrong answer (issue 6).

Every bad file is built in ``tmp_path`` from a REAL PTB-XL record (copied, then
corrupted, or rewritten with ``wfdb.wrsamp``) or a real CPSC ``.mat``, and goes through:

* the runtime API: ``read_recording``, the monitor's ``WfdbReplaySource`` (and, for bad
  signal, the whole ``run_monitor`` pipeline: the window is rejected with the reason);
* the training / evaluation readers (``read_ptbxl_record``, ``read_cpsc_mat``) and the
  INT8 calibration folder reader;
* the CLI in process (``CliRunner``), and a few cases through the real ``mrm-edge``
  executable, whose stderr must hold exactly one ``Error:`` line and no traceback.

Classification runs on the shipped model (ONNX Runtime CPU), so no training is needed.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mrm_edge.artifacts import default_model_dir
from mrm_edge.cli import main
from mrm_edge.data.dataset import LEADS
from mrm_edge.data.errors import DataError
from mrm_edge.predict import classify
from mrm_edge.records import Recording, read_recording

pytestmark = pytest.mark.realdata

EXE = str(Path(sys.executable).parent / "mrm-edge")
REC = "records100/00000/00001_lr"  # 10 s at 100 Hz, 12 leads, format 16, gain 1000


# ---------------------------------------------------------------- building bad files


@pytest.fixture(scope="module")
def model_dir() -> Path:
    d = default_model_dir()
    if not (d / "model.onnx").is_file():
        pytest.skip(f"shipped model not found at {d}")
    return d


@pytest.fixture(scope="module")
def original(ptbxl_root: Path) -> np.ndarray:
    """The real record as [12, 1000] mV (LEADS order)."""
    return read_recording(ptbxl_root / f"{REC}.hea").signal


def copy_record(ptbxl_root: Path, dest: Path) -> Path:
    """A writable copy of the real record in ``dest``; returns its header path."""
    dest.mkdir(parents=True, exist_ok=True)
    for ext in (".hea", ".dat"):
        shutil.copyfile(ptbxl_root / f"{REC}{ext}", dest / f"00001_lr{ext}")
    return dest / "00001_lr.hea"


def write_record(
    dest: Path, x: np.ndarray, names: list[str], fs: int = 100, name: str = "rec"
) -> Path:
    """``x`` [leads, t] mV written as a WFDB record (format 16, 1000 units/mV)."""
    import wfdb

    dest.mkdir(parents=True, exist_ok=True)
    n = len(names)
    with warnings.catch_warnings():  # wfdb's own pandas deprecation chatter
        warnings.simplefilter("ignore")
        wfdb.wrsamp(
            name, fs=fs, units=["mV"] * n, sig_name=names, p_signal=x.T.astype(np.float64),
            fmt=["16"] * n, adc_gain=[1000.0] * n, baseline=[0] * n, write_dir=str(dest),
        )  # fmt: skip
    return dest / f"{name}.hea"


def edit_header(hea: Path, fn: Callable[[list[str]], list[str]]) -> None:
    hea.write_text("\n".join(fn(hea.read_text().splitlines())) + "\n")


def _sub(old: str, new: str, line: int = 0) -> Callable[[list[str]], list[str]]:
    def fn(lines: list[str]) -> list[str]:
        lines[line] = lines[line].replace(old, new)
        return lines

    return fn


def _truncate_dat(keep: Callable[[int], int]) -> Callable[[Path], None]:
    def fn(hea: Path) -> None:
        dat = hea.with_suffix(".dat")
        data = dat.read_bytes()
        dat.write_bytes(data[: keep(len(data))])

    return fn


# Each case: how to damage the copied record, and what the one-line error must name.
HEADER_CASES: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "fs_zero": (lambda h: edit_header(h, _sub(" 100 1000", " 0 1000")), ["field 'fs'", "'0'"]),
    "fs_7hz": (lambda h: edit_header(h, _sub(" 100 1000", " 7 1000")), ["field 'fs'", "50..20000"]),
    "fs_1e6": (lambda h: edit_header(h, _sub(" 100 1000", " 1000000 1000")), ["field 'fs'"]),
    "fs_negative": (lambda h: edit_header(h, _sub(" 100 1000", " -100 1000")), ["field 'fs'"]),
    "fs_not_a_number": (lambda h: edit_header(h, _sub(" 100 1000", " abc 1000")), ["'abc'"]),
    "fs_missing": (lambda h: edit_header(h, _sub(" 12 100 1000", " 12")), ["'fs' is missing"]),
    "record_line_one_field": (
        lambda h: edit_header(h, _sub("00001_lr 12 100 1000", "00001_lr")),
        ["record line", "1 field"],
    ),
    "n_sig_not_a_number": (lambda h: edit_header(h, _sub(" 12 ", " twelve ")), ["field 'n_sig'"]),
    "sig_len_not_a_number": (lambda h: edit_header(h, _sub(" 1000", " 1e3")), ["field 'sig_len'"]),
    "missing_signal_lines": (
        lambda h: edit_header(h, lambda lines: lines[:8]),
        ["7 signal line(s)", "'n_sig'", "12"],
    ),
    "extra_signal_line": (
        lambda h: edit_header(h, lambda lines: [*lines, lines[-1]]),
        ["13 signal line(s)", "'n_sig'"],
    ),
    "header_only": (lambda h: edit_header(h, lambda lines: lines[:1]), ["0 signal line(s)"]),
    "empty_header": (lambda h: h.write_text(""), ["empty WFDB header"]),
    "binary_header": (lambda h: h.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00"), ["not a WFDB header"]),
    "bad_format_code": (
        lambda h: edit_header(h, _sub(".dat 16 ", ".dat 99 ", line=3)),
        ["field 'format (signal 3)'", "'99'"],
    ),
    "signal_line_one_field": (
        lambda h: edit_header(h, lambda lines: [*lines[:2], "00001_lr.dat", *lines[3:]]),
        ["signal 2 line", "1 field"],
    ),
    "gain_not_a_number": (
        lambda h: edit_header(h, _sub("1000.0(0)/mV", "x(0)/mV", line=1)),
        ["field 'gain (signal 1)'"],
    ),
    "gain_zero_uncalibrated": (
        lambda h: edit_header(h, _sub("1000.0(0)/mV", "0(0)/mV", line=5)),
        ["field 'gain (signal 5)'", "uncalibrated"],
    ),
    "units_volt": (lambda h: edit_header(h, _sub("/mV", "/V", line=2)), ["field 'units'", "II"]),
    "dat_missing": (lambda h: h.with_suffix(".dat").unlink(), ["'00001_lr.dat'", "missing"]),
    "dat_named_elsewhere": (
        lambda h: edit_header(h, lambda ls: [ls[0]] + [x.replace("1_lr.", "x.") for x in ls[1:]]),
        ["'0000x.dat'", "missing"],
    ),
    "dat_truncated_half": (
        _truncate_dat(lambda n: n // 2),
        ["00001_lr.dat", "12000 bytes", "'sig_len'", "24000"],
    ),
    "dat_truncated_odd": (_truncate_dat(lambda n: 1001), ["00001_lr.dat", "1001 bytes"]),
    "dat_empty": (_truncate_dat(lambda n: 0), ["00001_lr.dat", "0 bytes"]),
    "sig_len_beyond_dat": (
        lambda h: edit_header(h, _sub(" 100 1000", " 100 5000")),
        ["'sig_len'", "5000 samples"],
    ),
}


@pytest.fixture(params=sorted(HEADER_CASES))
def bad_header(request, ptbxl_root: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    damage, needles = HEADER_CASES[request.param]
    hea = copy_record(ptbxl_root, tmp_path / request.param)
    damage(hea)
    return hea, needles


def assert_one_line(msg: str, *needles: str) -> None:
    assert "\n" not in msg.strip(), msg
    assert "Traceback" not in msg
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"


def cli(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception  # a crash, not a one-line error: show it
    return r.exit_code, r.stdout, r.stderr


def assert_cli_error(code: int, stderr: str, *needles: str) -> None:
    assert code == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, stderr
    assert_one_line(errors[0], *needles)
    assert "Traceback" not in stderr


def run_exe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------- malformed WFDB files


def test_header_cases_through_read_recording_and_the_monitor_source(bad_header) -> None:
    from mrm_edge.runtime.sources.wfdb import WfdbReplaySource

    hea, needles = bad_header
    with pytest.raises(DataError) as info:
        read_recording(hea)
    assert_one_line(str(info.value), *needles)
    assert str(hea.parent) in str(info.value)  # the file is named, with its folder
    with pytest.raises(DataError) as info:
        WfdbReplaySource([hea], speed=None)
    assert_one_line(str(info.value), *needles)


def test_header_cases_through_the_training_reader(bad_header) -> None:
    from mrm_edge.data.ptbxl import read_ptbxl_record

    hea, needles = bad_header
    with pytest.raises(DataError) as info:
        read_ptbxl_record(hea.parent, "00001_lr", 100)
    assert_one_line(str(info.value), *[n for n in needles if n != "II"])


def test_header_cases_through_predict(bad_header, model_dir: Path) -> None:
    hea, needles = bad_header
    code, _, err = cli("predict", "--model", str(model_dir), str(hea))
    assert_cli_error(code, err, *needles)


def test_calibration_folder_skips_a_bad_record_and_says_why(
    ptbxl_root: Path, tmp_path: Path, model_dir: Path
) -> None:
    from mrm_edge.calibration.sources import load_calibration_pool

    from mrm_edge.card import ModelCard

    card = ModelCard.load(model_dir)
    copy_record(ptbxl_root, tmp_path / "good")
    bad = copy_record(ptbxl_root, tmp_path / "bad")
    _truncate_dat(lambda n: n // 2)(bad)
    pool = load_calibration_pool(tmp_path, card)
    assert len(pool.x) == 1 and set(pool.record_ids) == {"good/00001_lr"}
    assert_one_line(pool.composition["skipped"]["bad/00001_lr"], "12000 bytes", "sig_len")
    shutil.rmtree(tmp_path / "good")  # nothing usable left: one clear error
    with pytest.raises(DataError) as info:
        load_calibration_pool(tmp_path, card)
    assert_one_line(str(info.value), "no usable recordings", "12000 bytes")


def test_eval_on_a_tree_with_a_truncated_record_is_one_line(
    ptbxl_root: Path, tmp_path: Path, model_dir: Path
) -> None:
    """``mrm-edge eval --data``, a real subprocess: the bad file is named, no traceback."""
    tree = tmp_path / "ptbxl"
    tree.mkdir()
    shutil.copy(ptbxl_root / "scp_statements.csv", tree)
    rows = (ptbxl_root / "ptbxl_database.csv").read_text().splitlines()
    first = next(r for r in rows[1:] if r.startswith("1,"))  # ecg_id 1: records100/00000/00001
    (tree / "ptbxl_database.csv").write_text(f"{rows[0]}\n{first}\n")
    bad = copy_record(ptbxl_root, tree / "records100" / "00000")
    _truncate_dat(lambda n: n - 2)(bad)
    (row,) = csv.DictReader(io.StringIO(f"{rows[0]}\n{first}\n"))
    r = run_exe("eval", "--model", str(model_dir), "--data", str(tree), "--folds",
                row["strat_fold"])  # fmt: skip
    assert_cli_error(r.returncode, r.stderr, "00001_lr.dat", "23998 bytes", "sig_len")


# ---------------------------------------------------------------- lead count and order

PERM = [11, 3, 0, 7, 1, 2, 10, 4, 6, 5, 9, 8]


def _leads_case(case: str, x: np.ndarray) -> tuple[np.ndarray, list[str]]:
    upper = [lead.upper() for lead in LEADS]  # PTB-XL's spelling
    if case == "permuted":
        return x[PERM], [upper[i] for i in PERM]
    if case == "15_leads":  # PTB diagnostic layout: 12 + Frank leads
        return np.concatenate([x, x[:3] * 0.5]), [*upper, "vx", "vy", "vz"]
    if case == "8_leads":  # I, II, V1-V6: the derived limb leads not stored
        keep = [0, 1, 6, 7, 8, 9, 10, 11]
        return x[keep], [upper[i] for i in keep]
    if case == "7_leads":  # I, V1-V6: lead II missing too, so nothing can be derived
        keep = [0, 6, 7, 8, 9, 10, 11]
        return x[keep], [upper[i] for i in keep]
    if case == "unknown_name":
        return x, [*upper[:1], "ML2", *upper[2:]]
    raise AssertionError(case)


def test_eight_stored_leads_give_the_four_limb_leads_by_einthoven_and_goldberger(
    original: np.ndarray, tmp_path: Path
) -> None:
    """A record of I, II and V1-V6 (what carts store) reads as 12 leads: III, aVR, aVL and
    aVF derived from I and II equal PTB-XL's own stored ones within its 1 µV quantisation
    (PTB-XL's were derived from unrounded I and II), with a note saying so."""
    rec = read_recording(write_record(tmp_path, *_leads_case("8_leads", original)))
    np.testing.assert_allclose(rec.signal, original, atol=0.0021)
    assert any("derived from I and II" in note for note in rec.notes)


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("7_leads", ["lacks lead(s) II, III, aVR, aVL, aVF", "7 signal(s)"]),
        ("unknown_name", ["lacks lead(s) II", "unknown lead name(s) ['ML2']"]),
        ("lead_twice", ["names lead(s) I more than once"]),
    ],
)
def test_wrong_lead_sets_are_refused_everywhere(
    case: str, needles: list[str], original: np.ndarray, tmp_path: Path, model_dir: Path
) -> None:
    from mrm_edge.runtime.sources.wfdb import WfdbReplaySource

    from mrm_edge.data.ptbxl import read_ptbxl_record

    if case == "lead_twice":  # wrsamp refuses to write it: rename a 13th lead afterwards
        hea = write_record(tmp_path, np.concatenate([original, original[:1]]), [*LEADS, "X"])
        edit_header(hea, _sub(" X", " I", line=13))
    else:
        hea = write_record(tmp_path, *_leads_case(case, original))
    for call in (
        lambda: read_recording(hea),
        lambda: WfdbReplaySource([hea], speed=None),
        lambda: read_ptbxl_record(tmp_path, "rec", 100),
    ):
        with pytest.raises(DataError) as info:
            call()
        assert_one_line(str(info.value), "rec.hea", "field 'sig_name'", *needles)
    code, _, err = cli("predict", "--model", str(model_dir), str(hea))
    assert_cli_error(code, err, "rec.hea", *needles)


@pytest.mark.parametrize(
    ("case", "note"),
    [("permuted", "leads reordered by name"), ("15_leads", "extra lead(s) left out: vx, vy, vz")],
)
def test_leads_are_taken_by_name_and_the_user_is_told(
    case: str, note: str, original: np.ndarray, tmp_path: Path, model_dir: Path
) -> None:
    from mrm_edge.data.ptbxl import read_ptbxl_record

    hea = write_record(tmp_path, *_leads_case(case, original))
    rec = read_recording(hea)
    np.testing.assert_array_equal(rec.signal, original)  # same gain: bit-exact
    assert any(note in n for n in rec.notes), rec.notes
    np.testing.assert_array_equal(read_ptbxl_record(tmp_path, "rec", 100), original)
    code, out, err = cli("predict", "--model", str(model_dir), "--json", str(hea))
    assert code == 0, err
    assert f"note: {hea}: " in err and note in err
    row = json.loads(out.splitlines()[0])
    ref, _ = classify([Recording("ref", original, 100)], model_dir, backend="onnxruntime")
    got = row["probabilities"]
    assert max(abs(got[k] - ref[0].probabilities[k]) for k in got) < 1e-5


# ---------------------------------------------------------------- sampling rates


@pytest.mark.parametrize("fs", [250, 360, 500, 1000])
def test_other_rates_are_resampled_and_agree(
    fs: int, original: np.ndarray, tmp_path: Path, model_dir: Path
) -> None:
    from mrm_edge.data.signal import resample

    hea = write_record(tmp_path, resample(original, 100, fs), [*LEADS], fs=fs)
    rec = read_recording(hea)
    assert rec.sampling_rate == fs and rec.signal.shape == (12, 10 * fs)
    code, out, err = cli("predict", "--model", str(model_dir), "--json", str(hea))
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 1 and rows[0]["status"] == "ok"
    ref, _ = classify([Recording("ref", original, 100)], model_dir, backend="onnxruntime")
    got = rows[0]["probabilities"]
    assert max(abs(got[k] - ref[0].probabilities[k]) for k in got) < 0.05


def test_non_whole_rate_is_refused(original: np.ndarray, tmp_path: Path) -> None:
    hea = write_record(tmp_path, original, [*LEADS])
    edit_header(hea, _sub(" 100 1000", " 100.5 1000"))
    with pytest.raises(DataError) as info:
        read_recording(hea)
    assert_one_line(str(info.value), "rec.hea", "field 'fs'", "100.5", "whole number")


# ---------------------------------------------------------------- bad signal: rejected


def _nan(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[LEADS.index("V3"), 200:400] = np.nan  # written as WFDB's "missing sample"
    return x


def _flat(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[LEADS.index("aVL")] = 0.2  # a disconnected electrode: constant offset
    return x


def _held_at_rail(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[LEADS.index("V2"), 300:600] = 5.0  # amplifier overloaded for 3 s
    return x


def _clipped(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    for start in (100, 400, 700):  # three 0.5 s overloads: too short to be "flat"
        x[LEADS.index("V2"), start : start + 50] = 5.0
    return x


SIGNAL_CASES = {
    # case: (damage, CLI options, what the rejection reason must say)
    "nan_samples": (_nan, [], ["lead V3 NaN/Inf"]),
    "flat_lead": (_flat, [], ["lead aVL flat for 10.0 s"]),
    "held_at_rail": (_held_at_rail, [], ["lead V2 flat for 3.0 s"]),
    "clipped_at_rail": (_clipped, ["--rail-mv", "4.9"], ["lead V2 at the ±4.9 mV rail"]),
}


@pytest.mark.parametrize("case", sorted(SIGNAL_CASES))
def test_bad_signal_is_rejected_by_predict_not_classified(
    case: str, original: np.ndarray, tmp_path: Path, model_dir: Path
) -> None:
    damage, opts, needles = SIGNAL_CASES[case]
    hea = write_record(tmp_path, damage(original), [*LEADS])
    code, out, err = cli("predict", "--model", str(model_dir), "--json", *opts, str(hea))
    assert code == 0, err  # a rejected window is a result, not an error (predict.py)
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["status"] == "rejected" and row["probabilities"] == {} and row["positive"] == []
    assert_one_line(row["reason"], *needles)
    assert "1 window(s) rejected" in err
    code, out, _ = cli("predict", "--model", str(model_dir), *opts, str(hea))  # the table
    assert code == 0 and "REJECTED" in out


@pytest.mark.parametrize("case", sorted(SIGNAL_CASES))
def test_bad_signal_is_rejected_by_the_monitor(
    case: str, original: np.ndarray, tmp_path: Path, model_dir: Path
) -> None:
    from mrm_edge.runtime.app import run_monitor
    from mrm_edge.runtime.config import MonitorConfig
    from mrm_edge.runtime.sources.wfdb import WfdbReplaySource
    from mrm_edge.runtime.stream.quality import QualityConfig
    from rich.console import Console

    damage, opts, needles = SIGNAL_CASES[case]
    hea = write_record(tmp_path, damage(original), [*LEADS])
    events = tmp_path / "events.jsonl"
    rail = float(opts[1]) if opts else None
    summary = run_monitor(
        model_dir,
        WfdbReplaySource([hea], speed=None, min_seconds=10.0),
        MonitorConfig(hop_s=10.0, quality=QualityConfig(saturation_mv=rail)),
        backend="onnxruntime",
        events_path=events,
        ui=False,
        console=Console(file=io.StringIO()),
    )
    assert summary.ok, summary.errors
    lines = [json.loads(s) for s in events.read_text().splitlines()]
    windows = [d for d in lines if d["type"] == "window"]
    assert windows and all(d["status"] == "rejected" for d in windows), windows
    for d in windows:
        assert_one_line(d["reason"], *needles)


def test_inf_and_nan_in_a_cpsc_mat_are_rejected_windows(
    cpsc_root: Path, tmp_path: Path, model_dir: Path
) -> None:
    """A .mat can hold ±Inf too; the runtime treats it like WFDB's NaN (window rejected,
    lead named), while the training reader refuses the file."""
    from scipy.io import loadmat, savemat

    from mrm_edge.data.cpsc2018 import read_cpsc_mat

    mat = loadmat(cpsc_root / "A1980.mat")
    data = mat["ECG"]["data"][0, 0].astype(np.float64)
    data[LEADS.index("II"), 1000:1010] = np.inf
    data[LEADS.index("V5"), 1000:1010] = np.nan
    savemat(tmp_path / "inf.mat", {"ECG": {"data": data, "sex": "Male", "age": 50}})
    with pytest.raises(DataError) as info:
        read_cpsc_mat(tmp_path / "inf.mat")
    assert_one_line(str(info.value), "inf.mat", "ECG.data", "20 non-finite")
    code, out, err = cli("predict", "--model", str(model_dir), "--json", str(tmp_path / "inf.mat"))
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows[0]["status"] == "rejected"  # samples 1000..1010 at 500 Hz: the first window
    assert "lead II NaN/Inf" in rows[0]["reason"] and "lead V5 NaN/Inf" in rows[0]["reason"]


# ---------------------------------------------------------------- too short


def test_too_short_record_is_refused_by_predict_and_monitor(
    original: np.ndarray, tmp_path: Path, model_dir: Path
) -> None:
    from mrm_edge.runtime.sources.wfdb import WfdbReplaySource

    hea = write_record(tmp_path, original[:, :200], [*LEADS])
    need = ["rec.hea", "record is 2.0 s, the model needs at least 10.0 s"]
    with pytest.raises(DataError) as info:
        classify([read_recording(hea)], model_dir, backend="onnxruntime")
    assert_one_line(str(info.value), *need)
    with pytest.raises(DataError) as info:
        WfdbReplaySource([hea], speed=None, min_seconds=10.0)
    assert_one_line(str(info.value), *need)
    code, _, err = cli("predict", "--model", str(model_dir), str(hea))
    assert_cli_error(code, err, *need)
    code, _, err = cli("monitor", "--model", str(model_dir), "--source", f"wfdb:{hea}",
                       "--speed", "max", "--no-ui")  # fmt: skip
    assert_cli_error(code, err, *need)


# ---------------------------------------------------------------- CPSC .mat files


def _mat_no_ecg(path: Path, data: np.ndarray) -> None:
    from scipy.io import savemat

    savemat(path, {"val": data})


def _mat_ecg_without_data(path: Path, data: np.ndarray) -> None:
    from scipy.io import savemat

    savemat(path, {"ECG": {"sex": "Male", "age": 50}})


def _mat_8_leads(path: Path, data: np.ndarray) -> None:
    from scipy.io import savemat

    savemat(path, {"ECG": {"data": data[:8]}})


def _mat_1d(path: Path, data: np.ndarray) -> None:
    from scipy.io import savemat

    savemat(path, {"ECG": {"data": data.ravel()}})


def _mat_text(path: Path, data: np.ndarray) -> None:
    path.write_text("Recording,First_label\nA0001,1\n")


def _mat_truncated(path: Path, data: np.ndarray, src: Path | None = None) -> None:
    path.write_bytes(path.read_bytes()[:3000])


MAT_CASES = {
    "no_ecg_struct": (_mat_no_ecg, ["field 'ECG'", "is missing", "a struct with field 'data'"]),
    "ecg_without_data": (_mat_ecg_without_data, ["field 'ECG.data'", "is missing"]),
    "data_8_leads": (_mat_8_leads, ["field 'ECG.data'", "has 8 leads", "expected 12"]),
    "data_1d": (_mat_1d, ["field 'ECG.data'", "has shape"]),
    "not_a_mat": (_mat_text, ["not a readable MATLAB file"]),
    "truncated_mat": (_mat_truncated, ["not a readable MATLAB file"]),
}


@pytest.mark.parametrize("case", sorted(MAT_CASES))
def test_bad_mat_files_are_one_line_everywhere(
    case: str, cpsc_root: Path, tmp_path: Path, model_dir: Path
) -> None:
    from mrm_edge.runtime.sources.wfdb import WfdbReplaySource
    from scipy.io import loadmat

    from mrm_edge.data.cpsc2018 import read_cpsc_mat

    make, needles = MAT_CASES[case]
    path = tmp_path / f"{case}.mat"
    shutil.copyfile(cpsc_root / "A1980.mat", path)
    make(path, loadmat(cpsc_root / "A1980.mat")["ECG"]["data"][0, 0])
    for call in (
        lambda: read_recording(path),
        lambda: read_cpsc_mat(path),
        lambda: WfdbReplaySource([path], speed=None),
    ):
        with pytest.raises(DataError) as info:
            call()
        assert_one_line(str(info.value), f"{case}.mat", *needles)
    code, _, err = cli("predict", "--model", str(model_dir), str(path))
    assert_cli_error(code, err, f"{case}.mat", *needles)


# ---------------------------------------------------------------- real executable


@pytest.mark.parametrize(
    ("case", "command"),
    [("dat_truncated_half", "predict"), ("fs_7hz", "predict"), ("fs_7hz", "monitor")],
)
def test_real_executable_prints_one_error_line(
    case: str, command: str, ptbxl_root: Path, tmp_path: Path, model_dir: Path
) -> None:
    damage, needles = HEADER_CASES[case]
    hea = copy_record(ptbxl_root, tmp_path)
    damage(hea)
    if command == "predict":
        r = run_exe("predict", "--model", str(model_dir), str(hea))
    else:
        r = run_exe("monitor", "--model", str(model_dir), "--source", f"wfdb:{hea}",
                    "--speed", "max", "--no-ui")  # fmt: skip
    assert_cli_error(r.returncode, r.stderr, str(hea.parent), *needles)
    assert r.stdout == ""


def test_real_executable_bad_mat_and_short_record(
    cpsc_root: Path, original: np.ndarray, tmp_path: Path, model_dir: Path
) -> None:
    from scipy.io import savemat

    savemat(tmp_path / "noecg.mat", {"val": np.zeros((12, 5000))})
    r = run_exe("predict", "--model", str(model_dir), str(tmp_path / "noecg.mat"))
    assert_cli_error(r.returncode, r.stderr, "noecg.mat", "field 'ECG'")
    hea = write_record(tmp_path, original[:, :200], [*LEADS])
    r = run_exe("monitor", "--model", str(model_dir), "--source", f"wfdb:{hea}",
                "--speed", "max", "--no-ui")  # fmt: skip
    assert_cli_error(r.returncode, r.stderr, "record is 2.0 s", "10.0 s")
