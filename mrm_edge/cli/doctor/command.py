"""``mrm-edge doctor``: build a TensorRT engine here, run it, check parity against ONNX
Runtime. Exit 0 pass, 1 fail, 2 TensorRT/GPU unavailable."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mrm_edge.cli.common import batch_profile, model_path
from mrm_edge.cli.options import model_option


@click.command()
@model_option("Exported model")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "fp16", "int8"]),
    default="fp16",
    show_default=True,
    help="Which ONNX to build the engine from.",
)
@click.option("--batch", default="1,8,32", show_default=True, help="Engine profile MIN,OPT,MAX.")
@click.option("--windows", "n_windows", type=click.IntRange(1), default=8, show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Keep the engine here (default: a temporary directory).",
)
@click.option("--cuda-graphs/--no-cuda-graphs", default=False, show_default=True)
@click.option(
    "--trt-flavour",
    type=click.Choice(["auto", "tensorrt", "tensorrt-rtx"]),
    default=None,
    help="Which TensorRT builds the engine [default: $MRM_EDGE_TRT_FLAVOUR, else auto].",
)
@click.option(
    "--backend",
    "remote",
    default=None,
    metavar="triton:HOST:PORT[/MODEL]",
    help="Check a served model from this front-end instead (server, identity, parity).",
)
def doctor(
    model_dir: str | None,
    remote: str | None,
    precision: str,
    batch: str,
    n_windows: int,
    out_dir: str | None,
    cuda_graphs: bool,
    trt_flavour: str | None,
) -> None:
    """On a GPU machine: build a TensorRT engine from the model, run it, and check
    parity against ONNX Runtime. Exit 0 pass, 1 fail, 2 TensorRT/GPU unavailable."""
    from mrm_edge.cli.doctor.report import format_report
    from mrm_edge.cli.doctor.steps import run_doctor

    if remote is not None:
        from mrm_edge.cli.doctor.triton import run_triton_doctor

        report = run_triton_doctor(model_path(model_dir), remote, n_windows=n_windows)
    else:
        report = run_doctor(
            model_path(model_dir),
            precision,
            batch_profile(batch),
            Path(out_dir) if out_dir else None,
            n_windows=n_windows,
            cuda_graphs=cuda_graphs,
            trt_flavour=trt_flavour,
        )
    click.echo(format_report(report))
    sys.exit(report.exit_code)
