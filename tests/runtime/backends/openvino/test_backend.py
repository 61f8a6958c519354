"""The OpenVINO backend on the shipped model, against ONNX Runtime FP32 (the export's
reference): parity at f32, INT8 within its gate on held-out PTB-XL windows, BF16 refused on a
CPU without it (and within its gate where the CPU has it), shapes, cache, bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.backends import BackendUnavailable
from mrm_edge.runtime.backends.openvino.backend import OpenVinoBackend

from mrm_edge.artifacts import BF16_RECORD
from mrm_edge.metrics import macro_auc
from tests.runtime.backends.openvino.conftest import cpu_has_bf16


def test_f32_matches_onnxruntime_fp32(
    shipped: Path, windows: np.ndarray, ort_fp32: np.ndarray
) -> None:
    with OpenVinoBackend(shipped / "model.onnx", inference_precision="f32") as b:
        got = b.infer(windows)
        assert b.precision == "fp32" and b.device == "cpu" and b.input_dims == (12, 1000)
        # The precision is stated, never OpenVINO's default (bf16 on BF16 CPUs).
        compiled = b._compiled
        assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) in (
            "f32",
            "<Type: 'float32'>",
        )
        assert (
            int(compiled.get_property("INFERENCE_NUM_THREADS"))
            == b.config()["INFERENCE_NUM_THREADS"]
        )
        assert int(compiled.get_property("NUM_STREAMS")) == 1
    assert got.shape == (8, 5) and got.dtype == np.float32
    assert float(np.abs(got - ort_fp32).max()) <= 1e-4


@pytest.mark.parametrize("variant", ["int8-sym", "int8"])
def test_int8_within_its_gate_on_held_out_windows(
    shipped: Path, ptbxl_root: Path, variant: str
) -> None:
    """The INT8 gate of the export (macro-AUC drop ≤ 0.5 pt vs FP32 on the held-out folds),
    applied to OpenVINO running the same Q/DQ file. Its max |Δp| is not the export's INT8
    gate and differs from ONNX Runtime's on the same file (measured: 0.18 vs 0.079 for the
    symmetric file): bounded here only against gross failure (the stem saturation once
    moved probabilities by 0.66)."""
    from mrm_edge.calibration.sources import held_out_windows
    from mrm_edge.runtime.backends import OnnxRuntimeBackend

    from mrm_edge.card import ModelCard

    x, y = held_out_windows(ptbxl_root, ModelCard.load(shipped))
    file = {"int8-sym": "model.int8-sym.onnx", "int8": "model.int8.onnx"}[variant]
    with OnnxRuntimeBackend(shipped / "model.onnx", providers=["CPUExecutionProvider"]) as ref:
        p32 = ref.infer(x)
    with OpenVinoBackend(shipped / file) as b:
        p8 = b.infer(x)
        assert b.precision == "int8"
    sidecar = json.loads((shipped / f"{file}.json").read_text())
    drop = macro_auc(y, p32) - macro_auc(y, p8)
    assert drop <= sidecar["accuracy"]["max_auc_drop"], (variant, drop)
    dp = float(np.abs(p8 - p32).max())
    print(f"openvino {variant}: macro-AUC drop {100 * drop:.2f} pt, max |dp| {dp:.3f}")
    assert dp <= 0.3


def test_bf16_is_refused_with_the_reason_on_a_cpu_without_it(shipped: Path) -> None:
    has, why = cpu_has_bf16()
    if has:
        pytest.skip(f"this CPU has native BF16 ({why}): the refusal cannot happen here")
    b = OpenVinoBackend(shipped / "model.onnx", inference_precision="bf16")
    with pytest.raises(BackendUnavailable) as e:
        b.activate()
    assert str(e.value).startswith("openvino: BF16 refused: this CPU has no native BF16")
    assert "amx_bf16" in str(e.value) and "\n" not in str(e.value) and not b.is_active


def test_bf16_within_its_gate_on_a_bf16_cpu(
    shipped: Path, ptbxl_root: Path, tmp_path: Path
) -> None:
    has, why = cpu_has_bf16()
    if not has:
        pytest.skip(f"BF16 gate needs a BF16 CPU: {why}")
    from mrm_edge.export.bf16 import measure_bf16_gate

    # The gate writes its record beside the model: a copy, never the shipped directory (a
    # record left there changed what later tests planned on this machine).
    model_dir = tmp_path / "m"
    shutil.copytree(shipped, model_dir)
    record = measure_bf16_gate(model_dir, ptbxl_root)
    assert (model_dir / BF16_RECORD).is_file() and not (shipped / BF16_RECORD).exists()
    assert record["passed"], record["message"]
    assert record["max_abs_prob_delta"] <= 2e-2
    assert record["auc_change_pt"] <= record["tolerance_pt"]


def test_compiled_models_are_cached_across_restarts(
    shipped: Path, windows: np.ndarray, tmp_path: Path
) -> None:
    cache = tmp_path / "ov-cache"
    with OpenVinoBackend(shipped / "model.int8-sym.onnx", cache_dir=cache) as b:
        first = b.infer(windows)
    blobs = sorted(cache.glob("*.blob"))
    assert len(blobs) == 1
    with OpenVinoBackend(shipped / "model.int8-sym.onnx", cache_dir=cache) as b:
        np.testing.assert_allclose(b.infer(windows), first, atol=1e-6)
    assert sorted(cache.glob("*.blob")) == blobs  # loaded, not compiled again
    # The default lives under the user cache dir (tests point it at a temporary directory).
    with OpenVinoBackend(shipped / "model.int8-sym.onnx") as b:
        b.infer(windows)
    assert list((Path(os.environ["MRM_EDGE_CACHE_DIR"]) / "openvino").glob("*.blob"))


def test_bad_files_are_one_line_errors(shipped: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such ONNX file"):
        OpenVinoBackend(tmp_path / "missing.onnx").activate()
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(ValueError, match=r"model.onnx: OpenVINO cannot read it") as e:
        OpenVinoBackend(bad).activate()
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="inference_precision 'fp8'"):
        OpenVinoBackend(bad, inference_precision="fp8")  # type: ignore[arg-type]
    with OpenVinoBackend(shipped / "model.onnx") as b, pytest.raises(ValueError, match="expected"):
        b.infer(np.zeros((2, 12, 999), np.float32))
