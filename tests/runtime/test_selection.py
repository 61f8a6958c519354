"""Backend selection: auto picks the fastest option available and says why; an explicit
request that cannot run is refused with the reason; the PyTorch reference backend.

TensorRT is exercised through the test doubles (tests/fakes/tensorrt.py), not a real
TensorRT or GPU; the ONNX Runtime CUDA provider is absent here, so only its planning and its
failure to start are tested."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.backends import (
    BackendUnavailable,
    OnnxRuntimeBackend,
    TensorRTBackend,
    TorchBackend,
)
from mrm_edge.runtime.facts import probe_machine
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.selection import (
    activate_backend,
    check_outputs,
    plan_backends,
    select_backend,
)

from tests.fakes import make_onnx, stamp_sidecars
from tests.fakes.machine import machine
from tests.runtime.test_model import make_model_dir, with_int8_sym

CUDA_AND_CPU = machine(ort_providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
ORT_CPU = machine(ort_providers=("CPUExecutionProvider",))


def load(tmp_path: Path, precisions: tuple[str, ...]) -> DeployedModel:
    return DeployedModel.load(make_model_dir(tmp_path / "m", precisions=precisions))


def test_auto_picks_ort_int8_on_cpu_and_says_why(tmp_path: Path) -> None:
    m = load(tmp_path, ("fp32", "int8"))
    backend, why = select_backend(m)
    assert isinstance(backend, OnnxRuntimeBackend) and backend.precision == "int8"
    assert backend.onnx_path.name == "model.int8.onnx" and not backend.is_active
    assert why.startswith("onnxruntime CPU int8 (model.int8.onnx)")
    # Why INT8 comes first, without a figure measured on some other machine (issue 11).
    assert "INT8 first: ONNX Runtime CPU runs model.int8.onnx in fused QLinear kernels" in why
    assert "3.5-4x" not in why and "2-core" not in why
    assert "TensorRT" in why and "no CUDAExecutionProvider" in why  # why not the faster ones
    assert "install it on the GPU machine" not in why  # auto keeps the hint out


def test_auto_picks_fp32_without_int8(tmp_path: Path) -> None:
    backend, why = select_backend(load(tmp_path, ("fp32",)))
    assert backend.precision == "fp32" and "no model.int8.onnx" in why


def test_corrupted_int8_falls_back_to_fp32_and_says_so(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m", precisions=("fp32", "int8"))
    (d / "model.int8.onnx").write_bytes(b"not onnx")
    backend, why = select_backend(DeployedModel.load(d))
    assert backend.precision == "fp32"
    assert "model.int8.onnx refused" in why and "SHA-256" in why


def test_precision_restricts_the_choice(tmp_path: Path) -> None:
    m = load(tmp_path, ("fp32", "int8"))
    backend, why = select_backend(m, "onnxruntime", "fp32")
    assert backend.precision == "fp32" and why.startswith("requested onnxruntime")
    with pytest.raises(BackendUnavailable, match=r"onnxruntime fp16: .*no verified ONNX for fp16"):
        select_backend(m, "onnxruntime", "fp16")


def test_unavailable_explicit_backends_are_refused_with_the_reason(tmp_path: Path) -> None:
    m = load(tmp_path, ("fp32",))
    with pytest.raises(BackendUnavailable) as e:
        select_backend(m, "tensorrt")
    if importlib.util.find_spec("tensorrt_rtx") is not None:
        # TensorRT-RTX (installed with the tests' extras) is real, but no GPU is here.
        assert str(e.value).startswith("tensorrt: TensorRT-RTX ") and "but no GPU" in str(e.value)
    else:
        assert str(e.value).startswith("tensorrt: TensorRT: tensorrt cannot be imported")
        assert "pip install" in e.value.reason
    assert "\n" not in str(e.value)
    with pytest.raises(BackendUnavailable, match=r"torch: PyTorch: no weights"):
        select_backend(m, "torch")
    with pytest.raises(ValueError, match="expected one of auto, tensorrt"):
        select_backend(m, "nosuch")
    with pytest.raises(ValueError, match="precision 'bf17'"):
        select_backend(m, "auto", "bf17")
    # bf16 is a precision now (OpenVINO on BF16 CPUs, issue 12): refused here with the reason.
    with pytest.raises(BackendUnavailable, match=r"auto bf16: .*BF16"):
        select_backend(m, "auto", "bf16")


def test_cuda_provider_ranks_first_with_fp16_then_fails_to_start_here(tmp_path: Path) -> None:
    m = load(tmp_path, ("fp32", "fp16", "int8"))
    cands, _ = plan_backends(m, facts=CUDA_AND_CPU)
    assert [c.label.split(" (")[0] for c in cands[:4]] == [
        "onnxruntime CUDA fp16",
        "onnxruntime CUDA fp32",
        "onnxruntime CUDA int8",
        "onnxruntime CPU int8",
    ]
    # This onnxruntime has no CUDA provider: activation fails and auto moves on, saying so.
    backend, why, _ = activate_backend(m, facts=CUDA_AND_CPU)
    try:
        assert backend.is_active and backend.device == "cpu" and backend.precision == "int8"
        assert "onnxruntime CUDA fp16 (model.fp16.onnx) failed to start" in why
    finally:
        backend.deactivate()


def test_tensorrt_engine_for_this_gpu_ranks_first(tmp_path: Path) -> None:
    """With the TensorRT / CUDA test doubles: an engine built for the (fake) GPU wins, runs,
    and agrees with ONNX Runtime; an engine for another GPU is passed over with the reason."""
    from mrm_edge.export.tensorrt.builder import build_or_load
    from mrm_edge.export.tensorrt.plan import BuildOptions
    from mrm_edge.runtime.backends.tensorrt.capability import probe_gpu, probe_tensorrt

    from tests.fakes.tensorrt import FakeCudaRuntime, FakeDeviceProp, FakeTensorRT

    d = make_model_dir(tmp_path / "m", precisions=("fp32", "fp16", "int8"))
    cudart = FakeCudaRuntime()
    trt = FakeTensorRT("10.3.0", cuda=cudart)
    gpu, _ = probe_gpu(0, cudart)
    build_or_load(
        d / "model.fp16.onnx", d, BuildOptions("fp16", (1, 8, 16)), gpu, probe_tensorrt(trt), trt
    )
    m = DeployedModel.load(d)
    backend, why, _ = activate_backend(m, facts=probe_machine(trt, cudart))
    try:
        assert isinstance(backend, TensorRTBackend) and backend.precision == "fp16"
        assert why.startswith("tensorrt fp16 (model.fp16.") and "engine built for this" in why
        x = np.random.default_rng(0).normal(size=(3, 12, 1000)).astype(np.float32)
        with OnnxRuntimeBackend(d / "model.fp16.onnx") as ort:
            np.testing.assert_allclose(backend.infer(x), ort.infer(x), atol=1e-6)
    finally:
        backend.deactivate()
    other = FakeCudaRuntime([FakeDeviceProp(b"NVIDIA A100-SXM4-40GB", 8, 0)])
    backend, why = select_backend(m, facts=probe_machine(FakeTensorRT("10.3.0", cuda=other), other))
    assert isinstance(backend, OnnxRuntimeBackend)
    assert "no engine for it" in why and "built for Fake GPU" in why


def test_torch_missing_is_backend_unavailable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(BackendUnavailable, match="torch: PyTorch is not installed") as e:
        TorchBackend(tmp_path).activate()
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def torch_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory with real (random) weights and an ONNX for auto to prefer."""
    torch = pytest.importorskip("torch")
    from mrm_edge.card import ModelCard
    from mrm_edge.checkpoint import save_model_dir
    from mrm_edge.model import MRMNet, MRMNetConfig

    d = make_model_dir(tmp_path_factory.mktemp("torch") / "m")
    torch.manual_seed(0)
    net = MRMNet(MRMNetConfig(n_labels=5, width=16, stem_channels=(8, 8, 16, 16)))
    save_model_dir(d, net.eval(), ModelCard.load(d))
    stamp_sidecars(d)  # the card now names the weights: as if exported after training
    return d


def test_torch_reference_backend(torch_model_dir: Path) -> None:
    import torch

    from mrm_edge.checkpoint import inference_model, load_model_dir

    m = DeployedModel.load(torch_model_dir)
    backend, why = select_backend(m, "torch")
    assert isinstance(backend, TorchBackend) and why.startswith("requested torch")
    x = (np.random.default_rng(0).normal(size=(4, 12, 1000)) * 0.3).astype(np.float32)
    net, card = load_model_dir(torch_model_dir)
    with torch.no_grad():
        expect = inference_model(net, card)(torch.from_numpy(x)).numpy()
    with backend:
        assert backend.input_dims == (12, 1000) and backend.describe().startswith("torch on cpu")
        np.testing.assert_allclose(backend.infer(x), expect, atol=1e-6)
        with pytest.raises(ValueError, match="expected \\[batch, 12, 1000\\]"):
            backend.infer(x[:, :, :500])
    assert not backend.is_active
    # In auto, the reference ranks last.
    cands, _ = plan_backends(m)
    assert cands[-1].family == "torch" and cands[0].family == "onnxruntime"


def test_ort_cpu_int8_uses_the_uint8_file_when_both_exist(tmp_path: Path) -> None:
    d = with_int8_sym(make_model_dir(tmp_path / "m", precisions=("fp32", "int8")))
    m = DeployedModel.load(d)
    backend, why = select_backend(m, "onnxruntime", facts=ORT_CPU)
    assert backend.onnx_path.name == "model.int8.onnx" and backend.precision == "int8"
    assert why.startswith("requested onnxruntime → onnxruntime CPU int8 (model.int8.onnx)")
    # One INT8 option per device: the symmetric file is not a fallback for the uint8 one.
    cands, _ = plan_backends(m, "onnxruntime", facts=ORT_CPU)
    assert [c.label for c in cands] == [
        "onnxruntime CPU int8 (model.int8.onnx)",
        "onnxruntime CPU fp32 (model.onnx)",
    ]


def test_only_the_symmetric_int8_file_comes_after_fp32_on_cpu(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m", precisions=("fp32", "int8"))
    m = DeployedModel.load(with_int8_sym(d, keep_int8=False))
    cands, _ = plan_backends(m, "onnxruntime", facts=ORT_CPU)
    assert [c.label for c in cands] == [
        "onnxruntime CPU fp32 (model.onnx)",
        "onnxruntime CPU int8 (model.int8-sym.onnx)",
    ]
    assert "no model.int8.onnx in the model directory" in cands[0].why
    assert "slower on ONNX Runtime CPU" in cands[1].why
    backend, why = select_backend(m, "auto", "int8", facts=ORT_CPU)
    assert backend.onnx_path.name == "model.int8-sym.onnx" and backend.precision == "int8"
    assert "int8 requested; only model.int8-sym.onnx here" in why


def test_the_fallback_chain_is_places_in_one_list() -> None:
    """A request's options are picked out of auto's one list; the chain from one of them is
    the picked ones after it, then the list's others after it (never those before it)."""
    from mrm_edge.runtime.backends.registry import Candidate
    from mrm_edge.runtime.selection import Plan

    names = ["ov int8", "ort int8", "ov fp32", "ort fp32", "torch fp32"]
    options = [Candidate(n, n.split()[0], TorchBackend, "") for n in names]
    plan = Plan(options, [1, 3], [], [])  # asked: onnxruntime
    assert [c.label for c in plan.requested()] == ["ort int8", "ort fp32"]
    assert [c.label for c in plan.chain(0)] == ["ort fp32", "ov fp32", "torch fp32"]
    assert [c.label for c in plan.chain(1)] == ["torch fp32"]


def test_an_explicit_request_is_picked_from_the_one_measured_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CPU options are measured once (auto's list), the request and its chain read there."""
    from mrm_edge.runtime import cpu_timing
    from mrm_edge.runtime.backends.openvino.capability import OpenVinoInfo

    calls: list[list[str]] = []

    def reversed_by_measurement(model, candidates, settings):
        calls.append([c.label for c in candidates])
        return candidates[::-1], None  # as if measured: FP16 fastest, INT8 slowest

    monkeypatch.setattr(cpu_timing, "order_by_measurement", reversed_by_measurement)
    m = load(tmp_path, ("fp32", "fp16", "int8"))
    facts = machine(ort_providers=("CPUExecutionProvider",), openvino=OpenVinoInfo(reason="x"))
    backend, why, chain = activate_backend(m, "onnxruntime", facts=facts, auto_probe=True)
    try:
        assert backend.precision == "fp16" and why.startswith("requested onnxruntime")
        assert [c.precision for c in chain] == ["fp32", "int8"]
    finally:
        backend.deactivate()
    assert len(calls) == 1 and len(calls[0]) == 3  # every CPU option, timed once
    backend, why, chain = activate_backend(m, "onnxruntime", "fp32", facts=facts, auto_probe=True)
    try:
        assert backend.precision == "fp32" and why.startswith("requested onnxruntime")
        assert [c.label for c in chain] == ["onnxruntime CPU int8 (model.int8.onnx)"]
    finally:
        backend.deactivate()
    assert len(calls) == 2


def test_check_outputs_runs_one_zero_window_and_names_what_the_card_needs(tmp_path: Path) -> None:
    """What a backend really outputs is checked at activation: a graph's declared shape is
    only read at load, and it can lie (ONNX Runtime returns the real shape)."""
    d = make_model_dir(tmp_path / "m")
    card = DeployedModel.load(d).card
    with OnnxRuntimeBackend(d / "model.onnx") as ok:
        check_outputs(ok, card, d / "card.json")  # 5 probabilities for 5 labels
    six = OnnxRuntimeBackend(make_onnx(tmp_path / "six.onnx", n_out=6))
    with six, pytest.raises(BackendUnavailable) as e:
        check_outputs(six, card, d / "card.json", "six.onnx")
    assert str(e.value) == (
        f"six.onnx: one zero window gives outputs of shape (1, 6); {d / 'card.json'} needs "
        "[1, 5] (5 probabilities: CD, HYP, MI, NORM, STTC)"
    )
    eight = OnnxRuntimeBackend(make_onnx(tmp_path / "leads.onnx", dims=(8, 1000)))
    with eight, pytest.raises(BackendUnavailable, match=r"^onnxruntime.*one zero window failed"):
        check_outputs(eight, card)
