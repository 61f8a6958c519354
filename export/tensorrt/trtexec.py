"""The trtexec line equivalent to a Python build, for machines where only trtexec is at hand
(or to reproduce a build by hand). The same :func:`~mrm_edge.export.tensorrt.plan.plan_build`
decision as the Python builder picks the flags (TensorRT 11 removed ``--fp16`` / ``--int8``),
so the line and the Python build agree.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from mrm_edge.export.tensorrt.errors import BuildError
from mrm_edge.export.tensorrt.graph import GraphInfo, inspect_onnx
from mrm_edge.export.tensorrt.plan import BuildOptions, plan_build
from mrm_edge.runtime.backends.tensorrt.capability import TensorRTInfo

# Used when the ONNX cannot be read here (the line is for another machine anyway).
DEFAULT_INPUT = ("ecg", (12, 1000))


def _mem(n: int) -> str:
    # trtexec reads --memPoolSize values with B/K/M/G suffixes (binary units).
    for suffix, shift in (("G", 30), ("M", 20), ("K", 10)):
        if n % (1 << shift) == 0:
            return f"{n >> shift}{suffix}"
    return f"{n}B"


def trtexec_command(onnx_path: Path, engine_path: Path, options: BuildOptions) -> str:
    """The trtexec command line that builds ``engine_path`` from ``onnx_path`` like
    ``build_engine(onnx_path, options)`` would.

    Planned with TensorRT 10 capabilities, which gives the line of 11 whenever the graph
    carries its own precision (``--stronglyTyped`` is accepted by both). If the ONNX cannot be
    read here, the MRM-Net input (``ecg``, 12 x 1000) and the precision named by ``options``
    are assumed. Raises BuildError for a request TensorRT cannot honour.
    """
    info = TensorRTInfo.assumed("10")
    try:
        graph = inspect_onnx(Path(onnx_path), options.precision)
    except BuildError:
        name, dims = DEFAULT_INPUT
        graph = GraphInfo(
            input_name=name,
            input_shape=(-1, *dims),
            has_qdq=options.precision == "int8",
            has_fp16=options.precision == "fp16",
            source="contract",
        )
    plan = plan_build(options, graph, info)
    dims = "x".join(str(d) for d in graph.input_shape[1:])
    name = graph.input_name
    lo, opt, hi = options.profile
    parts = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}"]
    if plan.strongly_typed and info.has_precision_flags:
        parts.append("--stronglyTyped")  # TensorRT 10 needs it; 11 accepts it (always on)
    parts += [f"--{flag.lower()}" for flag in plan.builder_flags]
    if graph.input_shape[:1] == (-1,):
        parts += [
            f"--minShapes={name}:{lo}x{dims}",
            f"--optShapes={name}:{opt}x{dims}",
            f"--maxShapes={name}:{hi}x{dims}",
        ]
    parts.append(f"--memPoolSize=workspace:{_mem(options.workspace_bytes)}")
    if options.timing_cache is not None:
        parts.append(f"--timingCacheFile={options.timing_cache}")
    if options.dla_core is not None:
        parts += [f"--useDLACore={options.dla_core}", "--allowGPUFallback"]
    parts.append("--skipInference")  # build only; benchmark separately if wanted
    return shlex.join(parts)
