"""`mrm-edge bench` (model level): runs real backends, every figure a measurement."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).parent / "mrm-edge")


@pytest.fixture(scope="module")
def exported_model(tiny_model_dir: Path, tmp_path_factory) -> Path:
    import shutil

    model = tmp_path_factory.mktemp("bench") / "model"
    shutil.copytree(tiny_model_dir, model)
    r = subprocess.run(
        [EXE, "export", "--model", str(model), "--no-engine"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return model


def test_bench_json_schema_and_measurements(exported_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [
            EXE,
            "bench",
            "--model",
            str(exported_model),
            "--precisions",
            "fp32",
            "--batch-sizes",
            "1,4",
            "--warmup",
            "1",
            "--repeats",
            "3",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["versions"]["onnxruntime"]
    rows = doc["results"]
    assert {(x["backend"], x["batch_size"]) for x in rows} == {
        ("torch", 1),
        ("torch", 4),
        ("onnxruntime", 1),
        ("onnxruntime", 4),
    }
    for x in rows:
        lat = x["latency_ms"]
        assert x["throughput"] > 0 and 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
        # throughput is batch / median latency: consistent with p50
        assert x["throughput"] == pytest.approx(1e3 * x["batch_size"] / lat["p50"], rel=1e-6)
        assert x["speedup_vs_torch_fp32"] > 0
    assert all(x["speedup_vs_torch_fp32"] == 1.0 for x in rows if x["backend"] == "torch")


def test_bench_refuses_a_variant_that_was_not_exported(exported_model: Path) -> None:
    r = subprocess.run(
        [
            EXE,
            "bench",
            "--model",
            str(exported_model),
            "--precisions",
            "int8",
            "--backends",
            "onnxruntime",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "model.int8.onnx: not exported" in r.stderr
