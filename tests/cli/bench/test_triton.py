"""``mrm-edge bench --backend triton:...`` against the session's real tritonserver: the
served model and the same variant in-process, throughput and latency, network hop included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.triton_fixtures import Served

MRM_EDGE = str(Path(sys.executable).parent / "mrm-edge")


def test_bench_reports_triton_against_in_process(triton_served: Served, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    target = f"{triton_served.target}/{triton_served.tiny_model}"
    r = subprocess.run(
        [MRM_EDGE, "bench", "--model", str(triton_served.tiny), "--backend", target,
         "--batch-sizes", "1,4", "--warmup", "1", "--repeats", "3", "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("batch") and "added p99 ms" in lines[0]
    assert [int(line.split()[0]) for line in lines[1:]] == [1, 4]
    doc = json.loads(out.read_text())
    pairs = doc["triton"]
    assert [p["triton"]["batch_size"] for p in pairs] == [1, 4]
    for p in pairs:
        tr, lo = p["triton"], p["local"]
        assert tr["backend"] == "triton" and tr["device"].startswith("triton 127.0.0.1:")
        assert lo["backend"] == "onnxruntime" and lo["repeats"] == tr["repeats"] == 3
        assert tr["throughput"] > 0 and lo["throughput"] > 0
        assert abs(p["throughput_ratio"] - tr["throughput"] / lo["throughput"]) < 1e-9
        assert p["added_p99_ms"] == tr["latency_ms"]["p99"] - lo["latency_ms"]["p99"]
    assert {r["backend"] for r in doc["results"]} == {"triton", "onnxruntime"}


def test_bench_against_a_wrong_model_is_refused(triton_served: Served) -> None:
    wrong = f"{triton_served.target}/{triton_served.tiny_model}"
    r = subprocess.run(
        [MRM_EDGE, "bench", "--model", str(triton_served.shipped), "--backend", wrong],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 1 and "not the model of" in r.stderr
    assert "Traceback" not in r.stderr
