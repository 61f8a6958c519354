"""cuda-python helpers against the FakeCudaRuntime test double (no GPU here), plus a negative
control showing the double's deferred, reorderable streams catch a missing dependency."""

from __future__ import annotations

import numpy as np
import pytest
from mrm_edge.runtime.backends.cuda import api as cuda_api
from mrm_edge.runtime.backends.cuda import resources as cu

from tests.fakes.tensorrt import FakeCudaRuntime, cudaError_t


def test_check_unpacks_results_and_raises_one_line() -> None:
    assert cuda_api.check((cudaError_t.cudaSuccess,)) is None
    assert cuda_api.check((cudaError_t.cudaSuccess, 42)) == 42
    assert cuda_api.check((cudaError_t.cudaSuccess, 1, 2)) == (1, 2)
    with pytest.raises(cuda_api.CudaError) as e:
        cuda_api.check((cudaError_t.cudaErrorMemoryAllocation, 0), "cudaMalloc(1024)")
    assert str(e.value) == "cudaMalloc(1024): cudaErrorMemoryAllocation"


def test_buffers_are_freed_on_exit_and_close_is_idempotent() -> None:
    rt = FakeCudaRuntime()
    with cu.PinnedHostBuffer((2, 3), np.float32, rt) as host, cu.DeviceBuffer(24, rt) as dev:
        assert rt.live()["pinned"] == 1 and rt.live()["device"] == 1
        host.array[:] = np.arange(6, dtype=np.float32).reshape(2, 3)
        # The numpy view is the pinned memory itself.
        raw = rt.read(host.ptr, 24, kind="pinned")
        assert np.frombuffer(raw, np.float32).tolist() == [0, 1, 2, 3, 4, 5]
        assert dev.nbytes == 24
    assert rt.live()["pinned"] == 0 and rt.live()["device"] == 0
    assert host.array is None and host.ptr is None
    host.close()
    dev.close()  # no double free


def test_failed_allocation_raises() -> None:
    with pytest.raises(cuda_api.CudaError, match=r"cudaMalloc\(0\): cudaErrorInvalidValue"):
        cu.DeviceBuffer(0, FakeCudaRuntime())


def test_round_trip_through_device_memory_on_streams() -> None:
    rt = FakeCudaRuntime()
    with (
        cu.Stream(rt) as s,
        cu.Event(rt) as ev,
        cu.PinnedHostBuffer((4,), np.float32, rt) as a,
        cu.PinnedHostBuffer((4,), np.float32, rt) as b,
        cu.DeviceBuffer(16, rt) as d,
    ):
        a.array[:] = [1, 2, 3, 4]
        cuda_api.as_cuda_api(rt).memcpy_htod_async(d.ptr, a.ptr, 16, s.raw)
        cuda_api.as_cuda_api(rt).memcpy_dtoh_async(b.ptr, d.ptr, 16, s.raw)
        ev.record(s)
        assert b.array.tolist() == [0, 0, 0, 0]  # nothing has run: the device waits for the host
        ev.synchronize()
        assert b.array.tolist() == [1, 2, 3, 4]
    assert rt.live() == {k: 0 for k in rt.live()}


def test_async_copies_refuse_pageable_memory() -> None:
    rt = FakeCudaRuntime()
    pageable = np.zeros(4, np.float32)
    with cu.Stream(rt) as s, cu.DeviceBuffer(16, rt) as d, pytest.raises(cuda_api.CudaError):
        cuda_api.as_cuda_api(rt).memcpy_htod_async(d.ptr, pageable.ctypes.data, 16, s.raw)


def test_graph_capture_replays_the_captured_work() -> None:
    rt = FakeCudaRuntime()
    with (
        cu.Stream(rt) as s,
        cu.PinnedHostBuffer((1,), np.float32, rt) as h,
        cu.DeviceBuffer(4, rt) as d,
    ):
        cuda_api.as_cuda_api(rt).begin_capture(s.raw)
        cuda_api.as_cuda_api(rt).memcpy_htod_async(d.ptr, h.ptr, 4, s.raw)
        cuda_api.as_cuda_api(rt).memcpy_dtoh_async(h.ptr, d.ptr, 4, s.raw)
        graph = cu.end_capture(rt, s)
        assert rt.enqueued == []  # captured, not run
        with graph:
            h.array[0] = 7
            graph.launch(s)
            graph.launch(s)
            s.synchronize()
            assert rt.executed == ["graph:HostToDevice 4B", "graph:DeviceToHost 4B"] * 2
        assert rt.live()["graph_execs"] == 0 and rt.live()["graphs"] == 0
