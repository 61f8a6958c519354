"""What only a GPU can show. These run on a machine with an NVIDIA GPU (and TensorRT for
the last one) and skip with the reason everywhere else — CI has no GPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest


def _cudart_with_gpu():
    if importlib.util.find_spec("cuda") is None:
        pytest.skip("cuda-python is not installed here (no GPU on this machine)")
    from mrm_edge.runtime.backends.cuda.api import CudaError, load_cuda_api

    cuda = load_cuda_api()  # cuda-python: importable here
    try:
        count = cuda.device_count()
    except CudaError:
        count = 0
    if count == 0:
        pytest.skip("no CUDA device visible")
    return cuda


def test_pinned_and_device_buffers_round_trip_on_a_real_gpu() -> None:
    from mrm_edge.runtime.backends.cuda.resources import (
        DeviceBuffer,
        PinnedHostBuffer,
        Stream,
    )

    cudart = _cudart_with_gpu()
    x = np.random.default_rng(0).standard_normal((64, 12, 1000)).astype(np.float32)
    with (
        PinnedHostBuffer(x.shape, np.float32, cudart) as src,
        PinnedHostBuffer(x.shape, np.float32, cudart) as dst,
        DeviceBuffer(x.nbytes, cudart) as dev,
        Stream(cudart) as stream,
    ):
        src.array[...] = x
        cudart.memcpy_htod_async(dev.ptr, src.ptr, x.nbytes, stream.raw)  # a CudaApi
        cudart.memcpy_dtoh_async(dst.ptr, dev.ptr, x.nbytes, stream.raw)
        stream.synchronize()
        np.testing.assert_array_equal(dst.array, x)


def test_onnxruntime_cuda_matches_cpu(request: pytest.FixtureRequest) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
    tiny_onnx_model: Path = request.getfixturevalue("tiny_onnx_model")  # only where it runs
    from mrm_edge.runtime.backends import OnnxRuntimeBackend

    x = np.random.default_rng(1).standard_normal((16, 12, 1000)).astype(np.float32) * 0.3
    path = tiny_onnx_model / "model.onnx"
    with OnnxRuntimeBackend(path, providers=["CPUExecutionProvider"]) as cpu:
        ref = cpu.infer(x)
    with OnnxRuntimeBackend(path, providers=["CUDAExecutionProvider"]) as gpu:
        got = gpu.infer(x)
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_doctor_builds_and_checks_an_engine_on_a_real_gpu(request: pytest.FixtureRequest) -> None:
    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("TensorRT is not installed here (it cannot be on the project's machines)")
    _cudart_with_gpu()
    tiny_onnx_model: Path = request.getfixturevalue("tiny_onnx_model")
    from mrm_edge.cli.doctor.report import format_report
    from mrm_edge.cli.doctor.steps import run_doctor

    report = run_doctor(tiny_onnx_model, precision="fp32", batch=(1, 8, 32))
    assert report.exit_code == 0, format_report(report)
