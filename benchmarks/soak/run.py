"""``run_soak``: the real Monitor over many synthetic streams at max speed, then the checks
(see :mod:`benchmarks.soak`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.soak.report import SoakReport, checks, latency_figures, rss_figures, window_figures
from benchmarks.soak.sink import SoakSink

if TYPE_CHECKING:
    from mrm_edge.runtime.backends.base import Backend
    from mrm_edge.runtime.config import MonitorConfig

__all__ = ["expected_windows_per_stream", "run_soak"]

DEFAULT_STREAMS = 500
DEFAULT_SECONDS = 3600.0
DEFAULT_HOP_S = 10.0
DEFAULT_MAX_BATCH = 32
DEFAULT_CHUNK_S = 1.0
DEFAULT_PUT_TIMEOUT_S = 60.0
DEFAULT_MAX_RSS_GROWTH_PCT = 5.0
DEFAULT_MAX_P99_RATIO = 1.5
DEFAULT_LATENCY_FLOOR_MS = 20.0


def expected_windows_per_stream(
    seconds: float, fs_in: int, model_rate: int, window: int, hop: int
) -> int:
    """Windows a finite stream of ``seconds`` at ``fs_in`` Hz yields: the synthetic source
    sends ``round(seconds · fs_in)`` samples, the resampler releases
    ``ceil(n_in · model_rate / fs_in)`` at the end (as offline ``resample_poly`` does), and
    the windower cuts ``(N − window) // hop + 1`` full windows (none padded)."""
    from mrm_edge.runtime.stream.windower import window_count

    n_in = round(seconds * fs_in)
    g = math.gcd(int(fs_in), int(model_rate))
    up, down = int(model_rate) // g, int(fs_in) // g
    n_out = -(-n_in * up // down)
    return window_count(n_out, window, hop)


def run_soak(
    model_dir: str | Path,
    *,
    streams: int = DEFAULT_STREAMS,
    seconds: float = DEFAULT_SECONDS,
    hop_s: float = DEFAULT_HOP_S,
    backend: str | Backend = "auto",
    precision: str | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_delay_ms: float = 50.0,
    max_queue: int | None = None,
    overload: str = "block",
    put_timeout_s: float = DEFAULT_PUT_TIMEOUT_S,
    fs: int | None = None,
    chunk_s: float = DEFAULT_CHUNK_S,
    seed: int = 0,
    max_rss_growth_pct: float = DEFAULT_MAX_RSS_GROWTH_PCT,
    max_p99_ratio: float = DEFAULT_MAX_P99_RATIO,
    latency_floor_ms: float = DEFAULT_LATENCY_FLOOR_MS,
    rss_interval_s: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> SoakReport:
    """Soak the runtime (see the module docstring) and return the report.

    ``backend`` is a name (auto, tensorrt, onnxruntime, ...: picked with its fallback chain,
    as ``mrm-edge monitor`` does; a switch fails the errors check) or a Backend the caller
    owns (activated by the monitor if it is not). ``fs`` is the source's rate (default: the
    model's); ``max_queue`` defaults to 4 × ``max_batch``. ``progress(done, expected)`` is
    called from the inference thread at most every 0.25 s and once at the end; ``log`` gets
    one line saying which backend runs and why. Raises ValueError / ModelLoadError /
    BackendUnavailable (one line) on bad knobs or an unusable model before anything runs.
    """
    from mrm_edge.runtime.config import MonitorConfig
    from mrm_edge.runtime.model import DeployedModel
    from mrm_edge.runtime.sources.synthetic import SyntheticSource

    _check_knobs(streams, seconds=seconds, chunk_s=chunk_s, put_timeout_s=put_timeout_s)
    model = DeployedModel.load(model_dir)
    rate = model.card.sampling_rate
    fs_in = rate if fs is None else fs
    window = model.card.window_samples
    per_stream = _windows_per_stream(seconds, hop_s, fs_in, rate, window)
    queue = max_queue if max_queue is not None else 4 * max_batch
    source = SyntheticSource(
        streams, fs=fs_in, seconds=seconds, speed=None, seed=seed, chunk_seconds=chunk_s
    )
    sink = SoakSink(
        seconds=seconds,
        window_s=window / rate,
        expected_total=per_stream * streams,
        rss_interval_s=rss_interval_s,
        progress=progress,
        seed=seed,
    )
    monitor_config = MonitorConfig(
        hop_s=hop_s,
        max_batch=max_batch,
        max_delay_ms=max_delay_ms,
        max_queue=queue,
        overload=overload,  # the batcher checks it
        put_timeout_s=put_timeout_s,
    )
    monitor, summary, wall = _run_monitor(
        model, backend, precision, source, sink, monitor_config, log
    )
    config = {  # the report's: how the soak ran and the limits its checks hold
        "streams": streams,
        "seconds": float(seconds),
        "hop_s": float(hop_s),
        "fs": fs_in,
        "model_rate": rate,
        "window_s": window / rate,
        "chunk_s": float(chunk_s),
        "max_batch": max_batch,
        "max_delay_ms": float(max_delay_ms),
        "max_queue": queue,
        "overload": overload,
        "put_timeout_s": float(put_timeout_s),
        "seed": seed,
        "max_rss_growth_pct": float(max_rss_growth_pct),
        "max_p99_ratio": float(max_p99_ratio),
        "latency_floor_ms": float(latency_floor_ms),
    }
    return _report(model, summary, sink, monitor, source, per_stream, config, wall)


def _report(
    model: Any,
    summary: Any,
    sink: SoakSink,
    monitor: Any,
    source: Any,
    per_stream: int,
    config: dict[str, Any],
    wall: float,
) -> SoakReport:
    """The figures of the finished run and the checks against ``config``'s limits."""
    windows = window_figures(sink, monitor, per_stream, config["streams"], source)
    rss = rss_figures(sink)
    latency = latency_figures(sink)
    run = _run_figures(summary, sink, wall)
    switches = [
        f"backend switched: {sw['from']} -> {sw['to']} ({sw['reason']})"
        for sw in run["backend_switches"]
    ]
    return SoakReport(
        model=model.card.name,
        backend=summary.backend,
        backend_reason=summary.backend_reason,
        source=summary.source,
        config=config,
        windows=windows,
        rss=rss,
        latency=latency,
        run=run,
        checks=checks(
            windows,
            rss,
            latency,
            run["errors"] + switches,
            summary.backend_errors,
            max_rss_growth_pct=config["max_rss_growth_pct"],
            max_p99_ratio=config["max_p99_ratio"],
            latency_floor_ms=config["latency_floor_ms"],
        ),
    )


def _check_knobs(streams: Any, **positive: Any) -> None:
    """ValueError (one line) for a stream count or a length that cannot run."""
    if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
        raise ValueError(f"soak: streams is {streams!r}, expected an integer >= 1")
    for name, value in positive.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"soak: {name} is {value!r}, expected a number > 0")


def _windows_per_stream(seconds: float, hop_s: float, fs_in: int, rate: int, window: int) -> int:
    """Windows each stream yields; ValueError when the hop is not whole samples or there are
    too few windows for four quarters."""
    hop = round(hop_s * rate)
    if hop < 1 or abs(hop - hop_s * rate) > 1e-6:
        raise ValueError(f"soak: hop {hop_s!r} s is not a whole number of samples at {rate} Hz")
    per_stream = expected_windows_per_stream(seconds, fs_in, rate, window, hop)
    if per_stream < 4:
        raise ValueError(
            f"soak: {seconds:g} s of signal at hop {hop_s:g} s gives {per_stream} window(s) per "
            f"stream; need >= 4 so that every quarter of the run has windows"
        )
    return per_stream


def _run_monitor(
    model: Any,
    backend: str | Backend,
    precision: str | None,
    source: Any,
    sink: SoakSink,
    config: MonitorConfig,
    log: Callable[[str], None],
) -> tuple[Any, Any, float]:
    """Open the monitor (the backend picked and activated, or the caller's), run it to the
    source's end (or a signal) and tear down; the monitor, its summary and the wall time."""
    from mrm_edge.runtime.app import open_monitor, stop_on_signals

    with open_monitor(model, source, config, backend, precision, sinks=[sink]) as monitor:
        log(f"backend {monitor.chain.backend.describe()}: {monitor.backend_reason}")
        t0 = time.monotonic()
        with stop_on_signals() as stops:
            stops.attach(monitor)
            summary = monitor.run()
        wall = time.monotonic() - t0
    return monitor, summary, wall


def _run_figures(summary: Any, sink: SoakSink, wall: float) -> dict[str, Any]:
    return {
        "wall_s": wall,
        "windows_per_s": sink.accounted / wall if wall > 0 else 0.0,
        "classified_per_s": summary.throughput_wps,
        "backend_alone_wps": summary.inference_wps,
        "batches": summary.batches,
        "mean_batch": summary.mean_batch,
        "max_queue_depth": summary.max_queue_depth,
        "backend_errors": summary.backend_errors,
        # A fallback switch (the engine may move a failing run to another backend) means
        # the backend under soak failed: reported, and it fails the errors check.
        "backend_switches": list(getattr(summary, "backend_switches", [])),
        "errors": list(summary.errors),
        "stopped_by": summary.stopped_by,
    }
