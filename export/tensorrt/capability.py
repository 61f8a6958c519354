"""What this machine can do: is TensorRT importable, which API generation is it, which GPU.

Both probes never raise: a missing or broken install is an answer ("not available, because
..."), not an error. Capabilities are detected by looking at the API (``hasattr``), not by
parsing version strings, because NVIDIA removes things on major versions (TensorRT 11 dropped
the precision flags and the implicit INT8 calibrator) and JetPack ships its own numbering.

Nothing heavy is imported at module import: ``tensorrt`` and ``cuda-python`` are imported
inside the probe functions. Tests pass the test doubles from ``tests/fakes/tensorrt.py``
through the ``trt=`` / ``cudart=`` parameters; no probe here has run against a real
TensorRT or a real GPU on the development machines (they have neither).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mrm_edge.data.errors import first_line

# Said wherever TensorRT is missing: what to install, per platform.
INSTALL_HINT = (
    "install it on the GPU machine: pip install 'mrm-edge[tensorrt]' (x86_64 / SBSA), "
    "or use the TensorRT that ships with JetPack on Jetson (apt: python3-libnvinfer)"
)
CUDA_PYTHON_HINT = "pip install 'cuda-python>=12.4' (part of the `tensorrt` extra)"


class TensorRTUnavailable(RuntimeError):
    """TensorRT cannot be imported here; the message says why and what to do instead."""


@dataclass(frozen=True)
class TensorRTInfo:
    """The TensorRT found here (or why none was).

    Attributes:
        available: ``import tensorrt`` worked.
        version: ``tensorrt.__version__`` (e.g. ``"10.3.0"``), None when unavailable.
        reason: why it is unavailable (one line), None when available.
        strongly_typed_supported: strongly typed networks can be built: the
            ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` flag exists (TensorRT >= 9), or
            the precision flags are gone, which means every network is strongly typed (11).
        has_precision_flags: ``BuilderFlag.FP16`` exists (TensorRT 10 and older: weak typing
            is possible; TensorRT 11 removed it).
        has_int8_calibrator: ``IInt8EntropyCalibrator2`` exists (implicit INT8 calibration;
            deprecated in 10.1, removed in 11).
    """

    available: bool
    version: str | None = None
    reason: str | None = None
    strongly_typed_supported: bool = False
    has_precision_flags: bool = False
    has_int8_calibrator: bool = False

    @property
    def major(self) -> int | None:
        """Major version number, None when unknown."""
        if not self.version:
            return None
        m = re.match(r"(\d+)", self.version)
        return int(m.group(1)) if m else None

    @property
    def always_strongly_typed(self) -> bool:
        """No weak typing left (TensorRT 11): precision can only come from the graph."""
        return self.available and not self.has_precision_flags

    @classmethod
    def assumed(cls, version: str) -> TensorRTInfo:
        """The capabilities a TensorRT of ``version`` has, for planning a build elsewhere
        (e.g. printing a trtexec line for a target machine). ``available`` stays True so the
        planner treats it as a real TensorRT; ``reason`` says it is assumed."""
        m = re.match(r"(\d+)", version)
        if not m:
            raise ValueError(f"TensorRT version {version!r}: expected e.g. '10.3' or '11'")
        major = int(m.group(1))
        return cls(
            available=True,
            version=version,
            reason="assumed from the version number, not probed",
            strongly_typed_supported=major >= 9,
            has_precision_flags=major < 11,
            has_int8_calibrator=major < 11,
        )

    def summary(self) -> str:
        if not self.available:
            return f"not available: {self.reason}"
        typing = (
            "strongly typed only"
            if not self.has_precision_flags
            else ("weak or strong typing" if self.strongly_typed_supported else "weak typing only")
        )
        calib = ", implicit INT8 calibrator" if self.has_int8_calibrator else ""
        return f"TensorRT {self.version} ({typing}{calib})"


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device as cuda-python reports it."""

    name: str
    compute_capability: str  # "major.minor", e.g. "9.0" (H100), "8.7" (Jetson Orin)
    total_memory_bytes: int
    device: int = 0

    def summary(self) -> str:
        gib = self.total_memory_bytes / 2**30
        return (
            f"{self.name} (compute {self.compute_capability}, {gib:.1f} GiB, device {self.device})"
        )


def _import_tensorrt() -> Any:
    import tensorrt  # type: ignore[import-not-found]  # lazy: heavy, GPU machines only

    return tensorrt


def import_tensorrt() -> Any:
    """``import tensorrt`` or :class:`TensorRTUnavailable` with the reason and what to install."""
    try:
        return _import_tensorrt()
    except Exception as e:  # a stub wheel or a missing libnvinfer raises more than ImportError
        raise TensorRTUnavailable(
            f"TensorRT is not installed here ({first_line(e)}); {INSTALL_HINT}"
        ) from e


def probe_tensorrt(trt: Any = None) -> TensorRTInfo:
    """Describe the TensorRT importable here (or the module passed as ``trt``). Never raises."""
    if trt is None:
        try:
            trt = _import_tensorrt()
        except Exception as e:
            return TensorRTInfo(
                available=False,
                reason=f"tensorrt cannot be imported ({first_line(e)}); {INSTALL_HINT}",
            )
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
            has_int8_calibrator=hasattr(trt, "IInt8EntropyCalibrator2"),
        )
    except Exception as e:  # an exotic binding raising on attribute access
        return TensorRTInfo(available=False, reason=f"tensorrt is unusable ({first_line(e)})")


def probe_gpu(device: int = 0, cudart: Any = None) -> tuple[GpuInfo | None, str | None]:
    """``(GpuInfo, None)`` for CUDA device ``device``, or ``(None, reason)``. Never raises.

    ``cudart``: a :class:`~mrm_edge.runtime.backends.cuda.CudaApi` (cuda-python or pycuda),
    or a cuda-python runtime module (or its test double); default: the binding
    ``load_cuda_api`` picks, imported here and not at module import.
    """
    from mrm_edge.runtime.backends.cuda import CudaError, as_cuda_api

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
            props = api.device_properties(device)
        except CudaError as e:
            return None, f"CUDA device {device} properties unreadable ({e})"
        return (
            GpuInfo(
                name=props.name,
                compute_capability=props.compute_capability,
                total_memory_bytes=props.total_memory,
                device=device,
            ),
            None,
        )
    except Exception as e:
        return None, f"CUDA query failed ({first_line(e)})"


__all__ = [
    "CUDA_PYTHON_HINT",
    "INSTALL_HINT",
    "GpuInfo",
    "TensorRTInfo",
    "TensorRTUnavailable",
    "import_tensorrt",
    "probe_gpu",
    "probe_tensorrt",
]
