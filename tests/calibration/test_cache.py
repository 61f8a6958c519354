"""The calibration cache: hits skip calibration, any change misses, corrupt files never crash."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from mrm_edge.calibration.cache import CalibrationCache, CalibrationCacheWarning, calibration_key
from mrm_edge.calibration.windows import CalibrationSet, select_windows
from mrm_edge.export.int8.quantize import QuantizeOptions, quantize_int8

from tests.calibration import TinyModel, ptbxl_pool, tiny_int8_model

pytestmark = pytest.mark.realdata

KEY = "ab" * 32
RANGES = {"conv_in": (-1.5, 2.25), "conv_out": (0.0, 3.0)}


@pytest.fixture(scope="session")
def tiny(ptbxl_root: Path, tmp_path_factory) -> TinyModel:
    return tiny_int8_model(ptbxl_root, tmp_path_factory)


@pytest.fixture(scope="module")
def cset(ptbxl_root: Path) -> CalibrationSet:
    return select_windows(ptbxl_pool(ptbxl_root), 48, seed=0)


def test_round_trip_and_miss(tmp_path: Path) -> None:
    cache = CalibrationCache(tmp_path / "cache")
    assert cache.load(KEY) is None  # nothing yet, and no directory needed for that
    path = cache.save(KEY, RANGES, {"method": "minmax"})
    assert path == tmp_path / "cache" / f"{KEY}.json"
    assert cache.load(KEY) == RANGES
    assert json.loads(path.read_text())["meta"] == {"method": "minmax"}
    with pytest.raises(ValueError, match=r"not a hex digest"):
        cache.load("../escape")


@pytest.mark.parametrize(
    "content",
    [
        "{ truncated",
        "[1, 2]",
        json.dumps({"format": 1, "key": "cd" * 32, "ranges": {"t": [0, 1]}}),  # other key
        json.dumps({"format": 1, "key": KEY, "ranges": {"t": [2.0, 1.0]}}),  # min > max
        json.dumps({"format": 1, "key": KEY, "ranges": {"t": ["0", 1]}}),
        '{"format": 1, "key": "' + KEY + '", "ranges": {"t": [NaN, 1]}}',
        json.dumps({"format": 99, "key": KEY, "ranges": {"t": [0, 1]}}),
    ],
)
def test_corrupt_entry_is_a_warned_miss(tmp_path: Path, content: str) -> None:
    cache = CalibrationCache(tmp_path)
    (tmp_path / f"{KEY}.json").write_text(content)
    with pytest.warns(CalibrationCacheWarning, match=r"ignoring unusable calibration cache"):
        assert cache.load(KEY) is None


def test_key_covers_model_windows_method_and_params(
    tiny: TinyModel, cset: CalibrationSet, ptbxl_root: Path, tmp_path: Path
) -> None:
    params = {"method": "minmax", "op_types": ["Conv", "Gemm", "MatMul"]}
    key = calibration_key(tiny.onnx, cset, "minmax", params)
    assert key == calibration_key(tiny.onnx, cset, "minmax", dict(params))
    other_set = select_windows(ptbxl_pool(ptbxl_root), 48, seed=1)
    changed_model = tmp_path / "m.onnx"
    m = onnx.load(str(tiny.onnx))
    m.doc_string = "edited"
    onnx.save(m, str(changed_model))
    others = {
        calibration_key(tiny.onnx, other_set, "minmax", params),
        calibration_key(tiny.onnx, cset, "entropy", params),
        calibration_key(tiny.onnx, cset, "minmax", {**params, "op_types": ["Conv"]}),
        calibration_key(changed_model, cset, "minmax", params),
    }
    assert key not in others and len(others) == 4


def test_quantize_hits_the_cache_and_recovers_from_corruption(
    tiny: TinyModel, cset: CalibrationSet, ptbxl_root: Path, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    first, _ = quantize_int8(
        tiny.onnx, tmp_path / "a.onnx", cset, QuantizeOptions(cache_dir=cache_dir)
    )
    assert not first.ranges_cached and first.cache_file is not None
    assert Path(first.cache_file).is_file()

    second, _ = quantize_int8(
        tiny.onnx, tmp_path / "b.onnx", cset, QuantizeOptions(cache_dir=cache_dir)
    )
    assert second.ranges_cached and second.cache_key == first.cache_key
    assert second.ranges_seconds < first.ranges_seconds / 5
    # Same ranges, same model: the cached path changes nothing in the result.
    a, b = onnx.load(str(tmp_path / "a.onnx")), onnx.load(str(tmp_path / "b.onnx"))
    assert a.graph.SerializeToString() == b.graph.SerializeToString()

    # Another calibration set is another key: calibrated afresh, not served stale.
    other = select_windows(ptbxl_pool(ptbxl_root), 48, seed=5)
    third, _ = quantize_int8(
        tiny.onnx, tmp_path / "c.onnx", other, QuantizeOptions(cache_dir=cache_dir)
    )
    assert not third.ranges_cached and third.cache_key != first.cache_key
    assert len(list(cache_dir.glob("*.json"))) == 2

    # A damaged entry: warned about, recomputed, rewritten.
    Path(first.cache_file).write_text('{"format": 1, "key": "')
    with pytest.warns(CalibrationCacheWarning):
        fourth, _ = quantize_int8(
            tiny.onnx, tmp_path / "d.onnx", cset, QuantizeOptions(cache_dir=cache_dir)
        )
    assert not fourth.ranges_cached
    assert CalibrationCache(cache_dir).load(first.cache_key) is not None
    d = onnx.load(str(tmp_path / "d.onnx"))
    assert d.graph.SerializeToString() == a.graph.SerializeToString()


def test_a_cache_path_that_is_a_file_never_fails_the_export(
    tiny: TinyModel, cset: CalibrationSet, tmp_path: Path
) -> None:
    """A cache that cannot be written (here: its path is a file, as a full or read-only disk
    would be) is a warning and a recalibration; the INT8 model is written all the same and
    the file in the cache's place is left as it was."""
    blocker = tmp_path / "cache"
    blocker.write_text("not a directory")
    with pytest.warns(UserWarning, match=r"calibration cache not written"):
        result, _ = quantize_int8(
            tiny.onnx, tmp_path / "a.onnx", cset, QuantizeOptions(cache_dir=blocker)
        )
    assert not result.ranges_cached and result.cache_file is None
    assert onnx.load(str(tmp_path / "a.onnx")).graph.node
    assert blocker.read_text() == "not a directory"
