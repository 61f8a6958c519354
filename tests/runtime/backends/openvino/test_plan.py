"""OpenVINO's options in backend selection: INT8 (symmetric file first), FP32 with the
precision stated, BF16 only on a BF16 CPU with a passed gate record for this model.onnx."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mrm_edge.runtime.backends.openvino.backend import OpenVinoBackend
from mrm_edge.runtime.backends.openvino.capability import OpenVinoInfo
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.selection import plan_backends, select_backend

from mrm_edge.artifacts import BF16_RECORD
from tests.fakes.machine import machine
from tests.runtime.test_model import make_model_dir

BF16_CPU = machine(bf16=(True, "CPU flags amx_bf16 (stated by the test)"))
NO_BF16 = machine(bf16=(False, "this CPU has no native BF16 (stated by the test)"))


@pytest.fixture()
def model(tmp_path: Path, shipped: Path) -> DeployedModel:
    return DeployedModel.load(make_model_dir(tmp_path / "m", precisions=("fp32", "int8")))


def labels(model: DeployedModel, precision: str | None = None, facts=None) -> list[str]:
    cands, _ = plan_backends(model, "openvino", precision, facts=facts)
    return [c.label for c in cands]


def test_options_in_static_order_with_their_gates(model: DeployedModel) -> None:
    cands, skipped = plan_backends(model, "openvino", facts=NO_BF16)
    assert [c.label for c in cands] == [
        "openvino CPU int8 (model.int8.onnx)",
        "openvino CPU fp32 (model.onnx)",
    ]
    assert all(c.measurable and c.family == "openvino" for c in cands)
    assert cands[1].gate == 1e-4 and cands[0].gate == pytest.approx(0.1)  # no figure: default
    assert skipped == ["OpenVINO BF16: this CPU has no native BF16 (stated by the test)"]
    backend = cands[1].make()
    assert isinstance(backend, OpenVinoBackend) and backend.inference_precision == "f32"


def test_bf16_needs_a_gate_record_for_this_model_onnx(model: DeployedModel) -> None:
    _, skipped = plan_backends(model, "openvino", "bf16", facts=BF16_CPU)
    assert "no BF16 gate record (model.bf16-openvino.json)" in skipped[0]
    assert "mrm-edge export --bf16" in skipped[0]
    record = model.directory / BF16_RECORD
    sha = model.onnx["fp32"].sidecar["sha256"]
    record.write_text(json.dumps({"source_sha256": "0" * 64, "passed": True}))
    _, skipped = plan_backends(model, "openvino", "bf16", facts=BF16_CPU)
    assert "measured for another model.onnx" in skipped[0]
    record.write_text(json.dumps({"source_sha256": sha, "passed": False, "message": "AUC -1 pt"}))
    _, skipped = plan_backends(model, "openvino", "bf16", facts=BF16_CPU)
    assert "BF16 gate failed (AUC -1 pt)" in skipped[0]
    record.write_text(
        json.dumps({"source_sha256": sha, "passed": True, "message": "ok", "max_abs_dp": 0.004})
    )
    cands, _ = plan_backends(model, "openvino", "bf16", facts=BF16_CPU)
    assert [c.label for c in cands] == ["openvino CPU bf16 (model.onnx)"]
    assert cands[0].gate == pytest.approx(0.006) and cands[0].precision == "bf16"
    assert cands[0].make().inference_precision == "bf16"
    # Without BF16 in the CPU the record does not matter: refused with the CPU's reason.
    _, skipped = plan_backends(model, "openvino", "bf16", facts=NO_BF16)
    assert skipped == ["OpenVINO BF16: this CPU has no native BF16 (stated by the test)"]


def test_missing_openvino_is_a_reason(model: DeployedModel) -> None:
    info = OpenVinoInfo(reason="OpenVINO is not installed (x); pip install 'mrm-edge[openvino]'")
    cands, skipped = plan_backends(model, "openvino", facts=machine(openvino=info))
    assert cands == [] and skipped == [info.reason]


def test_explicit_openvino_runs(model: DeployedModel) -> None:
    backend, why = select_backend(model, "openvino", "fp32")
    assert why.startswith("requested openvino → openvino CPU fp32 (model.onnx): OpenVINO 20")
    assert "inference precision f32, stated" in why
    with backend:
        assert backend.infer(__import__("numpy").zeros((2, 12, 1000), "float32")).shape == (2, 5)
