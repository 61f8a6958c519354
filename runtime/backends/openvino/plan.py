"""OpenVINO's place in backend selection: its options for a model (INT8, BF16 where the CPU
and a gate record allow, FP32), each with the accuracy gate the probe enforces, and its
registration. The order and the gates: docs/cpu-runtimes.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mrm_edge.runtime.backends.openvino.backend import OpenVinoBackend
from mrm_edge.runtime.backends.registry import (
    FP32_GATE,
    BackendSpec,
    Candidate,
    PlanRequest,
    sidecar_gate,
)

from mrm_edge.artifacts import BF16_RECORD, onnx_file

INT8_ORDER = ("int8-sym", "int8")


def bf16_record_status(model: Any) -> tuple[dict[str, Any] | None, str]:
    """The model directory's passed BF16 gate record for its verified ``model.onnx``, or
    None and why not (one line)."""
    path = Path(model.directory) / BF16_RECORD
    fp32 = model.onnx.get("fp32")
    if fp32 is None:
        return None, "BF16 runs model.onnx, which is not verified here"
    if not path.is_file():
        return None, (
            f"no BF16 gate record ({path.name}): run `mrm-edge export --bf16 --calib-data "
            "PTBXL_ROOT` on a BF16 CPU to measure it"
        )
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return None, f"{path.name}: not readable JSON ({e})"
    if not isinstance(doc, dict):
        return None, f"{path.name}: expected a JSON object"
    if doc.get("source_sha256") != fp32.sidecar.get("sha256"):
        return None, f"{path.name}: measured for another model.onnx (source_sha256 differs)"
    if doc.get("passed") is not True:
        return None, f"{path.name}: BF16 gate failed ({doc.get('message', 'no message')})"
    return doc, str(doc.get("message", "BF16 gate passed"))


def plan(request: PlanRequest) -> tuple[list[Candidate], list[str]]:
    """OpenVINO's CPU options (docs/cpu-runtimes.md), and why any is missing."""
    model, asked = request.model, request.precision
    info = request.facts.openvino
    if not info.available:
        return [], [str(info.reason)]
    out: list[Candidate] = []
    skipped: list[str] = []

    def add(variant: str, hint: str, precision: str, why: str, gate: float | None) -> None:
        art = model.onnx[variant]
        out.append(
            Candidate(
                f"openvino CPU {precision} ({art.name})",
                "openvino",
                lambda a=art: OpenVinoBackend(
                    a.path, inference_precision=hint, precision=precision
                ),
                f"OpenVINO {info.version} CPU; {why}",
                measurable=True,
                precision=precision,
                gate=gate,
            )
        )

    for v in (v for v in INT8_ORDER if v in model.onnx):
        gate = sidecar_gate(model.onnx[v].sidecar, "int8")
        kind = "symmetric Q/DQ, OpenVINO's INT8 form" if v == "int8-sym" else "uint8 Q/DQ"
        add(v, "f32", "int8", f"INT8 {kind}", gate)
    has_bf16, why = request.facts.bf16
    record, record_why = bf16_record_status(model) if has_bf16 else (None, "")
    if not has_bf16:
        skipped.append(f"OpenVINO BF16: {why}")
    elif record is None:
        skipped.append(f"OpenVINO BF16: {record_why}")
    else:
        gate = sidecar_gate({"accuracy": record}, "bf16")
        add("fp32", "bf16", "bf16", f"BF16 ({why}; {record_why})", gate)
    if "fp32" in model.onnx:
        add("fp32", "f32", "fp32", "FP32 (inference precision f32, stated)", FP32_GATE)
    # The reasons are about the asked precision: BF16's only when BF16 may be asked (so
    # nothing for the asked precision and no reason means one was asked).
    skipped = skipped if asked in (None, "bf16") else []
    if not any(asked in (None, c.precision) for c in out) and not skipped:
        skipped.append(f"OpenVINO: no verified ONNX for {asked}")
    return out, skipped


def cpu_backend(model_dir: Path, variant: str) -> OpenVinoBackend:
    """The bench's OpenVINO row: ``variant``'s file (``bf16``: model.onnx at bf16)."""
    hint = "bf16" if variant == "bf16" else "f32"
    path = Path(model_dir) / onnx_file("fp32" if variant == "bf16" else variant)
    if not path.is_file():
        raise ValueError(f"{path}: not exported (run `mrm-edge export` first)")
    return OpenVinoBackend(path, inference_precision=hint)  # type: ignore[arg-type]


# After ONNX Runtime in the static order (ONNX Runtime is the edge install's own runtime);
# auto's probe reorders the CPU options by what it measures.
SPEC = BackendSpec(
    name="openvino",
    family="openvino",
    rank=25,
    plan=plan,
    cpu_factory=cpu_backend,
)
