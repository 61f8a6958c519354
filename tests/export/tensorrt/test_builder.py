"""Building engines: graph inspection and the precision plan (pure), and the TensorRT call
sequence against the FakeTensorRT test double for TensorRT 10 and 11 behaviour.

What these tests show: the builder makes the documented calls, in order, with the right
arguments, and turns every failure into one clear line. What they cannot show: that a real
TensorRT accepts the engine (no TensorRT here; ``mrm-edge doctor`` checks that on a GPU)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from mrm_edge.export.tensorrt.builder import build_engine, build_or_load
from mrm_edge.export.tensorrt.errors import BuildError
from mrm_edge.export.tensorrt.graph import GraphInfo, inspect_onnx
from mrm_edge.export.tensorrt.plan import BuildOptions, parse_batch_profile, plan_build
from mrm_edge.runtime.backends.tensorrt.capability import (
    GpuInfo,
    TensorRTInfo,
    TensorRTUnavailable,
    probe_tensorrt,
)

from mrm_edge.artifacts import sidecar_path
from tests.fakes import make_onnx
from tests.fakes.tensorrt import FakeTensorRT

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
TRT10 = TensorRTInfo.assumed("10.3.0")
TRT11 = TensorRTInfo.assumed("11.4.0")
GPU = GpuInfo("Fake GPU (test double)", "9.0", 80 * 2**30)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("graphs")
    return {
        "fp32": make_onnx(d / "model.onnx"),
        "fp16": make_onnx(d / "model.fp16.onnx", fp16=True),
        "int8": make_onnx(d / "model.int8.onnx", qdq=True),
        "odd": make_onnx(d / "odd.onnx", input_name="signal", dims=(8, 500), n_out=3),
        "fixed": make_onnx(d / "fixed.onnx", batch=4),
    }


def graph_info(*, qdq: bool = False, fp16: bool = False) -> GraphInfo:
    return GraphInfo("ecg", (-1, 12, 1000), has_qdq=qdq, has_fp16=fp16)


# --------------------------------------------------------------------------- parsing options


def test_parse_batch_profile() -> None:
    assert parse_batch_profile("1,8,32") == (1, 8, 32)
    assert parse_batch_profile(" 4 , 4, 16") == (4, 4, 16)
    assert parse_batch_profile("16") == (16, 16, 16)
    for bad in ("8,1,32", "0,1,2", "1,8", "a,b,c", "1,2,3,4"):
        with pytest.raises(ValueError, match="batch profile"):
            parse_batch_profile(bad)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "bf16"}, "precision"),
        ({"profile": (8, 1, 32)}, "min <= opt <= max"),
        ({"workspace_bytes": 0}, "workspace_bytes"),
        ({"dla_core": -1}, "dla_core"),
    ],
)
def test_bad_options_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BuildOptions(**kwargs)


# --------------------------------------------------------------------------- inspection


def test_inspect_plain_fp16_and_qdq_graphs(graphs: dict[str, Path]) -> None:
    plain = inspect_onnx(graphs["fp32"])
    assert (plain.input_name, plain.input_shape) == ("ecg", (-1, 12, 1000))
    assert not plain.has_fp16 and not plain.has_qdq and plain.source == "onnx"
    assert inspect_onnx(graphs["fp16"]).has_fp16
    assert not inspect_onnx(graphs["fp16"]).has_qdq
    assert inspect_onnx(graphs["int8"]).has_qdq
    assert inspect_onnx(graphs["fixed"]).input_shape == (4, 12, 1000)


def test_inspect_bad_files(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no such ONNX file"):
        inspect_onnx(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a protobuf" * 10)
    with pytest.raises(BuildError, match="not a readable ONNX model"):
        inspect_onnx(junk)


def test_inspect_without_the_onnx_package_falls_back_to_the_file_contract(
    graphs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx → ImportError
    info = inspect_onnx(graphs["int8"], "int8")
    assert info.source == "contract"
    assert (info.input_name, info.input_shape) == ("ecg", (-1, 12, 1000))
    assert info.has_qdq  # found by scanning the file
    assert inspect_onnx(graphs["fp16"], "fp16").has_fp16  # assumed from the precision
    assert not inspect_onnx(graphs["fp32"], "fp32").carries_precision


# --------------------------------------------------------------------------- the plan


@pytest.mark.parametrize(
    ("precision", "graph", "info", "typed", "flags"),
    [
        ("fp32", graph_info(), TRT10, False, ()),
        ("fp16", graph_info(fp16=True), TRT10, True, ()),  # the graph's own FP16/FP32 islands
        ("fp16", graph_info(), TRT10, False, ("FP16",)),  # plain graph: weak typing + flag
        ("int8", graph_info(qdq=True), TRT10, True, ()),
        ("fp32", graph_info(), TRT11, True, ()),
        ("fp16", graph_info(fp16=True), TRT11, True, ()),
        ("int8", graph_info(qdq=True), TRT11, True, ()),
    ],
)
def test_plan(precision: str, graph: GraphInfo, info: TensorRTInfo, typed: bool, flags) -> None:
    plan = plan_build(BuildOptions(precision=precision), graph, info)
    assert plan.strongly_typed is typed
    assert plan.builder_flags == flags


def test_plan_fp16_on_tensorrt_11_without_fp16_in_the_graph_says_so() -> None:
    plan = plan_build(BuildOptions(precision="fp16"), graph_info(), TRT11)
    assert plan.strongly_typed and not plan.builder_flags
    assert any("computes in FP32" in n for n in plan.notes)


def test_plan_int8_without_qdq() -> None:
    with pytest.raises(BuildError, match="needs Q/DQ nodes"):
        plan_build(BuildOptions(precision="int8"), graph_info(), TRT11)
    with pytest.raises(BuildError, match="needs a calibrator"):
        plan_build(BuildOptions(precision="int8"), graph_info(), TRT10)


# --------------------------------------------------------------------------- building


def test_tensorrt_10_fp16_typed_graph_call_sequence(graphs: dict[str, Path]) -> None:
    trt = FakeTensorRT("10.3.0")
    opts = BuildOptions(precision="fp16", profile=(1, 8, 32), workspace_bytes=256 << 20)
    result = build_engine(graphs["fp16"], opts, trt)
    assert trt.call_names() == [
        "Builder",
        "create_network",
        "OnnxParser",
        "parse_from_file",
        "create_builder_config",
        "set_memory_pool_limit",
        "create_optimization_profile",
        "set_shape",
        "add_optimization_profile",
        "build_serialized_network",
    ]
    assert ("create_network", 1 << 1) in trt.calls  # STRONGLY_TYPED is flag bit 1
    assert ("set_memory_pool_limit", "WORKSPACE", 256 << 20) in trt.calls
    assert ("set_shape", "ecg", (1, 12, 1000), (8, 12, 1000), (32, 12, 1000)) in trt.calls
    assert not [c for c in trt.calls if c[0] == "set_flag"]
    assert result.plan.strongly_typed and result.input_name == "ecg"
    assert result.input_dims == (12, 1000)
    header = json.loads(result.engine.split(b"\n")[1])
    assert header["strongly_typed"] and header["profile"] == [
        [1, 12, 1000],
        [8, 12, 1000],
        [32, 12, 1000],
    ]


def test_tensorrt_10_plain_graph_fp16_uses_the_flag_on_a_weak_network(
    graphs: dict[str, Path],
) -> None:
    trt = FakeTensorRT("10.3.0")
    build_engine(graphs["fp32"], BuildOptions(precision="fp16"), trt)
    assert ("create_network", 0) in trt.calls
    assert ("set_flag", "FP16") in trt.calls


def test_tensorrt_11_builds_typed_graphs_without_flags(graphs: dict[str, Path]) -> None:
    for precision in ("fp32", "fp16", "int8"):
        trt = FakeTensorRT("11.4.0", precision_flags=False)
        result = build_engine(graphs[precision], BuildOptions(precision=precision), trt)
        assert result.plan.strongly_typed
        assert not [c for c in trt.calls if c[0] in ("set_flag", "int8_calibrator")]


def test_profile_uses_the_networks_input_name_and_dims(graphs: dict[str, Path]) -> None:
    trt = FakeTensorRT()
    result = build_engine(graphs["odd"], BuildOptions(precision="fp32", profile=(2, 4, 6)), trt)
    assert ("set_shape", "signal", (2, 8, 500), (4, 8, 500), (6, 8, 500)) in trt.calls
    assert result.input_dims == (8, 500)


def test_fixed_batch_graphs(graphs: dict[str, Path]) -> None:
    trt = FakeTensorRT()
    build_engine(graphs["fixed"], BuildOptions(precision="fp32", profile=(4, 4, 4)), trt)
    assert "create_optimization_profile" not in trt.call_names()
    with pytest.raises(BuildError, match=r"fixed batch of 4.*dynamic batch axis"):
        build_engine(graphs["fixed"], BuildOptions(precision="fp32"), FakeTensorRT())


def test_parser_errors_become_one_line(graphs: dict[str, Path]) -> None:
    trt = FakeTensorRT(
        parse_errors=(
            ("Unsupported operator FooBar", "/net/foo", "FooBar"),
            ("Invalid Node\nwith detail", "", "Conv"),
        )
    )
    with pytest.raises(BuildError) as e:
        build_engine(graphs["fp32"], BuildOptions(precision="fp32"), trt)
    msg = str(e.value)
    assert "\n" not in msg
    assert "ONNX parser failed: FooBar node '/net/foo': Unsupported operator FooBar; Conv:" in msg
    assert "build_serialized_network" not in trt.call_names()


def test_a_failed_build_says_why(graphs: dict[str, Path]) -> None:
    trt = FakeTensorRT(build_error="Internal Error: out of workspace memory")
    with pytest.raises(
        BuildError, match="could not build the engine: Internal Error: out of workspace"
    ):
        build_engine(graphs["fp32"], BuildOptions(precision="fp32"), trt)


def test_timing_cache_is_loaded_when_present_and_saved_after(
    graphs: dict[str, Path], tmp_path: Path
) -> None:
    cache = tmp_path / "caches" / "timing.cache"
    opts = BuildOptions(precision="fp32", timing_cache=cache)
    trt = FakeTensorRT()
    first = build_engine(graphs["fp32"], opts, trt)
    assert ("create_timing_cache", b"") in trt.calls
    assert not first.timing_cache_loaded
    assert cache.read_bytes() == b"FAKECACHE:1"
    names = trt.call_names()
    assert names.index("set_timing_cache") < names.index("build_serialized_network")
    assert names.index("get_timing_cache") > names.index("build_serialized_network")

    trt2 = FakeTensorRT()
    second = build_engine(graphs["fp32"], opts, trt2)
    assert ("create_timing_cache", b"FAKECACHE:1") in trt2.calls
    assert second.timing_cache_loaded
    assert cache.read_bytes() == b"FAKECACHE:2"


def test_unreadable_timing_cache_is_replaced(graphs: dict[str, Path], tmp_path: Path) -> None:
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"garbage")
    result = build_engine(
        graphs["fp32"], BuildOptions(precision="fp32", timing_cache=cache), FakeTensorRT()
    )
    assert any("not usable here" in n for n in result.notes)
    assert cache.read_bytes() == b"FAKECACHE:1"


def test_dla(graphs: dict[str, Path]) -> None:
    trt = FakeTensorRT(num_dla_cores=2)
    build_engine(graphs["fp16"], BuildOptions(precision="fp16", dla_core=1), trt)
    assert ("default_device_type", "DLA") in trt.calls
    assert ("DLA_core", 1) in trt.calls
    assert ("set_flag", "GPU_FALLBACK") in trt.calls
    with pytest.raises(BuildError, match="DLA core 0 requested but this device has 0 DLA core"):
        build_engine(graphs["fp16"], BuildOptions(precision="fp16", dla_core=0), FakeTensorRT())


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed here")
def test_without_tensorrt_the_error_gives_the_trtexec_line(
    graphs: dict[str, Path], tmp_path: Path
) -> None:
    missing = probe_tensorrt()  # tensorrt cannot be imported here
    with pytest.raises(TensorRTUnavailable) as e:
        build_or_load(graphs["fp16"], tmp_path, BuildOptions(precision="fp16"), GPU, missing)
    msg = str(e.value)
    assert msg.startswith("TensorRT is not available here (tensorrt cannot be imported")
    assert "run `mrm-edge export --engine` on the target" in msg
    assert "or: trtexec --onnx=" in msg and "--stronglyTyped" in msg
    assert "--minShapes=ecg:1x12x1000" in msg
    assert "\n" not in msg


# --------------------------------------------------------------------------- build_or_load


def test_build_or_load_builds_once_then_reuses(graphs: dict[str, Path], tmp_path: Path) -> None:
    trt = FakeTensorRT()
    info = probe_tensorrt(trt)
    opts = BuildOptions(precision="fp16")
    path, built = build_or_load(graphs["fp16"], tmp_path, opts, GPU, info, trt=trt)
    assert built and path.name.startswith("model.fp16.") and path.suffix == ".engine"
    side = json.loads(sidecar_path(path).read_text())
    assert side["key"]["gpu_name"] == GPU.name and side["key"]["trt_version"] == "10.3.0"
    assert side["build"]["strongly_typed"] is True
    assert side["build"]["input"] == {"name": "ecg", "dims": [12, 1000]}

    builds = trt.call_names().count("build_serialized_network")
    again, built = build_or_load(graphs["fp16"], tmp_path, opts, GPU, info, trt=trt)
    assert (again, built) == (path, False)
    assert trt.call_names().count("build_serialized_network") == builds

    # A different request is a different engine; a tampered engine is rebuilt.
    other, built = build_or_load(
        graphs["fp16"],
        tmp_path,
        BuildOptions(precision="fp16", workspace_bytes=1 << 28),
        GPU,
        info,
        trt=trt,
    )
    assert built and other != path
    path.write_bytes(b"tampered")
    rebuilt, built = build_or_load(graphs["fp16"], tmp_path, opts, GPU, info, trt=trt)
    assert built and rebuilt == path and path.read_bytes() != b"tampered"


def test_build_or_load_without_tensorrt(graphs: dict[str, Path], tmp_path: Path) -> None:
    info = TensorRTInfo(available=False, reason="tensorrt cannot be imported (test)")
    with pytest.raises(
        TensorRTUnavailable, match=r"not available here \(tensorrt cannot be imported"
    ):
        build_or_load(graphs["fp16"], tmp_path, BuildOptions(), GPU, info, trt=FakeTensorRT())
    assert list(tmp_path.iterdir()) == []


def test_build_or_load_refuses_a_mismatched_module(graphs: dict[str, Path], tmp_path: Path) -> None:
    info = probe_tensorrt(FakeTensorRT("10.3.0"))
    opts = BuildOptions(precision="fp32")
    with pytest.raises(BuildError, match=r"10\.3\.0 but the module builds with TensorRT 10\.4"):
        build_or_load(graphs["fp32"], tmp_path, opts, GPU, info, trt=FakeTensorRT("10.4.0"))


def test_plan_typed_graph_on_a_tensorrt_without_strong_typing_warns() -> None:
    old = TensorRTInfo(True, "8.6.1", None, False, True)
    plan = plan_build(BuildOptions(precision="fp16"), graph_info(fp16=True), old)
    assert not plan.strongly_typed and plan.builder_flags == ("FP16",)
    assert any("FP32 islands may run in reduced precision" in n for n in plan.notes)
