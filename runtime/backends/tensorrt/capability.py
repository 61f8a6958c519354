"""What this machine can do: which TensorRT flavours import, what they support, which GPU; and
which flavour builds (:func:`choose_flavour`). The flavours and the rule: docs/export.md.

Probes never raise: a missing or broken install is an answer ("not available, because ..."),
not an error. Capabilities are detected on the module (``hasattr``), not by parsing version
strings, because NVIDIA removes things on major versions (TensorRT 11 dropped the precision
flags) and JetPack ships its own numbering. Nothing heavy is imported at module import.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mrm_edge.runtime.backends.cuda.api import GpuInfo

from mrm_edge.errors import first_line

#: The flavours, as named on the command line and in engine sidecars.
STANDARD, RTX = "tensorrt", "tensorrt-rtx"
FLAVOURS: tuple[str, ...] = (STANDARD, RTX)
FLAVOUR_CHOICES: tuple[str, ...] = ("auto", *FLAVOURS)
#: The Python module each flavour imports as.
MODULES: dict[str, str] = {STANDARD: "tensorrt", RTX: "tensorrt_rtx"}
DISPLAY: dict[str, str] = {STANDARD: "TensorRT", RTX: "TensorRT-RTX"}
FLAVOUR_ENV = "MRM_EDGE_TRT_FLAVOUR"
#: What an RTX build targets unless told otherwise: TensorRT-RTX's own documented default set
#: (Ampere, Ada, Blackwell). Set explicitly so the sidecar records exactly what was built.
DEFAULT_RTX_TARGETS: tuple[str, ...] = ("8.0", "8.6", "8.9", "12.0")

# Said wherever TensorRT is missing: what to install, per platform.
INSTALL_HINT = (
    "install it on the GPU machine: pip install 'mrm-edge[tensorrt]' (x86_64 / SBSA), "
    "or use the TensorRT that ships with JetPack on Jetson (apt: python3-libnvinfer); "
    "for RTX GPUs, pip install 'mrm-edge[tensorrt-rtx]' (builds on any x86_64 machine)"
)
RTX_INSTALL_HINT = "pip install 'mrm-edge[tensorrt-rtx]' (x86_64 Linux / Windows)"
CUDA_PYTHON_HINT = "pip install 'cuda-python>=12.4' (part of the `tensorrt` extra)"


class TensorRTUnavailable(RuntimeError, ImportError):
    """TensorRT cannot be imported here; the message says why and what to do instead.

    The one such error, wherever TensorRT is imported (the builder, the runtime)."""


@dataclass(frozen=True)
class TensorRTInfo:
    """The TensorRT found here (or why none was).

    Attributes:
        available: the flavour's module imported.
        version: its ``__version__`` (e.g. ``"10.3.0"``, ``"1.7.1.116"``), None when unavailable.
        reason: why it is unavailable (one line), None when available.
        strongly_typed_supported: strongly typed networks can be built: the
            ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` flag exists (TensorRT >= 9), or
            the precision flags are gone, which means every network is strongly typed (11).
        has_precision_flags: ``BuilderFlag.FP16`` exists (TensorRT 10 and older: weak typing
            is possible; TensorRT 11 and TensorRT-RTX removed it).
        flavour: ``"tensorrt"`` or ``"tensorrt-rtx"``.
        compute_targets: compute capabilities an ahead-of-time build can target
            (TensorRT-RTX's ``ComputeCapability`` enum), () for standard TensorRT, which
            builds for the GPU it runs on.
    """

    available: bool
    version: str | None = None
    reason: str | None = None
    strongly_typed_supported: bool = False
    has_precision_flags: bool = False
    flavour: str = STANDARD
    compute_targets: tuple[str, ...] = field(default=())

    @property
    def builds_without_gpu(self) -> bool:
        """Engines can be built here with no GPU (TensorRT-RTX's ahead-of-time build)."""
        return self.available and self.flavour == RTX

    @property
    def display(self) -> str:
        return DISPLAY.get(self.flavour, self.flavour)

    @classmethod
    def assumed(cls, version: str, flavour: str = STANDARD) -> TensorRTInfo:
        """The capabilities a TensorRT of ``version`` has, for planning a build elsewhere
        (e.g. printing a trtexec line for a target machine). ``available`` stays True so the
        planner treats it as a real TensorRT; ``reason`` says it is assumed."""
        m = re.match(r"(\d+)", version)
        if not m:
            raise ValueError(f"TensorRT version {version!r}: expected e.g. '10.3' or '11'")
        major = int(m.group(1))
        rtx = flavour == RTX
        return cls(
            available=True,
            version=version,
            reason="assumed from the version number, not probed",
            strongly_typed_supported=rtx or major >= 9,
            has_precision_flags=not rtx and major < 11,
            flavour=flavour,
            compute_targets=DEFAULT_RTX_TARGETS if rtx else (),
        )

    def summary(self) -> str:
        if not self.available:
            return f"not available: {self.reason}"
        typing = (
            "strongly typed only"
            if not self.has_precision_flags
            else ("weak or strong typing" if self.strongly_typed_supported else "weak typing only")
        )
        aot = (
            f", builds without a GPU for compute {', '.join(self.compute_targets)}"
            if self.builds_without_gpu
            else ""
        )
        return f"{self.display} {self.version} ({typing}{aot})"


def _import_tensorrt(flavour: str = STANDARD) -> Any:
    import importlib

    return importlib.import_module(MODULES[flavour])  # lazy: heavy, GPU/RTX machines only


def check_flavour(flavour: str, what: str = "TensorRT flavour") -> str:
    """``flavour`` if it is one of :data:`FLAVOUR_CHOICES`, else ValueError (one line)."""
    if flavour not in FLAVOUR_CHOICES:
        raise ValueError(f"{what} {flavour!r}, expected one of {', '.join(FLAVOUR_CHOICES)}")
    return flavour


def requested_flavour(flavour: str | None = None) -> str:
    """The flavour asked for: ``flavour`` if given, else ``$MRM_EDGE_TRT_FLAVOUR``, else auto."""
    if flavour is not None:
        return check_flavour(flavour)
    env = os.environ.get(FLAVOUR_ENV, "").strip()
    return check_flavour(env, f"${FLAVOUR_ENV}") if env else "auto"


def flavour_of(trt: Any) -> str:
    """Which flavour a TensorRT module (or a test double of one) is."""
    name = str(getattr(trt, "__name__", "")).split(".")[0]
    if name == MODULES[RTX] or hasattr(trt, "ComputeCapability"):
        return RTX
    return STANDARD


def import_tensorrt(flavour: str = STANDARD) -> Any:
    """Import ``flavour``'s module or raise :class:`TensorRTUnavailable` with the reason and
    what to install."""
    try:
        return _import_tensorrt(flavour)
    except Exception as e:  # a stub wheel or a missing libnvinfer raises more than ImportError
        hint = RTX_INSTALL_HINT if flavour == RTX else INSTALL_HINT
        raise TensorRTUnavailable(
            f"{DISPLAY[flavour]} is not installed here ({first_line(e)}); {hint}"
        ) from e


def compute_targets_of(trt: Any) -> tuple[str, ...]:
    """The compute capabilities TensorRT-RTX's ``ComputeCapability`` enum names ("7.5", ...)."""
    enum = getattr(trt, "ComputeCapability", None)
    members = getattr(enum, "__members__", {}) if enum is not None else {}
    out = []
    for name in members:
        m = re.fullmatch(r"SM(\d+)(\d)", name)  # SM86 -> 8.6, SM120 -> 12.0
        if m:
            out.append(f"{int(m.group(1))}.{m.group(2)}")
    return tuple(sorted(out, key=lambda v: tuple(int(p) for p in v.split("."))))


def probe_tensorrt(trt: Any = None, flavour: str = STANDARD) -> TensorRTInfo:
    """Describe ``flavour``'s TensorRT importable here (or the module passed as ``trt``, whose
    own flavour then counts). Never raises."""
    if trt is None:
        try:
            trt = _import_tensorrt(flavour)
        except Exception as e:
            hint = RTX_INSTALL_HINT if flavour == RTX else INSTALL_HINT
            return TensorRTInfo(
                available=False,
                reason=f"{MODULES[flavour]} cannot be imported ({first_line(e)}); {hint}",
                flavour=flavour,
            )
    else:
        flavour = flavour_of(trt)
    try:
        version = str(getattr(trt, "__version__", "") or "unknown")
        builder_flag = getattr(trt, "BuilderFlag", None)
        creation_flag = getattr(trt, "NetworkDefinitionCreationFlag", None)
        has_flags = builder_flag is not None and hasattr(builder_flag, "FP16")
        typed_flag = creation_flag is not None and hasattr(creation_flag, "STRONGLY_TYPED")
        return TensorRTInfo(
            available=True,
            version=version,
            strongly_typed_supported=typed_flag or not has_flags,
            has_precision_flags=has_flags,
            flavour=flavour,
            compute_targets=compute_targets_of(trt) if flavour == RTX else (),
        )
    except Exception as e:  # an exotic binding raising on attribute access
        return TensorRTInfo(
            available=False,
            reason=f"{MODULES[flavour]} is unusable ({first_line(e)})",
            flavour=flavour,
        )


def probe_flavours(modules: Mapping[str, Any] | None = None) -> dict[str, TensorRTInfo]:
    """Every flavour's :class:`TensorRTInfo`. ``modules`` (flavour → module, e.g. a test
    double) replaces probing: only the flavours it names are considered, so a run given one
    module never reaches for another installed flavour."""
    if modules is None:
        return {f: probe_tensorrt(None, f) for f in FLAVOURS}
    return {
        f: probe_tensorrt(modules[f])
        if f in modules
        else TensorRTInfo(
            available=False,
            reason=f"not considered (a {DISPLAY[next(iter(modules))]} module was given)",
            flavour=f,
        )
        for f in FLAVOURS
    }


def choose_flavour(
    requested: str, infos: Mapping[str, TensorRTInfo], gpu: GpuInfo | None
) -> tuple[str | None, str]:
    """``(flavour, why)`` to build with under the rule in docs/export.md, or
    ``(None, why not)`` when no usable flavour fits the request."""
    check_flavour(requested)
    rtx, std = infos.get(RTX), infos.get(STANDARD)
    if requested != "auto":
        info = infos.get(requested)
        if info is None or not info.available:
            return None, f"{DISPLAY[requested]} requested: {info.reason if info else 'not probed'}"
        if requested == STANDARD and gpu is None:
            return None, "TensorRT requested but it builds on a GPU and there is none here"
        return requested, f"{DISPLAY[requested]} requested"
    if gpu is None:
        if rtx is not None and rtx.available:
            return RTX, "no GPU here: TensorRT-RTX builds ahead of time without one"
        why = rtx.reason if rtx is not None else "not probed"
        return None, f"no GPU here and TensorRT-RTX is not available ({why})"
    rtx_fits = rtx is not None and rtx.available and gpu.compute_capability in rtx.compute_targets
    if std is not None and std.available:
        why = "an engine tuned on this GPU"
        if not rtx_fits:
            why = f"compute {gpu.compute_capability} is no TensorRT-RTX target"
        return STANDARD, f"TensorRT on {gpu.name}: {why}"
    if rtx_fits:
        return (
            RTX,
            f"TensorRT-RTX: {gpu.name} (compute {gpu.compute_capability}) is one of its targets",
        )
    std_why = std.reason if std is not None else "not probed"
    return None, (
        f"{gpu.name} (compute {gpu.compute_capability}) needs standard TensorRT, which is not "
        f"available ({std_why})"
    )


def probe_gpu(device: int = 0, cudart: Any = None) -> tuple[GpuInfo | None, str | None]:
    """``(GpuInfo, None)`` for CUDA device ``device``, or ``(None, reason)``. Never raises.

    ``cudart``: a :class:`~mrm_edge.runtime.backends.cuda.CudaApi` (cuda-python or pycuda),
    or a cuda-python runtime module (or its test double); default: the binding
    ``load_cuda_api`` picks, imported here and not at module import.
    """
    from mrm_edge.runtime.backends.cuda.api import CudaError, as_cuda_api

    try:
        api = as_cuda_api(cudart)
    except Exception as e:  # BackendUnavailable carries the reason and the install line
        return None, str(getattr(e, "reason", None) or first_line(e))
    try:
        try:
            count = api.device_count()
        except CudaError as e:
            return None, f"no usable CUDA device: {e.error_name}"
        if count == 0:
            return None, "no CUDA device found"
        if not 0 <= device < count:
            return None, f"CUDA device {device} does not exist (found {count})"
        try:
            return api.device_properties(device), None
        except CudaError as e:
            return None, f"CUDA device {device} properties unreadable ({e})"
    except Exception as e:
        return None, f"CUDA query failed ({first_line(e)})"
