"""``mrm-edge bench --compare``: the two shipped models side by side on one CPU path, through
real subprocesses; every figure a measurement (tiny settings), checked for what it must be,
never for a speed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from mrm_edge.runtime.model import DeployedModel

from mrm_edge.artifacts import EDGE_MODEL_DIR, SHIPPED_MODEL_DIR
from tests.cli.bench.test_bench import EXE
from tests.cli.test_cli import assert_one_line_error

TINY = ["--rounds", "1", "--streams", "4", "--probe-seconds", "14", "--stream-seconds", "1",
        "--max-tries", "8", "--max-batch", "8"]  # fmt: skip


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, "bench", *args], capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_both_shipped_models_on_one_path(tmp_path: Path) -> None:
    out = tmp_path / "compare.json"
    r = bench("--model", str(SHIPPED_MODEL_DIR), "--compare", str(EDGE_MODEL_DIR),
              "--stream-variant", "onnxruntime:int8", *TINY, "--json", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(out.read_text())["comparison"]
    assert (doc["backend"], doc["precision"], doc["batch_size"]) == ("onnxruntime", "int8", 8)
    assert doc["peak_basis"] == "onnxruntime int8 GEMM peak (measured)" and doc["peak_gflops"] > 0
    paper, edge = doc["models"]
    for row, d in ((paper, SHIPPED_MODEL_DIR), (edge, EDGE_MODEL_DIR)):
        model = DeployedModel.load(d)
        assert row["model"] == model.card.name and row["gflop_per_window"] == model.gflop_per_window
        assert row["windows_per_s"] > 0
        assert row["gflops"] == pytest.approx(row["windows_per_s"] * row["gflop_per_window"])
        # A fraction of a peak, or none where the GEMM probe was slower than the model.
        assert row["fraction_of_peak"] is None or 0 < row["fraction_of_peak"] <= 1
        stream = row["streaming"]
        assert stream["backend"] == "onnxruntime" and stream["hop_s"] == 1.0
        assert row["streams"] == stream["capacity_streams"]
        if row["streams"] is not None:  # a count that held: no drops, p99 within the hop
            held = [t for t in stream["verification"] if t["held"]]
            assert held[-1]["streams"] == row["streams"] and held[-1]["dropped"] == 0
    text = " ".join(r.stdout.split())
    assert f"{edge['model']} vs {paper['model']}:" in text and "x windows/s" in text
    assert "GFLOP per window" in text


def test_a_model_without_the_paths_file_is_refused_before_any_timing(tmp_path: Path) -> None:
    edge = tmp_path / "edge"
    shutil.copytree(EDGE_MODEL_DIR, edge)
    (edge / "model.int8.onnx").unlink()
    (edge / "model.int8.onnx.json").unlink()
    r = bench("--compare", str(edge), "--stream-variant", "onnxruntime:int8", *TINY)
    assert_one_line_error(r, f"{edge}/model.int8.onnx: not exported", "onnxruntime int8")
    assert "round" not in r.stderr  # nothing was timed


def test_a_probe_shorter_than_a_window_is_one_line() -> None:
    r = bench("--compare", str(EDGE_MODEL_DIR), "--stream-variant", "onnxruntime:int8",
              "--probe-seconds", "5", "--rounds", "1")  # fmt: skip
    assert_one_line_error(r, "--probe-seconds 5 is shorter than one 10 s window")
    assert "round" not in r.stderr  # refused before any timing


def test_a_directory_that_is_no_model_is_one_line(tmp_path: Path) -> None:
    r = bench("--compare", str(tmp_path), "--stream-variant", "onnxruntime:int8", *TINY)
    assert_one_line_error(r, str(tmp_path))
