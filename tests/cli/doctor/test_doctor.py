"""``run_doctor``: on this machine (no TensorRT, no GPU) and end to end with the test doubles.

With FakeTensorRT the whole path runs for real up to the TensorRT boundary: the builder code
builds a (fake) engine from the exported MRM-Net ONNX, the engine file and sidecar are
written and verified, TensorRTBackend moves real bytes through the fake CUDA memory, and
the fake engine computes with ONNX Runtime on the embedded ONNX; parity is computed against
an independent ONNX Runtime FP32 session. What is NOT covered: real TensorRT numerics.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.facts import probe_machine

from mrm_edge.artifacts import SHIPPED_MODEL_DIR
from mrm_edge.cli.doctor.report import (
    EXIT_FAIL,
    EXIT_PASS,
    EXIT_UNAVAILABLE,
    compare,
    format_report,
)
from mrm_edge.cli.doctor.steps import run_doctor
from tests.fakes import tiny_mrmnet_dir
from tests.fakes.tensorrt import FakeCudaRuntime, FakeTensorRT

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_mrmnet_dir(tmp_path_factory.getbasetemp())


def statuses(report) -> dict[str, str]:
    return {s.name: s.status for s in report.steps}


def fakes(**trt_kw) -> tuple[FakeTensorRT, FakeCudaRuntime]:
    cudart = FakeCudaRuntime()
    return FakeTensorRT("10.3.0", cuda=cudart, **trt_kw), cudart


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed here")
def test_without_tensorrt_it_says_so_and_still_checks_onnxruntime(model_dir: Path) -> None:
    # Standard TensorRT asked for (TensorRT-RTX, which may be installed, is another flavour).
    report = run_doctor(model_dir, precision="fp32", trt_flavour="tensorrt")
    assert report.status == "unavailable" and report.exit_code == EXIT_UNAVAILABLE
    st = statuses(report)
    assert st["model"] == st["onnxruntime"] == st["windows"] == st["reference"] == "ok"
    assert st["tensorrt"] == "fail"
    assert st["build"] == st["run"] == st["parity"] == "skip"
    assert "No module named 'tensorrt'" in report.step("tensorrt").detail
    assert report.verdict.startswith("UNAVAILABLE: TensorRT is not installed here")
    assert "pip install 'mrm-edge[tensorrt]'" in report.verdict
    text = format_report(report)
    assert "[FAIL] tensorrt" in text and "[ok]   reference" in text and "[skip] build" in text
    assert "Traceback" not in text
    assert text.splitlines()[-1] == report.verdict


def test_full_path_with_the_test_doubles(model_dir: Path, tmp_path: Path) -> None:
    trt, cudart = fakes()
    report = run_doctor(
        model_dir, precision="fp32", out_dir=tmp_path, facts=probe_machine(trt, cudart)
    )
    assert report.status == "pass" and report.exit_code == EXIT_PASS, format_report(report)
    assert set(statuses(report).values()) == {"ok"}
    assert report.engine_built is True and report.engine_path.parent == tmp_path
    assert report.engine_path.with_name(report.engine_path.name + ".json").is_file()
    assert report.parity.max_abs_diff < 1e-6 and report.parity.label_agreement == 1.0
    assert report.parity.n_windows == 8 and report.parity.n_labels == 5
    assert "TensorRT 10.3.0" in report.step("tensorrt").detail
    assert "Fake GPU (test double)" in report.step("gpu").detail
    assert report.verdict.startswith("PASS: the TensorRT fp32 engine matches ONNX Runtime FP32")
    # The engine ran through the backend: real bytes through the fake device memory.
    assert trt.engines and len(trt.engines[-1].executions) == 2  # all windows, then one
    assert cudart.live() == {k: 0 for k in cudart.live()}

    again = run_doctor(
        model_dir, precision="fp32", out_dir=tmp_path, facts=probe_machine(trt, cudart)
    )
    assert again.status == "pass" and again.engine_built is False
    assert "cached engine verified" in again.step("build").detail
    assert trt.call_names().count("build_serialized_network") == 1


def test_cuda_graph_path(model_dir: Path) -> None:
    trt, cudart = fakes()
    report = run_doctor(
        model_dir, precision="fp32", cuda_graphs=True, facts=probe_machine(trt, cudart)
    )
    assert report.status == "pass", format_report(report)
    assert "CUDA graphs: on" in report.step("run").detail


def test_a_wrong_engine_fails_parity(model_dir: Path) -> None:
    trt, cudart = fakes(execute_fn=lambda x: np.full((len(x), 5), 0.9, np.float32))
    report = run_doctor(model_dir, precision="fp32", facts=probe_machine(trt, cudart))
    assert report.status == "fail" and report.exit_code == EXIT_FAIL
    assert report.step("parity").status == "fail"
    assert report.verdict.startswith("FAIL: parity: max |Δp|")
    assert not report.parity.passed


def test_a_failed_build_is_a_reason_not_a_traceback(model_dir: Path) -> None:
    trt, cudart = fakes(build_error="Internal Error: insufficient workspace")
    report = run_doctor(model_dir, precision="fp32", facts=probe_machine(trt, cudart))
    assert report.exit_code == EXIT_FAIL
    detail = report.step("build").detail
    assert detail.startswith("BuildError: ") and "insufficient workspace" in detail
    assert statuses(report)["run"] == statuses(report)["parity"] == "skip"
    assert "Traceback" not in format_report(report)


def test_no_gpu(model_dir: Path) -> None:
    trt = FakeTensorRT("10.3.0")
    report = run_doctor(
        model_dir, precision="fp32", facts=probe_machine(trt, FakeCudaRuntime(devices=[]))
    )
    assert report.exit_code == EXIT_UNAVAILABLE
    assert report.step("gpu").detail == "no usable CUDA device: cudaErrorNoDevice"
    assert "no GPU is usable" in report.verdict


def test_missing_onnx_variant_is_a_failure_first(model_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "model"
    d.mkdir()
    for name in ("card.json", "model.onnx"):
        shutil.copy(model_dir / name, d / name)
    trt, cudart = fakes()
    report = run_doctor(d, precision="int8", facts=probe_machine(trt, cudart))
    assert report.exit_code == EXIT_FAIL
    assert "model.int8-sym.onnx (run `mrm-edge export` first)" in report.step("model").detail
    assert report.verdict.startswith("FAIL: model: FileNotFoundError")
    # Also without TensorRT: the broken model is reported, not "unavailable".
    assert run_doctor(d, precision="int8").exit_code == EXIT_FAIL


def test_fp16_model_end_to_end(model_dir: Path, tmp_path: Path) -> None:
    float16 = pytest.importorskip("onnxconverter_common.float16")
    import onnx

    d = tmp_path / "model"
    shutil.copytree(model_dir, d)
    half = float16.convert_float_to_float16(onnx.load(str(d / "model.onnx")), keep_io_types=True)
    onnx.save(half, str(d / "model.fp16.onnx"))
    trt, cudart = fakes()
    report = run_doctor(d, precision="fp16", facts=probe_machine(trt, cudart))
    assert report.status == "pass", format_report(report)
    # The graph carries FP16: TensorRT 10 builds it strongly typed, without the FP16 flag.
    assert ("create_network", 1 << 1) in trt.calls
    assert ("set_flag", "FP16") not in trt.calls
    assert report.step("onnx fp16").status == "ok"
    assert 0 < report.reference_parity.max_abs_diff < 2e-2


def test_compare_and_windows(model_dir: Path) -> None:
    from mrm_edge.card import ModelCard
    from mrm_edge.data.synthetic import make_windows

    card = ModelCard.load(model_dir)  # the doctor's windows: synthetic, at the card's rate
    x = make_windows(card, 3, seed=1)
    assert x.shape == (3, 12, 1000) and x.dtype == np.float32
    np.testing.assert_array_equal(x, make_windows(card, 3, seed=1))
    ref = np.array([[0.1, 0.6], [0.45, 0.9]], np.float32)
    shifted = ref + np.array([[0.0, 0.0], [0.1, 0.0]], np.float32)
    par = compare(shifted, ref, np.array([0.5, 0.5]), 0.05, 1.0)
    assert par.max_abs_diff == pytest.approx(0.1) and par.label_agreement == 0.75
    assert not par.passed
    assert "labels agree 3/4" in par.summary()
    with pytest.raises(ValueError, match="differs from the reference"):
        compare(ref[:1], ref, np.array([0.5, 0.5]), 0.05, 1.0)


def test_bad_arguments_are_one_line_failures(model_dir: Path) -> None:
    report = run_doctor(model_dir, precision="fp32", batch=(8, 1, 32))
    assert report.exit_code == EXIT_FAIL
    assert (
        report.verdict == "FAIL: options: ValueError: BuildOptions: profile (8, 1, 32), "
        "expected 1 <= min <= opt <= max"
    )
    assert run_doctor(model_dir, precision="bf16").verdict.startswith("FAIL: model: precision")


def test_doctor_builds_a_real_tensorrt_rtx_engine_without_a_gpu(tmp_path: Path) -> None:
    """The real TensorRT-RTX: the build step runs here (no GPU needed), the run step cannot."""
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is not installed")
    shipped = SHIPPED_MODEL_DIR
    report = run_doctor(shipped, "fp16", out_dir=tmp_path, trt_flavour="tensorrt-rtx")
    assert (
        report.step("tensorrt").status == "ok" and "TensorRT-RTX" in report.step("tensorrt").detail
    )
    assert report.step("build").status == "ok" and report.engine_built
    assert report.engine_path is not None and report.engine_path.is_file()
    assert report.step("run").status == "skip" and "needs a GPU" in report.step("run").detail
    assert report.exit_code == EXIT_UNAVAILABLE and "built model.fp16." in report.verdict
