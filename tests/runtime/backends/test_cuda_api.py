"""The CUDA interface (CudaApi) through both bindings, and how a binding is chosen.

Both implementations run the same tests against host-memory TEST DOUBLES: CudaPythonApi on
FakeCudaRuntime (tests/fakes/tensorrt.py), PyCudaApi on FakePyCudaDriver (tests/fakes/
pycuda.py). A real call cannot serve: there is no GPU here, and pycuda cannot be installed
(it builds from source with nvcc). The selection tests and the real cuda-python test below do
use the real imports: cuda-python is installed here but finds no driver.
"""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pytest
from mrm_edge.runtime.backends.base import BackendUnavailable
from mrm_edge.runtime.backends.cuda import api as cuda_api
from mrm_edge.runtime.backends.cuda import resources as cu
from mrm_edge.runtime.backends.cuda.cuda_python import CudaPythonApi
from mrm_edge.runtime.backends.cuda.pycuda_api import PyCudaApi
from mrm_edge.runtime.backends.tensorrt.capability import probe_gpu

from tests.fakes.pycuda import FakePyCudaDriver
from tests.fakes.tensorrt import FakeCudaRuntime, FakeDeviceProp

HAS_CUDA_PYTHON = importlib.util.find_spec("cuda") is not None and (
    importlib.util.find_spec("cuda.bindings") is not None
)
HAS_PYCUDA = importlib.util.find_spec("pycuda") is not None


def make(kind: str, **kw) -> tuple[cuda_api.CudaApi, FakeCudaRuntime]:
    """A CudaApi of ``kind`` on a fresh double, device 0 set; and the double's runtime."""
    if kind == "cuda-python":
        rt = FakeCudaRuntime(**kw)
        api: cuda_api.CudaApi = CudaPythonApi(rt)
    else:
        driver = FakePyCudaDriver(**kw)
        api, rt = PyCudaApi(driver), driver.runtime
    api.set_device(0)
    return api, rt


BOTH = pytest.mark.parametrize("kind", ["cuda-python", "pycuda"])


@BOTH
def test_devices_are_described_the_same_way(kind: str) -> None:
    devices = [FakeDeviceProp(b"NVIDIA RTX 4000 Ada\0junk", 8, 9, 20 * 2**30)]
    api, _ = make(kind, devices=devices)
    assert api.device_count() == 1
    assert api.device_properties(0) == cuda_api.GpuInfo("NVIDIA RTX 4000 Ada", "8.9", 20 * 2**30)
    assert api.device_properties(0).compute_capability == "8.9"
    assert api.binding.startswith(kind)
    gpu, why = probe_gpu(0, api)  # the probe takes a CudaApi as it takes a cudart module
    assert why is None and gpu.name == "NVIDIA RTX 4000 Ada" and gpu.compute_capability == "8.9"


@BOTH
def test_round_trip_on_deferred_streams_and_nothing_leaks(kind: str) -> None:
    api, rt = make(kind)
    with (
        cu.Stream(api) as stream,
        cu.Event(api) as done,
        cu.PinnedHostBuffer((4,), np.float32, api) as a,
        cu.PinnedHostBuffer((4,), np.float32, api) as b,
        cu.DeviceBuffer(16, api) as d,
    ):
        a.array[:] = [1, 2, 3, 4]
        api.memcpy_htod_async(d.ptr, a.ptr, 16, stream.raw)
        api.memcpy_dtoh_async(b.ptr, d.ptr, 16, stream.raw)
        done.record(stream)
        assert b.array.tolist() == [0, 0, 0, 0]  # nothing ran yet
        done.synchronize()
        assert b.array.tolist() == [1, 2, 3, 4]
        assert isinstance(stream.handle, int)
    del stream, done  # pycuda destroys streams and events when collected
    api.close()
    assert rt.live() == {k: 0 for k in rt.live()}


@BOTH
def test_timing_events_measure_the_work_between_them(kind: str) -> None:
    api, _ = make(kind, op_ms=lambda label: 1.5)
    with (
        cu.Stream(api) as s,
        cu.Event(api, timing=True) as t0,
        cu.Event(api, timing=True) as t1,
        cu.PinnedHostBuffer((2,), np.float32, api) as h,
        cu.DeviceBuffer(8, api) as d,
    ):
        t0.record(s)
        api.memcpy_htod_async(d.ptr, h.ptr, 8, s.raw)
        api.memcpy_dtoh_async(h.ptr, d.ptr, 8, s.raw)
        t1.record(s)
        with pytest.raises(cuda_api.CudaError):  # not run yet: the host did not wait
            api.event_elapsed_ms(t0.raw, t1.raw)
        t1.synchronize()
        assert api.event_elapsed_ms(t0.raw, t1.raw) == 3.0


@BOTH
def test_failures_are_one_line_cuda_errors(kind: str) -> None:
    api, _ = make(kind)
    with pytest.raises(cuda_api.CudaError) as e:
        cu.DeviceBuffer(0, api)
    assert "\n" not in str(e.value) and str(e.value).startswith(e.value.call + ": ")
    pageable = np.zeros(4, np.float32)
    with cu.Stream(api) as s, cu.DeviceBuffer(16, api) as d, pytest.raises(cuda_api.CudaError):
        api.memcpy_htod_async(d.ptr, pageable.ctypes.data, 16, s.raw)  # would be synchronous


def test_cuda_graphs_only_with_cuda_python() -> None:
    api, rt = make("cuda-python")
    with (
        cu.Stream(api) as s,
        cu.DeviceBuffer(4, api) as d,
        cu.PinnedHostBuffer((1,), "f4", api) as h,
    ):
        api.begin_capture(s.raw)
        api.memcpy_htod_async(d.ptr, h.ptr, 4, s.raw)
        with cu.end_capture(api, s) as graph:
            graph.launch(s)
            s.synchronize()
        assert rt.executed == ["graph:HostToDevice 4B"]
    pycuda_api, _ = make("pycuda")
    assert not pycuda_api.graphs_supported
    with (
        cu.Stream(pycuda_api) as s,
        pytest.raises(cuda_api.CudaError, match="CUDA graphs need cuda-python"),
    ):
        pycuda_api.begin_capture(s.raw)


def test_pycuda_makes_the_primary_context_current_and_releases_it() -> None:
    driver = FakePyCudaDriver()
    api = PyCudaApi(driver)
    assert api.device_count() == 1  # initialises the driver, makes no context current
    with pytest.raises(cuda_api.CudaError, match=r"cuMemAlloc\(8\): .*no currently active context"):
        api.malloc(8)  # no set_device: the driver API has no context to allocate in
    api.set_device(0)
    assert driver.retained == {0: 1} and len(driver.stack()) == 1
    seen: list[object] = []

    def other_thread() -> None:  # a worker thread gets the context pushed on first use
        with cu.DeviceBuffer(8, api) as d:
            seen.append(d.ptr)

    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert seen and seen[0] is not None
    api.close()
    assert driver.retained == {0: 0} and driver.stack() == []


def test_pycuda_without_a_device_says_so_in_one_line() -> None:
    gpu, why = probe_gpu(0, PyCudaApi(FakePyCudaDriver(devices=[])))
    assert (
        gpu is None
        and why == "no usable CUDA device: cuInit failed: no CUDA-capable device is detected"
    )


# --------------------------------------------------------------------------- choosing


def test_a_cuda_python_module_is_wrapped_and_a_cuda_api_kept() -> None:
    rt = FakeCudaRuntime()
    assert isinstance(cuda_api.as_cuda_api(rt), CudaPythonApi)
    api = PyCudaApi(FakePyCudaDriver())
    assert cuda_api.as_cuda_api(api) is api


def _fail(name: str):
    def load() -> cuda_api.CudaApi:
        raise ImportError(f"No module named {name!r}")

    return load


def test_cuda_python_first_then_pycuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cuda_api.CUDA_ENV, raising=False)
    calls: list[str] = []
    rt_api = CudaPythonApi(FakeCudaRuntime(), version="13.0.1")
    py_api = PyCudaApi(FakePyCudaDriver())

    def loader(name: str, api: cuda_api.CudaApi):
        return lambda: calls.append(name) or api

    monkeypatch.setitem(cuda_api.LOADERS, "cuda-python", loader("cuda-python", rt_api))
    monkeypatch.setitem(cuda_api.LOADERS, "pycuda", loader("pycuda", py_api))
    assert cuda_api.load_cuda_api().binding == "cuda-python 13.0.1"
    assert calls == ["cuda-python"]  # pycuda is not even imported when cuda-python is there
    monkeypatch.setenv(cuda_api.CUDA_ENV, "pycuda")
    assert cuda_api.load_cuda_api() is py_api
    monkeypatch.delenv(cuda_api.CUDA_ENV)
    monkeypatch.setitem(cuda_api.LOADERS, "cuda-python", _fail("cuda"))
    assert cuda_api.load_cuda_api().binding == "pycuda 2025.1.2 (test double)"


def test_neither_binding_names_both_installs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cuda_api.CUDA_ENV, raising=False)
    monkeypatch.setitem(cuda_api.LOADERS, "cuda-python", _fail("cuda"))
    monkeypatch.setitem(cuda_api.LOADERS, "pycuda", _fail("pycuda"))
    with pytest.raises(BackendUnavailable) as e:
        cuda_api.load_cuda_api()
    msg = str(e.value)
    assert msg.startswith("cuda: cuda-python is not installed (No module named 'cuda')")
    assert "nor is pycuda (No module named 'pycuda')" in msg
    assert "pip install 'cuda-python>=12.4'" in msg and "nvcc" in msg and "\n" not in msg
    gpu, why = probe_gpu()  # the probe turns it into an answer
    assert gpu is None and why.startswith("cuda-python is not installed")


def test_a_bad_binding_name_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cuda_api.CUDA_ENV, "cupy")
    with pytest.raises(
        ValueError, match=r"^\$MRM_EDGE_CUDA 'cupy', expected one of cuda-python, pycuda$"
    ):
        cuda_api.load_cuda_api()


@pytest.mark.skipif(HAS_PYCUDA, reason="pycuda is installed here")
def test_forcing_real_pycuda_here_says_what_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cuda_api.CUDA_ENV, "pycuda")
    with pytest.raises(BackendUnavailable) as e:
        cuda_api.load_cuda_api()
    msg = str(e.value)
    assert msg.startswith("cuda: pycuda is not usable here (No module named 'pycuda')")
    assert "MRM_EDGE_CUDA" in msg and "nvcc" in msg


@pytest.mark.skipif(not HAS_CUDA_PYTHON, reason="cuda-python is not installed here")
def test_real_cuda_python_without_a_gpu_answers_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real binding, here without a driver (or, on a GPU machine, with one)."""
    monkeypatch.delenv(cuda_api.CUDA_ENV, raising=False)
    api = cuda_api.load_cuda_api()
    assert isinstance(api, CudaPythonApi) and api.binding.startswith("cuda-python 1")
    try:
        count = api.device_count()
    except cuda_api.CudaError as e:
        assert str(e).startswith("cudaGetDeviceCount: cudaError") and "\n" not in str(e)
        gpu, why = probe_gpu()
        assert gpu is None and why == f"no usable CUDA device: {e.error_name}"
    else:
        assert count >= 1
