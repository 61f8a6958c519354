"""Probing TensorRT and the GPU: real behaviour on this machine (neither is installed), and
capability detection against the test doubles for TensorRT 10 and 11."""

from __future__ import annotations

import importlib.util

import pytest
from mrm_edge.runtime.backends.tensorrt import capability
from mrm_edge.runtime.backends.tensorrt.capability import (
    TensorRTInfo,
    TensorRTUnavailable,
    import_tensorrt,
    probe_gpu,
    probe_tensorrt,
)

from tests.fakes.tensorrt import (
    ExplodingCudaRuntime,
    FakeCudaRuntime,
    FakeDeviceProp,
    FakeTensorRT,
)

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
HAS_CUDA_PYTHON = importlib.util.find_spec("cuda") is not None


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed here")
def test_missing_tensorrt_is_an_answer_not_an_error() -> None:
    info = probe_tensorrt()
    assert not info.available
    assert info.version is None
    assert "No module named 'tensorrt'" in info.reason
    assert "pip install 'mrm-edge[tensorrt]'" in info.reason
    assert "\n" not in info.reason
    assert info.summary().startswith("not available:")


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed here")
def test_import_tensorrt_says_what_to_install() -> None:
    with pytest.raises(TensorRTUnavailable, match=r"not installed here .*JetPack"):
        import_tensorrt()


def test_a_broken_install_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(flavour: str = "tensorrt") -> None:
        raise OSError("libnvinfer.so.10: cannot open shared object file")

    monkeypatch.setattr(capability, "_import_tensorrt", broken)
    info = probe_tensorrt()
    assert not info.available
    assert "OSError: libnvinfer.so.10" in info.reason


def test_tensorrt_10_capabilities() -> None:
    info = probe_tensorrt(FakeTensorRT("10.3.0"))
    assert info == TensorRTInfo(
        available=True,
        version="10.3.0",
        strongly_typed_supported=True,
        has_precision_flags=True,
    )
    assert "weak or strong typing" in info.summary()


def test_tensorrt_11_capabilities() -> None:
    info = probe_tensorrt(FakeTensorRT("11.4.0", precision_flags=False))
    assert info.available
    assert not info.has_precision_flags
    assert info.strongly_typed_supported
    assert "strongly typed only" in info.summary()


def test_capabilities_come_from_the_api_not_the_version() -> None:
    # A "10.x" whose bindings lack the flags is treated by what it has.
    odd = FakeTensorRT("10.99.0", precision_flags=False, strongly_typed_flag=False)
    info = probe_tensorrt(odd)
    assert not info.has_precision_flags
    assert info.strongly_typed_supported  # no weak typing left means strong typing


@pytest.mark.parametrize(("version", "flags"), [("10.3", True), ("11", False), ("11.4.0", False)])
def test_assumed_capabilities(version: str, flags: bool) -> None:
    info = TensorRTInfo.assumed(version)
    assert info.has_precision_flags is flags
    assert info.strongly_typed_supported
    with pytest.raises(ValueError, match="TensorRT version"):
        TensorRTInfo.assumed("latest")


@pytest.mark.skipif(not HAS_CUDA_PYTHON, reason="cuda-python is not installed here")
def test_gpu_probe_with_real_cuda_python_and_no_gpu_is_an_answer() -> None:
    """The real cuda-python (installed with the tests' extras) on a machine without a GPU
    or driver: one line naming the CUDA error, not a traceback."""
    gpu, reason = probe_gpu()
    assert gpu is None and "\n" not in reason
    assert reason.startswith("no usable CUDA device: cudaError")


@pytest.mark.skipif(HAS_CUDA_PYTHON, reason="cuda-python is installed here")
def test_gpu_probe_without_cuda_python() -> None:
    gpu, reason = probe_gpu()
    assert gpu is None
    assert reason.startswith("cuda-python is not installed")
    assert "pip install" in reason


def test_gpu_probe_reads_the_device_properties() -> None:
    cudart = FakeCudaRuntime(
        [FakeDeviceProp(b"NVIDIA H100 80GB HBM3\0\0junk", 9, 0, 80 * 2**30), FakeDeviceProp()]
    )
    gpu, reason = probe_gpu(0, cudart)
    assert reason is None
    assert gpu.name == "NVIDIA H100 80GB HBM3"
    assert gpu.compute_capability == "9.0"
    assert gpu.total_memory_bytes == 80 * 2**30
    assert "80.0 GiB" in gpu.summary()
    assert probe_gpu(1, cudart)[0].device == 1


def test_gpu_probe_without_devices_or_with_a_bad_index() -> None:
    assert probe_gpu(0, FakeCudaRuntime(devices=[])) == (
        None,
        "no usable CUDA device: cudaErrorNoDevice",
    )
    gpu, reason = probe_gpu(3, FakeCudaRuntime())
    assert gpu is None and reason == "CUDA device 3 does not exist (found 1)"


def test_gpu_probe_never_raises() -> None:
    gpu, reason = probe_gpu(0, ExplodingCudaRuntime())
    assert gpu is None and "driver crashed" in reason


# --------------------------------------------------------------------------- flavours

RTX_INFO = TensorRTInfo.assumed("1.7.1", flavour="tensorrt-rtx")
STD_INFO = TensorRTInfo.assumed("10.3.0")
MISSING = {
    "tensorrt": TensorRTInfo(False, reason="tensorrt cannot be imported"),
    "tensorrt-rtx": TensorRTInfo(
        False, reason="tensorrt_rtx cannot be imported", flavour="tensorrt-rtx"
    ),
}


def _gpu(cc: str, name: str = "GPU") -> capability.GpuInfo:
    return capability.GpuInfo(name, cc, 8 << 30)


@pytest.mark.parametrize(
    ("have", "gpu", "expected", "why"),
    [
        (("tensorrt", "tensorrt-rtx"), None, "tensorrt-rtx", "no GPU here"),
        (("tensorrt-rtx",), _gpu("8.6"), "tensorrt-rtx", "is one of its targets"),
        (("tensorrt", "tensorrt-rtx"), _gpu("8.6"), "tensorrt", "tuned on this GPU"),
        (("tensorrt", "tensorrt-rtx"), _gpu("9.0"), "tensorrt", "compute 9.0 is no TensorRT-RTX"),
        (("tensorrt",), _gpu("8.7"), "tensorrt", "no TensorRT-RTX target"),
        (("tensorrt-rtx",), _gpu("9.0"), None, "needs standard TensorRT"),
        (("tensorrt",), None, None, "TensorRT-RTX is not available"),
        ((), _gpu("8.6"), None, "needs standard TensorRT"),
    ],
)
def test_auto_flavour_rule(have, gpu, expected, why) -> None:
    infos = {**MISSING}
    if "tensorrt" in have:
        infos["tensorrt"] = STD_INFO
    if "tensorrt-rtx" in have:
        infos["tensorrt-rtx"] = RTX_INFO
    flavour, reason = capability.choose_flavour("auto", infos, gpu)
    assert flavour == expected and why in reason


def test_explicit_flavour_is_honoured_or_refused_with_the_reason() -> None:
    infos = {"tensorrt": STD_INFO, "tensorrt-rtx": RTX_INFO}
    assert capability.choose_flavour("tensorrt-rtx", infos, _gpu("8.6"))[0] == "tensorrt-rtx"
    flavour, why = capability.choose_flavour("tensorrt", infos, None)
    assert flavour is None and "builds on a GPU" in why
    flavour, why = capability.choose_flavour("tensorrt-rtx", MISSING, None)
    assert flavour is None and "tensorrt_rtx cannot be imported" in why
    with pytest.raises(ValueError, match="expected one of auto, tensorrt, tensorrt-rtx"):
        capability.choose_flavour("trt", infos, None)


def test_flavour_comes_from_the_option_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(capability.FLAVOUR_ENV, raising=False)
    assert capability.requested_flavour() == "auto"
    monkeypatch.setenv(capability.FLAVOUR_ENV, "tensorrt-rtx")
    assert capability.requested_flavour() == "tensorrt-rtx"
    assert capability.requested_flavour("tensorrt") == "tensorrt"
    monkeypatch.setenv(capability.FLAVOUR_ENV, "rtx")
    with pytest.raises(ValueError, match=r"\$MRM_EDGE_TRT_FLAVOUR 'rtx'"):
        capability.requested_flavour()


def test_flavour_of_modules_and_doubles() -> None:
    assert capability.flavour_of(FakeTensorRT("10.3.0")) == "tensorrt"
    rtx = pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is not installed")
    assert capability.flavour_of(rtx) == "tensorrt-rtx"
    assert capability.compute_targets_of(rtx)[:2] == ("7.5", "8.0")


def test_missing_rtx_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(flavour: str = "tensorrt") -> None:
        raise ImportError(f"No module named '{capability.MODULES[flavour]}'")

    monkeypatch.setattr(capability, "_import_tensorrt", missing)
    info = probe_tensorrt(None, "tensorrt-rtx")
    assert not info.available and info.flavour == "tensorrt-rtx"
    assert "mrm-edge[tensorrt-rtx]" in info.reason and "\n" not in info.reason
    with pytest.raises(TensorRTUnavailable, match=r"TensorRT-RTX is not installed here"):
        import_tensorrt("tensorrt-rtx")
