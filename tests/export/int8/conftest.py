"""Fixtures shared by the INT8 tests: the tiny real model, calibration and held-out windows,
one calibration cache, and the two INT8 files quantized once for the whole package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mrm_edge.calibration.sources import held_out_windows
from mrm_edge.calibration.windows import CalibrationSet, select_windows
from mrm_edge.export.int8.quantize import QuantizeOptions, quantize_int8

from tests.calibration import TinyModel, ptbxl_pool, tiny_int8_model


@pytest.fixture(scope="session")
def tiny(ptbxl_root: Path, tmp_path_factory) -> TinyModel:
    return tiny_int8_model(ptbxl_root, tmp_path_factory)


@pytest.fixture(scope="package")
def cset(ptbxl_root: Path) -> CalibrationSet:
    return select_windows(ptbxl_pool(ptbxl_root), 96, seed=0)


@pytest.fixture(scope="package")
def heldout(ptbxl_root: Path, tiny: TinyModel) -> tuple[np.ndarray, np.ndarray]:
    return held_out_windows(ptbxl_root, tiny.card)  # fold 10


@pytest.fixture(scope="package")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("calibration-cache")


@pytest.fixture(scope="package")
def int8(tiny: TinyModel, cset, cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "model.int8.onnx"
    return quantize_int8(tiny.onnx, out, cset, QuantizeOptions(cache_dir=cache_dir))[0]


@pytest.fixture(scope="package")
def int8_sym(tiny: TinyModel, cset, cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8-sym") / "model.int8-sym.onnx"
    sym = QuantizeOptions(activation_type="int8", cache_dir=cache_dir)
    return quantize_int8(tiny.onnx, out, cset, sym)[0]
