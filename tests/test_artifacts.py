"""mrm_edge.artifacts: the one variant → file / precision table, and that its users agree."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from mrm_edge.artifacts import ONNX_FILES, onnx_file, precision_of, variants_for


def test_the_four_variants_files_and_precisions() -> None:
    assert ONNX_FILES == {
        "fp32": "model.onnx",
        "fp16": "model.fp16.onnx",
        "int8": "model.int8.onnx",
        "int8-sym": "model.int8-sym.onnx",
    }
    precisions = {v: precision_of(v) for v in ONNX_FILES}
    assert precisions == {"fp32": "fp32", "fp16": "fp16", "int8": "int8", "int8-sym": "int8"}
    assert onnx_file("int8-sym") == "model.int8-sym.onnx" and precision_of("int8-sym") == "int8"
    assert variants_for("int8") == ("int8", "int8-sym")  # the ORT CPU file first
    assert variants_for("fp16") == ("fp16",) and variants_for("bf16") == ()


@pytest.mark.parametrize("bad", ["int4", "model.onnx", None])
def test_unknown_variant_is_a_one_line_error(bad) -> None:
    with pytest.raises(ValueError, match=r"^ONNX variant .*: expected one of fp32, fp16, int8"):
        onnx_file(bad)
    with pytest.raises(ValueError, match="expected one of"):
        precision_of(bad)


def test_its_users_take_the_names_from_it() -> None:
    from mrm_edge.export import pipeline
    from mrm_edge.runtime.model import ONNX_FILES as RUNTIME_FILES

    from mrm_edge.cli.doctor.report import ONNX_FOR

    assert RUNTIME_FILES == ONNX_FILES
    assert {ONNX_FILES[v] for v in pipeline.INT8_CHOICES["both"]} == {
        "model.int8.onnx",
        "model.int8-sym.onnx",
    }
    # TensorRT engines of INT8 are built from the file TensorRT's parser accepts.
    assert ONNX_FOR == {
        "fp32": "model.onnx",
        "fp16": "model.fp16.onnx",
        "int8": "model.int8-sym.onnx",
    }


def test_imports_nothing_heavy() -> None:
    code = (
        "import sys, mrm_edge.artifacts; "
        "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_engine_names_are_written_and_parsed_here() -> None:
    from mrm_edge.artifacts import engine_filename, parse_engine_filename, trtexec_engine_filename

    name = engine_filename(SimpleNamespace(precision="fp16", digest=lambda: "00ff"))
    assert name == "model.fp16.00ff.engine" and parse_engine_filename(name) == ("fp16", "00ff")
    # The printed trtexec lines name a file the export never writes and the loader never reads.
    hand = trtexec_engine_filename("int8")
    assert hand == "model.int8.trtexec.engine" and parse_engine_filename(hand) is None
    assert parse_engine_filename("model.fp16.engine") is None
    with pytest.raises(ValueError, match="precision 'bf16'"):
        trtexec_engine_filename("bf16")


def test_sidecars_sit_beside_their_artifact(tmp_path) -> None:
    from mrm_edge.artifacts import read_sidecar, sidecar_path, verify_artifact

    onnx = tmp_path / "model.onnx"
    assert sidecar_path(onnx) == tmp_path / "model.onnx.json"
    with pytest.raises(ValueError, match="sidecar missing"):
        verify_artifact(onnx)
    sidecar_path(onnx).write_text('{"artifact": "other.onnx"}')
    assert read_sidecar(onnx) == {"artifact": "other.onnx"}
    with pytest.raises(ValueError, match=r"describes 'other\.onnx', not model\.onnx"):
        verify_artifact(onnx)
