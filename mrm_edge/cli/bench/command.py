"""``mrm-edge bench``: throughput and latency per backend, precision and batch size against
PyTorch eager FP32; accuracy agreement; streaming capacity of the runtime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mrm_edge.cli.common import console, csv, logger, model_path
from mrm_edge.cli.options import card_tuning_option, model_option, user_errors


@click.command()
@model_option("Exported model")
@click.option(
    "--backends",
    default="torch,onnxruntime,openvino,torch-cuda,onnxruntime-cuda,tensorrt",
    show_default=True,
    help="Comma-separated: torch (eager FP32, and BF16 autocast with bf16), torch-compile "
    "(opt-in: compiles for tens of seconds), onnxruntime, openvino (CPU); torch-cuda "
    "(FP32/FP16 autocast), onnxruntime-cuda (FP32/FP16, IOBinding), tensorrt (this GPU's "
    "engines). GPU backends that cannot run here are reported as skipped with the reason.",
)
@click.option(
    "--precisions",
    default=None,
    help="Variants to run [default: fp32,int8,int8-sym,bf16 on the CPU; fp32,fp16,int8 for "
    "GPU rows]. bf16 runs model.onnx at BF16 (OpenVINO, PyTorch autocast) where the CPU has "
    "it. torch and torch-cuda always run FP32, the baseline.",
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
    help="backend:precision for the streaming section (default: the CPU option `auto` "
    "picks, as `monitor` would).",
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
@click.option(
    "--compare",
    "compare_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Another exported model directory (repeatable): runs only the comparison, every "
    "model on --model's CPU path (--stream-variant, else auto's pick): windows/s in "
    "interleaved rounds, live streams kept at real time, GFLOP per window, fraction of the "
    "runtime's measured GEMM peak.",
)
@click.option("--rounds", type=click.IntRange(1), default=5, show_default=True,
              help="Interleaved timing rounds of --compare.")  # fmt: skip
@click.option(
    "--backend",
    "remote",
    default=None,
    metavar="triton:HOST:PORT[/MODEL]",
    help="Bench a served model instead (network hop included) against the same ONNX "
    "variant in-process; the other sections are skipped.",
)
@click.option(
    "--no-peaks",
    is_flag=True,
    hidden=True,
    help="Accepted and ignored: the peaks moved to `python -m benchmarks.roofline`.",
)
@card_tuning_option()
@user_errors
def bench(
    model_dir: str | None,
    remote: str | None,
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
    compare_dirs: tuple[str, ...],
    rounds: int,
    no_peaks: bool,
    accept_card_tuning: bool,
) -> None:
    """Throughput and latency of the model per backend, precision and batch size,
    against PyTorch eager FP32; accuracy agreement; streaming capacity of the runtime."""
    from mrm_edge.cli.bench.auto_variant import pick_cpu_variant
    from mrm_edge.cli.bench.common import add_speedups, to_json
    from mrm_edge.cli.bench.cpu import bench_model
    from mrm_edge.cli.bench.gpu_run import run_gpu
    from mrm_edge.cli.bench.plot import plot_throughput
    from mrm_edge.cli.bench.variants import plan
    from mrm_edge.runtime.facts import probe_machine
    from mrm_edge.runtime.model import DeployedModel

    model = model_path(model_dir)
    if remote is not None:
        return _remote_bench(model, remote, batch_sizes, warmup, repeats, json_out)
    names, precs, gpu_precs, sizes, gpu_sizes = _grid(backends, precisions, batch_sizes)
    facts = probe_machine()  # once: the plan and the GPU rows read the same machine
    todo = plan(names, precs, facts)
    log = logger(console())
    deployed = DeployedModel.load(model, accept_card_tuning=accept_card_tuning)
    knobs = dict(
        hop_s=hop_s, budget_ms=latency_budget_ms, stream_seconds=stream_seconds,
        probe_streams=streams, probe_seconds=probe_seconds, max_batch=max_batch,
        max_tries=max_tries,
    )  # fmt: skip
    if compare_dirs:
        from mrm_edge.cli.bench.compare import run_comparison

        load = [DeployedModel.load(d, accept_card_tuning=accept_card_tuning) for d in compare_dirs]
        return run_comparison([deployed, *load], stream_variant, knobs, rounds, json_out, log)
    todo.variants = _loadable(deployed, todo, log)
    variants, skipped = todo.variants, todo.skipped
    if not variants and not todo.gpu_backends:
        raise click.ClickException(
            "no backend to run (GPU backends: "
            + "; ".join(f"{s['backend']}: {s['reason']}" for s in skipped)
            + ")"
        )
    for s in skipped:
        log(f"skipped {s['backend']}: {s['reason']}")
    results = bench_model(model, variants, sizes, warmup, repeats, log=log) if variants else []
    gpu = run_gpu(model, todo.gpu_backends, gpu_precs, gpu_sizes, warmup, repeats, log, facts=facts)
    skipped += gpu.skipped
    results = add_speedups(results + gpu.results)
    _print_results(model, results, repeats)
    _print_vs_pytorch(results)
    acc = None
    if not no_accuracy:
        acc = _accuracy_section(model, variants, data_dir, accuracy_windows, log)
    stream = None
    if not no_streaming and not variants:
        log("streaming section skipped: it runs a CPU backend and none was benchmarked")
    elif not no_streaming:
        sb, sp = pick_cpu_variant(stream_variant, deployed, log)
        stream = _streaming_section(deployed, sb, sp, knobs, log)
    if plot_out:
        plot_throughput(results, plot_out, title=f"{model.name}: windows/s vs batch size")
        log(f"plot: {plot_out}")
    if json_out:
        doc = to_json(results, gpu.machine, skipped=skipped, accuracy=acc, streaming=stream)
        Path(json_out).write_text(json.dumps(doc, indent=2) + "\n")
        log(f"json: {json_out}")


def _grid(
    backends: str, precisions: str | None, batch_sizes: str | None
) -> tuple[list[str], list[str], list[str], list[int], list[int]]:
    """What to run: backends, CPU and GPU precisions, CPU and GPU batch sizes (checked)."""
    from mrm_edge.cli.bench.gpu_run import GPU_BATCH_SIZES
    from mrm_edge.cli.bench.variants import check_backends, check_precisions

    names = csv(backends)
    precs = csv(precisions) if precisions is not None else ["fp32", "int8", "int8-sym", "bf16"]
    gpu_precs = precs if precisions is not None else ["fp32", "fp16", "int8"]
    gpu_precs = [p for p in gpu_precs if p != "bf16"]  # BF16 is a CPU precision (OpenVINO)
    sizes = csv(batch_sizes, int) if batch_sizes is not None else [1, 8, 32]
    gpu_sizes = sizes if batch_sizes is not None else GPU_BATCH_SIZES
    check_backends(names)
    check_precisions(precs)
    if not sizes or min(sizes) < 1:
        raise click.BadParameter(f"{batch_sizes!r}: batch sizes must be >= 1")
    return names, precs, gpu_precs, sizes, gpu_sizes


def _print_results(model: Path, results: list[Any], repeats: int) -> None:
    """The results table on stdout."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{model.name}: windows/s (median of {repeats}) and latency per call")
    cols = ("backend", "precision", "batch", "windows/s", "p50 ms", "p99 ms", "vs torch")
    cols += ("vs best torch",)
    for col in cols:
        t.add_column(col, justify="left" if col in ("backend", "precision") else "right")
    for r in results:
        speed = f"{r.speedup_vs_torch_fp32:.2f}x" if r.speedup_vs_torch_fp32 else "—"
        if r.speedup_vs_torch_cuda_fp32:
            speed = f"{r.speedup_vs_torch_cuda_fp32:.2f}x (GPU)"
        best = "—" if r.speedup_vs_best_torch is None else f"{r.speedup_vs_best_torch:.2f}x"
        t.add_row(
            r.backend + (f" (compile {r.compile_s:.0f} s)" if r.compile_s else ""),
            r.precision,
            str(r.batch_size),
            f"{r.throughput:.1f}",
            f"{r.latency_ms['p50']:.1f}",
            f"{r.latency_ms['p99']:.1f}",
            speed,
            best,
        )
    Console().print(t)


def _accuracy_section(
    model: Path,
    variants: list[tuple[str, str]],
    data_dir: str | None,
    accuracy_windows: int,
    log: Any,
) -> dict[str, Any]:
    """Every variant against PyTorch FP32: held-out windows of ``--data``, else synthetic."""
    from mrm_edge.card import ModelCard
    from mrm_edge.cli.bench.accuracy import accuracy
    from mrm_edge.data.synthetic import make_windows

    card = ModelCard.load(model)
    if data_dir:
        from mrm_edge.calibration.sources import held_out_windows

        x, y = held_out_windows(Path(data_dir), card)
        src = f"{len(x)} held-out windows of {data_dir}"
    else:
        x, y = make_windows(card, accuracy_windows, seed=1), None
        src = f"{accuracy_windows} synthetic windows (no --data)"
    log(f"accuracy: {len(variants)} variant(s) vs torch fp32 on {src}")
    acc = accuracy(model, variants, x, y, src)
    for v in acc["variants"]:
        auc = "–" if v["macro_auc"] is None else f"{100 * v['macro_auc']:.2f}"
        log(
            f"  {v['backend']} {v['precision']}: max |dp| {v['max_abs_dp']:.2e}, "
            f"labels agree {100 * v['label_agreement']:.1f} %, macro-AUC {auc}"
        )
    return acc


def _loadable(deployed: Any, todo: Any, log: Any) -> list[Any]:
    """The CPU rows whose file the model directory verified (``deployed``: loaded as monitor
    and predict load it, so a card edited since export, or files contradicting it, are
    refused here, before any timing); rows of a refused file move to ``todo.skipped`` with
    the reason."""
    from mrm_edge.cli.bench.variants import row_file

    for line in deployed.tuning_lines():
        log(line)
    kept = []
    for backend, precision in todo.variants:
        file = row_file(backend, precision)
        if file in deployed.refused:
            reason = f"refused {file}: {deployed.refused[file]}"
            todo.skipped.append({"backend": backend, "precision": precision, "reason": reason})
        else:
            kept.append((backend, precision))
    return kept


def _print_vs_pytorch(results: list[Any]) -> None:
    """Per batch size: the fastest CPU row against eager FP32 and against PyTorch's best."""
    from rich.console import Console

    out = Console()
    for b in sorted({r.batch_size for r in results if r.device == "cpu"}):
        rows = [r for r in results if r.device == "cpu" and r.batch_size == b]
        top = max(rows, key=lambda r: r.throughput)
        line = f"batch {b}: fastest CPU row {top.backend} {top.precision} {top.throughput:.1f}/s"
        line += f", p50 {top.latency_ms['p50']:.1f} ms per call"
        if top.speedup_vs_torch_fp32:
            line += f"; {top.speedup_vs_torch_fp32:.2f}x PyTorch eager FP32"
        if top.speedup_vs_best_torch:
            line += f", {top.speedup_vs_best_torch:.2f}x PyTorch's best ({top.best_torch})"
        out.print(line)


def _streaming_section(
    model: Any, sb: str, sp: str, knobs: dict[str, Any], log: Any
) -> dict[str, Any]:
    """Streaming capacity through the real runtime, and its one-line verdict on stdout."""
    from rich.console import Console

    from mrm_edge.cli.bench.streaming import streaming_capacity

    stream = streaming_capacity(model, sb, sp, **knobs, log=log)
    Console().print(
        f"streaming ({sb} {sp}, hop {knobs['hop_s']:g} s, p99 budget "
        f"{stream['latency_budget_ms']:.0f} ms): {stream['capacity_note']}; "
        f"end-to-end {stream['end_to_end_wps']:.1f} windows/s = "
        f"{100 * stream['streaming_efficiency']:.0f} % of model-only "
        f"{stream['model_only_wps']:.1f} at batch {knobs['max_batch']}"
    )
    return stream


def _remote_bench(
    model: Path, remote: str, batch_sizes: str | None, warmup: int, repeats: int, json_out: Any
) -> None:
    """``--backend triton:...``: mrm_edge.cli.bench.triton, printed and optionally as JSON."""
    from dataclasses import asdict

    from mrm_edge.cli.bench.common import to_json
    from mrm_edge.cli.bench.triton import bench_triton, pair_lines

    sizes = csv(batch_sizes, int) if batch_sizes is not None else [1, 8, 32]
    pairs = bench_triton(model, remote, sizes, warmup, repeats, log=logger(console()))
    for line in pair_lines(pairs):
        click.echo(line)
    if json_out:
        rows = [r for p in pairs for r in (p.triton, p.local)]
        doc = to_json(rows, triton=[asdict(p) for p in pairs])
        Path(json_out).write_text(json.dumps(doc, indent=2) + "\n")
