"""How to build an engine (:class:`BuildOptions` and the CLI parsers of its fields) and how
precision will be obtained (:func:`plan_build`: strong or weak typing, builder flags; the
TensorRT 10 and 11 difference is in docs/export.md). TensorRT 11 and TensorRT-RTX are always
strongly typed; TensorRT 10 builds a graph that carries its own precision strongly typed, a
plain FP32 graph asked for FP16/INT8 weakly typed with the builder flags. INT8 needs Q/DQ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mrm_edge.export.tensorrt.errors import BuildError
from mrm_edge.export.tensorrt.graph import GraphInfo
from mrm_edge.runtime.backends.tensorrt.capability import DEFAULT_RTX_TARGETS, TensorRTInfo

from mrm_edge.artifacts import ENGINE_PRECISIONS

Precision = Literal["fp32", "fp16", "int8"]

DEFAULT_PROFILE = (1, 8, 32)
# 2 GiB: the FP32 MRM-Net engine at batch 256 needs a little over 1 GiB of workspace for its
# fastest tactic (TensorRT-RTX refuses a 1 GiB limit with OutOfMemory); it is a ceiling, not
# an allocation, so a Jetson build with a small max batch uses far less.
DEFAULT_WORKSPACE = 2 << 30


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
        compute_targets: TensorRT-RTX only: the compute capabilities ("8.6", ...) the
            engine is built for; None means :data:`DEFAULT_RTX_TARGETS`. Ignored by
            standard TensorRT, which builds for the GPU it runs on.
    """

    precision: Precision = "fp16"
    profile: tuple[int, int, int] = DEFAULT_PROFILE
    workspace_bytes: int = DEFAULT_WORKSPACE
    timing_cache: Path | None = None
    dla_core: int | None = None
    compute_targets: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.precision not in ENGINE_PRECISIONS:
            raise ValueError(
                f"BuildOptions: precision {self.precision!r}, expected one of {ENGINE_PRECISIONS}"
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


@dataclass(frozen=True)
class BuildPlan:
    """How precision will be obtained: typing mode, builder flags, and notes (things the
    user should know, e.g. an FP16 request that will run in FP32)."""

    strongly_typed: bool
    builder_flags: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def plan_build(options: BuildOptions, graph: GraphInfo, trt_info: TensorRTInfo) -> BuildPlan:
    """Decide strong vs weak typing and the precision flags (module docstring has the rules).

    Strongly typed where the TensorRT has no weak typing left, or where the graph carries
    its own precision and the TensorRT can keep it. Raises :class:`BuildError` for requests
    this TensorRT cannot honour (e.g. INT8 without Q/DQ).
    """
    ver = trt_info.version or "?"
    if options.precision == "int8" and not graph.has_qdq:
        raise BuildError(
            f"INT8 without Q/DQ nodes: TensorRT {ver} needs Q/DQ nodes in the ONNX (else it "
            "needs a calibrator, TensorRT 10's implicit quantization, which this project does "
            "not use); export model.int8-sym.onnx with explicit quantization"
        )
    typed = not trt_info.has_precision_flags or (
        graph.carries_precision and trt_info.strongly_typed_supported
    )

    notes: list[str] = []
    if typed:
        if options.precision == "fp16" and not graph.has_fp16:
            notes.append(
                "fp16 requested but the graph carries no FP16 tensors: the strongly typed engine "
                "computes in FP32 (export model.fp16.onnx with FP16 casts)"
            )
        return BuildPlan(strongly_typed=True, notes=tuple(notes))

    flags: list[str] = []
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
    if options.dla_core is not None and options.precision == "fp32":
        notes.append("DLA runs FP16/INT8 only: an FP32 build runs every layer on the GPU fallback")
    return BuildPlan(False, tuple(flags), tuple(notes))
