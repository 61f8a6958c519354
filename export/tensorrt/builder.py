"""ONNX → serialized TensorRT engine: standard TensorRT 10/11 and TensorRT-RTX, one code path.

    Builder(logger) → create_network(flags) → OnnxParser.parse_from_file → builder config
    (workspace pool limit, precision flags where weak typing applies, optimization profile,
    timing cache, DLA) → build_serialized_network → bytes

TensorRT-RTX (flavour ``tensorrt-rtx``) takes the same calls with two differences: the
builder config gets the compute capabilities to build for (``set_compute_capability``; an
ahead-of-time build on any machine, no GPU needed), and there is no timing cache (its calls
are no-ops there) and no DLA. Like TensorRT 11 it is always strongly typed.

Precision, TensorRT 10 vs 11 (see ``plan_build``):
  - TensorRT 11 is always strongly typed: no FP16/INT8 flags, no calibrator. Precision comes
    from the graph: ``model.fp16.onnx`` carries FP16 casts (with FP32 islands), and
    ``model.int8.onnx`` carries Q/DQ nodes.
  - TensorRT 10 (JetPack 6 ships 10.3) has both: a graph that carries its own precision is
    built strongly typed (``STRONGLY_TYPED`` creation flag), so TensorRT keeps exactly the
    types of the export, FP32 islands included; a plain FP32 graph asked to run in FP16/INT8
    is built weakly typed with ``BuilderFlag.FP16`` / ``INT8`` (plus the implicit calibrator
    for INT8 without Q/DQ, deprecated by NVIDIA since 10.1).
  Capabilities are detected on the module (``probe_tensorrt``), not from the version string.

The TensorRT module is imported lazily. Every function that touches it takes ``trt=``. The
TensorRT-RTX path runs for real in this project's tests and CI (parse and build need no
GPU); standard TensorRT cannot be installed on the development machines, so its
TensorRT-10-only branches (weak typing, precision flags, implicit calibrator, DLA, timing
cache) are checked against the test double in ``tests/fakes/tensorrt.py``, and
``mrm-edge doctor`` is the check to run on a machine that has it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mrm_edge.export.tensorrt.cache import PRECISIONS, EngineKey, lookup, store
from mrm_edge.export.tensorrt.capability import (
    DEFAULT_RTX_TARGETS,
    RTX,
    GpuInfo,
    TensorRTInfo,
    TensorRTUnavailable,
    import_tensorrt,
    probe_tensorrt,
)

from mrm_edge.card import sha256_file
from mrm_edge.data.errors import first_line
from mrm_edge.fileio import atomic_write_bytes

Precision = Literal["fp32", "fp16", "int8"]
StrongTyping = Literal["auto"] | bool

log = logging.getLogger("mrm_edge.export.tensorrt")

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
DEFAULT_PROFILE = (1, 8, 32)
# 2 GiB: the FP32 MRM-Net engine at batch 256 needs a little over 1 GiB of workspace for its
# fastest tactic (TensorRT-RTX refuses a 1 GiB limit with OutOfMemory); it is a ceiling, not
# an allocation, so a Jetson build with a small max batch uses far less.
DEFAULT_WORKSPACE = 2 << 30


class BuildError(RuntimeError):
    """The engine cannot be built; the one-line message says why."""


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class BuildOptions:
    """How to build an engine.

    Attributes:
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``; names the ONNX variant too.
        profile: (min, opt, max) batch size of the optimization profile; buffers at run time
            are sized for max, and a narrow range builds faster kernels.
        workspace_bytes: builder workspace pool limit (``MemoryPoolType.WORKSPACE``).
        timing_cache: file to load the timing cache from if present, and save it to after
            the build (speeds up rebuilds; TensorRT ignores entries from another device).
        dla_core: run on this DLA core (Jetson), with GPU fallback for unsupported layers.
        strongly_typed: ``"auto"`` (strongly typed when the graph carries its own precision
            or the TensorRT has no weak typing), or force True / False.
        calibrator: an ``IInt8Calibrator`` for implicit INT8 (TensorRT 10, graphs without
            Q/DQ only).
        calibration_id: identifies the calibration data (e.g. its SHA-256); required with
            ``calibrator`` because the engine cache is keyed by it.
        compute_targets: TensorRT-RTX only: the compute capabilities ("8.6", ...) the
            engine is built for; None means :data:`DEFAULT_RTX_TARGETS`. Ignored by
            standard TensorRT, which builds for the GPU it runs on.
    """

    precision: Precision = "fp16"
    profile: tuple[int, int, int] = DEFAULT_PROFILE
    workspace_bytes: int = DEFAULT_WORKSPACE
    timing_cache: Path | None = None
    dla_core: int | None = None
    strongly_typed: StrongTyping = "auto"
    calibrator: Any = None
    calibration_id: str | None = None
    compute_targets: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"BuildOptions: precision {self.precision!r}, expected one of {PRECISIONS}"
            )
        p = tuple(self.profile)
        if len(p) != 3 or not all(isinstance(b, int) and not isinstance(b, bool) for b in p):
            raise ValueError(
                f"BuildOptions: profile {self.profile!r}, expected (min, opt, max) batch"
            )
        if not 1 <= p[0] <= p[1] <= p[2]:
            raise ValueError(f"BuildOptions: profile {p}, expected 1 <= min <= opt <= max")
        object.__setattr__(self, "profile", p)
        if not isinstance(self.workspace_bytes, int) or self.workspace_bytes <= 0:
            raise ValueError(
                f"BuildOptions: workspace_bytes {self.workspace_bytes!r}, expected > 0"
            )
        if self.dla_core is not None and (not isinstance(self.dla_core, int) or self.dla_core < 0):
            raise ValueError(
                f"BuildOptions: dla_core {self.dla_core!r}, expected None or an int >= 0"
            )
        if self.strongly_typed not in ("auto", True, False):
            raise ValueError(
                f"BuildOptions: strongly_typed {self.strongly_typed!r}, "
                "expected 'auto', True or False"
            )
        if self.calibrator is not None and not self.calibration_id:
            raise ValueError(
                "BuildOptions: calibration_id is required with a calibrator "
                "(it keys the engine cache)"
            )
        if self.timing_cache is not None:
            object.__setattr__(self, "timing_cache", Path(self.timing_cache))
        if self.compute_targets is not None:
            object.__setattr__(self, "compute_targets", parse_compute_targets(self.compute_targets))

    @property
    def rtx_targets(self) -> tuple[str, ...]:
        """The compute capabilities a TensorRT-RTX build targets."""
        return self.compute_targets or DEFAULT_RTX_TARGETS


def parse_compute_targets(text: str | Any) -> tuple[str, ...]:
    """``"8.6,8.9"`` or ``("8.6", "8.9")`` → ("8.6", "8.9"), sorted, without repeats;
    ``"+7.5"`` adds 7.5 to :data:`DEFAULT_RTX_TARGETS`. ValueError with a one-line reason."""
    items = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    base: list[str] = []
    if items and isinstance(items[0], str) and items[0].startswith("+"):
        base, items = list(DEFAULT_RTX_TARGETS), [items[0][1:], *items[1:]]
    out = set(base)
    for item in items:
        if not isinstance(item, str) or not re.fullmatch(r"\d{1,2}\.\d", item):
            raise ValueError(
                f"compute target {item!r}: expected a compute capability such as 8.6 "
                "(a comma-separated list, or +7.5 to add to the defaults)"
            )
        out.add(item)
    if not out:
        raise ValueError("compute targets: expected at least one, e.g. 8.6")
    return tuple(sorted(out, key=lambda v: tuple(int(x) for x in v.split("."))))


def parse_batch_profile(text: str) -> tuple[int, int, int]:
    """``"1,8,32"`` → (1, 8, 32); ``"16"`` → (16, 16, 16). ValueError with a one-line reason."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise ValueError(
            f"batch profile {text!r}: expected MIN,OPT,MAX integers, e.g. 1,8,32"
        ) from None
    if len(nums) == 1:
        nums = nums * 3
    if len(nums) != 3 or not 1 <= nums[0] <= nums[1] <= nums[2]:
        raise ValueError(
            f"batch profile {text!r}: expected MIN,OPT,MAX with 1 <= MIN <= OPT <= MAX"
        )
    return nums[0], nums[1], nums[2]


def parse_size(text: str) -> int:
    """``"1G"``, ``"512M"``, ``"64K"``, ``"1048576"`` → bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(i?B)?\s*", str(text), flags=re.IGNORECASE)
    if not m or int(m.group(1)) <= 0:
        raise ValueError(
            f"size {text!r}: expected a positive number with an optional K, M or G suffix"
        )
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]


# --------------------------------------------------------------------------- the graph


@dataclass(frozen=True)
class GraphInfo:
    """What the builder needs to know about an ONNX graph before TensorRT parses it.

    ``input_shape`` uses -1 for dynamic dimensions. ``source`` says how it was learnt:
    ``"onnx"`` (every node inspected) or ``"contract"`` (the ``onnx`` package is missing:
    I/O from ONNX Runtime, Q/DQ from a byte scan, FP16 assumed from the file's precision
    name — ``model.fp16.onnx`` is the mixed-precision export by this project's contract).
    """

    input_name: str
    input_shape: tuple[int, ...]
    output_name: str
    has_qdq: bool
    has_fp16: bool
    declared_precision: str | None = None
    source: str = "onnx"

    @property
    def carries_precision(self) -> bool:
        """The graph states its own reduced precision (FP16 types or Q/DQ nodes)."""
        return self.has_qdq or self.has_fp16


def inspect_onnx(onnx_path: Path, precision: str = "fp32") -> GraphInfo:
    """Input/output and precision facts of ``onnx_path`` (see :class:`GraphInfo`)."""
    path = Path(onnx_path)
    if not path.is_file():
        raise BuildError(f"{path}: no such ONNX file")
    try:
        import onnx  # lazy: not part of the edge install
    except ImportError:
        return _inspect_by_contract(path, precision)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise BuildError(f"{path}: not a readable ONNX model ({first_line(e)})") from e
    half = {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    has_qdq = has_fp16 = False
    for graph in _graphs(model.graph, onnx):
        for node in graph.node:
            if node.op_type in QDQ_OPS:
                has_qdq = True
            if node.op_type == "Cast" and any(
                a.name == "to" and a.i in half for a in node.attribute
            ):
                has_fp16 = True
        if any(t.data_type in half for t in graph.initializer):
            has_fp16 = True
        values = (*graph.input, *graph.output, *graph.value_info)
        if any(v.type.tensor_type.elem_type in half for v in values):
            has_fp16 = True
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise BuildError(
            f"{path}: expected one input and one output, found inputs "
            f"{[i.name for i in inputs]} and outputs {[o.name for o in model.graph.output]}"
        )
    dims = inputs[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
    meta = {p.key: p.value for p in model.metadata_props}
    return GraphInfo(
        input_name=inputs[0].name,
        input_shape=shape,
        output_name=model.graph.output[0].name,
        has_qdq=has_qdq,
        has_fp16=has_fp16,
        declared_precision=meta.get("precision"),
        source="onnx",
    )


def _graphs(graph: Any, onnx: Any) -> Any:
    """The graph and every subgraph (If/Loop bodies) in it."""
    yield graph
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(a.g, onnx)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from _graphs(g, onnx)


def _inspect_by_contract(path: Path, precision: str) -> GraphInfo:
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise BuildError(
            f"{path}: cannot inspect it: neither onnx nor onnxruntime is installed"
        ) from e
    try:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise BuildError(f"{path}: ONNX Runtime cannot load it ({first_line(e)})") from e
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    data = path.read_bytes()
    return GraphInfo(
        input_name=inp.name,
        input_shape=tuple(d if isinstance(d, int) else -1 for d in inp.shape),
        output_name=out.name,
        has_qdq=b"QuantizeLinear" in data or b"DequantizeLinear" in data,
        has_fp16=precision == "fp16",
        source="contract",
    )


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class BuildPlan:
    """How precision will be obtained: typing mode, builder flags, calibrator, and notes
    (things the user should know, e.g. an FP16 request that will run in FP32)."""

    strongly_typed: bool
    builder_flags: tuple[str, ...] = ()
    use_calibrator: bool = False
    notes: tuple[str, ...] = ()


def plan_build(options: BuildOptions, graph: GraphInfo, trt_info: TensorRTInfo) -> BuildPlan:
    """Decide strong vs weak typing and the precision flags (module docstring has the rules).

    Raises :class:`BuildError` for requests this TensorRT cannot honour (e.g. INT8 without
    Q/DQ on TensorRT 11, or ``strongly_typed=False`` where weak typing no longer exists).
    """
    ver = trt_info.version or "?"
    always_typed = not trt_info.has_precision_flags
    if options.strongly_typed is True and not trt_info.strongly_typed_supported:
        raise BuildError(f"TensorRT {ver} cannot build strongly typed networks")
    if options.strongly_typed is False and always_typed:
        raise BuildError(
            f"TensorRT {ver} is always strongly typed: precision must come from the ONNX graph "
            "(FP16 casts, Q/DQ for INT8)"
        )
    if always_typed or options.strongly_typed is True:
        typed = True
    elif options.strongly_typed is False:
        typed = False
    else:
        typed = graph.carries_precision and trt_info.strongly_typed_supported

    notes: list[str] = []
    if typed:
        if options.precision == "int8" and not graph.has_qdq:
            raise BuildError(
                f"INT8 with a strongly typed build (TensorRT {ver}) needs Q/DQ nodes in the ONNX, "
                "and this graph has none: export model.int8.onnx with explicit quantization"
            )
        if options.precision == "fp16" and not graph.has_fp16:
            notes.append(
                "fp16 requested but the graph carries no FP16 tensors: the strongly typed engine "
                "computes in FP32 (export model.fp16.onnx with FP16 casts)"
            )
        if options.calibrator is not None:
            notes.append("calibrator ignored: a strongly typed build takes INT8 scales from Q/DQ")
        return BuildPlan(strongly_typed=True, notes=tuple(notes))

    flags: list[str] = []
    use_calibrator = False
    if graph.carries_precision and not trt_info.strongly_typed_supported:
        # e.g. TensorRT 8.6 (JetPack 6.0): casts are layer hints only under weak typing.
        notes.append(
            f"TensorRT {ver} cannot build strongly typed networks: the graph's FP32 islands "
            "may run in reduced precision"
        )
    if options.precision == "fp16":
        flags.append("FP16")
    elif options.precision == "int8":
        # INT8 with FP16 fallback for layers that have no INT8 kernel, as trtexec --int8 --fp16.
        flags += ["INT8", "FP16"]
        if not graph.has_qdq:
            if options.calibrator is None:
                raise BuildError(
                    "INT8 without Q/DQ nodes needs a calibrator (TensorRT 10 implicit "
                    "quantization); export model.int8.onnx with Q/DQ instead"
                )
            if not trt_info.has_int8_calibrator:
                raise BuildError(f"TensorRT {ver} has no implicit INT8 calibrator")
            use_calibrator = True
    if options.dla_core is not None and options.precision == "fp32":
        notes.append("DLA runs FP16/INT8 only: an FP32 build runs every layer on the GPU fallback")
    return BuildPlan(False, tuple(flags), use_calibrator, tuple(notes))


# --------------------------------------------------------------------------- building


@dataclass(frozen=True)
class BuildResult:
    engine: bytes
    plan: BuildPlan
    input_name: str
    input_dims: tuple[int, ...]  # per-sample dims (without batch)
    seconds: float
    timing_cache_loaded: bool = False
    notes: tuple[str, ...] = field(default=())
    layers: int = 0  # layers of the parsed network (Q/DQ included), before fusion
    flavour: str = "tensorrt"
    trt_version: str = ""
    compute_targets: tuple[str, ...] | None = None  # TensorRT-RTX: what the config targets


def _make_logger(trt: Any) -> Any:
    """A TensorRT logger that forwards warnings and errors to Python logging and keeps the
    errors, so a failed build can say why in its own message."""

    class CapturingLogger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            name = getattr(severity, "name", str(severity))
            if "ERROR" in name:
                self.errors.append(str(msg).strip())
                log.error("TensorRT: %s", msg)
            elif "WARNING" in name:
                log.warning("TensorRT: %s", msg)

    return CapturingLogger()


def _parser_errors(parser: Any) -> str:
    msgs = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        desc = err.desc() if hasattr(err, "desc") else str(err)
        where = ""
        with contextlib.suppress(Exception):
            op, node = err.node_operator(), err.node_name()
            if op or node:
                where = f"{op} node '{node}': " if node else f"{op}: "
        msgs.append(f"{where}{desc}".strip())
    return "; ".join(m.replace("\n", " ") for m in msgs) or "no error reported by the parser"


def _network_input(network: Any, onnx_path: Path) -> tuple[str, tuple[int, ...], int]:
    """(name, per-sample dims, batch dim) of the parsed network's single input."""
    if network.num_inputs != 1:
        names = [network.get_input(i).name for i in range(network.num_inputs)]
        raise BuildError(f"{onnx_path}: expected one network input, TensorRT sees {names}")
    tensor = network.get_input(0)
    shape = tuple(int(d) for d in tensor.shape)
    if len(shape) < 2:
        raise BuildError(
            f"{onnx_path}: input '{tensor.name}' has shape {shape}, expected [batch, ...]"
        )
    if any(d < 0 for d in shape[1:]):
        raise BuildError(
            f"{onnx_path}: input '{tensor.name}' has dynamic non-batch dimensions {shape}; "
            "export with a fixed [leads, samples] per window"
        )
    return tensor.name, shape[1:], shape[0]


def _trtexec_hint(onnx_path: Path, options: BuildOptions) -> str:
    from mrm_edge.export.tensorrt.trtexec import trtexec_command

    try:
        engine = Path(onnx_path).with_name(f"model.{options.precision}.engine")
        return trtexec_command(onnx_path, engine, options)
    except Exception as e:  # the hint must never hide the real problem
        return f"trtexec (see trtexec --help; no line could be made here: {first_line(e)})"


def build_engine(onnx_path: Path, options: BuildOptions, trt: Any = None) -> bytes:
    """Build ``onnx_path`` into a serialized engine (bytes). See :func:`build_engine_detailed`."""
    return build_engine_detailed(onnx_path, options, trt).engine


def build_engine_detailed(
    onnx_path: Path, options: BuildOptions, trt: Any = None, *, graph: GraphInfo | None = None
) -> BuildResult:
    """Build ``onnx_path`` with ``options``; ``trt`` is the TensorRT module (default: import
    standard TensorRT; pass ``tensorrt_rtx`` for an RTX build).

    Raises :class:`TensorRTUnavailable` (with the equivalent trtexec line) when TensorRT is
    not installed, :class:`BuildError` for everything that stops a build.
    """
    onnx_path = Path(onnx_path)
    if trt is None:
        try:
            trt = import_tensorrt()
        except TensorRTUnavailable as e:
            raise TensorRTUnavailable(
                "TensorRT is not installed here; run `mrm-edge export --engine` on the target, "
                f"or: {_trtexec_hint(onnx_path, options)}"
            ) from e
    info = probe_tensorrt(trt)
    graph = graph or inspect_onnx(onnx_path, options.precision)
    plan = plan_build(options, graph, info)
    notes = list(plan.notes)

    t0 = time.perf_counter()
    logger = _make_logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    creation = getattr(trt, "NetworkDefinitionCreationFlag", None)
    if plan.strongly_typed and creation is not None and hasattr(creation, "STRONGLY_TYPED"):
        # Required on 10.x for typed graphs; accepted (and redundant) on 11.x and RTX.
        flags |= 1 << int(creation.STRONGLY_TYPED)
    network = builder.create_network(flags)
    # The parser owns the weights the network points at: it must stay alive until the
    # build has finished (it does: it is a local until this function returns).
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise BuildError(f"{onnx_path}: TensorRT's ONNX parser failed: {_parser_errors(parser)}")
    input_name, dims, batch_dim = _network_input(network, onnx_path)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_bytes)
    for flag in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if plan.use_calibrator:
        config.int8_calibrator = options.calibrator
    _add_profile(builder, config, onnx_path, input_name, dims, batch_dim, options.profile)

    rtx = info.flavour == RTX
    targets = _set_compute_targets(trt, config, options.rtx_targets, info) if rtx else None
    timing_loaded = False
    if options.timing_cache is not None and not rtx:  # TensorRT-RTX has no timing cache
        timing_loaded = _load_timing_cache(config, options.timing_cache, notes)
    if options.dla_core is not None:
        _use_dla(trt, builder, config, options.dla_core, rtx)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(
            f"{onnx_path}: TensorRT could not build the engine: {_why(logger, options)}"
        )
    engine = bytes(serialized)

    if options.timing_cache is not None and not rtx:
        atomic_write_bytes(options.timing_cache, bytes(config.get_timing_cache().serialize()))
    return BuildResult(
        engine=engine,
        plan=plan,
        input_name=input_name,
        input_dims=dims,
        seconds=time.perf_counter() - t0,
        timing_cache_loaded=timing_loaded,
        notes=tuple(notes),
        layers=int(network.num_layers),
        flavour=info.flavour,
        trt_version=str(info.version),
        compute_targets=targets,
    )


def _add_profile(
    builder: Any,
    config: Any,
    onnx_path: Path,
    input_name: str,
    dims: tuple[int, ...],
    batch_dim: int,
    profile: tuple[int, int, int],
) -> None:
    lo, opt, hi = profile
    if batch_dim < 0:
        prof = builder.create_optimization_profile()
        prof.set_shape(input_name, (lo, *dims), (opt, *dims), (hi, *dims))
        config.add_optimization_profile(prof)
    elif (lo, opt, hi) != (batch_dim,) * 3:
        raise BuildError(
            f"{onnx_path}: input '{input_name}' has a fixed batch of {batch_dim}, so the batch "
            f"profile {profile} cannot apply; export with a dynamic batch axis"
        )


def _set_compute_targets(
    trt: Any, config: Any, targets: tuple[str, ...], info: TensorRTInfo
) -> tuple[str, ...]:
    """Point a TensorRT-RTX config at ``targets``; return what the config then reports."""
    unknown = [t for t in targets if t not in info.compute_targets]
    if unknown:
        raise BuildError(
            f"TensorRT-RTX {info.version} cannot target compute {', '.join(unknown)}; it "
            f"targets {', '.join(info.compute_targets)} (Hopper and Jetson need standard TensorRT)"
        )
    enum = trt.ComputeCapability
    config.num_compute_capabilities = len(targets)
    for i, target in enumerate(targets):
        major, minor = target.split(".")
        if not config.set_compute_capability(getattr(enum, f"SM{major}{minor}"), i):
            raise BuildError(f"TensorRT-RTX refused compute target {target}")
    got = [config.get_compute_capability(i) for i in range(config.num_compute_capabilities)]
    return tuple(f"{int(v) // 10}.{int(v) % 10}" for v in got)  # SM86 has the value 86


def _load_timing_cache(config: Any, path: Path, notes: list[str]) -> bool:
    """Attach the timing cache at ``path`` (or a new one); True when the file was loaded."""
    loaded = False
    data = b""
    if path.is_file():
        data = path.read_bytes()
        loaded = True
    cache = config.create_timing_cache(data)
    if cache is None or not config.set_timing_cache(cache, False):
        notes.append(f"timing cache {path} not usable here; started a new one")
        loaded = False
        config.set_timing_cache(config.create_timing_cache(b""), False)
    return loaded


def _use_dla(trt: Any, builder: Any, config: Any, core: int, rtx: bool) -> None:
    n = 0 if rtx else int(builder.num_DLA_cores)
    if core >= n:
        raise BuildError(
            f"DLA core {core} requested but this device has {n} DLA core(s) "
            "(DLA exists on Jetson AGX/NX Orin with standard TensorRT, not on discrete GPUs)"
        )
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = core
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


def _why(logger: Any, options: BuildOptions) -> str:
    """The builder's last errors, with the remedy for the one users hit: a workspace too small."""
    why = "; ".join(logger.errors[-3:]) if logger.errors else "no error logged by TensorRT"
    if "OutOfMemory" in why:
        why += (
            f" (the workspace limit is {options.workspace_bytes >> 20} MiB at max batch "
            f"{options.profile[2]}: raise it with --workspace or lower the max batch)"
        )
    return why


# --------------------------------------------------------------------------- cache front


def make_key(
    onnx_path: Path,
    options: BuildOptions,
    gpu: GpuInfo | None,
    trt_info: TensorRTInfo,
    plan: BuildPlan,
) -> EngineKey:
    """The cache key of building ``onnx_path`` with ``options`` (cache.py says why each field).

    A TensorRT-RTX engine is portable: its key names the compute targets, not a GPU, so
    ``gpu`` may be None. A standard TensorRT key needs the GPU that builds it.
    """
    rtx = trt_info.flavour == RTX
    if gpu is None and not rtx:
        raise BuildError("standard TensorRT builds on a GPU, and none was found here")
    return EngineKey(
        onnx_sha256=sha256_file(Path(onnx_path)),
        gpu_name=None if rtx else gpu.name,  # type: ignore[union-attr]
        compute_capability=None if rtx else gpu.compute_capability,  # type: ignore[union-attr]
        trt_version=str(trt_info.version),
        precision=options.precision,
        profile=options.profile,
        dla_core=options.dla_core,
        workspace_bytes=options.workspace_bytes,
        strongly_typed=plan.strongly_typed,
        calibration=options.calibration_id if plan.use_calibrator else None,
        flavour=trt_info.flavour,
        compute_targets=options.rtx_targets if rtx else None,
    )


def build_or_load(
    onnx_path: Path,
    out_dir: Path,
    options: BuildOptions,
    gpu: GpuInfo | None,
    trt_info: TensorRTInfo,
    trt: Any = None,
) -> tuple[Path, bool]:
    """The engine for this request in ``out_dir``: ``(path, built)``.

    A cached engine is used only if its sidecar verifies against the key (see cache.py);
    otherwise the engine is built and stored with its sidecar. ``trt_info`` must describe the
    ``trt`` module (default: import the flavour ``trt_info`` names) that would do the build;
    ``gpu`` may be None for TensorRT-RTX, which builds without one.
    """
    onnx_path = Path(onnx_path)
    if not trt_info.available:
        raise TensorRTUnavailable(
            f"TensorRT is not available here ({trt_info.reason}); run `mrm-edge export --engine` "
            f"on the target, or: {_trtexec_hint(onnx_path, options)}"
        )
    graph = inspect_onnx(onnx_path, options.precision)
    plan = plan_build(options, graph, trt_info)
    key = make_key(onnx_path, options, gpu, trt_info, plan)
    cached = lookup(out_dir, key)
    if cached is not None:
        return cached, False
    if trt is None:
        trt = import_tensorrt(trt_info.flavour)
    actual = probe_tensorrt(trt)
    if (actual.flavour, actual.version) != (trt_info.flavour, trt_info.version):
        raise BuildError(
            f"trt_info says {trt_info.display} {trt_info.version} but the module builds with "
            f"{actual.display} {actual.version}"
        )
    result = build_engine_detailed(onnx_path, options, trt, graph=graph)
    facts = {
        "onnx_file": onnx_path.name,
        "input": {"name": result.input_name, "dims": list(result.input_dims)},
        "flavour": result.flavour,
        "trt_version": result.trt_version,
        "compute_targets": list(result.compute_targets) if result.compute_targets else None,
        "layers": result.layers,
        "strongly_typed": result.plan.strongly_typed,
        "builder_flags": list(result.plan.builder_flags),
        "implicit_int8_calibration": result.plan.use_calibrator,
        "graph": {"has_qdq": graph.has_qdq, "has_fp16": graph.has_fp16, "source": graph.source},
        "build_seconds": round(result.seconds, 3),
        "built_on_gpu": gpu.summary() if gpu is not None else None,
        "timing_cache": (
            str(options.timing_cache) if options.timing_cache and result.flavour != RTX else None
        ),
        "timing_cache_loaded": result.timing_cache_loaded,
        "gpu_memory_bytes": gpu.total_memory_bytes if gpu is not None else None,
        "notes": list(result.notes),
    }
    return store(out_dir, key, result.engine, facts), True


__all__ = [
    "DEFAULT_PROFILE",
    "DEFAULT_WORKSPACE",
    "BuildError",
    "BuildOptions",
    "BuildPlan",
    "BuildResult",
    "GraphInfo",
    "build_engine",
    "build_engine_detailed",
    "build_or_load",
    "inspect_onnx",
    "make_key",
    "parse_batch_profile",
    "parse_compute_targets",
    "parse_size",
    "plan_build",
]
