"""``python -m benchmarks.frontends``: one front-end's capacity at max speed, and its
latency per window at real time, in-process and through the session's real tritonserver."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from tests.triton_fixtures import Served

REPO = Path(__file__).resolve().parents[2]  # benchmarks/ runs from a checkout


def _probe(model: str, backend: str, *extra: str, seconds: float = 3) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.frontends", "--model", model,
         "--backend", backend, "--streams", "2", "--seconds", str(seconds), *extra],
        capture_output=True, text=True, timeout=180, cwd=REPO,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_realtime_latency_through_triton_and_in_process(triton_served: Served) -> None:
    tiny = str(triton_served.tiny)
    remote = _probe(tiny, f"{triton_served.target}/{triton_served.tiny_model}", "--realtime")
    local = _probe(tiny, "onnxruntime", "--realtime")
    for out in (remote, local):
        assert out["pace"] == "real time"
        # The first window's 10 s arrive at once, the next 3 s at real time: one window at
        # once and one per 1 s hop after it, per stream; every one classified.
        assert 2 * 3 <= out["windows"] <= 2 * 4 and out["classified"] == out["windows"]
        assert out["elapsed_s"] >= 2.5  # paced, not replayed at max speed
        assert 0 < out["latency_ms"]["p50"] <= out["latency_ms"]["p99"]
    assert remote["backend"].startswith("triton 127.0.0.1:")
    assert local["backend"].startswith("onnxruntime on cpu")


def test_max_speed_capacity_in_real_time_streams(triton_served: Served) -> None:
    # At max speed --seconds is the signal replayed: 15 s hold 6 windows a stream.
    out = _probe(str(triton_served.tiny), "onnxruntime", seconds=15)
    assert out["pace"] == "max speed" and out["classified"] == out["windows"] == 2 * 6
    assert out["realtime_streams"] == math.floor(out["windows_per_s"] * 1.0)
