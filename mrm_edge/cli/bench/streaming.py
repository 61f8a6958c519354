"""Streaming capacity of the real runtime: how many live 12-lead streams one backend keeps
up with in real time, at a given hop, with the p99 latency under a budget. Every figure is a
measurement of the :class:`~mrm_edge.runtime.engine.Monitor` that ``mrm-edge monitor`` runs,
not a model-only loop; the method, step by step: docs/benchmarks.md.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from mrm_edge.cli.bench.common import Log, quiet, time_calls
from mrm_edge.cli.bench.cpu import cpu_backend
from mrm_edge.data.synthetic import make_windows
from mrm_edge.runtime.sources.base import Chunk, Pacer, Source

_FS = 500  # Hz: the synthetic streams' rate (the model resamples to its own)
_STEP = 0.9  # a count that does not hold is retried at this fraction of itself


def render_synthetic(n_streams: int, fs: int, seconds: float, seed: int = 0) -> list[Any]:
    """Every event of ``n_streams`` synthetic patients for ``seconds``, rendered up front.

    The bench replays these instead of generating them live: the synthetic generator is the
    load, not the runtime under test, and on a small CPU it would otherwise take its share of
    the cores from inference (rendering 500 Hz signal costs about as much as a tenth of the
    INT8 model's inference on the 2-core reference machine).
    """
    from mrm_edge.runtime.sources.synthetic import SyntheticSource

    return list(SyntheticSource(n_streams, fs=fs, seconds=seconds, speed=None, seed=seed))


class _Replay(Source):
    """Replays rendered events: the first ``prefill_s`` seconds of signal at once, the rest
    at ``speed`` x real time (``None``: all at once, max speed)."""

    name = "synthetic-replay"

    def __init__(self, events: list[Any], prefill_s: float, speed: float | None, what: str) -> None:
        super().__init__()
        self._events, self._prefill_s, self._speed, self._what = events, prefill_s, speed, what

    def events(self) -> Iterator[Any]:
        pacer = Pacer(self._speed, self._closed)
        for ev in self._events:
            if self.closed:
                return
            if self._speed is not None and isinstance(ev, Chunk) and ev.timestamp is not None:
                end = ev.timestamp + len(ev.samples) / ev.sample_rate
                if end > self._prefill_s and not pacer.wait_until(end - self._prefill_s):
                    return
            yield ev

    def describe(self) -> str:
        return self._what


def prefilled_realtime_source(
    n_streams: int, fs: int, prefill_s: float, seconds: float, seed: int = 0
) -> Source:
    """Synthetic streams whose first ``prefill_s`` seconds arrive at once, the next
    ``seconds`` at real time: streams already running when timing starts. The signal is
    rendered before the source starts (see :func:`render_synthetic`)."""
    events = render_synthetic(n_streams, fs, prefill_s + seconds, seed)
    what = (
        f"synthetic: {n_streams} patients at {fs} Hz, {prefill_s:g} s pre-filled, "
        f"then {seconds:g} s at real time (rendered beforehand)"
    )
    return _Replay(events, prefill_s, 1.0, what)


def max_speed_source(n_streams: int, fs: int, seconds: float, seed: int = 0) -> Source:
    """Synthetic streams replayed as fast as the monitor takes them (rendered beforehand:
    see :func:`render_synthetic`)."""
    events = render_synthetic(n_streams, fs, seconds, seed)
    return _Replay(events, 0.0, None, f"synthetic: {n_streams} patients, max speed")


def _run(model: Any, backend: Any, source: Source, config: Any) -> Any:
    """One monitor run on the caller's active ``backend``; its summary."""
    from mrm_edge.runtime.app import open_monitor

    with open_monitor(model, source, config, backend) as monitor:
        return monitor.run()


def run_figures(s) -> dict[str, Any]:
    """A run's summary as the bench reports it."""
    lat = s.latency_ms
    return {
        "elapsed_s": s.elapsed_s,
        "windows": s.windows,
        "classified": s.classified,
        "rejected": s.rejected,
        "rejected_by_reason": dict(s.rejected_by_reason),
        "dropped": s.dropped,
        "backend_errors": s.backend_errors,
        "errors": list(s.errors),
        "throughput_wps": s.throughput_wps,
        "mean_batch": s.mean_batch,
        "max_queue_depth": s.max_queue_depth,
        "latency_ms": {k: lat.get(k) for k in ("p50", "p90", "p99", "max")},
    }


def _verdict(s: Any, budget: float) -> list[str]:
    """Why a real-time run does not hold (empty when it does)."""
    p99 = s.latency_ms.get("p99")
    reasons = []
    if s.dropped:
        reasons.append(f"{s.dropped} dropped")
    if s.backend_errors or s.errors:
        reasons.append("errors")
    if s.classified == 0 or p99 is None:
        reasons.append("nothing classified")
    elif p99 > budget:
        reasons.append(f"p99 {p99:.0f} ms > {budget:.0f} ms")
    return reasons


def _probe(model: Any, be: Any, knobs: dict[str, Any], log: Log) -> tuple[Any, float, int]:
    """1-2: the max-speed probe through the real runtime; its summary, W and the estimate."""
    n, secs, hop_s = knobs["probe_streams"], knobs["probe_seconds"], knobs["hop_s"]
    log(f"streaming: max-speed probe, {n} streams x {secs:g} s ({knobs['what']})")
    probe = _run(model, be, max_speed_source(n, _FS, secs), knobs["monitor"])
    w = probe.throughput_wps
    if not w > 0 or probe.errors:
        raise RuntimeError(
            f"streaming probe classified nothing: {'; '.join(probe.errors) or 'no windows'}"
        )
    estimate = max(1, math.floor(w * hop_s))
    log(
        f"streaming: {w:.1f} windows/s end to end -> estimate {estimate} streams at hop {hop_s:g} s"
    )
    return probe, w, estimate


def _verify(
    model: Any, be: Any, n: int, knobs: dict[str, Any], log: Log
) -> tuple[int | None, list[dict[str, Any]]]:
    """3: ``n`` streams at real time, stepping down until a count holds (or tries run out);
    the verified count (None if none held) and every try."""
    hop_s, seconds = knobs["hop_s"], knobs["stream_seconds"]
    prefill = max(0.0, model.card.window_seconds - hop_s)
    tries: list[dict[str, Any]] = []
    for _ in range(knobs["max_tries"]):
        log(f"streaming: verifying {n} streams at real time for {seconds:g} s")
        src = prefilled_realtime_source(n, _FS, prefill, seconds + hop_s)
        t0 = time.monotonic()
        s = _run(model, be, src, knobs["monitor"])
        wall = time.monotonic() - t0
        fig = run_figures(s)
        p99 = fig["latency_ms"]["p99"]
        reasons = _verdict(s, knobs["budget"])
        held = not reasons
        tries.append(
            {"streams": n, "held": held, "why_not": "; ".join(reasons) or None, "wall_s": wall}
            | fig
        )
        log(
            f"streaming: {n} streams "
            + ("hold" if held else f"do not hold ({'; '.join(reasons)})")
            + (f", p99 {p99:.0f} ms" if p99 is not None else "")
        )
        if held:
            return n, tries
        if n == 1:
            break
        n = max(1, min(n - 1, math.floor(n * _STEP)))
    return None, tries


_METHOD = (
    "Monitor (the real runtime) with synthetic streams rendered before timing (the "
    "generator is the load, not the runtime): max-speed probe gives the "
    "sustained end-to-end windows/s W; capacity estimate floor(W x hop); verified at "
    "real-time pace (streams pre-filled with window - hop seconds) for stream_seconds "
    "after the first window: no drops, no errors, p99 (window complete -> result) <= "
    "budget; stepped down by x step until it holds"
)


def check_knobs(
    model: Any, hop_s: float, stream_seconds: float, probe_streams: int, probe_seconds: float,
    max_tries: int,
) -> None:  # fmt: skip
    """ValueError, one line, for settings no run of ``model`` could measure anything with;
    callers that time other things first check before them."""
    if not hop_s > 0 or not stream_seconds > 0 or not probe_seconds > 0:
        raise ValueError("streaming: hop, stream seconds and probe seconds must be > 0")
    if probe_streams < 1 or max_tries < 1:
        raise ValueError("streaming: probe streams and tries must be >= 1")
    if probe_seconds < model.card.window_seconds:
        raise ValueError(
            f"streaming: --probe-seconds {probe_seconds:g} is shorter than one "
            f"{model.card.window_seconds:g} s window of {model.card.name}"
        )


def streaming_capacity(
    model: Any,
    backend: str = "onnxruntime",
    precision: str = "int8",
    *,
    hop_s: float = 1.0,
    budget_ms: float | None = None,
    stream_seconds: float = 30.0,
    probe_streams: int = 64,
    probe_seconds: float = 20.0,
    max_batch: int = 32,
    max_tries: int = 4,
    log: Log = quiet,
) -> dict[str, Any]:
    """The streaming section of ``mrm-edge bench`` (see the module docstring) on ``model``,
    a loaded ``DeployedModel``."""
    from mrm_edge.runtime.config import MonitorConfig

    check_knobs(model, hop_s, stream_seconds, probe_streams, probe_seconds, max_tries)
    budget = float(budget_ms) if budget_ms is not None else hop_s * 1e3
    knobs = dict(
        hop_s=hop_s, budget=budget, stream_seconds=stream_seconds, probe_streams=probe_streams,
        probe_seconds=probe_seconds, max_tries=max_tries,
        what=f"{backend} {precision}", monitor=MonitorConfig(hop_s=hop_s, max_batch=max_batch),
    )  # fmt: skip
    be = cpu_backend(model.directory, backend, precision)
    be.activate()
    try:
        # 4. Model-only throughput, same backend, batch = the Monitor's batch cap.
        x = np.ascontiguousarray(make_windows(model.card, max_batch))
        t = time_calls(lambda: be.infer(x), 2, 10)
        model_only = float(max_batch / np.median(t))
        probe, w, estimate = _probe(model, be, knobs, log)
        capacity, tries = _verify(model, be, estimate, knobs, log)
    finally:
        be.deactivate()
    return {
        "method": _METHOD,
        "backend": backend,
        "precision": precision,
        "device": "cpu",
        "hop_s": hop_s,
        "latency_budget_ms": budget,
        "stream_seconds": stream_seconds,
        "source_rate_hz": _FS,
        "max_batch": max_batch,
        "max_delay_ms": knobs["monitor"].max_delay_ms,
        "probe": {"streams": probe_streams, "signal_seconds": probe_seconds} | run_figures(probe),
        "end_to_end_wps": w,
        "model_only_wps": model_only,
        "model_only_batch_size": max_batch,
        "streaming_efficiency": w / model_only,
        "efficiency_target": 0.9,
        "estimate_streams": estimate,
        "capacity_streams": capacity,
        "capacity_note": (
            f"verified: {capacity} streams hold at real time"
            if capacity is not None
            else f"not verified: every count tried ({', '.join(str(t['streams']) for t in tries)}) "
            f"missed the budget within {max_tries} tries; raise --max-tries"
        ),
        "verification": tries,
    }
