"""TensorRT engines from the exported ONNX (installed as ``mrm_edge.export.tensorrt``).

- ``cache``: the engine key and its JSON sidecar; store and verified lookup.
- ``graph``: what an ONNX graph carries (I/O, Q/DQ, FP16), with or without ``onnx``.
- ``plan``: ``BuildOptions`` and its parsers; strong vs weak typing, precision flags.
- ``builder``: ONNX → serialized engine (TensorRT 10 and 11), and ``build_or_load``.
- ``trtexec``: the equivalent trtexec command line.

Importing this package imports neither tensorrt nor cuda-python nor torch; those are imported
inside the functions that need them. None of it has run against a real TensorRT on the
development machines: the tests use the test double in ``tests/fakes/tensorrt.py``, and
``mrm-edge doctor`` is the end-to-end check to run where TensorRT is installed.

What this machine's TensorRT and GPU can do (``mrm_edge.runtime.backends.tensorrt.capability``),
whether an engine's sidecar fits them (``.engine_file``) and the CUDA interface
(``mrm_edge.runtime.backends.cuda``) have one home, in the runtime, which export, calibration
and the runtime's backend all import from there (export and calibration sit above the runtime).
"""

from mrm_edge.export.tensorrt.builder import build_engine, build_or_load
from mrm_edge.export.tensorrt.cache import EngineKey, lookup
from mrm_edge.export.tensorrt.errors import BuildError
from mrm_edge.export.tensorrt.graph import GraphInfo, inspect_onnx
from mrm_edge.export.tensorrt.plan import (
    BuildOptions,
    BuildPlan,
    parse_batch_profile,
    parse_size,
    plan_build,
)
from mrm_edge.export.tensorrt.trtexec import trtexec_command

from mrm_edge.artifacts import engine_filename

__all__ = [
    "BuildError",
    "BuildOptions",
    "BuildPlan",
    "EngineKey",
    "GraphInfo",
    "build_engine",
    "build_or_load",
    "engine_filename",
    "inspect_onnx",
    "lookup",
    "parse_batch_profile",
    "parse_size",
    "plan_build",
    "trtexec_command",
]
