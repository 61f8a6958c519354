"""``python -m benchmarks.soak``: many synthetic streams for a long simulated time at max
speed, every window accounted for (the soak itself: :mod:`benchmarks.soak.run`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from benchmarks.soak.run import (
    DEFAULT_HOP_S,
    DEFAULT_LATENCY_FLOOR_MS,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_P99_RATIO,
    DEFAULT_MAX_RSS_GROWTH_PCT,
    DEFAULT_SECONDS,
    DEFAULT_STREAMS,
    run_soak,
)
from mrm_edge.cli.common import console, logger, model_path, progress_bar
from mrm_edge.cli.options import model_option, runtime_options, user_errors


def _check_writable(path: Path) -> None:
    """Fail now, not after an hour of soak, when the report cannot be written."""
    existed = path.exists()
    try:
        path.open("a").close()
    except OSError as e:
        raise click.ClickException(f"--json {path}: cannot write ({e.strerror})") from None
    if not existed:
        path.unlink()


@click.command()
@model_option(must_exist=False)
@click.option("--streams", type=click.IntRange(1), default=DEFAULT_STREAMS, show_default=True)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_SECONDS,
    show_default=True,
    help="Seconds of signal per stream (simulated time, sent at max speed).",
)
@click.option(
    "--hop",
    "hop_s",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_HOP_S,
    show_default=True,
    help="Seconds between window starts (10 s keeps 500 x 1 h at 180,000 windows).",
)
@runtime_options(max_batch=DEFAULT_MAX_BATCH)
@click.option(
    "--max-queue",
    type=click.IntRange(1),
    default=None,
    help="Windows waiting for inference at most (default: 4 x --max-batch).",
)
@click.option(
    "--overload",
    type=click.Choice(["block", "drop-oldest", "drop-newest"]),
    default="block",
    show_default=True,
    help="What a full queue does; a soak blocks the source (anything else may drop, and FAIL).",
)
@click.option(
    "--fs",
    type=click.IntRange(1),
    default=None,
    help="Source rate in Hz (default: the model's, so nothing resamples; 500 exercises "
    "the resampler).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the full report (figures, RSS samples, checks) as JSON here.",
)
@click.option(
    "--max-rss-growth",
    type=click.FloatRange(min=0),
    default=DEFAULT_MAX_RSS_GROWTH_PCT,
    show_default=True,
    help="Resident memory growth after warm-up allowed, in %.",
)
@click.option(
    "--max-p99-ratio",
    type=click.FloatRange(min=1),
    default=DEFAULT_MAX_P99_RATIO,
    show_default=True,
    help="Last-quarter p99 latency allowed, as a multiple of the first quarter's.",
)
@click.option(
    "--latency-floor",
    "latency_floor_ms",
    type=click.FloatRange(min=0),
    default=DEFAULT_LATENCY_FLOOR_MS,
    show_default=True,
    help="...or the first quarter's p99 plus this many ms, whichever is larger.",
)
@user_errors
def soak(
    model_dir: str | None,
    streams: int,
    seconds: float,
    hop_s: float,
    backend: str,
    precision: str | None,
    max_batch: int,
    max_delay_ms: float,
    max_queue: int | None,
    overload: str,
    fs: int | None,
    seed: int,
    json_path: str | None,
    max_rss_growth: float,
    max_p99_ratio: float,
    latency_floor_ms: float,
) -> None:
    """Soak the runtime: many synthetic streams, long simulated time, at max speed.

    Checks at the end, each PASS or FAIL with its figures: every window accounted for
    (classified + rejected = expected, none dropped, none lost), no errors, resident memory
    growth after warm-up, p99 latency of the last quarter vs the first. Exit code 0 when all
    pass, 1 otherwise (the report is printed, and written with --json, either way).
    """

    if json_path is not None:
        _check_writable(Path(json_path))
    err = console()
    with progress_bar(err) as bar:
        task = bar.add_task("soak windows", total=None)
        report = run_soak(
            model_path(model_dir),
            streams=streams,
            seconds=seconds,
            hop_s=hop_s,
            backend=backend,
            precision=precision,
            max_batch=max_batch,
            max_delay_ms=max_delay_ms,
            max_queue=max_queue,
            overload=overload,
            fs=fs,
            seed=seed,
            max_rss_growth_pct=max_rss_growth,
            max_p99_ratio=max_p99_ratio,
            latency_floor_ms=latency_floor_ms,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            log=logger(err),
        )
    for line in report.lines():
        click.echo(line)
    if json_path is not None:
        Path(json_path).write_text(report.to_json() + "\n")
    if not report.passed:
        sys.exit(1)


if __name__ == "__main__":
    soak(prog_name="python -m benchmarks.soak")
