"""``python -m benchmarks.roofline BENCH_JSON``: achieved GFLOP/s and fraction of the measured
peak for every row of a ``mrm-edge bench --json`` document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from benchmarks.roofline.flops import add_flops, flops_section
from benchmarks.roofline.peaks import measure_gpu_peak
from mrm_edge.cli.bench.peaks import PEAK_RUNTIME, measure_cpu_peaks
from mrm_edge.cli.common import console, logger, model_path
from mrm_edge.cli.options import model_option, user_errors


@click.command()
@click.argument("bench_json", type=click.Path(exists=True, dir_okay=False))
@model_option("Benchmarked model")
@click.option("--no-peaks", is_flag=True, help="Skip the CPU GEMM and GPU matmul peaks.")
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the bench's document with the roofline figures added here.",
)
@user_errors
def main(bench_json: str, model_dir: str | None, no_peaks: bool, json_out: str | None) -> None:
    """Add FLOPs per window, achieved GFLOP/s and fraction of peak to a bench's rows."""
    doc = json.loads(Path(bench_json).read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise ValueError(f"{bench_json}: not a `mrm-edge bench --json` document")
    rows, log = doc["results"], logger(console())
    doc["flops"] = flops = flops_section(model_path(model_dir))
    cpu = [r["backend"] for r in rows if r["device"] == "cpu"]
    gpu = any(r["device"].startswith("cuda") for r in rows)
    machine = doc.setdefault("machine", {})
    machine["cpu_peak_gflops"] = None if no_peaks or not cpu else _cpu_peaks(cpu, log)
    if gpu:
        machine.update(_gpu_peak(no_peaks, log))
    if flops["per_window"]:
        peaks = machine.get("gpu_peak_tflops"), machine["cpu_peak_gflops"]
        add_flops(rows, flops["per_window"], *peaks)
    _print_rows(rows, flops)
    if json_out:
        Path(json_out).write_text(json.dumps(doc, indent=2) + "\n")
        log(f"json: {json_out}")


def _cpu_peaks(backends: list[str], log: Any) -> dict[str, Any]:
    """The CPU's GEMM peaks on every runtime that has a row (BF16 where the CPU has it)."""
    from mrm_edge.cli.bench.torch_cpu import torch_bf16_refusal

    runtimes = list(dict.fromkeys(PEAK_RUNTIME[b] for b in backends if b in PEAK_RUNTIME))
    peaks = measure_cpu_peaks(runtimes, bf16=torch_bf16_refusal() is None)
    for rt in runtimes:
        shown = ", ".join(f"{k} {v:.0f}" for k, v in (peaks.get(rt) or {}).items())
        log(f"CPU GEMM peak on {rt} (GFLOP/s): {shown or peaks['errors'].get(rt)}")
    return peaks


def _gpu_peak(no_peaks: bool, log: Any) -> dict[str, Any]:
    """The GPU's matmul peak (machine fields), or why it was not measured."""
    from mrm_edge.cli.bench.variants import gpu_unavailable

    if no_peaks or gpu_unavailable("torch-cuda") is not None:
        note = "peak not measured (needs PyTorch with CUDA, or --no-peaks was given)"
        return {"gpu_peak_tflops": None, "gpu_peak_note": note}
    log("measuring the GPU's matmul peak (FP32, TF32, FP16)")
    peak = measure_gpu_peak()
    return {"gpu_peak_tflops": peak, "gpu": peak["gpu"]}


def _print_rows(rows: list[dict[str, Any]], flops: dict[str, Any]) -> None:
    """The rows' roofline figures as a table on stdout."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"FLOPs per window: {flops['per_window'] or flops['note']}")
    for col in ("backend", "precision", "batch", "windows/s", "GFLOP/s", "% peak", "peak"):
        t.add_column(col, justify="left" if col in ("backend", "precision") else "right")
    for r in rows:
        gflops, fraction = r.get("gflops"), r.get("fraction_of_peak")
        t.add_row(
            r["backend"],
            r["precision"],
            str(r["batch_size"]),
            f"{r['throughput']:.1f}",
            "—" if gflops is None else f"{gflops:.1f}",
            "—" if fraction is None else f"{100 * fraction:.1f}",
            r.get("peak_basis") or "—",
        )
    Console().print(t)


if __name__ == "__main__":
    main()
