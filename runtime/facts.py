"""What this machine offers the backends, probed once into one value that selection reads
(tests hand in a made-up value). Where it describes a module that is not the installed one
(a TensorRT / CUDA test double), it carries that module, so the chosen backend runs on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mrm_edge.runtime.backends.openvino.capability import (
    OpenVinoInfo,
    cpu_bf16,
    probe_openvino,
)
from mrm_edge.runtime.backends.tensorrt.capability import (
    GpuInfo,
    TensorRTInfo,
    flavour_of,
    probe_flavours,
    probe_gpu,
)

from mrm_edge.errors import first_line


@dataclass(frozen=True)
class MachineFacts:
    """The machine as backend selection sees it (module docstring)."""

    gpu: GpuInfo | None
    gpu_reason: str | None
    """Why there is no ``gpu`` (one line); None when there is one."""
    tensorrt: Mapping[str, TensorRTInfo]
    """Each TensorRT flavour (``tensorrt``, ``tensorrt-rtx``) and whether it imports."""
    ort_providers: tuple[str, ...]
    """ONNX Runtime's available execution providers; () when it is not installed."""
    ort_reason: str | None
    """Why ONNX Runtime is missing (one line); None when it imports."""
    openvino: OpenVinoInfo
    bf16: tuple[bool, str]
    """Whether the CPU runs BF16 natively, and on what evidence (OpenVINO, CPU flags)."""
    trt_modules: Mapping[str, Any] | None = None
    """The TensorRT modules described, by flavour, when not the installed ones (a test
    double); None: the backend imports the installed flavour."""
    cudart: Any = None
    """The CUDA runtime described, when not the installed binding (a test double)."""


def _ort_providers() -> tuple[tuple[str, ...], str | None]:
    try:
        import onnxruntime as ort
    except ImportError as e:
        return (), f"onnxruntime is not installed ({first_line(e, with_type=False)})"
    return tuple(ort.get_available_providers()), None


def probe_machine(trt: Any = None, cudart: Any = None) -> MachineFacts:
    """Probe this machine (never raises). ``trt`` / ``cudart``: a TensorRT module and a CUDA
    runtime to describe instead of the installed ones (the GPU test doubles)."""
    modules = {flavour_of(trt): trt} if trt is not None else None
    gpu, gpu_reason = probe_gpu(0, cudart)
    providers, ort_reason = _ort_providers()
    openvino = probe_openvino()
    return MachineFacts(
        gpu=gpu,
        gpu_reason=gpu_reason,
        tensorrt=probe_flavours(modules),
        ort_providers=providers,
        ort_reason=ort_reason,
        openvino=openvino,
        bf16=cpu_bf16(openvino),
        trt_modules=modules,
        cudart=cudart,
    )
