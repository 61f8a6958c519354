"""TensorRT backend: the pycuda binding, TensorRT-RTX engines and their runtime cache.

Most tests run on TEST DOUBLES (FakeTensorRT, FakeCudaRuntime, FakePyCudaDriver): executing
an engine needs a GPU, which the development machines do not have. The last two tests call
the REAL TensorRT-RTX library (installed here; it needs no GPU to build or to check an
engine's bytes) with the CUDA side still a double, and check the one-line refusals it leads
to: no usable GPU / driver for a good engine, "malformed" for garbage.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.export.tensorrt.builder import build_or_load
from mrm_edge.export.tensorrt.cache import EngineKey, store
from mrm_edge.export.tensorrt.plan import BuildOptions
from mrm_edge.runtime.backends import BackendUnavailable, TensorRTBackend
from mrm_edge.runtime.backends.cuda.pycuda_api import PyCudaApi
from mrm_edge.runtime.backends.tensorrt import loader
from mrm_edge.runtime.backends.tensorrt.capability import probe_gpu, probe_tensorrt
from mrm_edge.runtime.backends.tensorrt.engine_file import EngineRefused
from mrm_edge.runtime.backends.tensorrt.loader import EngineNotLoadable

from mrm_edge.fileio import sha256_file
from tests.fakes import make_onnx
from tests.fakes.pycuda import FakePyCudaDriver
from tests.fakes.tensorrt import FakeCudaRuntime, FakeDeviceProp, FakeTensorRT

PROFILE = (1, 8, 16)
RTX_VERSION = "1.7.1.116"
SHIPPED_FP16 = (
    Path(__file__).resolve().parents[4] / "models/mrm-net-ptbxl-superdiagnostic/model.fp16.onnx"
)
HAS_RTX = importlib.util.find_spec("tensorrt_rtx") is not None


def engine_fn(x: np.ndarray) -> np.ndarray:
    return (x[:, :5, 0] * 2.0 + x[:, 5:10, -1]).astype(np.float32)


def batches(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, 12, 1000)).astype(np.float32) for n in (3, 8, 1, 16, 5, 8)]


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_onnx(tmp_path_factory.mktemp("onnx") / "model.fp16.onnx", fp16=True)


def standard_engine(onnx_path: Path, out: Path, version: str = "10.3.0") -> Path:
    trt = FakeTensorRT(version, execute_fn=engine_fn, cuda=FakeCudaRuntime())
    gpu, _ = probe_gpu(0, FakeCudaRuntime())
    opts = BuildOptions(precision="fp16", profile=PROFILE)
    engine, _ = build_or_load(onnx_path, out, opts, gpu, probe_tensorrt(trt), trt=trt)
    return engine


def rtx_engine(onnx_path: Path, engine_bytes: bytes, out: Path, targets=("8.6", "8.9")) -> Path:
    """An engine stored under a TensorRT-RTX key (portable: targets, no GPU name)."""
    key = EngineKey(
        onnx_sha256=sha256_file(onnx_path),
        gpu_name=None,
        compute_capability=None,
        trt_version=RTX_VERSION,
        precision="fp16",
        profile=PROFILE,
        flavour="tensorrt-rtx",
        compute_targets=tuple(targets),
    )
    return store(out, key, engine_bytes)


RTX_GPU = [FakeDeviceProp(b"NVIDIA GeForce RTX 4090", 8, 9, 24 * 2**30)]


# --------------------------------------------------------------------------- pycuda


@pytest.mark.parametrize("seed", range(3))
def test_pycuda_binding_gives_the_same_results_as_cuda_python(
    onnx_path: Path, tmp_path: Path, seed: int
) -> None:
    """Both bindings under the same deferred, randomly interleaved double device."""
    engine = standard_engine(onnx_path, tmp_path)
    xs = batches(seed)
    results = {}
    for kind in ("cuda-python", "pycuda"):
        if kind == "pycuda":
            driver = FakePyCudaDriver(order="random", seed=seed)
            rt, cuda = driver.runtime, PyCudaApi(driver)
        else:
            rt = FakeCudaRuntime(order="random", seed=seed)
            cuda = rt
        trt = FakeTensorRT("10.3.0", execute_fn=engine_fn, cuda=rt)
        backend = TensorRTBackend(engine, trt=trt, cudart=cuda, cuda_graphs=True)
        with backend:
            results[kind] = [backend.infer(x) for x in xs]
            assert backend.cuda_binding.startswith(kind)
            assert f"CUDA via {backend.cuda_binding}" in backend.describe()
        if kind == "pycuda":
            # No graph API: normal enqueues, and the reason says what would give graphs.
            assert not [e for e in rt.executed if e.startswith("graph:")]
            assert backend.graph_error == (
                "pycuda 2025.1.2 (test double): CUDA graphs need cuda-python "
                "(pycuda has no graph API)"
            )
            del backend
            assert rt.live() == {k: 0 for k in rt.live()}
            assert driver.retained == {0: 0} and driver.stack() == []  # context released
    for x, a, b in zip(xs, results["cuda-python"], results["pycuda"], strict=True):
        np.testing.assert_array_equal(a, engine_fn(x))
        np.testing.assert_array_equal(b, a)


# --------------------------------------------------------------------------- TensorRT-RTX


@pytest.fixture
def rtx(onnx_path: Path, tmp_path: Path) -> Path:
    built = standard_engine(onnx_path, tmp_path / "build", version=RTX_VERSION)
    return rtx_engine(onnx_path, built.read_bytes(), tmp_path / "m")


def rtx_backend(engine: Path, **kw) -> tuple[TensorRTBackend, FakeTensorRT]:
    rt = FakeCudaRuntime(RTX_GPU)
    trt = FakeTensorRT(RTX_VERSION, execute_fn=engine_fn, cuda=rt, flavour="tensorrt-rtx")
    return TensorRTBackend(engine, trt=trt, cudart=rt, **kw), trt


def test_rtx_runtime_cache_is_written_then_read_back(rtx: Path) -> None:
    cache_file = loader.runtime_cache_path(rtx)
    b, trt = rtx_backend(rtx)
    with b:
        assert b.flavour == "tensorrt-rtx" and "TensorRT-RTX 1.7.1.116" in b.describe()
        x = batches(0)[1]
        np.testing.assert_array_equal(b.infer(x), engine_fn(x))
        assert not cache_file.exists()  # written on deactivation, once the JIT work is done
    (first,) = trt.runtime_caches
    assert first.deserialized == [] and first.serialize_calls == 1
    saved = cache_file.read_bytes()
    assert b"[8, 12, 1000]" in saved
    b2, trt2 = rtx_backend(rtx)
    with b2:
        (second,) = trt2.runtime_caches
        assert second.deserialized == [saved] and (8, 12, 1000) in second.shapes
        assert trt2.contexts[0].runtime_config.get_runtime_cache() is second
    assert b2.notes == []


def test_a_corrupt_runtime_cache_is_ignored_with_a_note(rtx: Path) -> None:
    cache_file = loader.runtime_cache_path(rtx)
    cache_file.write_bytes(b"\x00garbage")
    b, trt = rtx_backend(rtx)
    with b:
        x = batches(1)[0]
        np.testing.assert_array_equal(b.infer(x), engine_fn(x))
    assert len(b.notes) == 1 and "runtime cache not used" in b.notes[0]
    assert trt.runtime_caches[0].deserialized == [b"\x00garbage"]
    assert cache_file.read_bytes().startswith(b"FAKERTCACHE:")  # replaced by a good one


def test_an_unwritable_runtime_cache_is_a_note(rtx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: Path, data: bytes) -> None:
        raise PermissionError(13, "Read-only file system", str(path))

    monkeypatch.setattr(loader, "atomic_write_bytes", refuse)
    b, _ = rtx_backend(rtx)
    with b:
        b.infer(batches(2)[2])
    assert len(b.notes) == 1 and "runtime cache not saved (PermissionError" in b.notes[0]


def test_a_standard_engine_makes_no_runtime_cache(onnx_path: Path, tmp_path: Path) -> None:
    engine = standard_engine(onnx_path, tmp_path)
    rt = FakeCudaRuntime()
    trt = FakeTensorRT("10.3.0", execute_fn=engine_fn, cuda=rt)
    with TensorRTBackend(engine, trt=trt, cudart=rt) as b:
        b.infer(batches(3)[0])
        assert b.flavour == "tensorrt" and trt.contexts[0].runtime_config is None
    assert trt.runtime_caches == [] and not loader.runtime_cache_path(engine).exists()


def test_an_engine_loads_only_with_its_own_flavour(
    onnx_path: Path, rtx: Path, tmp_path: Path
) -> None:
    rt = FakeCudaRuntime(RTX_GPU)
    standard = FakeTensorRT(RTX_VERSION, cuda=rt)
    with pytest.raises(EngineRefused) as e:
        TensorRTBackend(rtx, trt=standard, cudart=rt).activate()
    assert "built by TensorRT-RTX, but the TensorRT module given is TensorRT" in str(e.value)
    engine = standard_engine(onnx_path, tmp_path / "std")
    with pytest.raises(EngineRefused, match=r"built by TensorRT, but .* is TensorRT-RTX"):
        TensorRTBackend(
            engine, trt=FakeTensorRT("10.3.0", flavour="tensorrt-rtx"), cudart=rt
        ).activate()
    assert rt.live() == {k: 0 for k in rt.live()}


def test_an_rtx_engine_for_other_targets_is_refused_naming_them(onnx_path: Path, rtx: Path) -> None:
    rt = FakeCudaRuntime([FakeDeviceProp(b"NVIDIA RTX A2000", 8, 0)])
    trt = FakeTensorRT(RTX_VERSION, cuda=rt, flavour="tensorrt-rtx")
    with pytest.raises(EngineRefused) as e:
        TensorRTBackend(rtx, trt=trt, cudart=rt).activate()
    msg = str(e.value)
    assert "built by TensorRT-RTX 1.7.1.116 for compute 8.6, 8.9" in msg
    assert "NVIDIA RTX A2000 (compute 8.0)" in msg and "\n" not in msg


# --------------------------------------------------------------------------- real TensorRT-RTX


@pytest.mark.skipif(not HAS_RTX, reason="tensorrt_rtx is not installed here")
def test_real_rtx_engine_without_a_gpu_is_refused_as_no_gpu(tmp_path: Path) -> None:
    """Real TensorRT-RTX builds the shipped FP16 model (no GPU needed) and is imported by the
    backend from the sidecar's flavour; loading needs a GPU, so it must say that, not
    "corrupt". The CUDA side is the double (it claims an RTX 4090)."""
    import tensorrt_rtx
    from mrm_edge.export.tensorrt.builder import build_engine

    opts = BuildOptions(precision="fp16", profile=(1, 8, 32))
    result = build_engine(SHIPPED_FP16, opts, tensorrt_rtx)
    key = EngineKey(
        onnx_sha256=sha256_file(SHIPPED_FP16),
        gpu_name=None,
        compute_capability=None,
        trt_version=tensorrt_rtx.__version__,
        precision="fp16",
        profile=(1, 8, 32),
        flavour="tensorrt-rtx",
        compute_targets=tuple(result.compute_targets),
    )
    engine = store(tmp_path, key, bytes(result.engine))
    rt = FakeCudaRuntime(RTX_GPU)
    with pytest.raises(BackendUnavailable) as e:
        TensorRTBackend(engine, cudart=rt).activate()  # trt=None: the real module
    msg = str(e.value)
    assert not isinstance(e.value, EngineNotLoadable)  # the file is fine; the machine is not
    assert "TensorRT-RTX found no usable CUDA GPU / driver" in msg
    assert "CUDA driver version is insufficient" in msg
    assert "corrupt" not in msg and "\n" not in msg
    assert rt.live() == {k: 0 for k in rt.live()}


@pytest.mark.skipif(not HAS_RTX, reason="tensorrt_rtx is not installed here")
def test_real_rtx_refuses_a_malformed_engine_as_malformed(onnx_path: Path, tmp_path: Path) -> None:
    """``get_engine_validity`` (no GPU needed) flags garbage bytes as MALFORMED_ENGINE."""
    import tensorrt_rtx

    assert int(tensorrt_rtx.EngineInvalidityDiagnostics.MALFORMED_ENGINE) == 32
    engine = rtx_engine(onnx_path, b"not an engine at all" * 10, tmp_path)
    with pytest.raises(EngineNotLoadable) as e:
        TensorRTBackend(engine, cudart=FakeCudaRuntime(RTX_GPU)).activate()
    assert "TensorRT-RTX says this is no engine (malformed" in str(e.value)
