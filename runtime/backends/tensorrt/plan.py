"""The TensorRT options of backend selection: the engines of a model directory that run here.

Each engine is loaded by the TensorRT flavour that built it (its sidecar says which): a
standard engine needs this GPU and TensorRT version, a TensorRT-RTX engine this GPU's compute
capability among its targets, with that TensorRT-RTX installed; and a batch profile that
admits batch 1, since a live monitor dispatches whatever is waiting. Precision order:
INT8 > FP16 > FP32.
"""

from __future__ import annotations

from typing import Any

from mrm_edge.runtime.backends.registry import BackendSpec, Candidate, PlanRequest
from mrm_edge.runtime.backends.tensorrt.capability import (
    DISPLAY,
    RTX,
    STANDARD,
    TensorRTInfo,
)
from mrm_edge.runtime.backends.tensorrt.engine_file import fit_engines
from mrm_edge.runtime.backends.tensorrt.runner import TensorRTBackend

ORDER = ("int8", "fp16", "fp32")


def _why(flavour: str, info: TensorRTInfo, gpu: Any) -> str:
    if flavour == STANDARD:
        return f"{DISPLAY[flavour]} {info.version} and an engine built for this {gpu.name}"
    return (
        f"TensorRT-RTX {info.version} and a portable engine that targets compute "
        f"{gpu.compute_capability} ({gpu.name})"
    )


def plan(request: PlanRequest) -> tuple[list[Candidate], list[str]]:
    """Engines that run here, best precision first; and the one reason there are none (at
    the asked precision)."""
    facts = request.facts
    infos = facts.tensorrt
    found = [i for i in infos.values() if i.available]
    if not found:
        reason = str(infos[STANDARD].reason)
        # The install hint helps whoever asked for TensorRT; in auto's list it is noise.
        return [], [f"TensorRT: {reason if request.explicit else reason.split('; ')[0]}"]
    names = " and ".join(f"{i.display} {i.version}" for i in found)
    gpu = facts.gpu
    if gpu is None:
        return [], [f"{names} found but no GPU ({facts.gpu_reason})"]
    versions = {f: (i.version if i.available else None) for f, i in infos.items()}
    fitting, misfits = fit_engines(
        request.model.engines,
        ORDER,
        gpu.name,
        gpu.compute_capability,
        versions[STANDARD],
        versions[RTX],
        batch=1,
    )
    fitting.sort(key=lambda a: ORDER.index(a.precision))
    skipped = []
    if not any(request.precision in (None, e.precision) for e in fitting):
        detail = "; ".join(misfits) if misfits else "no engine in the model directory"
        skipped.append(
            f"{names} on {gpu.name} but no engine for it ({detail}); build one "
            "with `mrm-edge export --engine`"
        )
    out = []
    for engine in fitting:
        flavour = engine.key.get("flavour", STANDARD)
        module = (facts.trt_modules or {}).get(flavour)
        out.append(
            Candidate(
                f"tensorrt {engine.precision} ({engine.name}) on {gpu.name}",
                "tensorrt",
                lambda e=engine, m=module: TensorRTBackend(
                    e.path, precision=e.precision, trt=m, cudart=facts.cudart
                ),
                _why(flavour, infos[flavour], gpu),
                precision=engine.precision,
            )
        )
    return out, skipped


SPEC = BackendSpec(name="tensorrt", family="tensorrt", rank=10, plan=plan)
