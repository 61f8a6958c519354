"""The machine's facts: probed once into one value that backend selection reads, and a
made-up value decides the plan instead of what is installed here."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
from mrm_edge.runtime.backends.tensorrt.capability import GpuInfo
from mrm_edge.runtime.facts import MachineFacts, probe_machine
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.selection import plan_backends

from tests.fakes.machine import machine
from tests.fakes.tensorrt import FakeCudaRuntime, FakeTensorRT
from tests.runtime.test_model import make_model_dir


def test_this_machine_is_described_with_reasons_for_what_it_lacks() -> None:
    facts = probe_machine()
    assert "CPUExecutionProvider" in facts.ort_providers and facts.ort_reason is None
    assert facts.openvino.available == (importlib.util.find_spec("openvino") is not None)
    assert isinstance(facts.bf16[0], bool) and facts.bf16[1]
    if facts.gpu is None:  # no CUDA device here: one line says why
        assert facts.gpu_reason and "\n" not in facts.gpu_reason
    for flavour, info in facts.tensorrt.items():
        assert info.flavour == flavour and (info.available or info.reason)
    assert facts.trt_modules is None and facts.cudart is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts.ort_providers = ()  # type: ignore[misc]


def test_the_gpu_doubles_are_described_and_carried_to_the_backend() -> None:
    trt, cudart = FakeTensorRT("10.3.0"), FakeCudaRuntime()
    facts = probe_machine(trt, cudart)
    assert isinstance(facts.gpu, GpuInfo) and facts.gpu.name == "Fake GPU (test double)"
    assert facts.tensorrt["tensorrt"].version == "10.3.0"
    assert "not considered" in str(facts.tensorrt["tensorrt-rtx"].reason)
    assert facts.trt_modules == {"tensorrt": trt} and facts.cudart is cudart


def test_a_made_up_machine_decides_the_plan(tmp_path: Path) -> None:
    m = DeployedModel.load(make_model_dir(tmp_path / "m", precisions=("fp32", "int8")))
    none = machine(ort_providers=(), ort_reason="onnxruntime is not installed (stated)")
    cands, skipped = plan_backends(m, "onnxruntime", facts=none)
    assert cands == [] and skipped == ["onnxruntime is not installed (stated)"]
    cands, _ = plan_backends(
        m, "onnxruntime", facts=machine(ort_providers=("CPUExecutionProvider",))
    )
    assert [c.label.split(" (")[0] for c in cands] == [
        "onnxruntime CPU int8",
        "onnxruntime CPU fp32",
    ]


def test_planning_with_facts_probes_nothing(tmp_path: Path, monkeypatch) -> None:
    from mrm_edge.runtime import selection

    m = DeployedModel.load(make_model_dir(tmp_path / "m", precisions=("fp32",)))
    facts: MachineFacts = machine()

    def no_probe(*_a: object) -> MachineFacts:
        raise AssertionError("probed again")

    monkeypatch.setattr(selection, "probe_machine", no_probe)
    cands, _ = plan_backends(m, facts=facts)
    assert cands[0].label == "onnxruntime CPU fp32 (model.onnx)"
    with pytest.raises(AssertionError, match="probed again"):
        plan_backends(m)
