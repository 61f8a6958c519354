"""The BF16 gate record (export/bf16.py): refused with the reason on a CPU without BF16 (and
nothing written); its measurement and record, and the OpenVINO plan accepting it, run here
with an f32 OpenVINO backend standing in for the bf16 one (said in each test), on the real
held-out PTB-XL windows. On a BF16 CPU, tests/runtime/backends/openvino runs the real gate."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
import pytest

from mrm_edge.artifacts import BF16_RECORD, SHIPPED_MODEL_DIR

pytest.importorskip(
    "openvino", reason="OpenVINO is not installed: pip install 'mrm-edge[openvino]'"
)


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    out = tmp_path / "m"
    out.mkdir()
    for name in ("card.json", "model.onnx", "model.onnx.json"):
        shutil.copy(SHIPPED_MODEL_DIR / name, out / name)
    return out


def bf16_cpu() -> tuple[bool, str]:
    from mrm_edge.runtime.backends.openvino.capability import bf16_support, cpu_flags

    return bf16_support(None, cpu_flags())


def test_refused_with_the_reason_on_a_cpu_without_bf16(model_dir: Path) -> None:
    has, why = bf16_cpu()
    if has:
        pytest.skip(f"this CPU has BF16 ({why}): no refusal to see")
    from mrm_edge.export.bf16 import measure_bf16_gate
    from mrm_edge.runtime.backends import BackendUnavailable

    from mrm_edge.cli.export import _bf16_gate

    with pytest.raises(BackendUnavailable, match="BF16 refused: this CPU has no native BF16"):
        measure_bf16_gate(model_dir)
    assert not (model_dir / BF16_RECORD).exists()
    with pytest.raises(click.ClickException) as e:
        _bf16_gate(model_dir, None)
    assert e.value.message.startswith("--bf16: BF16 refused: this CPU has no native BF16")


def test_record_written_and_accepted_by_the_plan(
    model_dir: Path, ptbxl_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With OpenVINO at **f32** standing in for bf16 (no BF16 CPU here): the figures are
    real (f32 vs ORT FP32 on 64 held-out windows), the record and the plan's use are the
    code a BF16 CPU runs."""
    from mrm_edge.export import bf16
    from mrm_edge.runtime.backends.openvino.backend import OpenVinoBackend
    from mrm_edge.runtime.model import DeployedModel
    from mrm_edge.runtime.selection import plan_backends

    from tests.fakes.machine import machine

    def f32(path: Path) -> OpenVinoBackend:
        return OpenVinoBackend(path, inference_precision="f32")

    monkeypatch.setattr(bf16, "_bf16_backend", f32)
    record = bf16.measure_bf16_gate(model_dir, ptbxl_root)
    assert record["passed"] and record["windows"] == 64 and "held-out" in record["data"]
    assert record["max_abs_prob_delta"] <= 1e-4 and abs(record["auc_change_pt"]) <= 0.01
    assert record["runtime"].endswith("(f32)")  # says what was measured
    assert (model_dir / BF16_RECORD).is_file()
    model = DeployedModel.load(model_dir)
    bf16 = machine(bf16=(True, "stated by the test"))
    cands, _ = plan_backends(model, "openvino", "bf16", facts=bf16)
    assert [c.label for c in cands] == ["openvino CPU bf16 (model.onnx)"]
    assert "BF16 passes: max |Δp|" in cands[0].why
