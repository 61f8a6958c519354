"""``auto`` by measurement (runtime/cpu_timing.py): the probe times the real CPU options, orders
them by what it measured, says the figures, drops an option that fails its accuracy gate or
to start, is cached per machine + model + runtime versions and measured again when any of
them changes. Runs on the small real ONNX graphs of tests.fakes (fractions of a second)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from mrm_edge.runtime import cpu_timing
from mrm_edge.runtime.backends import OnnxRuntimeBackend
from mrm_edge.runtime.backends.registry import Candidate
from mrm_edge.runtime.cpu_timing import (
    TIMING_ENV,
    TimingSettings,
    order_by_measurement,
    time_cpu_options,
    timing_enabled,
)
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.selection import plan_backends, select_backend

from tests.fakes import make_onnx
from tests.runtime.test_model import make_model_dir

FAST = TimingSettings(batch=2, calls=2, seconds_per_option=0.5)


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("MRM_EDGE_CACHE_DIR", str(root))
    return root / "probe"


@pytest.fixture()
def model(tmp_path: Path) -> DeployedModel:
    return DeployedModel.load(make_model_dir(tmp_path / "m", precisions=("fp32", "int8")))


def ort(path: Path, label: str, precision: str, gate: float, made: list[str]) -> Candidate:
    def make() -> OnnxRuntimeBackend:
        made.append(label)
        return OnnxRuntimeBackend(path, providers=["CPUExecutionProvider"])

    return Candidate(label, "onnxruntime", make, "static", True, precision, gate)


def test_enabled_by_default_off_by_env_or_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TIMING_ENV, raising=False)
    assert timing_enabled(None) and timing_enabled(True) and timing_enabled(FAST)
    assert not timing_enabled(False)
    for off in ("0", "off", "false", "no"):
        monkeypatch.setenv(TIMING_ENV, off)
        assert not timing_enabled(None)


def test_auto_orders_by_what_it_measured_and_says_the_figures(
    model: DeployedModel, cache: Path
) -> None:
    _, why = select_backend(model, auto_probe=FAST)
    assert "windows/s; measured here (probe just run, " in why
    assert "batch 2" in why
    for label in (
        "onnxruntime CPU int8 (model.int8.onnx)",
        "onnxruntime CPU fp32 (model.onnx)",
        "openvino CPU fp32 (model.onnx)",
    ):
        assert label in why  # every measured option is in the reason, with its figure
    doc = json.loads(next(cache.glob("*.json")).read_text())
    rows = {r["label"]: r for r in doc["options"]}
    fastest = max((r for r in rows.values() if r["passed"]), key=lambda r: r["windows_per_s"])
    assert why.startswith(f"{fastest['label']}: fastest CPU option, ")
    assert f"{fastest['windows_per_s']:.1f} windows/s" in why
    assert rows["openvino CPU fp32 (model.onnx)"]["max_abs_dp"] <= 1e-4
    # The order of the plan is the measured order, GPU-free here; torch has no place (no weights).
    cands, _ = plan_backends(model, auto_probe=FAST)
    speeds = [rows[c.label]["windows_per_s"] for c in cands if c.label in rows]
    assert speeds == sorted(speeds, reverse=True) and len(speeds) == len(cands)


def test_off_keeps_the_static_order_and_says_so(model: DeployedModel, cache: Path) -> None:
    backend, why = select_backend(model, auto_probe=False)
    assert backend.name == "onnxruntime" and backend.precision == "int8"
    assert "CPU options in their static order (MRM_EDGE_AUTO_PROBE=0: not measured)" in why
    assert not cache.exists()


def test_cached_then_measured_again_when_the_key_changes(
    model: DeployedModel, cache: Path, tmp_path: Path
) -> None:
    made: list[str] = []
    fp32 = ort(model.onnx["fp32"].path, "a fp32", "fp32", 1e-4, made)
    int8 = ort(model.onnx["int8"].path, "b int8", "int8", 1.0, made)
    first = time_cpu_options(model, [fp32, int8], FAST)
    assert not first.cached and made == ["a fp32", "b int8"]
    again = time_cpu_options(model, [fp32, int8], FAST)
    assert again.cached and made == ["a fp32", "b int8"]  # nothing activated: the cache answered
    assert again.options == first.options and again.path == first.path

    changes = {
        "installed_versions": lambda dists: {"onnxruntime": "9.9", "openvino": None},
        "machine_key": lambda: {"cpu": "Other CPU", "flags_sha256": "0", "cores": 64},
    }
    for what, fake in changes.items():
        made.clear()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(cpu_timing, what, fake)
            r = time_cpu_options(model, [fp32, int8], FAST)
        assert not r.cached and made == ["a fp32", "b int8"], what
        assert r.path != first.path
    # Another model: re-exported files have other SHA-256s (the tests' graphs use other seeds).
    other_dir = tmp_path / "other"
    shutil.copytree(model.directory, other_dir)
    make_onnx(other_dir / "model.int8.onnx", qdq=True, seed=5)
    from tests.runtime.test_model import write_sidecar

    write_sidecar(other_dir / "model.int8.onnx", {"precision": "int8", "labels": model.card.labels})
    other = DeployedModel.load(other_dir)
    made.clear()
    r = time_cpu_options(
        other,
        [
            ort(other.onnx["fp32"].path, "a fp32", "fp32", 1e-4, made),
            ort(other.onnx["int8"].path, "b int8", "int8", 1.0, made),
        ],
        FAST,
    )
    assert not r.cached and made == ["a fp32", "b int8"]
    assert len(list(cache.glob("*.json"))) == 4


def test_an_option_failing_its_gate_or_to_start_is_never_picked(
    model: DeployedModel, cache: Path, tmp_path: Path
) -> None:
    made: list[str] = []
    wrong = make_onnx(tmp_path / "wrong.onnx", seed=9)  # a real graph with other weights
    cands = [
        ort(model.onnx["fp32"].path, "ref fp32", "fp32", 1e-4, made),
        ort(wrong, "wrong int8", "int8", 1e-3, made),
        ort(tmp_path / "missing.onnx", "missing int8", "int8", 1.0, made),
    ]
    ordered, result = order_by_measurement(model, cands, FAST)
    assert [c.label for c in ordered] == ["ref fp32"]
    rows = {r["label"]: r for r in result.options}
    assert not rows["wrong int8"]["passed"] and rows["wrong int8"]["max_abs_dp"] > 1e-3
    assert "no such ONNX file" in rows["missing int8"]["error"]
    why = ordered[0].why
    assert "> gate 1.0e-03, refused" in why and "missing int8 failed to start (" in why


def test_options_the_budget_did_not_reach_keep_their_static_place(
    model: DeployedModel, cache: Path
) -> None:
    cands, _ = plan_backends(model, auto_probe=False)
    ordered, result = order_by_measurement(model, cands, replace(FAST, max_seconds=0.0))
    assert [c.label for c in ordered] == [c.label for c in cands]  # nothing measured
    assert all(r.get("unmeasured") for r in result.options)
    assert all("(not measured: the probe's budget was spent)" in c.why for c in ordered)
