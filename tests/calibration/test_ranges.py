"""Activation ranges from ONNX Runtime's calibrators on real calibration windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from mrm_edge.calibration.ranges import compute_ranges
from mrm_edge.calibration.windows import CalibrationSet, select_windows

from mrm_edge.data.errors import DataError
from tests.calibration import TinyModel, ptbxl_pool, tiny_int8_model

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="session")
def tiny(ptbxl_root: Path, tmp_path_factory) -> TinyModel:
    return tiny_int8_model(ptbxl_root, tmp_path_factory)


@pytest.fixture(scope="module")
def cset(ptbxl_root: Path) -> CalibrationSet:
    return select_windows(ptbxl_pool(ptbxl_root), 32, seed=0)


@pytest.fixture(scope="module")
def minmax(tiny: TinyModel, cset: CalibrationSet) -> dict[str, tuple[float, float]]:
    return compute_ranges(tiny.onnx, cset, "minmax", batch_size=16)


def _activations(model_path: Path, names: list[str], x: np.ndarray) -> dict[str, np.ndarray]:
    """Run the FP32 model with ``names`` exposed as extra graph outputs."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(model_path)))
    infos = {v.name: v for v in (*model.graph.value_info, *model.graph.input)}
    for name in names:
        if name not in {o.name for o in model.graph.output}:
            model.graph.output.append(infos[name])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(names, {"ecg": x})
    return dict(zip(names, out, strict=True))


def test_minmax_ranges_bracket_the_activations(tiny: TinyModel, cset, minmax) -> None:
    model = onnx.load(str(tiny.onnx))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    gemms = [n for n in model.graph.node if n.op_type == "Gemm"]
    # Every Conv/Gemm data input and output has a range, nothing else does.
    expected = {t for n in convs + gemms for t in (n.input[0], n.output[0])}
    assert set(minmax) == expected
    names = [convs[0].input[0], convs[0].output[0], convs[-1].output[0], gemms[0].input[0]]
    acts = _activations(tiny.onnx, names, cset.x)
    for name in names:
        lo, hi = minmax[name]
        a = acts[name]
        # Min/max of the calibration activations, up to float32 rounding of the reduction.
        assert lo == pytest.approx(float(a.min()), rel=1e-5, abs=1e-6)
        assert hi == pytest.approx(float(a.max()), rel=1e-5, abs=1e-6)
        assert lo < hi


def test_histogram_methods_clip_inside_minmax(tiny: TinyModel, cset, minmax) -> None:
    perc = compute_ranges(tiny.onnx, cset, "percentile", batch_size=16)
    ent = compute_ranges(tiny.onnx, cset, "entropy", batch_size=16)
    for ranges in (perc, ent):
        assert set(ranges) == set(minmax)
        for name, (lo, hi) in ranges.items():
            mlo, mhi = minmax[name]
            assert mlo - 1e-6 <= lo <= hi <= mhi + 1e-6 * max(1.0, abs(mhi))
    # Clipping outliers is the point of these methods: most ranges get narrower.
    narrower = [n for n in minmax if perc[n][1] - perc[n][0] < 0.99 * (minmax[n][1] - minmax[n][0])]
    assert len(narrower) > len(minmax) // 2


def test_ranges_do_not_depend_on_batch_size(tiny: TinyModel, cset) -> None:
    # ORT's histogram collector sizes its bins on the first batch; we seed it with the
    # final range, so entropy gives the same answer for any batch size.
    a = compute_ranges(tiny.onnx, cset, "entropy", batch_size=8)
    b = compute_ranges(tiny.onnx, cset, "entropy", batch_size=32)
    assert a == b


def test_bad_arguments_are_clear_errors(tiny: TinyModel, cset) -> None:
    with pytest.raises(ValueError, match=r"method is 'kl', expected one of minmax, entropy"):
        compute_ranges(tiny.onnx, cset, "kl")  # type: ignore[arg-type]
    short = CalibrationSet(cset.x[:, :, :500], cset.record_ids, None, [], {}, 100)
    with pytest.raises(DataError, match=r"expects \[batch, 12, 1000\] \(wrong window length"):
        compute_ranges(tiny.onnx, short)
    with pytest.raises(ValueError, match=r"no such ONNX file"):
        compute_ranges(tiny.onnx.with_name("absent.onnx"), cset)
