"""Calibration windows for TensorRT's INT8 entropy calibrator.

TensorRT and a GPU do not exist on the machines these tests run on, so two test doubles
(tests/fakes/calibrator.py) stand in for them: ``MiniTensorRT``, a module object whose
``IInt8EntropyCalibrator2`` is a plain base class with TensorRT's constructor convention,
and ``FakeDevice``, an allocator whose "device memory" is a host byte buffer. Everything
the calibrator decides itself — batching, the dropped last batch, the cache and its
validity — is real.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.calibration.tensorrt_calibrator import CalibrationBatches, make_entropy_calibrator
from mrm_edge.calibration.windows import CalibrationSet, select_windows
from mrm_edge.runtime.backends.tensorrt.capability import TensorRTUnavailable

from tests.calibration import ptbxl_pool
from tests.fakes.calibrator import FakeDevice, MiniTensorRT

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def cset(ptbxl_root: Path) -> CalibrationSet:
    return select_windows(ptbxl_pool(ptbxl_root), 70, seed=0)


def test_fixed_size_batches_drop_the_partial_last_one(cset: CalibrationSet) -> None:
    batches = CalibrationBatches(cset, batch_size=32)
    assert (batches.n_batches, batches.dropped) == (2, 6)
    assert batches.batch_shape == (32, 12, 1000) and batches.batch_nbytes == 32 * 12 * 1000 * 4
    got = []
    while (b := batches.next_batch()) is not None:
        assert b.shape == (32, 12, 1000) and b.dtype == np.float32 and b.flags.c_contiguous
        got.append(b)
    assert len(got) == 2 and batches.next_batch() is None
    np.testing.assert_array_equal(np.concatenate(got), cset.x[:64])
    batches.reset()
    np.testing.assert_array_equal(batches.next_batch(), cset.x[:32])
    with pytest.raises(ValueError, match=r"70 windows, fewer than one batch of 128"):
        CalibrationBatches(cset, batch_size=128)
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer"):
        CalibrationBatches(cset, batch_size=0)


def test_cache_is_only_offered_for_the_same_windows_and_batch(
    cset: CalibrationSet, ptbxl_root: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "trt" / "calib.cache"
    batches = CalibrationBatches(cset, 32, cache)
    assert batches.read_cache() is None  # nothing yet: TensorRT must calibrate
    blob = b"TRT-100300-EntropyCalibration2\necg: 3c010a14\n"
    batches.write_cache(blob)
    assert cache.read_bytes() == blob
    assert CalibrationBatches(cset, 32, cache).read_cache() == blob
    assert CalibrationBatches(cset, 16, cache).read_cache() is None  # other batch size
    other = select_windows(ptbxl_pool(ptbxl_root), 70, seed=1)
    assert CalibrationBatches(other, 32, cache).read_cache() is None  # other windows
    cache.with_name("calib.cache.json").write_text("{ broken")
    assert CalibrationBatches(cset, 32, cache).read_cache() is None
    assert CalibrationBatches(cset, 32, None).read_cache() is None


def test_entropy_calibrator_feeds_device_batches(cset: CalibrationSet, tmp_path: Path) -> None:
    device = FakeDevice()
    cache = tmp_path / "calib.cache"
    cal = make_entropy_calibrator(cset, cache, 32, trt_module=MiniTensorRT, allocator=device)
    assert isinstance(cal, MiniTensorRT.IInt8EntropyCalibrator2) and cal.base_initialised
    assert cal.get_batch_size() == 32
    assert cal.read_calibration_cache() is None
    for k in range(2):
        ptrs = cal.get_batch(["ecg"])
        assert len(ptrs) == 1 and isinstance(ptrs[0], int) and ptrs[0] in device.memory
        on_device = np.frombuffer(device.memory[ptrs[0]], np.float32).reshape(32, 12, 1000)
        np.testing.assert_array_equal(on_device, cset.x[32 * k : 32 * (k + 1)])
    assert cal.get_batch(["ecg"]) is None  # the 6 leftover windows are not padded in
    with pytest.raises(ValueError, match=r"one input"):
        cal.get_batch(["ecg", "mask"])
    cal.write_calibration_cache(memoryview(b"scales"))  # TensorRT hands a buffer object
    again = make_entropy_calibrator(cset, cache, 32, trt_module=MiniTensorRT, allocator=device)
    assert again.read_calibration_cache() == b"scales"  # the rebuild skips calibration
    cal.free()
    assert device.freed == [ptrs[0]]


def test_cuda_path_with_the_project_cuda_double(cset: CalibrationSet) -> None:
    # The default allocator (pinned staging buffer, async copy, stream sync) against the
    # shared CUDA runtime double, which refuses pageable async copies and defers stream
    # work until a sync: a missing sync or a pageable source would show up here.
    from tests.fakes.tensorrt import FakeCudaRuntime
    from tests.fakes.tensorrt import FakeTensorRT as SharedFakeTensorRT

    cuda = FakeCudaRuntime()
    trt = SharedFakeTensorRT("10.3.0", cuda=cuda)
    cal = make_entropy_calibrator(cset, None, 32, trt_module=trt, cudart=cuda)
    assert isinstance(cal, trt.IInt8Calibrator)
    assert cal.calibration_id == f"{cset.fingerprint()}:batch32"
    (ptr,) = cal.get_batch(["ecg"])
    batch = np.frombuffer(cuda.read(ptr, 32 * 12 * 1000 * 4), np.float32).reshape(32, 12, 1000)
    np.testing.assert_array_equal(batch, cset.x[:32])
    assert cuda.live()["device"] == 1 and cuda.live()["pinned"] == 1
    cal.free()
    assert cuda.live() == {k: 0 for k in cuda.live()}  # nothing leaked


def test_missing_tensorrt_is_a_clear_error(
    cset: CalibrationSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as if not installed
    with pytest.raises(TensorRTUnavailable, match=r"TensorRT is needed.*JetPack 6.*pip"):
        make_entropy_calibrator(cset, None, 32)
