"""The soak (benchmarks/soak/), short enough for CI: real Monitor, real ONNX Runtime session
on the tiny trained model, real synthetic streams at max speed, real subprocesses for the
command. The long run (500 streams x 1 h) is the same code with other knobs."""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mrm_edge.runtime.app import open_monitor
from mrm_edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from mrm_edge.runtime.config import MonitorConfig
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.sources.synthetic import SyntheticSource

from benchmarks.soak.run import expected_windows_per_stream, run_soak
from benchmarks.soak.sink import RESERVOIR_PER_QUARTER, SoakSink
from mrm_edge.stats import Reservoir
from tests.fakes.backends import SlowBackend
from tests.fakes.sinks import StreamCountingSink

REPO = Path(__file__).resolve().parents[2]  # benchmarks/ runs from a checkout
CHECKS = {"accounting", "dropped", "errors", "rss growth", "latency"}
# The CI soak: 24 streams x 120 s at hop 5 s -> (120 - 10) / 5 + 1 = 23 windows per stream.
STREAMS, SECONDS, HOP = 24, 120.0, 5.0
PER_STREAM = 23


@pytest.fixture(scope="module")
def onnx_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's tiny trained model with its FP32 ONNX + sidecar (as the runtime tests'
    ``tiny_onnx_model``; torch is used here, in the fixture only)."""
    from mrm_edge.export.onnx_fp32 import export_fp32
    from mrm_edge.export.sidecar import write_sidecar

    d = tmp_path_factory.mktemp("soak-onnx") / "model"
    shutil.copytree(tiny_model_dir, d)
    export_fp32(d, d / "model.onnx")
    write_sidecar(d / "model.onnx", {"precision": "fp32"})
    return d


def windows_by_hand(seconds: float, fs: int, hop_s: float, rate: int = 100, window: int = 1000):
    """Independently of soak.py: samples sent, model-rate samples after the resampler's
    flush (ceil, as resample_poly), full windows every hop."""
    n_out = math.ceil(round(seconds * fs) * rate / fs)
    hop = round(hop_s * rate)
    return 0 if n_out < window else (n_out - window) // hop + 1


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )  # fmt: skip


# ====================================================================== expected windows


def test_ci_figures_by_hand():
    assert windows_by_hand(SECONDS, 100, HOP) == PER_STREAM
    # 20.03 s at 500 Hz: 10015 samples -> ceil(2003) at 100 Hz -> (2003 - 1000) // 100 + 1.
    assert windows_by_hand(20.03, 500, 1.0) == 11


@pytest.mark.parametrize(
    ("fs", "seconds", "hop_s"),
    [(100, 120.0, 2.0), (500, 20.03, 1.0), (500, 37.0, 3.0), (250, 15.0, 0.5)],
)
def test_expected_windows_match_a_plain_monitor_run(onnx_model, fs, seconds, hop_s):
    """The formula against what the real pipeline produces, resampler tail included."""
    model = DeployedModel.load(onnx_model)
    expected = expected_windows_per_stream(seconds, fs, 100, 1000, round(hop_s * 100))
    assert expected == windows_by_hand(seconds, fs, hop_s)
    sink = StreamCountingSink()
    src = SyntheticSource(3, fs=fs, seconds=seconds, speed=None, seed=1)
    be = OnnxRuntimeBackend(onnx_model / "model.onnx", providers=["CPUExecutionProvider"])
    config = MonitorConfig(hop_s=hop_s, overload="block", put_timeout_s=60)
    with open_monitor(model, src, config, be, sinks=[sink]) as mon:
        summary = mon.run()
    assert summary.errors == [] and sink.dropped_n == 0
    assert dict(sink.counts) == {sid: expected for sid in src.patients}
    assert dict(mon.accounting.windows_produced) == dict(sink.counts)


# ====================================================================== the pieces


def test_reservoir_stays_bounded_and_unbiased():
    r = Reservoir(1000, random.Random(0))
    for i in range(20_000):
        r.add(float(i))
    assert r.seen == 20_000 and r.max == 19_999.0
    p = r.percentiles()
    # A uniform sample of 0..19999: its median is near 10000 (well within 10 %).
    assert 9000 < p["p50"] < 11000 and p["p50"] <= p["p90"] <= p["p99"] <= p["max"]


def test_quarters_split_the_window_end_span():
    sink = SoakSink(seconds=130.0, window_s=10.0, expected_total=1)
    # Window ends run from 10 s to 130 s: quarters of 30 s each.
    assert [sink.quarter(t) for t in (10.0, 39.9, 40.0, 70.0, 100.0, 130.0)] == [0, 0, 1, 2, 3, 3]
    assert sink.quarter_bounds(0) == (10.0, 40.0) and sink.quarter_bounds(3) == (100.0, 130.0)


# ====================================================================== the soak


def test_run_soak_accounts_for_every_window(onnx_model):
    calls: list[tuple[int, int]] = []
    report = run_soak(
        onnx_model,
        streams=STREAMS,
        seconds=SECONDS,
        hop_s=HOP,
        backend="onnxruntime",
        max_batch=16,
        rss_interval_s=0.1,
        progress=lambda done, total: calls.append((done, total)),
    )
    w = report.windows
    expected = STREAMS * PER_STREAM
    assert w["expected_per_stream"] == PER_STREAM and w["expected"] == expected
    assert w["produced"] == expected  # what the engine's preprocessors cut
    assert w["lost"] == 0 and w["dropped"] == 0 and w["duplicated"] == 0
    assert w["classified"] + w["rejected"] == expected == w["accounted"]
    assert w["streams_mismatched"] == 0
    checks = {c["name"]: c for c in report.checks}
    assert set(checks) == CHECKS
    for name in ("accounting", "dropped", "errors"):
        assert checks[name]["passed"], checks[name]
    # RSS: sampled, positive, warm-up and end marks taken.
    rss = report.rss
    assert rss["source"] == "/proc/self/statm"
    assert rss["samples"] and all(v > 0 for _, _, v in rss["samples"])
    assert rss["warm_bytes"] > 0 and rss["end_bytes"] > 0 and rss["close_bytes"] > 0
    assert rss["end_at"] == "last window"  # every expected window came
    assert set(rss["quarter_marks_bytes"]) == {"q1", "q2", "q3"}
    assert rss["growth_pct"] == pytest.approx(
        (rss["end_bytes"] - rss["warm_bytes"]) / rss["warm_bytes"] * 100
    )
    # Latency by quarter: every quarter has classified windows and ordered percentiles,
    # and the quarters together hold every window.
    quarters = report.latency["quarters"]
    assert [q["quarter"] for q in quarters] == [1, 2, 3, 4]
    for q in quarters:
        assert q["classified"] > 0
        assert 0 <= q["p50"] <= q["p90"] <= q["p99"] <= q["max"]
        assert q["latency_sampled"] == min(q["classified"], RESERVOIR_PER_QUARTER)
    assert sum(q["classified"] + q["rejected"] + q["dropped"] for q in quarters) == expected
    assert report.latency["p99_ratio"] == pytest.approx(quarters[3]["p99"] / quarters[0]["p99"])
    # Progress: monotonic, ends at expected / expected.
    assert calls and calls[-1] == (expected, expected)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert report.run["wall_s"] > 0 and report.run["windows_per_s"] > 0
    # The report round-trips as JSON and renders a PASS/FAIL line per check.
    d = json.loads(report.to_json())
    assert d["passed"] == report.passed == all(c["passed"] for c in report.checks)
    lines = report.lines()
    for name in CHECKS:
        assert any(line.split("  ", 1)[-1].startswith(name + ":") for line in lines), name


def test_run_soak_fails_when_windows_are_shed(onnx_model):
    """A queue of one that refuses new windows (drop-newest) in front of a slow backend:
    windows are dropped — still accounted for, but the soak must FAIL."""
    inner = OnnxRuntimeBackend(onnx_model / "model.onnx", providers=["CPUExecutionProvider"])
    report = run_soak(
        onnx_model,
        streams=8,
        seconds=60.0,
        hop_s=5.0,
        backend=SlowBackend(inner, delay_s=0.02),
        max_batch=1,
        max_queue=1,
        overload="drop-newest",
    )
    checks = {c["name"]: c for c in report.checks}
    assert report.windows["dropped"] > 0
    assert report.windows["lost"] == 0 and checks["accounting"]["passed"]
    assert not checks["dropped"]["passed"] and not report.passed
    assert "overload (drop-newest)" in report.windows["dropped_by_cause"]
    assert "FAIL  dropped" in "\n".join(report.lines())
    assert report.lines()[-1] == "soak FAILED"


def test_run_soak_refuses_a_run_too_short_for_quarters(onnx_model):
    with pytest.raises(ValueError, match=r"gives 2 window.*need >= 4"):
        run_soak(onnx_model, streams=2, seconds=20.0, hop_s=10.0)


# ====================================================================== the command


def test_soak_command_passes_and_writes_the_json(onnx_model, tmp_path):
    out = tmp_path / "soak.json"
    # Generous memory and latency limits: this checks the command's accounting and exit
    # code on a shared CI machine, not the machine's timing.
    # 12 streams x 60 s at hop 5 s: (60 - 10) / 5 + 1 = 11 windows per stream.
    r = run_cli(
        "--model", str(onnx_model), "--streams", "12", "--seconds", "60",
        "--hop", "5", "--backend", "onnxruntime", "--max-batch", "16", "--json", str(out),
        "--max-rss-growth", "100", "--max-p99-ratio", "100", "--latency-floor", "60000",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    for name in CHECKS:
        assert f"PASS  {name}:" in r.stdout, r.stdout
    assert r.stdout.rstrip().endswith("soak PASSED")
    d = json.loads(out.read_text())
    assert d["passed"] is True
    assert set(d) >= {"model", "backend", "backend_reason", "source", "config", "windows"} | {
        "rss",
        "latency",
        "run",
        "checks",
    }
    assert d["config"]["streams"] == 12 and d["config"]["overload"] == "block"
    assert d["config"]["fs"] == 100  # the model's rate by default: nothing resamples
    w = d["windows"]
    assert w["expected"] == 12 * 11
    assert w["classified"] + w["rejected"] == w["expected"] and w["lost"] == w["dropped"] == 0
    assert all(isinstance(v, int) and v > 0 for _, _, v in d["rss"]["samples"])
    assert len(d["latency"]["quarters"]) == 4
    assert all(q["p99"] is not None for q in d["latency"]["quarters"])
    assert {c["name"] for c in d["checks"]} == CHECKS


def test_soak_command_exits_1_when_windows_are_dropped(onnx_model, tmp_path):
    out = tmp_path / "soak.json"
    r = run_cli(
        "--model", str(onnx_model), "--streams", "24", "--seconds", "60", "--hop", "2",
        "--backend", "onnxruntime", "--max-batch", "1", "--max-queue", "1",
        "--overload", "drop-newest", "--json", str(out),
    )  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert "FAIL  dropped:" in r.stdout and r.stdout.rstrip().endswith("soak FAILED")
    d = json.loads(out.read_text())  # the report is written even when it fails
    assert d["passed"] is False and d["windows"]["dropped"] > 0 and d["windows"]["lost"] == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--seconds", "15"], "need >= 4"),
        (["--hop", "0.001"], "not a whole number of samples"),
        (["--json", "/nonexistent-dir/soak.json"], "--json /nonexistent-dir/soak.json"),
    ],
)
def test_soak_command_bad_input_is_one_line(onnx_model, args, needle):
    r = run_cli("--model", str(onnx_model), "--streams", "2", *args, timeout=120)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("Error")]
    assert len(err) == 1 and needle in err[0], r.stderr
