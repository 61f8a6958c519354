"""The TensorRT half against the REAL library: NVIDIA TensorRT for RTX (``tensorrt_rtx``).

TensorRT-RTX parses and builds without a GPU, so everything up to the engine bytes runs here
for real: the shipped ONNX variants parse and build, bad graphs are refused naming the node,
the engine cache hits, misses and rebuilds on real engines, and the export pipeline writes an
engine per precision. Deserialising and executing an engine needs a GPU (Ampere or newer
RTX-class): those tests live in tests/runtime/ and skip with the reason here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.export.tensorrt.builder import build_engine, build_or_load
from mrm_edge.export.tensorrt.errors import BuildError
from mrm_edge.export.tensorrt.plan import BuildOptions
from mrm_edge.runtime.backends.tensorrt.capability import RTX, probe_tensorrt
from mrm_edge.runtime.backends.tensorrt.engine_file import check_engine, read_engine_sidecar

from mrm_edge.artifacts import EDGE_MODEL_DIR, SHIPPED_MODEL_DIR

trt = pytest.importorskip(
    "tensorrt_rtx", reason="TensorRT-RTX is not installed (pip install 'mrm-edge[tensorrt-rtx]')"
)

SHIPPED = SHIPPED_MODEL_DIR
SMALL = (1, 8, 32)  # a narrow profile builds fastest


@pytest.fixture(scope="module")
def info():
    return probe_tensorrt(trt)


def test_probe_describes_the_rtx_flavour(info) -> None:
    assert info.available and info.flavour == RTX and info.builds_without_gpu
    assert not info.has_precision_flags
    assert {"8.0", "8.6", "8.9", "12.0"} <= set(info.compute_targets)
    assert "9.0" not in info.compute_targets  # no Hopper: the lent H100/H200 cannot run these
    assert info.summary().startswith(f"TensorRT-RTX {trt.__version__} (strongly typed only")


@pytest.mark.parametrize("model_dir", [SHIPPED, EDGE_MODEL_DIR], ids=["paper", "edge"])
@pytest.mark.parametrize(
    ("file", "precision"),
    [("model.onnx", "fp32"), ("model.fp16.onnx", "fp16"), ("model.int8-sym.onnx", "int8")],
)
def test_every_shipped_variant_parses_and_builds(
    model_dir: Path, file: str, precision: str
) -> None:
    result = build_engine(model_dir / file, BuildOptions(precision=precision, profile=SMALL), trt)
    assert result.flavour == RTX and result.trt_version == trt.__version__
    assert result.compute_targets == ("8.0", "8.6", "8.9", "12.0")
    assert result.input_name == "ecg" and result.input_dims == (12, 1000)
    # Both shipped networks are whole MRM-Nets (the edge model is narrower, not shallower).
    assert result.layers > 100 and len(result.engine) > 100_000


def _graph_with(tmp_path: Path, op: str, domain: str = "") -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("ecg", TensorProto.FLOAT, ["batch", 12, 1000])
    y = helper.make_tensor_value_info("p", TensorProto.FLOAT, ["batch", 12, 1000])
    node = helper.make_node(op, ["ecg"], ["p"], name="strange_node", domain=domain)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=opsets)
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    return path


def test_an_unsupported_node_is_named_in_one_line(tmp_path: Path) -> None:
    path = _graph_with(tmp_path, "NoSuchOp", domain="com.example")
    with pytest.raises(BuildError) as e:
        build_engine(path, BuildOptions(precision="fp32", profile=SMALL), trt)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "ONNX parser failed" in msg
    assert "strange_node" in msg and "NoSuchOp" in msg


def test_a_truncated_onnx_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "model.fp16.onnx"
    path.write_bytes((SHIPPED / "model.fp16.onnx").read_bytes()[:50_000])
    with pytest.raises(BuildError) as e:
        build_engine(path, BuildOptions(precision="fp16", profile=SMALL), trt)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_a_workspace_too_small_says_what_to_change() -> None:
    opts = BuildOptions(precision="fp32", profile=(1, 32, 256), workspace_bytes=128 << 20)
    with pytest.raises(BuildError) as e:
        build_engine(SHIPPED / "model.onnx", opts, trt)
    msg = str(e.value)
    assert "OutOfMemory" in msg and "workspace limit is 128 MiB at max batch 256" in msg
    assert "--workspace" in msg and "\n" not in msg


def test_compute_targets_reach_the_builder_and_unknown_ones_are_refused() -> None:
    opts = BuildOptions(precision="fp16", profile=SMALL, compute_targets="+7.5")
    result = build_engine(SHIPPED / "model.fp16.onnx", opts, trt)
    assert result.compute_targets == ("7.5", "8.0", "8.6", "8.9", "12.0")
    with pytest.raises(BuildError, match=r"cannot target compute 9\.0; .*standard TensorRT"):
        build_engine(
            SHIPPED / "model.fp16.onnx", BuildOptions("fp16", SMALL, compute_targets="9.0"), trt
        )


def test_engine_cache_hits_misses_and_rebuilds_on_real_engines(tmp_path: Path, info) -> None:
    onnx_path = SHIPPED / "model.fp16.onnx"
    opts = BuildOptions(precision="fp16", profile=SMALL)
    path, built = build_or_load(onnx_path, tmp_path, opts, None, info, trt)
    assert built and path.is_file()
    side = read_engine_sidecar(path)
    assert side["key"]["flavour"] == RTX and side["key"]["gpu_name"] is None
    assert side["key"]["compute_targets"] == ["8.0", "8.6", "8.9", "12.0"]
    assert side["build"]["layers"] > 100 and side["engine_bytes"] == path.stat().st_size
    assert side["build"]["timing_cache"] is None  # TensorRT-RTX has none

    again, built = build_or_load(onnx_path, tmp_path, opts, None, info, trt)
    assert again == path and not built  # hit
    narrowed = BuildOptions(precision="fp16", profile=SMALL, compute_targets="8.9")
    other, built = build_or_load(onnx_path, tmp_path, narrowed, None, info, trt)
    assert built and other != path  # another key: a second engine beside the first

    path.write_bytes(path.read_bytes()[:-100])  # truncated on disk
    rebuilt, built = build_or_load(onnx_path, tmp_path, opts, None, info, trt)
    assert rebuilt == path and built
    # The sidecar vouches for the new bytes (builds are not bit-identical run to run).
    from mrm_edge.fileio import sha256_file

    assert read_engine_sidecar(path)["engine_sha256"] == sha256_file(path)


def test_a_real_rtx_engine_fits_target_gpus_only(tmp_path: Path, info) -> None:
    opts = BuildOptions(precision="fp16", profile=SMALL)
    path, _ = build_or_load(SHIPPED / "model.fp16.onnx", tmp_path, opts, None, info, trt)
    version = str(info.version)
    assert check_engine(path, "NVIDIA GeForce RTX 4090", "8.9", None, version)
    from mrm_edge.runtime.backends.tensorrt.engine_file import EngineRefused

    with pytest.raises(EngineRefused, match=r"for compute 8\.0, 8\.6, 8\.9, 12\.0, but .*9\.0"):
        check_engine(path, "NVIDIA H200", "9.0", None, version)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(EngineRefused, match="SHA-256 differs"):
        check_engine(path, "NVIDIA GeForce RTX 4090", "8.9", None, version)


def test_export_builds_an_engine_for_every_precision(tiny_model_dir, ptbxl_root, tmp_path) -> None:
    """The issue's command, on the tiny model: `export --fp16 --int8 --calib-data --engine`."""
    cmd = [sys.executable, "-m", "mrm_edge.cli", "export", "--model", str(tiny_model_dir)]
    cmd += ["--fp16", "--int8", "--calib-data", str(ptbxl_root), "--calib-windows", "128"]
    cmd += ["--batch", "1,8,32", "--engine", "--out", str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    engines = dict(
        line.split("\t") for line in run.stdout.splitlines() if line.startswith("engine-")
    )
    assert set(engines) == {"engine-fp32", "engine-fp16", "engine-int8"}
    int8_side = read_engine_sidecar(Path(engines["engine-int8"]))
    assert int8_side["build"]["onnx_file"] == "model.int8-sym.onnx"
    assert int8_side["build"]["graph"]["has_qdq"]
    sym = json.loads((tmp_path / "model.int8-sym.onnx.json").read_text())
    assert sym["accuracy"]["passed"] and sym["accuracy"]["auc_drop_pt"] <= 0.5
    for name in engines.values():
        side = read_engine_sidecar(Path(name))
        assert side["key"]["flavour"] == RTX and side["build"]["layers"] > 0
    assert "built engine model.int8." in run.stdout + run.stderr

    # The runtime sees all three as verified engines (their fit is decided with a GPU).
    from mrm_edge.runtime.model import DeployedModel

    (tmp_path / "card.json").write_text((tiny_model_dir / "card.json").read_text())
    model = DeployedModel.load(tmp_path)
    assert sorted(a.precision for a in model.engines) == ["fp16", "fp32", "int8"]
    assert not [n for n in model.refused if n.endswith(".engine")]
    assert np.isfinite(model.card.window_seconds)
