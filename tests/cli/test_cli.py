"""The command line through real subprocesses: train/eval/predict/export."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).parent / "mrm-edge")


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("Error")]
    assert len(err) == 1, r.stderr
    for n in needles:
        assert n in err[0], err[0]


def test_eval_prints_the_paper_metrics_and_writes_json(tiny_model_dir, ptbxl_root, tmp_path):
    out = tmp_path / "eval.json"
    r = run("eval", "--model", str(tiny_model_dir), "--data", str(ptbxl_root), "--json", str(out))
    assert r.returncode == 0, r.stderr
    for word in ("macro AUC", "accuracy", "sample F1", "fused", "low", "high", "NORM"):
        assert word in r.stdout
    res = json.loads(out.read_text())
    assert res["folds"] == [10] and res["records"] == 64
    assert set(res["heads"]) == {"low", "high", "fused"}
    assert set(res["per_label"]) == {"CD", "HYP", "MI", "NORM", "STTC"}
    # The card's own test metrics were computed on the same fold: they must agree.
    card = json.loads((tiny_model_dir / "card.json").read_text())
    assert res["heads"]["fused"]["auc"] == pytest.approx(card["metrics"]["test"]["fused"]["auc"])


def test_predict_real_records_of_any_rate(tiny_model_dir, ptbxl_root, cpsc_root):
    hr = ptbxl_root / "records500" / "00000" / "00001_hr.hea"
    lr = ptbxl_root / "records100" / "00000" / "00001_lr"
    mat = cpsc_root / "A1988.mat"  # 54 s: five full windows, a 4 s tail left out
    r = run("predict", "--model", str(tiny_model_dir), "--json", str(hr), str(lr), str(mat))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    by_rec = {}
    for row in rows:
        by_rec.setdefault(row["recording"], []).append(row)
    assert len(by_rec["00001_hr"]) == len(by_rec["00001_lr"]) == 1
    assert len(by_rec["A1988"]) == 5
    # The same ECG at 500 Hz (resampled here) and at 100 Hz (PTB-XL's own file)
    # must tell the same story.
    p_hr, p_lr = by_rec["00001_hr"][0]["probabilities"], by_rec["00001_lr"][0]["probabilities"]
    assert max(abs(p_hr[k] - p_lr[k]) for k in p_hr) < 0.15


def test_predict_synthetic_default(tiny_model_dir):
    r = run("predict", "--model", str(tiny_model_dir), "--patients", "2", "--seconds", "20")
    assert r.returncode == 0, r.stderr
    assert "synthetic-0" in r.stdout and "synthetic-1" in r.stdout


def test_bad_inputs_are_one_line_errors(tiny_model_dir, tmp_path):
    assert_one_line_error(
        run("predict", "--model", str(tiny_model_dir), str(tmp_path / "x.hea")),
        "x.hea",
        "no such WFDB header",
    )
    bad = tmp_path / "model"
    bad.mkdir()
    assert_one_line_error(run("predict", "--model", str(bad)), "card.json")
    (tmp_path / "broken.mat").write_bytes(b"MATLAB 5.0 garbage")
    assert_one_line_error(
        run("predict", "--model", str(tiny_model_dir), str(tmp_path / "broken.mat")), "broken.mat"
    )
    assert_one_line_error(
        run("train", "--data", str(tmp_path), "--out", str(tmp_path / "o")), str(tmp_path)
    )


def test_export_without_tensorrt_writes_onnx_and_says_what_to_run(tiny_model_dir, tmp_path):
    # Standard TensorRT (not installable here) asked for: TensorRT-RTX would build instead.
    r = run(
        "export",
        "--model",
        str(tiny_model_dir),
        "--fp16",
        "--out",
        str(tmp_path),
        "--trt-flavour",
        "tensorrt",
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "model.fp16.onnx").is_file()
    assert (tmp_path / "model.onnx.json").is_file()
    assert "trtexec" in r.stderr and "--engine" in r.stderr


def test_monitor_synthetic_patients_writes_the_event_log(tiny_model_dir, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    assert run("export", "--model", str(model), "--no-engine").returncode == 0
    events = tmp_path / "events.jsonl"
    r = run(
        "monitor",
        "--model",
        str(model),
        "--streams",
        "3",
        "--speed",
        "max",
        "--duration",
        "4",
        "--no-ui",
        "--events",
        str(events),
    )
    assert r.returncode == 0, r.stderr
    assert "why:" in r.stderr and "windows" in r.stderr  # backend choice explained, summary
    lines = [json.loads(s) for s in events.read_text().splitlines()]
    # The start line states what a window costs, as the export counted it.
    cost = json.loads((model / "model.onnx.json").read_text())["cost"]["flops_per_window"]
    assert lines[0]["type"] == "start" and lines[0]["gflop_per_window"] == cost / 1e9
    assert f"model {lines[0]['model']}: {cost / 1e9:.2f} GFLOP per window" in r.stderr
    windows = [d for d in lines if d["type"] == "window"]
    assert {d["stream"] for d in windows} == {"synthetic-00", "synthetic-01", "synthetic-02"}
    for d in windows:
        assert {"stream", "start", "status", "probabilities", "latency_ms"} <= set(d)
        assert d["status"] in ("ok", "rejected")
        if d["status"] == "ok":
            assert set(d["probabilities"]) == {"CD", "HYP", "MI", "NORM", "STTC"}
    assert lines[-1]["type"] == "summary"


def test_monitor_bad_source_is_one_line(tiny_model_dir):
    assert_one_line_error(
        run("monitor", "--model", str(tiny_model_dir), "--source", "udp:x"), "udp:x"
    )


def test_monitor_flags_leads_at_the_rail(tiny_model_dir, tmp_path):
    events = tmp_path / "events.jsonl"
    # Synthetic limb and chest leads swing past ±0.3 mV: at that rail they read as clipped.
    r = run(
        "monitor",
        "--model",
        str(tiny_model_dir),
        "--streams",
        "1",
        "--speed",
        "max",
        "--duration",
        "6",  # wall clock from start, torch import included: 2 s gave 0 windows under load
        "--no-ui",
        "--rail-mv",
        "0.3",
        "--backend",
        "torch",
        "--events",
        str(events),
    )
    assert r.returncode == 0, r.stderr
    windows = [
        json.loads(s)
        for s in events.read_text().splitlines()
        if '"type":"window"' in s.replace(" ", "")
    ]
    assert windows and all(d["status"] == "rejected" and "rail" in d["reason"] for d in windows)


def test_predict_answers_every_file_classified_or_refused(tiny_model_dir, ptbxl_root, tmp_path):
    """Several files: each gets one answer, the readable ones classified, the others refused
    with their reason (one JSON line each, one stderr line each), and the exit status is 1."""
    good = ptbxl_root / "records100" / "00000" / "00001_lr.hea"
    (tmp_path / "notes.xml").write_text("<notes>not an ECG</notes>")
    r = run(
        "predict", "--model", str(tiny_model_dir), "--json",
        str(good), str(tmp_path / "notes.xml"), str(tmp_path / "gone.hea"),
    )  # fmt: skip
    assert r.returncode == 1 and "Traceback" not in r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["status"] for row in rows] == ["ok", "refused", "refused"]
    assert rows[0]["recording"] == "00001_lr"
    assert "notes.xml: not an ECG file of a known format" in rows[1]["reason"]
    assert "gone.hea: no such WFDB header" in rows[2]["reason"]
    refusals = [line for line in r.stderr.splitlines() if line.startswith("refused: ")]
    assert len(refusals) == 2
    assert r.stderr.splitlines()[-1] == "Error: 2 of 3 files refused (see above)"
