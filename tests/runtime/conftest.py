"""Fixtures shared by the runtime tests."""

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_onnx_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's tiny trained model directory with its FP32 ONNX + sidecar
    (torch is used here, in the test fixture only)."""
    from mrm_edge.export.onnx_fp32 import export_fp32
    from mrm_edge.export.sidecar import write_sidecar

    d = tmp_path_factory.mktemp("tiny-onnx") / "model"
    shutil.copytree(tiny_model_dir, d)
    export_fp32(d, d / "model.onnx")
    write_sidecar(d / "model.onnx", {"precision": "fp32"})
    return d
