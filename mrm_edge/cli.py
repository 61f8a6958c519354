"""The ``mrm-edge`` command line.

Heavy imports (torch, wfdb) happen inside the commands, so ``mrm-edge --help``
is instant and commands that do not need torch run on an edge install.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mrm_edge import __version__
from mrm_edge.cli_options import model_option, runtime_options, user_errors


# Errors that describe bad input or an unusable setup: one line, never a traceback.
def _folds(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        out: list[int] = []
        for part in text.split(","):
            if "-" in part:
                a, b = part.split("-")
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
        return tuple(out)
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected folds like 1-8 or 9 or 9,10") from None


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _logger(console) -> Callable[[str], None]:
    """Progress lines as plain text: commands in them must survive copy and paste
    (no wrapping) and square brackets must not be read as rich markup."""
    return lambda text: console.print(text, soft_wrap=True, markup=False, highlight=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mrm-edge")
def main() -> None:
    """MRM-Net 12-lead ECG classification: train, evaluate, export, monitor."""


# --------------------------------------------------------------------------- train
@main.command()
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Dataset root (PTB-XL or CPSC 2018 in its own layout).",
)
@click.option(
    "--dataset", type=click.Choice(["ptbxl", "cpsc2018"]), default="ptbxl", show_default=True
)
@click.option(
    "--task",
    default=None,
    help="PTB-XL: all, diagnostic, subdiagnostic, superdiagnostic (default), form, "
    "rhythm. CPSC 2018: all (default).",
)
@click.option(
    "--preset",
    type=click.Choice(["paper", "small"]),
    default="paper",
    show_default=True,
    help="paper: C=128; small: C=64.",
)
@click.option("--epochs", type=click.IntRange(1), default=100, show_default=True)
@click.option("--batch-size", type=click.IntRange(2), default=64, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--sampling-rate",
    type=click.Choice(["100", "500"]),
    default="100",
    show_default=True,
    help="Model input rate (the paper uses 100 Hz).",
)
@click.option("--train-folds", default="1-8", show_default=True)
@click.option("--val-folds", default="9", show_default=True)
@click.option("--test-folds", default="10", show_default=True)
@click.option(
    "--head-fusion",
    type=click.Choice(["mean", "low", "high"]),
    default="mean",
    show_default=True,
    help="How the deployed output combines the two heads.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--name", default="", help="Model name for the card.")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Run directory; rerunning with the same --out resumes.",
)
@user_errors
def train(**kw: Any) -> None:
    """Train MRM-Net with the paper's recipe; writes OUT/model (weights + card)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from mrm_edge.training.trainer import TrainConfig, Trainer

    cfg = TrainConfig(
        data=kw["data"],
        out=kw["out"],
        dataset=kw["dataset"],
        task=kw["task"],
        preset=kw["preset"],
        epochs=kw["epochs"],
        batch_size=kw["batch_size"],
        lr=kw["lr"],
        seed=kw["seed"],
        sampling_rate=int(kw["sampling_rate"]),
        train_folds=_folds(kw["train_folds"]),
        val_folds=_folds(kw["val_folds"]),
        test_folds=_folds(kw["test_folds"]),
        head_fusion=kw["head_fusion"],
        device=kw["device"],
        name=kw["name"],
    )
    console = _console()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        model_dir = Trainer(cfg, log=_logger(console), progress=progress).run()
    click.echo(str(model_dir))


# --------------------------------------------------------------------------- eval
@main.command("eval")
@model_option()
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--dataset",
    type=click.Choice(["ptbxl", "cpsc2018"]),
    default=None,
    help="Default: the model card's dataset.",
)
@click.option("--folds", default=None, help="Default: the card's test folds (e.g. 10).")
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the full results as JSON.",
)
@user_errors
def eval_cmd(
    model_dir: str | None,
    data: str,
    dataset: str | None,
    folds: str | None,
    device: str,
    json_out: str | None,
) -> None:
    """Score a model with the paper's metrics (AUC, accuracy, F1), per head and label."""
    from rich.console import Console
    from rich.table import Table

    from mrm_edge.predict import default_model_dir
    from mrm_edge.training.evaluate import evaluate

    res = evaluate(
        Path(model_dir) if model_dir else default_model_dir(),
        Path(data),
        dataset,
        _folds(folds),
        device,
    )
    out = Console()
    t = Table(
        title=f"{res['model_name']} on {res['dataset']} folds {res['folds']} "
        f"({res['records']} records)"
    )
    for col in ("head", "macro AUC", "accuracy", "sample F1"):
        t.add_column(col, justify="right" if col != "head" else "left")
    for head, m in res["heads"].items():
        t.add_row(
            head, f"{100 * m['auc']:.2f}", f"{100 * m['accuracy']:.2f}", f"{100 * m['f1']:.2f}"
        )
    out.print(t)
    t2 = Table(title="per label (fused head; sensitivity/specificity at the card's thresholds)")
    for col in ("label", "positives", "AUC", "threshold", "sensitivity", "specificity"):
        t2.add_column(col, justify="left" if col == "label" else "right")
    for lab, r in res["per_label"].items():
        fmt = lambda v: "n/a" if v is None else f"{100 * v:.1f}"  # noqa: E731
        t2.add_row(
            lab,
            str(r["positives"]),
            fmt(r["auc"]),
            f"{r['threshold']:.3f}",
            fmt(r["sensitivity"]),
            fmt(r["specificity"]),
        )
    out.print(t2)
    if json_out:
        Path(json_out).write_text(json.dumps(res, indent=2) + "\n")


# --------------------------------------------------------------------------- export
def _batch_profile(text: str) -> tuple[int, int, int]:
    try:
        lo, opt, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: expected MIN,OPT,MAX batch sizes, e.g. 1,32,256"
        ) from None
    if not 1 <= lo <= opt <= hi:
        raise click.BadParameter(f"{text!r}: need 1 <= MIN <= OPT <= MAX")
    return lo, opt, hi


@main.command()
@model_option()
@click.option("--fp16", is_flag=True, help="Also write the mixed-precision FP16 ONNX.")
@click.option(
    "--int8",
    is_flag=True,
    help="Also write the INT8 Q/DQ ONNX files (needs --calib-data; see --int8-activations).",
)
@click.option(
    "--calib-data",
    type=click.Path(exists=True, file_okay=False),
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
    "batch",
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
    type=click.Path(dir_okay=False),
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
@user_errors
def export(
    model_dir: str | None,
    out_dir: str | None,
    batch: str,
    calib_data: str | None,
    timing_cache: str | None,
    **kw: Any,
) -> None:
    """Export a trained model: FP32 ONNX always; FP16 / INT8 variants; TensorRT engines."""
    from mrm_edge.export.gates import GateFailed
    from mrm_edge.export.pipeline import ExportOptions, run_export
    from mrm_edge.predict import default_model_dir

    model = Path(model_dir) if model_dir else default_model_dir()
    opts = ExportOptions(
        model_dir=model,
        out_dir=Path(out_dir) if out_dir else model,
        calib_data=Path(calib_data) if calib_data else None,
        batch=_batch_profile(batch),
        timing_cache=Path(timing_cache) if timing_cache else None,
        fp16_tolerance_pt=kw.pop("fp16_tolerance"),
        int8_tolerance_pt=kw.pop("int8_tolerance"),
        int8_ops=tuple(_csv(kw.pop("int8_ops"))),
        compute_targets=_compute_targets(kw.pop("compute_targets")),
        **kw,
    )
    console = _console()
    try:
        with console.status("exporting…"):
            summary = run_export(opts, log=_logger(console))
    except GateFailed as e:
        raise click.ClickException(str(e)) from e
    for precision, path in summary.artifacts.items():
        click.echo(f"{precision}\t{path}")
    for precision, path in summary.engines.items():
        click.echo(f"engine-{precision}\t{path}")


def _compute_targets(text: str | None) -> tuple[str, ...] | None:
    from mrm_edge.export.tensorrt.builder import parse_compute_targets

    if text is None:
        return None
    try:
        return parse_compute_targets(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--compute-targets") from None


# --------------------------------------------------------------------------- monitor
@main.command()
@model_option(must_exist=False)
@click.option(
    "--source",
    default="synthetic",
    show_default=True,
    help="synthetic | wfdb:PATH[,PATH...] | tcp:HOST:PORT | stdin",
)
@click.option(
    "--streams",
    type=click.IntRange(1),
    default=4,
    show_default=True,
    help="Synthetic patients (synthetic source only).",
)
@click.option(
    "--hop",
    "hop_s",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds between window starts.",
)
@runtime_options()
@click.option(
    "--speed",
    default="realtime",
    show_default=True,
    help="Replay pace for synthetic/wfdb sources: realtime, max or a factor (4x).",
)
@click.option("--loop", is_flag=True, help="Replay wfdb records in a loop.")
@click.option(
    "--duration",
    "duration_s",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds (default: until the source ends, or Ctrl-C).",
)
@click.option(
    "--events",
    "events_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON Lines event log (one line per window, alarms, summary).",
)
@click.option("--no-ui", is_flag=True, help="No live terminal view (summary only).")
@click.option(
    "--rail-mv",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="The input device's saturation rail in mV: a lead at the rail is flagged. "
    "Off by default (clean PTB-XL records reach 8-11 mV; rails differ by device).",
)
@click.option(
    "--stall-timeout",
    "stall_timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="tcp/stdin: a connected device silent this long (s) has its stream marked "
    "stalled; data that resumes opens a new segment of the stream.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@user_errors
def monitor(
    model_dir: str | None,
    source: str,
    streams: int,
    hop_s: float,
    backend: str,
    precision: str | None,
    max_batch: int,
    max_delay_ms: float,
    speed: str,
    loop: bool,
    duration_s: float | None,
    events_path: str | None,
    no_ui: bool,
    rail_mv: float | None,
    stall_timeout_s: float,
    seed: int,
) -> None:
    """Classify live multi-patient 12-lead ECG, window by window.

    With no arguments: a few synthetic patients through the shipped model on the best
    backend here. Ctrl-C ends cleanly with the summary.
    """
    from mrm_edge.predict import default_model_dir
    from mrm_edge.runtime.app import run_monitor
    from mrm_edge.runtime.stream.quality import QualityConfig
    from mrm_edge.runtime.sources.base import parse_speed
    from mrm_edge.runtime.sources.registry import make_source

    pace = parse_speed(speed)
    summary = run_monitor(
        Path(model_dir) if model_dir else default_model_dir(),
        lambda model: make_source(
            source,
            streams=streams,
            speed=pace,
            loop=loop,
            seed=seed,
            stall_timeout_s=stall_timeout_s,
            min_seconds=model.card.window_seconds,  # wfdb: refuse records < one window
        ),
        backend=backend,
        precision=precision,
        hop_s=hop_s,
        max_batch=max_batch,
        max_delay_ms=max_delay_ms,
        duration_s=duration_s,
        events_path=events_path,
        ui=not no_ui,
        console=_console(),
        quality=QualityConfig(saturation_mv=rail_mv),
    )
    if not summary.ok:
        sys.exit(1)


# --------------------------------------------------------------------------- soak
# The command lives with its code (mrm_edge/soak.py); importing it is cheap (click only).
from mrm_edge.soak import soak_command  # noqa: E402

main.add_command(soak_command)


# --------------------------------------------------------------------------- bench
def _csv(text: str, cast=str) -> list:
    try:
        return [cast(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected a comma-separated list") from None


@main.command()
@model_option("Exported model")
@click.option(
    "--backends",
    default="torch,onnxruntime,torch-cuda,onnxruntime-cuda,tensorrt",
    show_default=True,
    help="Comma-separated: torch, onnxruntime (CPU); torch-cuda (FP32/FP16 autocast), "
    "onnxruntime-cuda (FP32/FP16, IOBinding), tensorrt (this GPU's engines). GPU backends "
    "that cannot run here are reported as skipped with the reason.",
)
@click.option(
    "--precisions",
    default=None,
    help="Variants to run [default: fp32,int8 on the CPU; fp32,fp16,int8 for GPU rows]. "
    "torch and torch-cuda always run FP32, the baseline.",
)
@click.option(
    "--batch-sizes",
    default=None,
    help="Comma-separated [default: 1,8,32 on the CPU; 1,8,32,128,256 for GPU rows].",
)
@click.option("--warmup", type=click.IntRange(0), default=3, show_default=True)
@click.option("--repeats", type=click.IntRange(3), default=10, show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None)
@click.option(
    "--plot",
    "plot_out",
    type=click.Path(dir_okay=False),
    default=None,
    help="PNG: throughput vs batch size per backend/precision (log scales).",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="PTB-XL / CPSC 2018 tree: accuracy on its labelled held-out windows (with "
    "macro-AUC); without it, synthetic windows and AUC null.",
)
@click.option(
    "--accuracy-windows",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help="Synthetic windows for the accuracy check when no --data is given.",
)
@click.option("--no-accuracy", is_flag=True, help="Skip the accuracy section.")
@click.option("--no-streaming", is_flag=True, help="Skip the streaming-capacity section.")
@click.option(
    "--streams",
    type=click.IntRange(1),
    default=32,
    show_default=True,
    help="Synthetic streams in the streaming max-speed probe.",
)
@click.option(
    "--stream-variant",
    default=None,
    help="backend:precision for the streaming section (default: the fastest CPU variant "
    "measured at the largest batch size).",
)
@click.option("--hop", "hop_s", type=float, default=1.0, show_default=True, help="Seconds.")
@click.option(
    "--latency-budget-ms", type=float, default=None, help="p99 budget (default: the hop)."
)
@click.option(
    "--stream-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Real-time verification length after the first window.",
)
@click.option(
    "--probe-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Signal seconds per stream in the max-speed probe.",
)
@click.option("--max-batch", type=click.IntRange(1), default=32, show_default=True)
@click.option("--max-tries", type=click.IntRange(1), default=4, show_default=True)
@user_errors
def bench(
    model_dir: str | None,
    backends: str,
    precisions: str | None,
    batch_sizes: str | None,
    warmup: int,
    repeats: int,
    json_out: str | None,
    plot_out: str | None,
    data_dir: str | None,
    accuracy_windows: int,
    no_accuracy: bool,
    no_streaming: bool,
    streams: int,
    stream_variant: str | None,
    hop_s: float,
    latency_budget_ms: float | None,
    stream_seconds: float,
    probe_seconds: float,
    max_batch: int,
    max_tries: int,
) -> None:
    """Throughput and latency of the model per backend, precision and batch size,
    against PyTorch eager FP32; accuracy agreement; streaming capacity of the runtime."""
    from rich.console import Console
    from rich.table import Table

    from mrm_edge.bench import (
        CPU_BACKENDS,
        accuracy,
        add_flops,
        add_speedups,
        bench_model,
        check_backends,
        check_precisions,
        flops_section,
        gpu_unavailable,
        input_windows,
        to_json,
    )
    from mrm_edge.bench_gpu import GPU_BATCH_SIZES, run_gpu
    from mrm_edge.card import ModelCard
    from mrm_edge.predict import default_model_dir

    model = Path(model_dir) if model_dir else default_model_dir()
    names = _csv(backends)
    precs = _csv(precisions) if precisions is not None else ["fp32", "int8"]
    gpu_precs = precs if precisions is not None else ["fp32", "fp16", "int8"]
    sizes = _csv(batch_sizes, int) if batch_sizes is not None else [1, 8, 32]
    gpu_sizes = sizes if batch_sizes is not None else GPU_BATCH_SIZES
    check_backends(names)
    check_precisions(precs)
    if not sizes or min(sizes) < 1:
        raise click.BadParameter(f"{batch_sizes!r}: batch sizes must be >= 1")
    variants: list[tuple[str, str]] = []
    skipped = []
    gpu_names: list[str] = []
    for b in names:
        if b == "torch":
            variants.append(("torch", "fp32"))
        elif b in CPU_BACKENDS:
            variants.extend((b, p) for p in precs)
        else:
            why = gpu_unavailable(b)
            if why is None:
                gpu_names.append(b)
            else:
                skipped.append({"backend": b, "precision": None, "reason": why})
    if not variants and not gpu_names:
        raise click.ClickException(
            "no backend to run (GPU backends: "
            + "; ".join(f"{s['backend']}: {s['reason']}" for s in skipped)
            + ")"
        )
    console = _console()
    log = _logger(console)
    for s in skipped:
        log(f"skipped {s['backend']}: {s['reason']}")
    results = bench_model(model, variants, sizes, warmup, repeats, log=log) if variants else []
    gpu = run_gpu(model, gpu_names, gpu_precs, gpu_sizes, warmup, repeats, log)
    skipped += gpu.skipped
    flops = flops_section(model)
    results = add_speedups(results + gpu.results)
    if flops["per_window"]:
        add_flops(results, flops["per_window"], (gpu.machine.get("gpu_peak_tflops") or None))
    t = Table(title=f"{model.name}: windows/s (median of {repeats}) and latency per call")
    cols = ("backend", "precision", "batch", "windows/s", "p50 ms", "p99 ms", "vs torch")
    for col in (*cols, "GFLOP/s", "% peak"):
        t.add_column(col, justify="left" if col in ("backend", "precision") else "right")
    for r in results:
        speed = f"{r.speedup_vs_torch_fp32:.2f}x" if r.speedup_vs_torch_fp32 else "—"
        if r.speedup_vs_torch_cuda_fp32:
            speed = f"{r.speedup_vs_torch_cuda_fp32:.2f}x (GPU)"
        t.add_row(
            r.backend,
            r.precision,
            str(r.batch_size),
            f"{r.throughput:.1f}",
            f"{r.latency_ms['p50']:.1f}",
            f"{r.latency_ms['p99']:.1f}",
            speed,
            "—" if r.gflops is None else f"{r.gflops:.1f}",
            "—" if r.fraction_of_peak is None else f"{100 * r.fraction_of_peak:.1f}",
        )
    Console().print(t)

    acc = None
    if not no_accuracy:
        card = ModelCard.load(model)
        if data_dir:
            from mrm_edge.calibration.windows import held_out_windows

            x, y = held_out_windows(Path(data_dir), card)
            src = f"{len(x)} held-out windows of {data_dir}"
        else:
            x, y = input_windows(card, accuracy_windows, seed=1), None
            src = f"{accuracy_windows} synthetic windows (no --data)"
        log(f"accuracy: {len(variants)} variant(s) vs torch fp32 on {src}")
        acc = accuracy(model, variants, x, y, src)
        for v in acc["variants"]:
            auc = "–" if v["macro_auc"] is None else f"{100 * v['macro_auc']:.2f}"
            log(
                f"  {v['backend']} {v['precision']}: max |dp| {v['max_abs_dp']:.2e}, "
                f"labels agree {100 * v['label_agreement']:.1f} %, macro-AUC {auc}"
            )

    stream = None
    if not no_streaming and not variants:
        log("streaming section skipped: it runs a CPU backend and none was benchmarked")
    elif not no_streaming:
        from mrm_edge.bench_streaming import streaming_capacity

        if stream_variant:
            sb, _, sp = stream_variant.partition(":")
            sp = sp or "fp32"
            check_backends([sb])
            check_precisions([sp])
            if sb not in CPU_BACKENDS:
                raise click.BadParameter(f"{stream_variant!r}: streaming runs a CPU backend")
        else:
            big = max(sizes)
            cpu = [r for r in results if r.batch_size == big and r.backend in CPU_BACKENDS]
            best = max(cpu, key=lambda r: r.throughput)
            sb, sp = best.backend, best.precision
        stream = streaming_capacity(
            model,
            sb,
            sp,
            hop_s=hop_s,
            budget_ms=latency_budget_ms,
            stream_seconds=stream_seconds,
            probe_streams=streams,
            probe_seconds=probe_seconds,
            max_batch=max_batch,
            max_tries=max_tries,
            log=log,
        )
        Console().print(
            f"streaming ({sb} {sp}, hop {hop_s:g} s, p99 budget "
            f"{stream['latency_budget_ms']:.0f} ms): {stream['capacity_note']}; "
            f"end-to-end {stream['end_to_end_wps']:.1f} windows/s = "
            f"{100 * stream['streaming_efficiency']:.0f} % of model-only "
            f"{stream['model_only_wps']:.1f} at batch {max_batch}"
        )
    if plot_out:
        from mrm_edge.bench_plot import plot_throughput

        plot_throughput(results, plot_out, title=f"{model.name}: windows/s vs batch size")
        log(f"plot: {plot_out}")
    if json_out:
        doc = to_json(
            results, gpu.machine, skipped=skipped, flops=flops, accuracy=acc, streaming=stream
        )
        Path(json_out).write_text(json.dumps(doc, indent=2) + "\n")
        log(f"json: {json_out}")


# --------------------------------------------------------------------------- doctor
@main.command()
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
def doctor(
    model_dir: str | None,
    precision: str,
    batch: str,
    n_windows: int,
    out_dir: str | None,
    cuda_graphs: bool,
    trt_flavour: str | None,
) -> None:
    """On a GPU machine: build a TensorRT engine from the model, run it, and check
    parity against ONNX Runtime. Exit 0 pass, 1 fail, 2 TensorRT/GPU unavailable."""
    from mrm_edge.doctor import format_report, run_doctor
    from mrm_edge.predict import default_model_dir

    report = run_doctor(
        Path(model_dir) if model_dir else default_model_dir(),
        precision,
        _batch_profile(batch),
        Path(out_dir) if out_dir else None,
        n_windows=n_windows,
        cuda_graphs=cuda_graphs,
        trt_flavour=trt_flavour,
    )
    click.echo(format_report(report))
    sys.exit(report.exit_code)


# --------------------------------------------------------------------------- send
@main.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def send(args: tuple[str, ...]) -> None:
    """Stream recordings as live devices to a monitor (TCP) or to stdout.

    \b
    mrm-edge send RECORD... (--port P | --stdout) [--host 127.0.0.1] [--speed realtime|max|4x]
                  [--chunk-seconds 0.2] [--format float32|int16] [--gain 1000]
                  [--stream-id ID]... [--prefer-rate HZ] [--loop] [-q]
    Run `mrm-edge send --help` for the details. One connection per record; the framing is
    documented in the README.
    """
    from mrm_edge.runtime.sender import main as sender_main

    sys.exit(sender_main(list(args), prog="mrm-edge send"))


# --------------------------------------------------------------------------- predict
@main.command()
@click.argument("records", nargs=-1, type=click.Path(exists=False))
@model_option(must_exist=False)
@click.option(
    "--patients",
    type=click.IntRange(1),
    default=4,
    show_default=True,
    help="Synthetic patients to generate when no RECORDS are given.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Length of each synthetic recording.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per window on stdout.")
@click.option(
    "--rail-mv",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="The recorder's saturation rail in mV: a lead at the rail is flagged (as monitor).",
)
@user_errors
def predict(
    records: tuple[str, ...],
    model_dir: str | None,
    patients: int,
    seconds: float,
    seed: int,
    as_json: bool,
    rail_mv: float | None,
) -> None:
    """Classify recordings (WFDB .hea / CPSC .mat), or synthetic patients if none are given.

    Each recording is cut into consecutive windows of the model's length. A window with a
    bad lead (NaN, flat line, at the --rail-mv rail) is shown as rejected with the reason,
    never classified; a recording shorter than one window is an error (exit 1).
    """
    from mrm_edge.predict import classify, default_model_dir
    from mrm_edge.records import Recording, read_recording
    from mrm_edge.runtime.stream.quality import QualityConfig

    model = Path(model_dir) if model_dir else default_model_dir()
    if records:
        recs = [read_recording(r) for r in records]
        for rec in recs:
            for note in rec.notes:
                click.echo(f"note: {rec.path or rec.name}: {note}", err=True)
    else:
        from mrm_edge.data.synthetic import make_patients, synthesize

        fs = 500
        recs = [
            Recording(f"synthetic-{i}-{p.rhythm}", synthesize(p, seconds, fs=fs), fs)
            for i, p in enumerate(make_patients(patients, seed))
        ]
    results, reason = classify(recs, model, quality=QualityConfig(saturation_mv=rail_mv))
    click.echo(f"backend: {reason}", err=True)
    rejected = [r for r in results if r.status != "ok"]
    if rejected:
        click.echo(f"{len(rejected)} window(s) rejected (bad signal, not classified)", err=True)
    if as_json:
        for r in results:
            click.echo(
                json.dumps(
                    {
                        "recording": r.recording,
                        "start_s": r.start_s,
                        "end_s": r.end_s,
                        "status": r.status,
                        "reason": r.reason,
                        "probabilities": r.probabilities,
                        "positive": r.positive,
                    }
                )
            )
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"MRM-Net predictions ({model.name})")
    t.add_column("recording")
    t.add_column("window", justify="right")
    t.add_column("findings (≥ threshold)")
    t.add_column("probabilities")
    for r in results:
        top = sorted(r.probabilities.items(), key=lambda kv: -kv[1])
        t.add_row(
            r.recording,
            f"{r.start_s:.0f}-{r.end_s:.0f} s",
            (", ".join(r.positive) or "—") if r.status == "ok" else "REJECTED",
            "  ".join(f"{k} {v:.2f}" for k, v in top) if r.status == "ok" else r.reason,
        )
    Console().print(t)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
