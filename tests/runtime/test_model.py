"""DeployedModel: the card and the artifacts of a model directory, verified against their
sidecars; a corrupted or mismatched file is refused with the reason. Torch-free."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mrm_edge.export.sidecar import write_sidecar
from mrm_edge.runtime.model import DeployedModel, ModelLoadError

from mrm_edge.artifacts import read_sidecar
from tests.fakes import LABELS, card_stamp, make_onnx, write_card


def make_model_dir(
    root: Path,
    *,
    precisions: tuple[str, ...] = ("fp32",),
    labels: list[str] = LABELS,
    sidecar_labels: list[str] | None = None,
) -> Path:
    """A model directory with a card and small real ONNX graphs (``tests.fakes.make_onnx``)
    for ``precisions``, each with the sidecar ``mrm-edge export`` would write."""
    root.mkdir(parents=True, exist_ok=True)
    write_card(root, labels=labels)
    names = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}
    for p in precisions:
        path = make_onnx(
            root / names[p], n_out=len(labels), fp16=p == "fp16", qdq=p == "int8", seed=1
        )
        write_sidecar(
            path,
            {
                "precision": p,
                "labels": sidecar_labels or list(labels),
                "sampling_rate": 100,
                "window_samples": 1000,
                **card_stamp(root),
            },
        )
    return root


def test_loads_card_and_verified_onnx(tmp_path: Path) -> None:
    m = DeployedModel.load(make_model_dir(tmp_path / "m", precisions=("fp32", "int8")))
    assert m.card.labels == LABELS and m.card.sampling_rate == 100 and m.card.window_samples == 1000
    assert m.card.window_seconds == 10.0 and len(m.card.leads) == 12 and m.thresholds["MI"] == 0.5
    assert set(m.onnx) == {"fp32", "int8"} and m.refused == {} and m.engines == []
    assert m.onnx["int8"].path.name == "model.int8.onnx"
    assert m.card_changes == ()
    assert m.weights is None


def test_corrupted_artifact_is_refused_with_the_reason(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m", precisions=("fp32", "int8"))
    with open(d / "model.int8.onnx", "ab") as f:
        f.write(b"\0")
    m = DeployedModel.load(d)
    assert set(m.onnx) == {"fp32"}
    assert "SHA-256 does not match" in m.refused["model.int8.onnx"]


def test_label_order_mismatch_is_refused(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m", sidecar_labels=list(reversed(LABELS)))
    with pytest.raises(ModelLoadError, match=r"nothing runnable.*'labels'"):
        DeployedModel.load(d)


def test_missing_sidecar(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m", precisions=("fp32", "int8"))
    (d / "model.int8.onnx.json").unlink()
    m = DeployedModel.load(d)
    assert "sidecar missing" in m.refused["model.int8.onnx"]


def test_precision_contradiction_is_refused(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m", precisions=("fp32",))
    shutil.copy(d / "model.onnx", d / "model.fp16.onnx")
    write_sidecar(d / "model.fp16.onnx", {"precision": "fp32"})
    m = DeployedModel.load(d)
    assert "file name says 'fp16'" in m.refused["model.fp16.onnx"]


def test_unusable_directories_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such model directory"):
        DeployedModel.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no model card"):
        DeployedModel.load(tmp_path / "empty")
    write_card(tmp_path / "empty")
    with pytest.raises(ModelLoadError, match=r"nothing runnable.*mrm-edge export") as e:
        DeployedModel.load(tmp_path / "empty")
    assert "\n" not in str(e.value)


def test_engines_are_checked_against_their_sidecars(tmp_path: Path) -> None:
    from mrm_edge.export.tensorrt.builder import build_or_load
    from mrm_edge.export.tensorrt.plan import BuildOptions
    from mrm_edge.runtime.backends.tensorrt.capability import probe_gpu, probe_tensorrt

    from tests.fakes.tensorrt import FakeCudaRuntime, FakeTensorRT

    d = make_model_dir(tmp_path / "m", precisions=("fp32", "fp16"))
    cudart = FakeCudaRuntime()
    trt = FakeTensorRT("10.3.0", cuda=cudart)
    gpu, _ = probe_gpu(0, cudart)
    engine, _ = build_or_load(
        d / "model.fp16.onnx", d, BuildOptions("fp16", (1, 8, 16)), gpu, probe_tensorrt(trt), trt
    )
    m = DeployedModel.load(d)
    assert [a.name for a in m.engines] == [engine.name] and m.engines[0].precision == "fp16"
    assert m.engines[0].key["gpu_name"] == gpu.name
    # Stale: the ONNX it was built from has since been replaced.
    make_onnx(d / "model.fp16.onnx", fp16=True, seed=7)
    write_sidecar(d / "model.fp16.onnx", {"precision": "fp16"})
    assert "stale engine" in DeployedModel.load(d).refused[engine.name]
    # Truncated engine bytes.
    data = engine.read_bytes()
    engine.write_bytes(data[:-1])
    assert "SHA-256 differs" in DeployedModel.load(d).refused[engine.name]
    # No sidecar.
    Path(str(engine) + ".json").unlink()
    assert "no sidecar" in DeployedModel.load(d).refused[engine.name]


def test_card_error_is_one_line(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    card = json.loads((d / "card.json").read_text())
    card["thresholds"] = {"CD": 0.5}
    (d / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="thresholds"):
        DeployedModel.load(d)


def test_the_runtime_modules_import_no_torch() -> None:
    code = (
        "import sys, mrm_edge.runtime.model, mrm_edge.runtime.selection, "
        "mrm_edge.runtime.engine, mrm_edge.runtime.postprocess, mrm_edge.runtime.sinks.jsonl, "
        "mrm_edge.runtime.sinks.live, mrm_edge.runtime.sinks.summary; "
        "print(sorted(m for m in ('torch', 'onnx', 'tensorrt', 'scipy.signal') "
        "if m in sys.modules))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def with_int8_sym(d: Path, keep_int8: bool = True) -> Path:
    """``d`` (made with int8) plus ``model.int8-sym.onnx``: the same small Q/DQ graph under
    the symmetric file's name, with its own sidecar (precision int8, as the export writes)."""
    src, dst = d / "model.int8.onnx", d / "model.int8-sym.onnx"
    fields = {k: v for k, v in read_sidecar(src).items() if k not in ("artifact", "sha256")}
    shutil.copy(src, dst)
    write_sidecar(dst, fields)
    if not keep_int8:
        src.unlink()
        Path(str(src) + ".json").unlink()
    return d


def test_onnx_is_keyed_by_variant_both_int8_files_have_precision_int8(tmp_path: Path) -> None:
    d = with_int8_sym(make_model_dir(tmp_path / "m", precisions=("fp32", "int8")))
    m = DeployedModel.load(d)
    assert set(m.onnx) == {"fp32", "int8", "int8-sym"} and m.refused == {}
    assert m.onnx["int8"].path.name == "model.int8.onnx"
    assert m.onnx["int8-sym"].path.name == "model.int8-sym.onnx"
    assert m.onnx["int8"].precision == m.onnx["int8-sym"].precision == "int8"
