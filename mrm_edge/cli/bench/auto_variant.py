"""The bench row that ``auto`` picks on the CPU: so the streaming section and ``--compare``
run what ``mrm-edge monitor`` would run here (its probe included, ``runtime/cpu_timing.py``)."""

from __future__ import annotations

from typing import Any

import click

from mrm_edge.artifacts import ONNX_FILES


def auto_cpu_variant(model: Any) -> tuple[str, str, str]:
    """``(bench backend, variant, auto's reason)`` of the first CPU option of ``auto``'s plan
    for ``model`` (a DeployedModel; the GPU options are another section's); PyTorch FP32 when
    nothing else can run."""
    from mrm_edge.runtime.selection import plan_backends

    by_file = {file: variant for variant, file in ONNX_FILES.items()}
    candidates, _ = plan_backends(model)
    for c in candidates:
        if not c.measurable:
            continue
        file = c.label.rsplit("(", 1)[-1].rstrip(")")
        variant = "bf16" if c.precision == "bf16" else by_file.get(file)
        if variant is not None:
            return c.family, variant, f"{c.label}: {c.why}"
    return "torch", "fp32", "no ONNX option measurable on the CPU: PyTorch eager FP32"


def pick_cpu_variant(text: str | None, deployed: Any, log: Any) -> tuple[str, str]:
    """``--stream-variant backend:precision``, else the CPU option ``auto`` picks."""
    from mrm_edge.cli.bench.variants import CPU_BACKENDS, check_backends, check_precisions

    if text:
        sb, _, sp = text.partition(":")
        sp = sp or "fp32"
        check_backends([sb])
        check_precisions([sp])
        if sb not in CPU_BACKENDS:
            raise click.BadParameter(f"{text!r}: streaming runs a CPU backend")
        return sb, sp
    sb, sp, why = auto_cpu_variant(deployed)
    log(f"CPU path: auto's pick, {why}")
    return sb, sp
