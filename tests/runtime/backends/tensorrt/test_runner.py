"""TensorRT backend against the test doubles (FakeTensorRT + FakeCudaRuntime).

Engines are built by the real builder code (``build_or_load``) through FakeTensorRT; the
fake engine "executes" ``engine_fn`` on the bytes found at the device addresses set on the
context. The fake CUDA device runs nothing until the host waits, and can run queued work in
random orders, so the correctness of results below depends on the backend's event ordering and
synchronization, not on luck. None of this ran on a GPU or a real TensorRT.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.export.tensorrt.builder import build_or_load
from mrm_edge.export.tensorrt.plan import BuildOptions
from mrm_edge.runtime.backends import BackendUnavailable, TensorRTBackend
from mrm_edge.runtime.backends.tensorrt.capability import probe_gpu, probe_tensorrt
from mrm_edge.runtime.backends.tensorrt.engine_file import EngineRefused

from mrm_edge.artifacts import sidecar_path
from tests.fakes import make_onnx
from tests.fakes.tensorrt import FakeCudaRuntime, FakeDeviceProp, FakeTensorRT

PROFILE = (1, 8, 16)


def engine_fn(x: np.ndarray) -> np.ndarray:
    """What the fake engine computes: depends on every sample's own data."""
    return (x[:, :5, 0] * 2.0 + x[:, 5:10, -1]).astype(np.float32)


def batch(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 12, 1000)).astype(np.float32)


@dataclass
class Rig:
    trt: FakeTensorRT
    cudart: FakeCudaRuntime
    engine: Path

    def backend(self, **kw) -> TensorRTBackend:
        return TensorRTBackend(self.engine, trt=self.trt, cudart=self.cudart, **kw)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_onnx(tmp_path_factory.mktemp("onnx") / "model.fp16.onnx", fp16=True)


def make_rig(
    onnx_path: Path,
    out: Path,
    *,
    order: str = "in_order",
    seed: int = 0,
    profile: tuple[int, int, int] = PROFILE,
    **trt_kw,
) -> Rig:
    cudart = FakeCudaRuntime(order=order, seed=seed)
    trt = FakeTensorRT("10.3.0", execute_fn=engine_fn, cuda=cudart, **trt_kw)
    gpu, _ = probe_gpu(0, cudart)
    opts = BuildOptions(precision="fp16", profile=profile)
    engine, _ = build_or_load(onnx_path, out, opts, gpu, probe_tensorrt(trt), trt=trt)
    return Rig(trt, cudart, engine)


@pytest.fixture
def rig(onnx_path: Path, tmp_path: Path) -> Rig:
    return make_rig(onnx_path, tmp_path)


def test_results_for_every_batch_size_and_chunking(rig: Rig) -> None:
    with rig.backend() as b:
        assert (b.input_name, b.output_name, b.input_dims) == ("ecg", "probabilities", (12, 1000))
        assert b.max_batch == 16 and b.precision == "fp16" and b.device == "cuda:0"
        for n in (1, 7, 16, 40):  # 40 > max batch: split into 16 + 16 + 8
            x = batch(n, n)
            np.testing.assert_array_equal(b.infer(x), engine_fn(x))


def test_call_sequence_sets_shape_then_addresses_then_executes(rig: Rig) -> None:
    with rig.backend() as b:
        ctx = rig.trt.contexts[0]
        ctx.calls.clear()
        b.infer(batch(7, 0))
        b.infer(batch(7, 1))
        b.infer(batch(3, 2))
    calls = ctx.calls
    names = [c[0] for c in calls]
    assert names == [
        "set_input_shape",
        "set_tensor_address",
        "set_tensor_address",
        "execute_async_v3",
        # same shape again: no set_input_shape; the addresses before every enqueue
        "set_tensor_address",
        "set_tensor_address",
        "execute_async_v3",
        "set_input_shape",
        "set_tensor_address",
        "set_tensor_address",
        "execute_async_v3",
    ]
    assert calls[0] == ("set_input_shape", "ecg", (7, 12, 1000))
    assert calls[7] == ("set_input_shape", "ecg", (3, 12, 1000))
    assert {c[1] for c in calls if c[0] == "set_tensor_address"} == {"ecg", "probabilities"}
    # One stream for every enqueue.
    assert len({c[1] for c in calls if c[0] == "execute_async_v3"}) == 1


def test_one_buffer_set_and_nothing_is_allocated_per_call(rig: Rig) -> None:
    with rig.backend() as b:
        live = rig.cudart.live()
        assert (live["device"], live["pinned"], live["streams"]) == (2, 2, 1)
        for i in range(6):
            b.infer(batch(4, i))
        assert rig.cudart.live() == live
    runs = rig.trt.engines[-1].executions
    assert len(runs) == 6
    assert len({r[0] for r in runs}) == 1 and len({r[1] for r in runs}) == 1


def test_buffers_are_sized_from_the_profile_max(rig: Rig) -> None:
    with rig.backend():
        sizes = sorted(len(buf) for kind, buf in rig.cudart._blocks.values() if kind == "device")
    assert sizes == [16 * 5 * 4, 16 * 12 * 1000 * 4]


def test_each_stage_is_timed_by_its_own_events(onnx_path: Path, tmp_path: Path) -> None:
    """What ``mrm-edge bench`` reads: the copy in, the enqueue and the copy out apart (the fake
    device's clock gives each kind of work its own cost)."""
    cost = {"HostToDevice": 0.5, "trt exec": 2.0, "DeviceToHost": 0.125}
    rig = make_rig(onnx_path, tmp_path)
    rig.cudart.op_ms = lambda label: next(
        (ms for k, ms in cost.items() if label.startswith(k)), 1000.0
    )
    with rig.backend() as b:
        x = batch(8, 0)
        np.testing.assert_array_equal(b.infer(x), engine_fn(x))
        assert b.last_stages_ms() == pytest.approx((0.5, 2.0, 0.125, 2.625))
        # The host waited once, on the last event: the result is complete when returned.
        assert [s[0] for s in rig.cudart.syncs] == ["event"]


@pytest.mark.parametrize("seed", range(6))
def test_results_are_correct_under_any_device_order(
    onnx_path: Path, tmp_path: Path, seed: int
) -> None:
    rig = make_rig(onnx_path, tmp_path, order="random", seed=seed)
    xs = [batch(n, 10 * seed + i) for i, n in enumerate((3, 8, 1, 16, 5, 8, 2))]
    with rig.backend() as b:
        results = [b.infer(x) for x in xs]
    for x, p in zip(xs, results, strict=True):
        np.testing.assert_array_equal(p, engine_fn(x))


def test_results_survive_buffer_reuse_and_deactivation(rig: Rig) -> None:
    b = rig.backend()
    with b:
        x1 = batch(2, 1)
        p1 = b.infer(x1)
        for i in range(4):  # reuses the buffers p1 was read from
            b.infer(batch(2, 100 + i))
        last = b.infer(batch(2, 9))
    np.testing.assert_array_equal(p1, engine_fn(x1))
    np.testing.assert_array_equal(last, engine_fn(batch(2, 9)))


def test_everything_is_released(rig: Rig) -> None:
    with rig.backend(cuda_graphs=True) as b:
        b.infer(batch(5, 0))
        b.infer(batch(5, 1))
    assert rig.cudart.live() == {k: 0 for k in rig.cudart.live()}


def test_cuda_graphs_capture_once_per_shape_then_replay(rig: Rig) -> None:
    with rig.backend(cuda_graphs=True) as b:
        xs = [batch(8, i) for i in range(5)]
        for x in xs:
            np.testing.assert_array_equal(b.infer(x), engine_fn(x))
        ctx = rig.trt.contexts[0]
        executes = [c for c in ctx.calls if c[0] == "execute_async_v3"]
        # One normal enqueue, one under capture; then replays only.
        assert len(executes) == 2
        replays = [e for e in rig.cudart.executed if e.startswith("graph:trt exec")]
        assert len(replays) == 4 and b.graph_error is None
        runs = rig.trt.engines[-1].executions
        assert len(runs) == 5  # capture itself runs nothing
        assert len({r[0] for r in runs}) == 1  # the graph replays on the captured buffers
        x = batch(3, 99)  # a new shape: captured anew
        np.testing.assert_array_equal(b.infer(x), engine_fn(x))
        assert rig.cudart.live()["graph_execs"] == 2


def test_engines_that_cannot_be_captured_fall_back(onnx_path: Path, tmp_path: Path) -> None:
    rig = make_rig(onnx_path, tmp_path, capture_supported=False)
    with rig.backend(cuda_graphs=True) as b:
        for i in range(3):
            x = batch(4, i)
            np.testing.assert_array_equal(b.infer(x), engine_fn(x))
        assert not [e for e in rig.cudart.executed if e.startswith("graph:")]
        assert b.graph_error == "cudaStreamEndCapture: cudaErrorStreamCaptureInvalidated"
    assert rig.cudart.live()["graphs"] == 0


def test_batches_beyond_the_profile(onnx_path: Path, tmp_path: Path) -> None:
    narrow = make_rig(onnx_path, tmp_path / "narrow", profile=(2, 4, 4))
    with narrow.backend() as b:
        assert b.max_batch == 4
        x = batch(10, 0)
        np.testing.assert_array_equal(b.infer(x), engine_fn(x))  # split into 4 + 4 + 2
        assert max(r[2][0] for r in narrow.trt.engines[-1].executions) == 4
        with pytest.raises(ValueError, match=r"batch 1 outside the engine's profile 2\.\.4"):
            b.infer(batch(1, 0))


def test_input_errors(rig: Rig) -> None:
    b = rig.backend()
    with pytest.raises(RuntimeError, match="not active"):
        b.infer(batch(1, 0))
    with b, pytest.raises(ValueError, match=r"expected \[batch, 12, 1000\]"):
        b.infer(np.zeros((2, 12, 500), np.float32))


# --------------------------------------------------------------------------- refusals


def test_refuses_an_engine_built_for_another_gpu(onnx_path: Path, tmp_path: Path) -> None:
    rig = make_rig(onnx_path, tmp_path)
    other = FakeCudaRuntime([FakeDeviceProp(b"NVIDIA A100-SXM4-40GB", 8, 0)])
    b = TensorRTBackend(rig.engine, trt=FakeTensorRT("10.3.0", cuda=other), cudart=other)
    with pytest.raises(EngineRefused) as e:
        b.activate()
    msg = str(e.value)
    assert (
        "Fake GPU (test double) (compute 9.0)" in msg
        and "NVIDIA A100-SXM4-40GB (compute 8.0)" in msg
    )
    assert "rebuild" in msg and "\n" not in msg
    assert not b.is_active and other.live()["device"] == 0


def test_refuses_an_engine_from_another_tensorrt(rig: Rig) -> None:
    newer = FakeTensorRT("10.4.0", cuda=rig.cudart, execute_fn=engine_fn)
    with pytest.raises(EngineRefused, match=r"TensorRT 10\.3\.0, but this machine .* 10\.4\.0"):
        TensorRTBackend(rig.engine, trt=newer, cudart=rig.cudart).activate()
    # A sidecar that lies about the version: TensorRT itself refuses to deserialize it, in
    # one clear line, with nothing leaked.
    side = json.loads(sidecar_path(rig.engine).read_text())
    side["key"]["trt_version"] = "10.4.0"
    sidecar_path(rig.engine).write_text(json.dumps(side))
    with pytest.raises(ValueError, match="cannot deserialize"):
        TensorRTBackend(rig.engine, trt=newer, cudart=rig.cudart).activate()
    assert rig.cudart.live() == {k: 0 for k in rig.cudart.live()}


def test_engines_without_a_sidecar_are_refused(rig: Rig) -> None:
    sidecar_path(rig.engine).unlink()
    with pytest.raises(EngineRefused, match="no sidecar"):
        rig.backend().activate()


def test_refuses_a_tampered_engine(rig: Rig) -> None:
    rig.engine.write_bytes(rig.engine.read_bytes() + b"!")
    with pytest.raises(EngineRefused, match="SHA-256 differs"):
        rig.backend().activate()


def test_missing_engine_file(rig: Rig, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such engine file"):
        TensorRTBackend(tmp_path / "nope.engine", trt=rig.trt, cudart=rig.cudart).activate()


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt installed")
def test_without_tensorrt_the_backend_is_unavailable(rig: Rig) -> None:
    with pytest.raises(BackendUnavailable, match="tensorrt: TensorRT is not installed here"):
        TensorRTBackend(rig.engine, cudart=rig.cudart).activate()


@pytest.mark.skipif(importlib.util.find_spec("cuda") is not None, reason="cuda-python installed")
def test_without_cuda_python_the_backend_is_unavailable(rig: Rig) -> None:
    with pytest.raises(BackendUnavailable, match="cuda-python is not installed"):
        TensorRTBackend(rig.engine, trt=rig.trt).activate()
