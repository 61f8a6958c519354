"""`mrm-edge bench`: runs real backends and the real runtime, every figure a measurement."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXE = str(Path(sys.executable).parent / "mrm-edge")

# Tiny settings: seconds on a 2-core CPU, still real measurements. Tries enough for the
# step-down to reach a count that holds when other work shares the cores (with three, a busy
# machine left the capacity unverified now and then).
TINY_STREAMING = [
    "--streams",
    "4",
    "--probe-seconds",
    "14",
    "--stream-seconds",
    "1",
    "--max-tries",
    "8",
    "--max-batch",
    "8",
]


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


@pytest.fixture(scope="module")
def bench_run(exported_model: Path, ptbxl_root: Path, tmp_path_factory) -> tuple[dict, Path, str]:
    out = tmp_path_factory.mktemp("bench-out")
    r = subprocess.run(
        [
            EXE,
            "bench",
            "--model",
            str(exported_model),
            "--backends",
            "torch,onnxruntime,onnxruntime-cuda,tensorrt",
            "--precisions",
            "fp32",
            "--batch-sizes",
            "1,4",
            "--warmup",
            "1",
            "--repeats",
            "3",
            "--data",
            str(ptbxl_root),
            "--json",
            str(out / "bench.json"),
            "--plot",
            str(out / "bench.png"),
            *TINY_STREAMING,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return json.loads((out / "bench.json").read_text()), out / "bench.png", r.stdout + r.stderr


def test_bench_json_schema_and_measurements(bench_run) -> None:
    doc, _, _ = bench_run
    assert {"machine", "results", "accuracy", "streaming", "skipped"} <= set(doc)
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["versions"]["onnxruntime"]
    rows = doc["results"]
    assert {(x["backend"], x["batch_size"]) for x in rows} == {
        ("torch", 1),
        ("torch", 4),
        ("onnxruntime", 1),
        ("onnxruntime", 4),
    }
    for x in rows:
        assert {"backend", "precision", "device", "batch_size", "throughput"} <= set(x)
        assert x["device"] == "cpu"
        lat = x["latency_ms"]
        assert x["throughput"] > 0 and 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
        # throughput is batch / median latency: consistent with p50
        assert x["throughput"] == pytest.approx(1e3 * x["batch_size"] / lat["p50"], rel=1e-6)
        assert x["speedup_vs_torch_fp32"] > 0
    assert all(x["speedup_vs_torch_fp32"] == 1.0 for x in rows if x["backend"] == "torch")


def test_bench_reports_gpu_backends_as_skipped_with_the_reason(bench_run) -> None:
    doc, _, out = bench_run
    skipped = {s["backend"]: s["reason"] for s in doc["skipped"]}
    assert set(skipped) == {"onnxruntime-cuda", "tensorrt"}
    assert all(reason for reason in skipped.values())
    assert "skipped tensorrt:" in out


def test_bench_accuracy_on_labelled_held_out_windows(bench_run) -> None:
    acc = bench_run[0]["accuracy"]
    assert acc["windows"] > 0 and "held-out" in acc["source"]
    assert 0.5 < acc["reference_macro_auc"] <= 1.0
    by = {(v["backend"], v["precision"]): v for v in acc["variants"]}
    assert set(by) == {("torch", "fp32"), ("onnxruntime", "fp32")}
    assert by["torch", "fp32"]["max_abs_dp"] == 0.0
    ort = by["onnxruntime", "fp32"]
    assert 0 < ort["max_abs_dp"] < 1e-4  # a measured difference, tiny for FP32 ONNX
    assert ort["label_agreement"] >= 0.98
    assert ort["macro_auc"] == pytest.approx(acc["reference_macro_auc"], abs=1e-3)


def test_bench_streaming_section_is_a_verified_measurement(bench_run) -> None:
    s = bench_run[0]["streaming"]
    assert s["backend"] == "onnxruntime" or s["backend"] == "torch"
    assert s["capacity_streams"] is not None, s["verification"]  # why each count missed
    assert s["capacity_streams"] >= 1 and s["estimate_streams"] >= s["capacity_streams"]
    assert s["end_to_end_wps"] > 0 and s["model_only_wps"] > 0
    assert s["streaming_efficiency"] == pytest.approx(s["end_to_end_wps"] / s["model_only_wps"])
    assert s["probe"]["classified"] > 0 and s["probe"]["dropped"] == 0
    held = [v for v in s["verification"] if v["held"]]
    assert len(held) == 1 and held[0]["streams"] == s["capacity_streams"]
    v = held[0]
    assert v["classified"] > 0 and v["dropped"] == 0 and not v["errors"]
    assert 0 < v["latency_ms"]["p50"] <= v["latency_ms"]["p99"] <= s["latency_budget_ms"]


def test_bench_plot_is_a_png(bench_run) -> None:
    png = bench_run[1]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_bench_accuracy_without_data_reports_auc_null(exported_model: Path) -> None:
    from mrm_edge.card import ModelCard
    from mrm_edge.cli.bench.accuracy import accuracy
    from mrm_edge.data.synthetic import make_windows

    x = make_windows(ModelCard.load(exported_model), 4)
    acc = accuracy(exported_model, [("onnxruntime", "fp32")], x, None, "4 synthetic")
    assert acc["reference_macro_auc"] is None and "null" in acc["note"]
    (v,) = acc["variants"]
    assert v["macro_auc"] is None and np.isfinite(v["max_abs_dp"]) and v["label_agreement"] > 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--backends", "torch,cuda-magic"], "unknown backend(s) 'cuda-magic'"),
        (["--precisions", "fp8"], "unknown precision(s) 'fp8'"),
    ],
)
def test_bench_bad_lists_are_one_line_errors(exported_model: Path, args, expected) -> None:
    r = subprocess.run(
        [EXE, "bench", "--model", str(exported_model), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert expected in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1, r.stderr


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


def test_gpu_backends_say_why_they_are_skipped_here() -> None:
    import importlib.util

    from mrm_edge.cli.bench.variants import gpu_unavailable

    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA device is present: torch-cuda runs instead of being skipped")
    assert "CUDA" in gpu_unavailable("torch-cuda") or "torch" in gpu_unavailable("torch-cuda")
    # ONNX Runtime CUDA and TensorRT timing is not implemented: always a reason
    assert gpu_unavailable("onnxruntime-cuda") and gpu_unavailable("tensorrt")
