"""TensorRT engines from the exported ONNX (installed as ``mrm_edge.export.tensorrt``).

- ``capability``: what TensorRT / GPU this machine has (probes never raise).
- ``cache``: engine file naming, key and JSON sidecar; verified lookup.
- ``builder``: ONNX → serialized engine (TensorRT 10 and 11), and ``build_or_load``.
- ``trtexec``: the equivalent trtexec command line.

Importing this package imports neither tensorrt nor cuda-python nor torch; those are imported
inside the functions that need them. None of it has run against a real TensorRT on the
development machines: the tests use the test double in ``tests/fakes/tensorrt.py``, and
``mrm-edge doctor`` is the end-to-end check to run where TensorRT is installed.
"""

from mrm_edge.export.tensorrt.builder import (
    BuildError,
    BuildOptions,
    BuildPlan,
    GraphInfo,
    build_engine,
    build_or_load,
    inspect_onnx,
    parse_batch_profile,
    parse_size,
    plan_build,
)
from mrm_edge.export.tensorrt.cache import EngineKey, EngineRefused, engine_filename, lookup
from mrm_edge.export.tensorrt.capability import (
    GpuInfo,
    TensorRTInfo,
    TensorRTUnavailable,
    probe_gpu,
    probe_tensorrt,
)
from mrm_edge.export.tensorrt.trtexec import trtexec_command

__all__ = [
    "BuildError",
    "BuildOptions",
    "BuildPlan",
    "EngineKey",
    "EngineRefused",
    "GpuInfo",
    "GraphInfo",
    "TensorRTInfo",
    "TensorRTUnavailable",
    "build_engine",
    "build_or_load",
    "engine_filename",
    "inspect_onnx",
    "lookup",
    "parse_batch_profile",
    "parse_size",
    "plan_build",
    "probe_gpu",
    "probe_tensorrt",
    "trtexec_command",
]
