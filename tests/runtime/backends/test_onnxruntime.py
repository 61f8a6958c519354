"""ONNX Runtime backend on a real exported MRM-Net (tiny, random weights) against torch.

Runs the CPU execution provider for real, with and without I/O binding. The CUDA provider
is not available here (no GPU, no onnxruntime-gpu): only its refusal path is tested."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.backends import BackendUnavailable, OnnxRuntimeBackend

from tests.fakes import make_onnx, tiny_mrmnet_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_mrmnet_dir(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> dict[str, np.ndarray]:
    return dict(np.load(model_dir / "reference.npz"))


@pytest.mark.parametrize("io_binding", [False, True])
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_matches_torch(
    model_dir: Path, reference: dict[str, np.ndarray], batch: int, io_binding: bool
) -> None:
    with OnnxRuntimeBackend(model_dir / "model.onnx", io_binding=io_binding) as backend:
        p = backend.infer(reference[f"x{batch}"])
    assert p.dtype == np.float32 and p.shape == (batch, 5)
    np.testing.assert_allclose(p, reference[f"p{batch}"], atol=1e-5, rtol=0)


def test_reads_the_interface_from_the_session(model_dir: Path) -> None:
    backend = OnnxRuntimeBackend(model_dir / "model.onnx", intra_op_threads=1)
    assert not backend.is_active and backend.input_name is None
    with backend:
        assert (backend.input_name, backend.output_name) == ("ecg", "probabilities")
        assert backend.input_dims == (12, 1000)
        assert backend.device == "cpu"
        assert backend.max_batch is None and backend.precision == "fp32"
        assert backend.describe() == "onnxruntime on cpu, fp32, unlimited"
    assert not backend.is_active


def test_precision_label_and_other_io_names(tmp_path: Path) -> None:
    path = make_onnx(tmp_path / "model.fp16.onnx", fp16=True, input_name="signal", dims=(12, 500))
    with OnnxRuntimeBackend(path) as backend:
        assert backend.precision == "fp16"
        assert backend.input_name == "signal" and backend.input_dims == (12, 500)
        x = np.ones((3, 12, 500), np.float32)
        assert backend.infer(x).shape == (3, 5)


def test_float64_input_is_converted(model_dir: Path, reference: dict[str, np.ndarray]) -> None:
    with OnnxRuntimeBackend(model_dir / "model.onnx") as backend:
        p = backend.infer(reference["x7"].astype(np.float64))
    np.testing.assert_allclose(p, reference["p7"], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros((2, 12, 500), np.float32), r"expected \[batch, 12, 1000\]"),
        (np.zeros((12, 1000), np.float32), r"expected \[batch >= 1, leads, samples\]"),
        (np.zeros((0, 12, 1000), np.float32), "batch >= 1"),
        (np.zeros((1, 12, 1000), np.int16), "dtype int16"),
    ],
)
def test_bad_input_is_one_clear_line(model_dir: Path, x: np.ndarray, message: str) -> None:
    with (
        OnnxRuntimeBackend(model_dir / "model.onnx") as backend,
        pytest.raises(ValueError, match=message) as e,
    ):
        backend.infer(x)
    assert "\n" not in str(e.value)


def test_state_errors(model_dir: Path) -> None:
    backend = OnnxRuntimeBackend(model_dir / "model.onnx")
    with pytest.raises(RuntimeError, match="not active"):
        backend.infer(np.zeros((1, 12, 1000), np.float32))
    with backend, pytest.raises(RuntimeError, match="already active"):
        backend.activate()
    backend.deactivate()  # twice is fine


def test_missing_provider_is_unavailable_with_the_reason(model_dir: Path) -> None:
    backend = OnnxRuntimeBackend(model_dir / "model.onnx", providers=["CUDAExecutionProvider"])
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(BackendUnavailable) as e:
        backend.activate()
    assert "CUDAExecutionProvider" in e.value.reason and "onnxruntime-gpu" in e.value.reason
    assert str(e.value).startswith("onnxruntime: ")
    assert not backend.is_active


def test_missing_or_broken_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such ONNX file"):
        OnnxRuntimeBackend(tmp_path / "model.onnx").activate()
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(ValueError, match="ONNX Runtime cannot load it") as e:
        OnnxRuntimeBackend(junk).activate()
    assert "\n" not in str(e.value)
