"""ONNX → serialized TensorRT engine: standard TensorRT 10/11 and TensorRT-RTX, one code path
(TensorRT-RTX with compute targets and without timing cache or DLA); the precision is planned
first (:func:`~mrm_edge.export.tensorrt.plan.plan_build`). What ran for real and what only
against ``tests/fakes/tensorrt.py``: docs/export.md.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrm_edge.export.tensorrt.cache import EngineKey, lookup, store
from mrm_edge.export.tensorrt.errors import BuildError
from mrm_edge.export.tensorrt.graph import GraphInfo, inspect_onnx
from mrm_edge.export.tensorrt.plan import BuildOptions, BuildPlan, plan_build
from mrm_edge.runtime.backends.tensorrt.capability import (
    RTX,
    GpuInfo,
    TensorRTInfo,
    TensorRTUnavailable,
    import_tensorrt,
    probe_tensorrt,
)
from mrm_edge.runtime.backends.tensorrt.loader import make_logger

from mrm_edge.errors import first_line
from mrm_edge.fileio import atomic_write_bytes, sha256_file

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

    from mrm_edge.artifacts import trtexec_engine_filename

    try:
        engine = Path(onnx_path).with_name(trtexec_engine_filename(options.precision))
        return trtexec_command(onnx_path, engine, options)
    except Exception as e:  # the hint must never hide the real problem
        return f"trtexec (see trtexec --help; no line could be made here: {first_line(e)})"


def build_engine(
    onnx_path: Path, options: BuildOptions, trt: Any, *, graph: GraphInfo | None = None
) -> BuildResult:
    """Build ``onnx_path`` with ``options`` on ``trt``, the TensorRT module (``tensorrt`` or
    ``tensorrt_rtx``); :class:`BuildError` for everything that stops a build."""
    onnx_path = Path(onnx_path)
    info = probe_tensorrt(trt)
    graph = graph or inspect_onnx(onnx_path, options.precision)
    plan = plan_build(options, graph, info)
    notes = list(plan.notes)

    t0 = time.perf_counter()
    logger = make_logger(trt)
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
    errors = logger.errors()
    why = "; ".join(errors[-3:]) if errors else "no error logged by TensorRT"
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
    graph: GraphInfo | None = None,
) -> EngineKey:
    """The cache key of building ``onnx_path`` with ``options`` (cache.py says why each field).

    A TensorRT-RTX engine is portable: its key names the compute targets, not a GPU, so
    ``gpu`` may be None. A standard TensorRT key needs the GPU that builds it.
    """
    rtx = trt_info.flavour == RTX
    if gpu is None and not rtx:
        raise BuildError("standard TensorRT builds on a GPU, and none was found here")
    plan = plan_build(options, graph or inspect_onnx(onnx_path, options.precision), trt_info)
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
    key = make_key(onnx_path, options, gpu, trt_info, graph)
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
    result = build_engine(onnx_path, options, trt, graph=graph)
    facts = {
        "onnx_file": onnx_path.name,
        "input": {"name": result.input_name, "dims": list(result.input_dims)},
        "flavour": result.flavour,
        "trt_version": result.trt_version,
        "compute_targets": list(result.compute_targets) if result.compute_targets else None,
        "layers": result.layers,
        "strongly_typed": result.plan.strongly_typed,
        "builder_flags": list(result.plan.builder_flags),
        "implicit_int8_calibration": False,  # a sidecar field from when it existed
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
