"""An engine file as the runtime reads it: its sidecar, whether it may load here, and why not;
:func:`fit_engines` is the one check that backend selection and the GPU benchmark share.
Writing engines and sidecars is :mod:`mrm_edge.export.tensorrt.cache`; this module lets the
runtime load an engine without importing the export.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mrm_edge.artifacts import read_sidecar, sidecar_path
from mrm_edge.fileio import sha256_file

SIDECAR_FORMAT = 1


class EngineRefused(RuntimeError):
    """An engine file that must not be loaded here (one-line message says why)."""


def read_engine_sidecar(engine_path: Path) -> dict[str, Any]:
    """The sidecar of ``engine_path`` (:func:`mrm_edge.artifacts.read_sidecar`) checked for
    what an engine's must hold; :class:`EngineRefused` if missing, corrupt or incomplete."""
    side = sidecar_path(engine_path)
    if not side.is_file():
        raise EngineRefused(f"{side}: no sidecar beside the engine (cannot tell what built it)")
    try:
        data = read_sidecar(engine_path)
    except ValueError as e:
        raise EngineRefused(str(e)) from e
    if not isinstance(data, dict) or not isinstance(data.get("key"), dict):
        raise EngineRefused(f"{side}: sidecar has no 'key' object")
    if data.get("format") != SIDECAR_FORMAT:
        raise EngineRefused(
            f"{side}: sidecar format {data.get('format')!r}, expected {SIDECAR_FORMAT}"
        )
    if not isinstance(data.get("engine_sha256"), str):
        raise EngineRefused(f"{side}: sidecar has no 'engine_sha256'")
    return data


def verify_engine_file(engine_path: Path, sidecar: dict[str, Any]) -> None:
    """:class:`EngineRefused` unless the engine exists and its SHA-256 is the sidecar's."""
    if not engine_path.is_file():
        raise EngineRefused(f"{engine_path}: engine file missing (its sidecar exists)")
    if sha256_file(engine_path) != sidecar["engine_sha256"]:
        raise EngineRefused(
            f"{engine_path}: SHA-256 differs from its sidecar's (truncated or replaced)"
        )


def check_engine(
    engine_path: Path,
    gpu_name: str,
    compute_capability: str,
    trt_version: str | None,
    rtx_version: str | None = None,
) -> dict[str, Any]:
    """Refuse (:class:`EngineRefused`) an engine that cannot run on this GPU with the TensorRT
    flavours installed here (``trt_version``: standard TensorRT's, ``rtx_version``:
    TensorRT-RTX's, None where absent), or one whose bytes differ from what its sidecar
    recorded; return the sidecar otherwise."""
    engine_path = Path(engine_path)
    sidecar = read_engine_sidecar(engine_path)
    misfit = describe_misfit(sidecar["key"], gpu_name, compute_capability, trt_version, rtx_version)
    if misfit:
        raise EngineRefused(
            f"{engine_path.name}: {misfit}; rebuild it with `mrm-edge export --engine`"
        )
    verify_engine_file(engine_path, sidecar)
    return sidecar


def describe_built(key: dict[str, Any]) -> str:
    """What an engine was built by and for, in words (from its sidecar key)."""
    if key.get("flavour") == "tensorrt-rtx":
        targets = ", ".join(str(t) for t in key.get("compute_targets") or []) or "?"
        return f"built by TensorRT-RTX {key.get('trt_version')} for compute {targets}"
    return (
        f"built for {key.get('gpu_name')} (compute {key.get('compute_capability')}) with "
        f"TensorRT {key.get('trt_version')}"
    )


def describe_misfit(
    key: dict[str, Any],
    gpu_name: str,
    compute_capability: str,
    trt_version: str | None,
    rtx_version: str | None = None,
) -> str | None:
    """Why an engine whose sidecar records ``key`` cannot run here, or None.

    Standard TensorRT: GPU name, compute capability and TensorRT version are all named, built
    and here, so a reader sees which one differs (two boards can share a name but not a
    capability). TensorRT-RTX: this GPU's compute capability must be one of the engine's
    targets and the installed TensorRT-RTX the version that built it.
    """
    built = describe_built(key)
    if key.get("flavour") == "tensorrt-rtx":
        targets = [str(t) for t in key.get("compute_targets") or []]
        if rtx_version is None:
            return f"{built}, but TensorRT-RTX is not installed here"
        if compute_capability not in targets or rtx_version != key.get("trt_version"):
            return (
                f"{built}, but this machine has {gpu_name} (compute {compute_capability}) "
                f"with TensorRT-RTX {rtx_version}"
            )
        return None
    here = (gpu_name, compute_capability, trt_version)
    if (key.get("gpu_name"), key.get("compute_capability"), key.get("trt_version")) == here:
        return None
    if trt_version is None:
        return f"{built}, but standard TensorRT is not installed here"
    return (
        f"{built}, but this machine has {gpu_name} (compute {compute_capability}) "
        f"with TensorRT {trt_version}"
    )


def fit_engines(
    engines: Iterable[Any],
    precisions: Iterable[str],
    gpu_name: str,
    compute_capability: str,
    trt_version: str | None,
    rtx_version: str | None = None,
    *,
    batch: int | None = None,
) -> tuple[list[Any], list[str]]:
    """``(fitting, misfits)``: the engines (``runtime.model.Artifact``: ``name``,
    ``precision``, ``key``) of ``precisions`` that run on this GPU with these
    TensorRT versions (in the order given), and ``"<engine> <why not>"`` for the others.
    ``batch``: also require the batch profile to admit it (a live monitor dispatches whatever
    is waiting, so it needs batch 1)."""
    wanted = set(precisions)
    fitting: list[Any] = []
    misfits: list[str] = []
    for engine in engines:
        if engine.precision not in wanted:
            continue
        why = describe_misfit(engine.key, gpu_name, compute_capability, trt_version, rtx_version)
        min_batch = int((engine.key.get("profile") or [1, 1, 1])[0])
        if why is not None:
            misfits.append(f"{engine.name} {why}")
        elif batch is not None and min_batch > batch:
            misfits.append(f"{engine.name} needs batches >= {min_batch}")
        else:
            fitting.append(engine)
    return fitting, misfits
