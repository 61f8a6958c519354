"""``mrm-edge bench --compare DIR``: models side by side on one CPU path, as a user choosing
between them asks: windows/s, live streams kept at real time, what a window costs, and how
much of the CPU's measured peak each reaches.

Every model runs the same backend and file kind (``--stream-variant``, else the one ``auto``
picks for the first model), so the ratios compare models, not runtimes. Model-only
windows/s are timed in interleaved rounds (a CPU whose clock drifts during the run moves
every model alike); the streams come from the streaming section's method, run per model
(mrm_edge.cli.bench.streaming). The peak is a large GEMM on the same runtime at the same
precision (mrm_edge.cli.bench.peaks).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import click
import numpy as np

from mrm_edge.cli.bench.common import Log, time_calls
from mrm_edge.cli.bench.cpu import cpu_backend
from mrm_edge.data.synthetic import make_windows

_CALLS_PER_ROUND = 3


def run_comparison(
    models: list[Any], variant: str | None, knobs: dict[str, Any], rounds: int,
    json_out: str | None, log: Log,
) -> None:  # fmt: skip
    """``mrm-edge bench --compare``: ``models`` (loaded; the first is ``--model``) on its
    CPU path, printed, and written to ``json_out`` when given."""
    import json
    from pathlib import Path

    from mrm_edge.cli.bench.auto_variant import pick_cpu_variant
    from mrm_edge.cli.bench.common import machine
    from mrm_edge.cli.bench.streaming import check_knobs
    from mrm_edge.cli.bench.variants import row_file

    sb, sp = pick_cpu_variant(variant, models[0], log)
    file = row_file(sb, sp)
    for m in models:  # every model must have the file that path runs, before any timing
        k = knobs
        check_knobs(m, k["hop_s"], k["stream_seconds"], k["probe_streams"], k["probe_seconds"],
                    k["max_tries"])  # fmt: skip
        if file in m.refused or not (m.directory / file).is_file():
            why = m.refused.get(file, "not exported")
            raise click.ClickException(
                f"{m.directory / file}: {why}; --compare runs every model on {sb} {sp}"
            )
    doc = compare_models(models, sb, sp, knobs, rounds, log)
    print_comparison(doc)
    if json_out:
        Path(json_out).write_text(json.dumps({"machine": machine(), "comparison": doc}, indent=2))
        log(f"json: {json_out}")


@dataclass
class ModelCapacity:
    """One model's row of the comparison."""

    model: str  # the card's name
    directory: str
    gflop_per_window: float | None  # as the export recorded it (None: not recorded)
    windows_per_s: float  # model only, batch = the monitor's cap, median of every round
    gflops: float | None  # achieved: windows/s x GFLOP per window
    fraction_of_peak: float | None  # of the runtime's measured GEMM peak at this precision
    streams: int | None  # verified live streams at real time (None: no count held)
    streaming: dict[str, Any]  # the streaming section's full record for this model


def compare_models(
    models: list[Any],
    backend: str,
    precision: str,
    knobs: dict[str, Any],
    rounds: int,
    log: Log,
) -> dict[str, Any]:
    """The comparison of ``models`` (loaded DeployedModels, the first the reference) on
    ``backend``/``precision``; ``knobs`` are the streaming section's."""
    from mrm_edge.cli.bench.peaks import PEAK_RUNTIME, cpu_peak_for, measure_cpu_peaks
    from mrm_edge.cli.bench.streaming import streaming_capacity

    batch = knobs["max_batch"]
    wps = _interleaved_throughput(models, backend, precision, batch, rounds, log)
    runtime = PEAK_RUNTIME.get(backend)
    peaks = measure_cpu_peaks([runtime], bf16=precision == "bf16") if runtime else {}
    peak, basis = cpu_peak_for(backend, precision, peaks) if runtime else (None, "no peak")
    if peak is None:
        basis += f" not measured ({(peaks.get('errors') or {}).get(runtime, 'no GEMM probe')})"
    rows = []
    for model, w in zip(models, wps, strict=True):
        stream = streaming_capacity(model, backend, precision, **knobs, log=log)
        gflop = model.gflop_per_window
        achieved = None if gflop is None else w * gflop
        fraction = None if achieved is None or not peak or achieved > peak else achieved / peak
        name, where, held = model.card.name, str(model.directory), stream["capacity_streams"]
        rows.append(ModelCapacity(name, where, gflop, w, achieved, fraction, held, stream))
    return {
        "backend": backend,
        "precision": precision,
        "batch_size": batch,
        "rounds": rounds,
        "hop_s": knobs["hop_s"],
        "peak_gflops": peak,
        "peak_basis": basis,
        "models": [asdict(r) for r in rows],
    }


def _interleaved_throughput(
    models: list[Any], backend: str, precision: str, batch: int, rounds: int, log: Log
) -> list[float]:
    """Model-only windows/s of each model at ``batch``: ``rounds`` rounds, each timing every
    model in turn; the median over all of a model's calls."""
    backends = [cpu_backend(m.directory, backend, precision) for m in models]
    times: list[list[float]] = [[] for _ in models]
    try:
        for be in backends:
            be.activate()
        xs = [np.ascontiguousarray(make_windows(m.card, batch)) for m in models]
        for r in range(rounds):
            for i, (be, x) in enumerate(zip(backends, xs, strict=True)):
                times[i].extend(time_calls(lambda be=be, x=x: be.infer(x), 1, _CALLS_PER_ROUND))
            log(f"compare: round {r + 1}/{rounds} done")
    finally:
        for be in backends:
            be.deactivate()
    return [batch / float(np.median(t)) for t in times]


def print_comparison(doc: dict[str, Any]) -> None:
    """The comparison on stdout: a table, the peak, one ratio line per model against the
    first."""
    from rich.console import Console
    from rich.table import Table

    rows = doc["models"]
    t = Table(
        title=f"models on {doc['backend']} {doc['precision']}, batch {doc['batch_size']} "
        f"({doc['rounds']} interleaved rounds); live streams at hop {doc['hop_s']:g} s"
    )
    for col in ("model", "GFLOP/window", "windows/s", "GFLOP/s", "% peak", "live streams"):
        # The numbers stay whole on a narrow console; a long model name folds instead.
        model = col == "model"
        t.add_column(col, justify="left" if model else "right", overflow="fold", no_wrap=not model)
    for r in rows:
        t.add_row(
            r["model"],
            _fmt(r["gflop_per_window"], "{:.2f}"),
            f"{r['windows_per_s']:.1f}",
            _fmt(r["gflops"], "{:.0f}"),
            _fmt(r["fraction_of_peak"], "{:.0%}"),
            "not verified" if r["streams"] is None else str(r["streams"]),
        )
    out = Console()
    out.print(t)
    out.print(f"peak: {_fmt(doc['peak_gflops'], '{:.0f} GFLOP/s')}, {doc['peak_basis']}")
    ref = rows[0]
    for r in rows[1:]:
        ratio = f"{r['model']} vs {ref['model']}: {r['windows_per_s'] / ref['windows_per_s']:.2f}x "
        ratio += "windows/s"
        if r["streams"] and ref["streams"]:
            ratio += f", {r['streams'] / ref['streams']:.2f}x live streams"
        if r["gflop_per_window"] and ref["gflop_per_window"]:
            cost = r["gflop_per_window"] / ref["gflop_per_window"]
            ratio += f", {cost:.3f}x the GFLOP per window"
        out.print(ratio)


def _fmt(value: float | None, form: str) -> str:
    return "–" if value is None else form.format(value)
