"""`run_export` end to end: artifacts, sidecars, gates, and the engine step.

TensorRT cannot be installed here: the engine step runs against the test
doubles FakeTensorRT / FakeCudaRuntime (tests/fakes/tensorrt.py), which stand
in for the library and the GPU; everything before the TensorRT calls is real.
"""

import json
from pathlib import Path

import pytest
from mrm_edge.export.cost import count_flops
from mrm_edge.export.gates import GateFailed
from mrm_edge.export.pipeline import ExportOptions, run_export

from mrm_edge.artifacts import verify_artifact
from mrm_edge.card import ModelCard, export_record
from tests.fakes.tensorrt import FakeCudaRuntime, FakeTensorRT


@pytest.fixture(scope="module")
def exported(tiny_model_dir: Path, ptbxl_root: Path, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    opts = ExportOptions(
        model_dir=tiny_model_dir, out_dir=out, fp16=True, calib_data=ptbxl_root, engine=False
    )
    return run_export(opts, log=lambda s: None), out


def test_artifacts_and_sidecars(exported, tiny_model_dir: Path) -> None:
    summary, out = exported
    assert sorted(p.name for p in out.glob("model*.onnx")) == ["model.fp16.onnx", "model.onnx"]
    for precision in ("fp32", "fp16"):
        doc = verify_artifact(summary.artifacts[precision])
        assert doc["precision"] == precision
        assert doc["inputs"][0] == {"name": "ecg", "dtype": "float", "shape": ["batch", 12, 1000]}
        assert doc["outputs"][0]["name"] == "probabilities"
        assert doc["labels"] == ["CD", "HYP", "MI", "NORM", "STTC"]
        assert len(doc["source_card_sha256"]) == 64 and doc["tools"]["onnxruntime"]
        # The card's runtime fields as exported: an edit after export is refused by name.
        assert doc["exported_card"] == export_record(ModelCard.load(tiny_model_dir))
        # What a window costs, counted once on the FP32 graph, in every sidecar.
        assert doc["cost"]["flops_per_window"] == count_flops(out / "model.onnx").total > 0
    parity = json.loads((out / "model.onnx.json").read_text())["parity"]
    assert parity["max_abs_prob_delta"] <= 1e-5 and parity["windows"] == 64  # fold 10, labelled
    acc = json.loads((out / "model.fp16.onnx.json").read_text())["accuracy"]
    assert "auc_delta_pt" in acc and abs(acc["auc_delta_pt"]) <= 0.1
    assert set(acc["per_label_auc_delta_pt"]) == {"CD", "HYP", "MI", "NORM", "STTC"}


def test_a_corrupted_artifact_is_detected(exported, tmp_path: Path) -> None:
    _, out = exported
    copy = tmp_path / "model.onnx"
    copy.write_bytes((out / "model.onnx").read_bytes()[:-10])
    (tmp_path / "model.onnx.json").write_text((out / "model.onnx.json").read_text())
    with pytest.raises(ValueError, match="SHA-256 does not match"):
        verify_artifact(copy)


def test_fp16_gate_failure_is_a_clear_error(tiny_model_dir, ptbxl_root, tmp_path) -> None:
    opts = ExportOptions(
        model_dir=tiny_model_dir,
        out_dir=tmp_path,
        fp16=True,
        calib_data=ptbxl_root,
        engine=False,
        fp16_tolerance_pt=-1.0,
    )
    with pytest.raises(GateFailed, match=r"FP16 changes macro-AUC by .* pt on held-out data"):
        run_export(opts, log=lambda s: None)


def test_engine_built_then_reused_with_test_doubles(tiny_model_dir, tmp_path) -> None:
    """Standard TensorRT on a GPU: a double, because standard TensorRT cannot be installed
    here and builds only on a GPU. The TensorRT-RTX path runs for real in
    test_tensorrt_rtx.py."""
    opts = ExportOptions(model_dir=tiny_model_dir, out_dir=tmp_path, fp16=True, batch=(1, 8, 32))
    first = run_export(
        opts, log=lambda s: None, trt=FakeTensorRT("11.4.0"), cudart=FakeCudaRuntime()
    )
    engine = first.engines["fp16"]
    assert engine.name.startswith("model.fp16.") and engine.name.endswith(".engine")
    assert (tmp_path / (engine.name + ".json")).is_file()
    logs: list[str] = []
    second = run_export(opts, log=logs.append, trt=FakeTensorRT("11.4.0"), cudart=FakeCudaRuntime())
    assert second.engines["fp16"] == engine
    assert any("reused cached engine" in line for line in logs)


def test_missing_tensorrt_writes_onnx_and_prints_commands(tiny_model_dir, tmp_path) -> None:
    # Standard TensorRT is asked for; it is not installed here (and there is no GPU).
    logs: list[str] = []
    summary = run_export(
        ExportOptions(
            model_dir=tiny_model_dir, out_dir=tmp_path, fp16=True, trt_flavour="tensorrt"
        ),
        log=logs.append,
    )
    assert summary.engines == {} and (tmp_path / "model.fp16.onnx").is_file()
    msg = "\n".join(logs)
    assert "TensorRT engines not built here" in msg
    assert f"mrm-edge export --model {tiny_model_dir} --fp16" in msg and "--engine" in msg
    assert "trtexec --onnx=" in msg and "--minShapes=ecg:1x12x1000" in msg
    assert "TensorRT requested" in msg and "mrm-edge[tensorrt-rtx]" in msg


def test_int8_through_the_pipeline(tiny_model_dir, ptbxl_root, tmp_path) -> None:
    import onnx

    logs: list[str] = []
    opts = ExportOptions(
        model_dir=tiny_model_dir,
        out_dir=tmp_path,
        int8=True,
        calib_data=ptbxl_root,
        calib_windows=128,
        engine=False,
    )
    summary = run_export(opts, log=logs.append)
    doc = verify_artifact(summary.artifacts["int8"])
    acc = doc["accuracy"]
    assert acc["passed"] and acc["auc_drop_pt"] <= 0.5 and acc["n_heldout"] == 64
    comp = acc["result"]["calibration"]
    assert comp["n_windows"] == 128 and comp["folds"] == list(range(1, 9))
    ops = {n.op_type for n in onnx.load(str(summary.artifacts["int8"])).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert any("model.int8.onnx: macro-AUC" in line for line in logs)
    # The TensorRT file beside it: its own gate and sidecar, the same (cached) ranges.
    sym = verify_artifact(summary.artifacts["int8-sym"])
    assert summary.artifacts["int8-sym"].name == "model.int8-sym.onnx"
    assert sym["precision"] == doc["precision"] == "int8"
    assert sym["scheme"].startswith("int8 symmetric") and doc["scheme"].startswith("uint8")
    assert sym["accuracy"]["passed"] and sym["accuracy"]["auc_drop_pt"] <= 0.5
    assert sym["accuracy"]["activation_type"] == "int8"
    assert sym["accuracy"]["result"]["ranges_cached"] and not acc["result"]["ranges_cached"]
    # Re-export: the calibration ranges come from the cache, not a new calibration run.
    run_export(opts, log=lambda s: None)
    assert json.loads((tmp_path / "model.int8.onnx.json").read_text())["accuracy"]["result"][
        "ranges_cached"
    ]
