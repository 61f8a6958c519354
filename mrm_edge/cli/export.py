"""``mrm-edge export``: FP32 ONNX always; FP16 / INT8 variants; TensorRT engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mrm_edge.cli.common import batch_profile, compute_targets, console, csv, logger, model_path
from mrm_edge.cli.options import model_option, user_errors


@click.command()
@model_option()
@click.option("--fp16", is_flag=True, help="Also write the mixed-precision FP16 ONNX.")
@click.option(
    "--bf16",
    is_flag=True,
    help="Measure the BF16 gate (OpenVINO, model.onnx at bf16 vs FP32) on this CPU and write "
    "model.bf16-openvino.json; refused with the reason on CPUs without native BF16.",
)
@click.option(
    "--int8",
    is_flag=True,
    help="Also write the INT8 Q/DQ ONNX files (needs --calib-data; see --int8-activations).",
)
@click.option(
    "--calib-data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Real ECG: a PTB-XL / CPSC 2018 tree or a folder of WFDB records. Its "
    "training folds calibrate INT8, its test folds gate FP16 and INT8.",
)
@click.option(
    "--int8-method",
    type=click.Choice(["minmax", "entropy", "percentile"]),
    default="minmax",
    show_default=True,
)
@click.option(
    "--int8-activations",
    type=click.Choice(["both", "uint8", "int8"]),
    default="both",
    show_default=True,
    help="Which INT8 files --int8 writes (one calibration for both): uint8: "
    "model.int8.onnx, asymmetric, for ONNX Runtime CPU; int8: model.int8-sym.onnx, "
    "symmetric with float bias, for TensorRT and OpenVINO.",
)
@click.option(
    "--int8-ops",
    default="Conv,Gemm,MatMul,Add,MaxPool,Concat",
    show_default=True,
    help="Op types INT8 calibrates, and model.int8.onnx quantizes: the compute ops plus "
    "those carrying their activations (keeps tensors int8 between layers); Conv,Gemm,MatMul "
    "for the narrow export. model.int8-sym.onnx quantizes only the inputs of the compute "
    "ops among them (TensorRT's placement).",
)
@click.option(
    "--restamp",
    is_flag=True,
    help="Only record, in the ONNX sidecars of --model written by an earlier mrm-edge, the "
    "card fields the runtime checks (so a later edit is refused by name) and the cost per "
    "window counted on model.onnx; refused unless card.json is byte-identical to the "
    "exported one.",
)
@click.option("--calib-windows", type=click.IntRange(1), default=512, show_default=True)
@click.option(
    "--fp16-tolerance",
    type=float,
    default=0.1,
    show_default=True,
    help="Largest macro-AUC change (percentage points) FP16 may cause.",
)
@click.option(
    "--int8-tolerance",
    type=float,
    default=0.5,
    show_default=True,
    help="Largest macro-AUC drop (percentage points) INT8 may cause.",
)
@click.option(
    "--batch",
    default="1,32,256",
    show_default=True,
    help="TensorRT optimisation profile: MIN,OPT,MAX batch.",
)
@click.option(
    "--engine/--no-engine",
    default=True,
    show_default=True,
    help="Build TensorRT engines when TensorRT and a GPU are present.",
)
@click.option(
    "--workspace",
    "workspace_mib",
    type=click.IntRange(64),
    default=2048,
    show_default=True,
    help="TensorRT builder workspace limit (MiB).",
)
@click.option(
    "--trt-flavour",
    type=click.Choice(["auto", "tensorrt", "tensorrt-rtx"]),
    default=None,
    help="Which TensorRT builds the engines [default: $MRM_EDGE_TRT_FLAVOUR, else auto: "
    "TensorRT-RTX when there is no GPU, standard TensorRT on a GPU that has it].",
)
@click.option(
    "--compute-targets",
    default=None,
    metavar="CC[,CC...]",
    help="TensorRT-RTX: compute capabilities to build for [default: 8.0,8.6,8.9,12.0]; "
    "'+7.5' adds Turing to the defaults, '8.9' narrows to one.",
)
@click.option(
    "--dla-core",
    type=click.IntRange(0),
    default=None,
    help="Jetson: build for this DLA core (GPU fallback allowed).",
)
@click.option(
    "--timing-cache",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TensorRT timing cache file (default: OUT/timing.cache).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Output directory (default: the model directory).",
)
@click.option(
    "--triton-repo",
    type=click.Path(file_okay=False),
    default=None,
    help="Also write a Triton Inference Server model repository here (one model per "
    "variant: TensorRT plans, ONNX Runtime, Python-backend CPU). On an exported directory "
    "without --fp16/--int8 it only writes the repository.",
)
@click.option(
    "--triton-max-batch",
    type=click.IntRange(1),
    default=32,
    show_default=True,
    help="The repository's preferred (and largest) batch for its ONNX and Python-backend "
    "models, as the monitor's --max-batch; TensorRT plans take their build profile's.",
)
@click.option(
    "--triton-max-delay",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Triton's queue delay in ms (0: front-ends batch already; raise it for clients "
    "that send one window per request).",
)
@user_errors
def export(
    model_dir: str | None,
    out_dir: str | None,
    batch: str,
    **kw: Any,
) -> None:
    """Export a trained model: FP32 ONNX always; FP16 / INT8 variants; TensorRT engines."""
    from mrm_edge.export.gates import GateFailed
    from mrm_edge.export.pipeline import ExportOptions, run_export

    model = model_path(model_dir)
    if kw.pop("restamp"):
        from mrm_edge.export.sidecar import restamp

        for path in restamp(model):
            click.echo(f"restamped\t{path}")
        return
    bf16 = kw.pop("bf16")
    triton_repo = kw.pop("triton_repo")
    knobs = {"max_batch": kw.pop("triton_max_batch"), "max_delay_ms": kw.pop("triton_max_delay")}
    if triton_repo and not bf16 and _repo_only(model, out_dir, kw):
        _write_triton_repo(model, Path(triton_repo), knobs)
        return
    opts = ExportOptions(
        model_dir=model,
        out_dir=Path(out_dir) if out_dir else model,
        batch=batch_profile(batch),
        fp16_tolerance_pt=kw.pop("fp16_tolerance"),
        int8_tolerance_pt=kw.pop("int8_tolerance"),
        int8_ops=tuple(csv(kw.pop("int8_ops"))),
        compute_targets=compute_targets(kw.pop("compute_targets")),
        **kw,
    )
    err = console()
    try:
        with err.status("exporting…"):
            summary = run_export(opts, log=logger(err))
    except GateFailed as e:
        raise click.ClickException(str(e)) from e
    for precision, path in summary.artifacts.items():
        click.echo(f"{precision}\t{path}")
    for precision, path in summary.engines.items():
        click.echo(f"engine-{precision}\t{path}")
    if triton_repo:
        _write_triton_repo(Path(opts.out_dir), Path(triton_repo), knobs)
    if bf16:
        _bf16_gate(opts.out_dir, opts.calib_data)


def _repo_only(model: Path, out_dir: str | None, kw: dict[str, Any]) -> bool:
    """``--triton-repo`` on an already-exported directory with nothing else asked: only the
    repository is written (no torch, no re-export)."""
    from mrm_edge.artifacts import onnx_file, sidecar_path

    exported = (model / onnx_file("fp32")).is_file() and sidecar_path(
        model / onnx_file("fp32")
    ).is_file()
    return exported and out_dir is None and not kw.get("fp16") and not kw.get("int8")


def _write_triton_repo(model: Path, repo: Path, knobs: dict[str, Any]) -> None:
    from mrm_edge.export.triton_repo import write_triton_repo

    written = write_triton_repo(model, repo, **knobs)
    for m in written.models:
        where = "loads here (Python backend)" if m.local else f"needs Triton's {m.kind} backend"
        click.echo(f"triton\t{repo / m.name}\t{where}")


def _bf16_gate(out_dir: Path, calib_data: Path | None) -> None:
    """``--bf16``: the BF16 gate record, or the refusal's reason (exit 1)."""
    from mrm_edge.export.bf16 import measure_bf16_gate
    from mrm_edge.runtime.backends import BackendUnavailable

    try:
        record = measure_bf16_gate(out_dir, calib_data)
    except BackendUnavailable as e:
        raise click.ClickException(f"--bf16: {e.reason}") from e
    click.echo(f"bf16\t{out_dir / 'model.bf16-openvino.json'}\t{record['message']}")
    if not record["passed"]:
        raise click.ClickException(record["message"])
