"""``mrm-edge export --triton-repo``: the repository's models and configs, from the model
directory's sidecars and engines; the Python-backend config loaded by the real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mrm_edge.export.triton_repo import config_pbtxt, write_triton_repo

from mrm_edge.artifacts import SHIPPED_MODEL_DIR
from mrm_edge.fileio import sha256_file
from mrm_edge.served_identity import parameters_of
from tests.triton_fixtures import Served, make_tiny_model

MRM_EDGE = str(Path(sys.executable).parent / "mrm-edge")
NAME = "mrm-net-ptbxl-superdiagnostic"


def test_one_model_per_variant_with_the_card_identity(tmp_path: Path) -> None:
    repo = write_triton_repo(
        SHIPPED_MODEL_DIR, tmp_path, max_batch=16, max_delay_ms=20, instances=2
    )
    names = {m.name: m for m in repo.models}
    onnx = {f"{NAME}-onnx-{v}" for v in ("fp32", "fp16", "int8", "int8-sym")}
    cpu = {f"{NAME}-cpu-int8", f"{NAME}-cpu-fp32"}
    assert set(names) == onnx | cpu  # no engine in the shipped directory
    assert set(repo.local_models) == cpu
    text = (tmp_path / f"{NAME}-cpu-fp32" / "config.pbtxt").read_text()
    assert 'backend: "python"' in text and "max_batch_size: 16" in text  # = --max-batch
    assert "preferred_batch_size: [ 16 ]" in text  # the monitor's --max-batch
    assert "max_queue_delay_microseconds: 20000" in text  # ... and --max-delay
    assert "count: 2" in text and "kind: KIND_CPU" in text
    assert 'name: "ecg"' in text and "dims: [ 12, 1000 ]" in text
    assert 'name: "probabilities"' in text and "dims: [ 5 ]" in text
    assert "model_warmup" in text and "zero_data: true" in text
    sha = json.loads((SHIPPED_MODEL_DIR / "model.onnx.json").read_text())["sha256"]
    assert f'string_value: "{sha}"' in text  # the identity: the FP32 ONNX's SHA-256
    assert (tmp_path / f"{NAME}-cpu-fp32" / "labels.txt").read_text().split() == [
        "CD", "HYP", "MI", "NORM", "STTC"
    ]  # fmt: skip
    # The artifacts are copied byte for byte; the Python model beside its ONNX.
    fp16 = tmp_path / f"{NAME}-onnx-fp16" / "1" / "model.onnx"
    assert sha256_file(fp16) == sha256_file(SHIPPED_MODEL_DIR / "model.fp16.onnx")
    assert (tmp_path / f"{NAME}-cpu-int8" / "1" / "model.int8.onnx").is_file()
    assert "TritonPythonModel" in (tmp_path / f"{NAME}-cpu-int8" / "1" / "model.py").read_text()
    onnx_text = (tmp_path / f"{NAME}-onnx-int8-sym" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in onnx_text and "kind: KIND_GPU" in onnx_text


def test_by_default_the_server_adds_no_second_wait_and_onnx_runtime_spins(
    tmp_path: Path,
) -> None:
    # The front-ends batch already: Triton's queue delay is 0 unless asked, and the Python
    # backend's ONNX Runtime keeps its default spin-waiting unless the server's cores are
    # shared (cpu_spinning=False, `mrm-edge serve --no-spin`).
    write_triton_repo(SHIPPED_MODEL_DIR, tmp_path / "a", only_local=True)
    text = (tmp_path / "a" / f"{NAME}-cpu-int8" / "config.pbtxt").read_text()
    assert "max_queue_delay_microseconds: 0\n" in text
    assert 'key: "allow_spinning"\n  value {\n    string_value: "1"' in text
    write_triton_repo(SHIPPED_MODEL_DIR, tmp_path / "b", only_local=True, cpu_spinning=False)
    text = (tmp_path / "b" / f"{NAME}-cpu-int8" / "config.pbtxt").read_text()
    assert 'key: "allow_spinning"\n  value {\n    string_value: "0"' in text


def test_engines_become_tensorrt_plans_sized_by_their_profile(tmp_path: Path) -> None:
    from mrm_edge.export.tensorrt.builder import build_or_load
    from mrm_edge.export.tensorrt.plan import BuildOptions
    from mrm_edge.runtime.backends.tensorrt.capability import probe_gpu, probe_tensorrt

    from tests.fakes.tensorrt import FakeCudaRuntime, FakeTensorRT

    d = make_tiny_model(tmp_path / "m")
    cudart = FakeCudaRuntime()  # a stand-in: no GPU here to build a real engine for
    trt = FakeTensorRT("10.3.0", cuda=cudart)
    gpu, _ = probe_gpu(0, cudart)
    engine, _ = build_or_load(
        d / "model.onnx", d, BuildOptions("fp32", (1, 8, 16)), gpu, probe_tensorrt(trt), trt
    )
    repo = write_triton_repo(d, tmp_path / "repo")
    trt_models = [m for m in repo.models if m.kind == "tensorrt"]
    assert [m.name for m in trt_models] == ["tiny-test-model-trt-fp32"]
    folder = tmp_path / "repo" / "tiny-test-model-trt-fp32"
    text = (folder / "config.pbtxt").read_text()
    assert 'platform: "tensorrt_plan"' in text and "max_batch_size: 16" in text
    assert (folder / "1" / "model.plan").read_bytes() == engine.read_bytes()
    assert sha256_file(engine) in text


def test_no_fp32_onnx_is_a_one_line_error(tmp_path: Path) -> None:
    d = make_tiny_model(tmp_path / "m")
    (d / "model.onnx").unlink()
    (d / "model.onnx.json").unlink()
    with pytest.raises(ValueError) as e:
        write_triton_repo(d, tmp_path / "repo")
    assert "\n" not in str(e.value)


def test_pbtxt_writes_repeated_messages_maps_and_enums() -> None:
    text = config_pbtxt(
        {"name": "m", "instance_group": [{"count": 1, "kind": "KIND_CPU"}],
         "parameters": {"k": "v \"q\""}, "dims": [1, 2]}
    )  # fmt: skip
    assert 'name: "m"\n' in text and "instance_group {\n  count: 1\n  kind: KIND_CPU\n}" in text
    assert 'key: "k"' in text and 'string_value: "v \\"q\\""' in text and "dims: [ 1, 2 ]" in text


def test_export_cli_writes_the_repository_of_an_exported_directory(tmp_path: Path) -> None:
    d = make_tiny_model(tmp_path / "m")
    before = sha256_file(d / "model.onnx")
    r = subprocess.run(
        [MRM_EDGE, "export", "--model", str(d), "--triton-repo", str(tmp_path / "repo"),
         "--triton-max-batch", "8", "--triton-max-delay", "2.5"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.strip().splitlines()]
    assert [row[0] for row in rows] == ["triton", "triton"]
    assert {Path(row[1]).name for row in rows} == {
        "tiny-test-model-onnx-fp32", "tiny-test-model-cpu-fp32"
    }  # fmt: skip
    assert sha256_file(d / "model.onnx") == before  # not re-exported (no weights here)
    text = (tmp_path / "repo" / "tiny-test-model-cpu-fp32" / "config.pbtxt").read_text()
    assert "max_batch_size: 8" in text and "max_queue_delay_microseconds: 2500" in text


def test_the_real_server_loads_the_python_backend_config(triton_served: Served) -> None:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(triton_served.server.grpc_address)
    try:
        assert client.is_model_ready(triton_served.shipped_model)
        config = client.get_model_config(triton_served.shipped_model, as_json=True)["config"]
    finally:
        client.close()
    params = parameters_of(config)
    assert params["mrm_edge.model_name"] == NAME and params["mrm_edge.variant"] == "fp32"
    assert json.loads(params["mrm_edge.labels"]) == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert int(config["max_batch_size"]) == 32 and config["dynamic_batching"]
    assert config["output"][0]["label_filename"] == "labels.txt"
