"""The INT8 accuracy gate (export/int8/gate.py) and its sensitivity sweep (export/int8/sweep.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from mrm_edge.export.int8.gate import Int8Options, build_int8
from mrm_edge.export.int8.quantize import load_onnx, quantized_nodes

from tests.calibration import LABELS, TinyModel

pytestmark = pytest.mark.realdata


def test_gate_passes_and_reports_figures(tiny: TinyModel, cset, heldout, cache_dir, tmp_path):
    x, y = heldout
    out = tmp_path / "model.int8.onnx"
    report = build_int8(tiny.onnx, out, cset, x, y, Int8Options(cache_dir=cache_dir))
    assert report.passed, report.message
    assert report.result.path == out and out.is_file()
    assert report.auc_fp32 > 0.7  # the tiny model is well above chance: the gate can bite
    assert report.auc_drop <= 0.005 and report.auc_drop == pytest.approx(
        report.auc_fp32 - report.auc_int8
    )
    assert report.n_heldout == 64 and set(report.per_label) == set(LABELS)
    assert report.float_layers == [] and report.sensitivity == []
    d = json.loads(json.dumps(report.to_dict()))
    assert d["passed"] and d["method"] == "minmax" and d["activation_type"] == "uint8"
    assert d["auc_drop_pt"] == pytest.approx(100 * report.auc_drop)
    assert d["result"]["calibration"]["folds"] == list(range(1, 9))
    assert d["result"]["calibration"]["n_windows"] == 96
    assert "passes" in report.message


def test_sensitivity_sweep_keeps_layers_float_and_reports_failure(
    tiny: TinyModel, cset, heldout, cache_dir, tmp_path: Path
) -> None:
    x, y = heldout
    out = tmp_path / "model.int8.onnx"
    out.write_bytes(b"stale model from an earlier run")
    # Impossible: zero AUC drop *and* bit-identical probabilities.
    report = build_int8(
        tiny.onnx,
        out,
        cset,
        x,
        y,
        Int8Options(
            max_auc_drop=0.0,
            max_prob_delta=0.0,
            cache_dir=cache_dir,
            max_float_layers=2,
            sweep_windows=8,
        ),
    )
    assert not report.passed
    # A model that failed its gate is not left where a runtime would load it.
    assert not out.exists() and report.result.path == tmp_path / "model.int8.rejected.onnx"
    assert report.result.path.is_file()
    # The sweep scored every quantized layer, most sensitive first.
    sens = report.sensitivity
    assert len(sens) == 44 and "only this layer quantized" in report.sensitivity_metric
    mses = [s["mse"] for s in sens]
    assert mses == sorted(mses, reverse=True) and mses[0] > 0
    # The two most sensitive layers were kept in float, each with its reason.
    kept = [f["node"] for f in report.float_layers]
    assert kept == [s["node"] for s in sens[:2]]
    assert all("sensitivity sweep" in f["reason"] for f in report.float_layers)
    assert report.result.excluded_nodes == kept
    assert set(report.result.float_nodes) == set(kept)
    assert not set(kept) & set(quantized_nodes(load_onnx(report.result.path)))
    assert len(quantized_nodes(load_onnx(report.result.path))) == 42
    assert report.initial["n_quantized"] == 44
    assert not report.passed
    assert re.search(r"fails the gate .*2 layer\(s\) kept in float", report.message)
    assert "\n" not in report.message
    json.dumps(report.to_dict())

    # A gate that keeping the most sensitive layer in float can meet: the same sweep
    # ranks the same layer first, and the gate passes with exactly that layer in float.
    after_one = report.float_layers[0]["max_abs_prob_delta_after"]
    if after_one >= report.initial["max_abs_prob_delta"]:
        pytest.skip("keeping the top layer in float does not lower max |Δp| for this model")
    rescued = build_int8(
        tiny.onnx,
        out,
        cset,
        x,
        y,
        Int8Options(
            max_auc_drop=1.0,
            max_prob_delta=after_one,
            cache_dir=cache_dir,
            max_float_layers=3,
            sweep_windows=8,
        ),
    )
    assert rescued.passed, rescued.message
    assert [f["node"] for f in rescued.float_layers] == kept[:1]
    assert out.is_file() and not report.result.path.exists()  # the stale rejection is cleared
    assert "1 layer(s) kept in float" in rescued.message
