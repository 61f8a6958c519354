"""The equivalent trtexec line, TensorRT 10 and 11 flag styles (strings only: no trtexec here)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from mrm_edge.export.tensorrt.errors import BuildError
from mrm_edge.export.tensorrt.plan import BuildOptions
from mrm_edge.export.tensorrt.trtexec import trtexec_command

from tests.fakes import make_onnx


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("trtexec graphs")  # a space: paths must be quoted
    return {
        "fp32": make_onnx(d / "model.onnx"),
        "fp16": make_onnx(d / "model.fp16.onnx", fp16=True),
        "int8": make_onnx(d / "model.int8.onnx", qdq=True),
        "odd": make_onnx(d / "odd.onnx", input_name="signal", dims=(8, 500)),
    }


def args(line: str) -> list[str]:
    parts = shlex.split(line)
    assert parts[0] == "trtexec"
    return parts[1:]


def test_tensorrt_10_typed_fp16_graph(graphs: dict[str, Path], tmp_path: Path) -> None:
    engine = tmp_path / "out dir" / "model.fp16.engine"
    opts = BuildOptions(precision="fp16", profile=(1, 8, 32), workspace_bytes=1 << 30)
    a = args(trtexec_command(graphs["fp16"], engine, opts))
    assert a == [
        f"--onnx={graphs['fp16']}",
        f"--saveEngine={engine}",
        "--stronglyTyped",
        "--minShapes=ecg:1x12x1000",
        "--optShapes=ecg:8x12x1000",
        "--maxShapes=ecg:32x12x1000",
        "--memPoolSize=workspace:1G",
        "--skipInference",
    ]


def test_tensorrt_10_plain_graph_gets_precision_flags(graphs: dict[str, Path]) -> None:
    fp16 = BuildOptions(precision="fp16")
    a = args(trtexec_command(graphs["fp32"], "e.engine", fp16))
    assert "--fp16" in a and "--stronglyTyped" not in a and "--int8" not in a
    fp32 = BuildOptions(precision="fp32")
    a = args(trtexec_command(graphs["fp32"], "e.engine", fp32))
    assert not [x for x in a if x in ("--fp16", "--int8", "--stronglyTyped")]


def test_int8_qdq_on_10_is_strongly_typed(graphs: dict[str, Path]) -> None:
    a = args(trtexec_command(graphs["int8"], "e.engine", BuildOptions(precision="int8")))
    assert "--stronglyTyped" in a and "--int8" not in a


def test_options_map_to_flags(graphs: dict[str, Path], tmp_path: Path) -> None:
    opts = BuildOptions(
        precision="fp16",
        profile=(2, 4, 6),
        workspace_bytes=384 << 20,
        timing_cache=tmp_path / "timing.cache",
        dla_core=1,
    )
    a = args(trtexec_command(graphs["odd"], "e.engine", opts))
    assert "--minShapes=signal:2x8x500" in a and "--maxShapes=signal:6x8x500" in a
    assert "--memPoolSize=workspace:384M" in a
    assert f"--timingCacheFile={tmp_path / 'timing.cache'}" in a
    assert "--useDLACore=1" in a and "--allowGPUFallback" in a


def test_workspace_units() -> None:
    line = trtexec_command(
        Path("/nonexistent/model.onnx"), "e", BuildOptions(workspace_bytes=1536 << 10)
    )
    assert "--memPoolSize=workspace:1536K" in line
    line = trtexec_command(Path("/nonexistent/model.onnx"), "e", BuildOptions(workspace_bytes=1000))
    assert "--memPoolSize=workspace:1000B" in line


def test_unreadable_onnx_assumes_the_mrmnet_input() -> None:
    line = trtexec_command(
        Path("/nonexistent/model.fp16.onnx"), "e", BuildOptions(precision="fp16")
    )
    assert "--minShapes=ecg:1x12x1000" in line and "--stronglyTyped" in line


def test_version_neutral_line_for_typed_graphs(graphs: dict[str, Path]) -> None:
    # No version given: the line for a typed graph works on 10 and 11 alike.
    line = trtexec_command(graphs["fp16"], "e.engine", BuildOptions(precision="fp16"))
    assert "--stronglyTyped" in line and "--fp16" not in line


def test_what_trtexec_cannot_do(graphs: dict[str, Path]) -> None:
    with pytest.raises(BuildError, match="INT8 without Q/DQ"):
        trtexec_command(graphs["fp32"], "e", BuildOptions(precision="int8"))
