"""Shared by the OpenVINO backend tests: the shipped model, synthetic windows, skip reasons."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mrm_edge.artifacts import SHIPPED_MODEL_DIR

NO_OPENVINO = "OpenVINO is not installed: pip install 'mrm-edge[openvino]'"


def has_openvino() -> bool:
    return importlib.util.find_spec("openvino") is not None


def cpu_has_bf16() -> tuple[bool, str]:
    from mrm_edge.runtime.backends.openvino.capability import cpu_bf16, probe_openvino

    return cpu_bf16(probe_openvino())


@pytest.fixture(scope="session")
def shipped() -> Path:
    if not has_openvino():
        pytest.skip(NO_OPENVINO)
    return SHIPPED_MODEL_DIR


@pytest.fixture(scope="session")
def windows() -> np.ndarray:
    """8 synthetic 12-lead windows at the shipped model's rate (100 Hz, 10 s)."""
    from mrm_edge.data.signal import resample
    from mrm_edge.data.synthetic import make_patients, synthesize

    wins = [resample(synthesize(p, 10.0, fs=500), 500, 100)[:, :1000] for p in make_patients(8, 3)]
    return np.stack(wins).astype(np.float32)


@pytest.fixture(scope="session")
def ort_fp32(shipped: Path, windows: np.ndarray) -> np.ndarray:
    from mrm_edge.runtime.backends import OnnxRuntimeBackend

    with OnnxRuntimeBackend(shipped / "model.onnx", providers=["CPUExecutionProvider"]) as b:
        return b.infer(windows)
