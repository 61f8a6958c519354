"""The soak: many synthetic streams for a long simulated time at max speed, nothing lost.

``run_soak`` drives the real :class:`~mrm_edge.runtime.engine.Monitor` — preprocessing,
quality checks, the dynamic batcher, a real backend, post-processing — with a
:class:`~mrm_edge.runtime.sources.synthetic.SyntheticSource` at max speed, and checks at the
end (each check PASS or FAIL with its figures, in ``SoakReport``):

* **accounting** — every window accounted for: per stream, classified + rejected + dropped
  equals the windows a stream of that length has (``expected_windows_per_stream``, the
  windower's ``(N − window) // hop + 1`` over the ``N`` model-rate samples the resampler
  releases, ``ceil(n_in · fs_model / fs_in)``; no final partial window is padded). Lost =
  expected − accounted, summed over streams; a window counted twice fails it too.
* **dropped** — none dropped. The soak runs the batcher with ``overload="block"``: a
  max-speed source outruns any backend, so under the monitor's default ``drop-oldest`` it
  would shed windows by design; under ``block`` the source waits for room instead, which is
  exactly what a soak wants to exercise (every window through inference). The wait is
  bounded (``put_timeout_s``, 60 s): a backend stalled that long is a failure to report as a
  dropped window, not a run that hangs.
* **errors** — no run, stream or backend error.
* **rss growth** — resident memory at the end (when the last expected window is
  delivered, before the engine's teardown; at the sink's close if it never is) vs after
  warm-up (the end of the first quarter), in % (default limit 5 %). ``/proc/self/statm``
  (current RSS), sampled every second by a thread, at each quarter boundary, at the last
  window and at close; off Linux, ``resource.getrusage`` (peak RSS, the only figure portable
  Python has).
* **latency** — p99 of window-complete → result in the last quarter vs the first: at most
  ``max_p99_ratio`` × the first (default 1.5) or the first + ``latency_floor_ms`` (20 ms),
  whichever is larger, so tiny latencies do not flap.

Quarters split the span of window end times ``[window, seconds]`` of simulated (signal)
time into four; a window belongs to the quarter its last sample falls in. At max speed every
stream advances round by round, so simulated time tracks wall progress.

Memory stays bounded whatever the length: counters per stream, a fixed-size reservoir of
latencies per quarter (exact percentiles up to ``RESERVOIR_PER_QUARTER`` windows, a uniform
sample beyond), at most ``_MAX_RSS_SAMPLES`` RSS samples (halved, interval doubled, when
full). The engine's own ``Tally`` keeps up to 200,000 latencies (about 6 MB), which the RSS
check sees.

Latency at max speed under ``block`` is mostly queueing: the queue stays full, so a window
waits about ``max_queue / throughput``; hence the soak's default ``max_queue`` of
4 × ``max_batch`` (enough to keep the worker fed), not the monitor's 4096.

Default hop (10 s) and source rate (the model's): the shipped paper-preset model on ONNX
Runtime CPU INT8 classifies about 85 windows/s end to end on a 2-core x86, so 500 streams ×
3600 s at hop 1 s (1.8 M windows) would take about 6 h; hop 10 s gives 180,000 windows
(about 35 min of inference). Generating the signal costs on its own, in the source thread
(one core, the GIL): measured for 500 streams, synthesis + preprocessing, about 750
stream-seconds per CPU second at 500 Hz in 0.2 s chunks (the monitor's defaults: 40 CPU-min
for 500 × 1 h, as much as the inference — generation would dominate), about 1,200 at 100 Hz
in 0.2 s chunks and about 3,000 at 100 Hz in 1 s chunks (10 CPU-min). So the soak generates
at the model's rate in 1 s chunks (nothing resamples); ``fs`` / ``--fs 500`` puts the
resampler back in.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mrm_edge.cli_options import model_option, runtime_options, user_errors
from mrm_edge.runtime.sinks.base import Sink

if TYPE_CHECKING:
    from mrm_edge.runtime.backends.base import Backend
    from mrm_edge.runtime.postprocess import WindowResult
    from mrm_edge.runtime.sinks.base import DroppedWindow, RunInfo, StreamEvent
    from mrm_edge.runtime.sinks.summary import Summary

__all__ = [
    "SoakReport",
    "SoakSink",
    "expected_windows_per_stream",
    "rss_bytes",
    "run_soak",
    "soak_command",
]

DEFAULT_STREAMS = 500
DEFAULT_SECONDS = 3600.0
DEFAULT_HOP_S = 10.0
DEFAULT_MAX_BATCH = 32
DEFAULT_CHUNK_S = 1.0
DEFAULT_PUT_TIMEOUT_S = 60.0
DEFAULT_MAX_RSS_GROWTH_PCT = 5.0
DEFAULT_MAX_P99_RATIO = 1.5
DEFAULT_LATENCY_FLOOR_MS = 20.0
RESERVOIR_PER_QUARTER = 20_000
_MAX_RSS_SAMPLES = 4096
_PROGRESS_EVERY_S = 0.25  # progress callbacks are throttled to this


# =========================================================================== figures


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


def rss_bytes() -> tuple[int | None, str]:
    """Resident memory now and where it came from: ``/proc/self/statm`` (Linux, current),
    else ``resource.getrusage`` (peak, not current), else None."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"), "/proc/self/statm"
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # ru_maxrss is in bytes on macOS, kilobytes elsewhere.
        return (peak if sys.platform == "darwin" else peak * 1024), "getrusage (peak)"
    except (ImportError, OSError):
        return None, "unavailable"


class _Reservoir:
    """At most ``size`` values, a uniform sample of all added; preallocated, so filling it
    does not grow the heap during the run (the RSS check must not measure the soak itself)."""

    def __init__(self, size: int, rng: random.Random) -> None:
        import numpy as np

        # Written now (np.empty/zeros pages stay unmapped until touched, and would show
        # up as growth later).
        self._values = np.full(size, np.nan, np.float64)
        self.size = size
        self.seen = 0
        self.max: float | None = None
        self._rng = rng

    def add(self, value: float) -> None:
        if self.seen < self.size:
            self._values[self.seen] = value
        else:
            j = self._rng.randrange(self.seen + 1)
            if j < self.size:
                self._values[j] = value
        self.seen += 1
        self.max = value if self.max is None or value > self.max else self.max

    def percentiles(self) -> dict[str, float | None]:
        import numpy as np

        if not self.seen:
            return {"p50": None, "p90": None, "p99": None, "max": None}
        v = self._values[: min(self.seen, self.size)]
        p50, p90, p99 = np.percentile(v, [50, 90, 99])
        return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "max": self.max}


# =========================================================================== the sink


class SoakSink(Sink):
    """Counts every window's outcome per stream and per quarter of simulated time, keeps a
    bounded latency sample per quarter and samples RSS (a thread, every ``rss_interval_s``,
    plus at each quarter boundary and at the end). Implements the runtime's Sink protocol
    (the engine calls it under one lock; only the RSS list is shared with the thread)."""

    def __init__(
        self,
        *,
        seconds: float,
        window_s: float,
        expected_total: int,
        rss_interval_s: float = 1.0,
        progress: Callable[[int, int], None] | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = float(seconds)
        self.window_s = float(window_s)
        self.expected_total = expected_total
        self.progress = progress
        self.clock = clock
        self.rss_interval_s = float(rss_interval_s)
        rng = random.Random(seed)
        self.per_stream: dict[str, Counter[str]] = {}
        self.rejected_by_reason: Counter[str] = Counter()
        self.dropped_by_cause: Counter[str] = Counter()
        self.stream_errors: list[str] = []
        self.quarter_counts = [Counter() for _ in range(4)]
        self.latency = [_Reservoir(RESERVOIR_PER_QUARTER, rng) for _ in range(4)]
        self.accounted = 0
        self.sim_s = 0.0  # the latest window end seen: how far the simulated run has come
        self.rss: list[tuple[float, float, int]] = []  # (wall s, simulated s, bytes)
        self.rss_marks: dict[str, int] = {}  # "start", "q1".."q3", "last", "close" -> bytes
        self.rss_source = "unavailable"
        self._quarter_seen = 0
        self._rss_lock = threading.Lock()
        self._rss_every = self.rss_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = clock()
        self._last_progress = -math.inf
        self._closed = False

    # ------------------------------------------------------------------ helpers

    def quarter(self, end_s: float) -> int:
        """0..3: which quarter of the window-end span ``[window, seconds]`` ``end_s`` is in."""
        span = self.seconds - self.window_s
        if span <= 0:
            return 0
        return min(3, max(0, int(4 * (end_s - self.window_s) / span)))

    def quarter_bounds(self, q: int) -> tuple[float, float]:
        span = self.seconds - self.window_s
        return self.window_s + span * q / 4, self.window_s + span * (q + 1) / 4

    def sample_rss(self, mark: str | None = None) -> int | None:
        value, self.rss_source = rss_bytes()
        if value is None:
            return None
        with self._rss_lock:
            self.rss.append((self.clock() - self._t0, self.sim_s, value))
            if len(self.rss) > _MAX_RSS_SAMPLES:
                # Bounded: keep every other sample, sample half as often from now on.
                self.rss = self.rss[::2]
                self._rss_every *= 2
            if mark is not None:
                self.rss_marks[mark] = value
        return value

    def _sampler(self) -> None:
        while not self._stop.wait(self._rss_every):
            self.sample_rss()

    def _count(self, sid: str, kind: str, end_s: float) -> int:
        c = self.per_stream.get(sid)
        if c is None:
            c = self.per_stream[sid] = Counter()
        c[kind] += 1
        self.accounted += 1
        q = self.quarter(end_s)
        self.quarter_counts[q][kind] += 1
        if end_s > self.sim_s:
            self.sim_s = end_s
        # The first window of a later quarter: the previous one is over (RSS "after q").
        while self._quarter_seen < q:
            self._quarter_seen += 1
            self.sample_rss(f"q{self._quarter_seen}")
        if self.accounted == self.expected_total:
            # The run's end, before the engine's teardown (summary, sinks) adds its own.
            self.sample_rss("last")
        if self.progress is not None:
            now = self.clock()
            if now - self._last_progress >= _PROGRESS_EVERY_S:
                self._last_progress = now
                self.progress(self.accounted, self.expected_total)
        return q

    # ------------------------------------------------------------------ Sink protocol

    def open(self, info: RunInfo) -> None:
        self._t0 = self.clock()
        self.sample_rss("start")
        self._thread = threading.Thread(target=self._sampler, name="soak-rss", daemon=True)
        self._thread.start()

    def window(self, result: WindowResult) -> None:
        if result.ok:
            q = self._count(result.stream_id, "classified", result.end_s)
            self.latency[q].add(result.latency_ms)
        else:
            self._count(result.stream_id, "rejected", result.end_s)
            self.rejected_by_reason[" + ".join(result.reason_kinds) or "other"] += 1

    def dropped(self, record: DroppedWindow) -> None:
        self._count(record.stream_id, "dropped", record.end_s)
        self.dropped_by_cause[record.cause] += 1

    def stream(self, event: StreamEvent) -> None:
        if event.kind == "error":
            self.stream_errors.append(f"stream {event.stream_id}: {event.detail}")

    def close(self, summary: Summary | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self.sample_rss("close")
        if self.progress is not None:
            self.progress(self.accounted, self.expected_total)


# =========================================================================== the report


@dataclass
class SoakReport:
    """What a soak measured and whether it passed (``checks``: name, passed, detail)."""

    model: str
    backend: str
    backend_reason: str
    source: str
    config: dict[str, Any]
    windows: dict[str, Any]
    rss: dict[str, Any]
    latency: dict[str, Any]
    run: dict[str, Any]
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c["passed"] for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def lines(self) -> list[str]:
        """The report as plain text (what the command prints)."""
        w, r, lat, run, cfg = self.windows, self.rss, self.latency, self.run, self.config

        def ms(v: float | None) -> str:
            return "–" if v is None else f"{v:.1f}"

        def mb(v: int | None) -> str:
            return "–" if v is None else f"{v / 2**20:.1f} MB"

        out = [
            f"soak: {cfg['streams']} streams x {cfg['seconds']:g} s of signal, hop "
            f"{cfg['hop_s']:g} s, {cfg['fs']} Hz source at max speed; overload "
            f"{cfg['overload']}, max batch {cfg['max_batch']}, max queue {cfg['max_queue']}",
            f"model {self.model}; backend {self.backend}",
            f"  why: {self.backend_reason}",
            f"wall {run['wall_s']:.1f} s, {run['windows_per_s']:.1f} windows/s "
            f"(mean batch {ms(run['mean_batch'])}, max queue {run['max_queue_depth']}); "
            f"{run['stopped_by']}",
            f"windows: expected {w['expected']} ({w['expected_per_stream']} per stream), "
            f"produced {w['produced']}, classified {w['classified']}, rejected {w['rejected']}"
            + (f" ({_pairs(w['rejected_by_reason'])})" if w["rejected_by_reason"] else "")
            + f", dropped {w['dropped']}"
            + (f" ({_pairs(w['dropped_by_cause'])})" if w["dropped_by_cause"] else "")
            + f", lost {w['lost']}",
            f"rss ({r['source']}): start {mb(r['start_bytes'])}, after warm-up "
            f"{mb(r['warm_bytes'])}, end {mb(r['end_bytes'])} ({r['end_at']}), peak "
            f"{mb(r['peak_bytes'])}; "
            f"{len(r['samples'])} samples",
            "latency window-complete→result, ms, by quarter of simulated time:",
            "  quarter  simulated s      windows     p50     p90     p99     max",
        ]
        for q in lat["quarters"]:
            out.append(
                f"  Q{q['quarter']}  {q['from_s']:>7.0f}-{q['to_s']:<7.0f} {q['classified']:>10}"
                f" {ms(q['p50']):>7} {ms(q['p90']):>7} {ms(q['p99']):>7} {ms(q['max']):>7}"
            )
        for c in self.checks:
            out.append(f"{'PASS' if c['passed'] else 'FAIL'}  {c['name']}: {c['detail']}")
        out.append(f"soak {'PASSED' if self.passed else 'FAILED'}")
        return out


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def _pct(a: float, b: float) -> float:
    return (b - a) / a * 100.0


def _checks(
    windows: dict[str, Any],
    rss: dict[str, Any],
    latency: dict[str, Any],
    errors: list[str],
    backend_errors: int,
    *,
    max_rss_growth_pct: float,
    max_p99_ratio: float,
    latency_floor_ms: float,
) -> list[dict[str, Any]]:
    w = windows
    checks = [
        {
            "name": "accounting",
            "passed": w["lost"] == 0 and w["duplicated"] == 0,
            "detail": (
                f"expected {w['expected']}, classified {w['classified']} + rejected "
                f"{w['rejected']} + dropped {w['dropped']} = {w['accounted']}; lost {w['lost']}"
                + (f", counted twice {w['duplicated']}" if w["duplicated"] else "")
                + (
                    f"; {w['streams_mismatched']} stream(s) off, e.g. "
                    + ", ".join(f"{k} {v}" for k, v in w["mismatch_examples"].items())
                    if w["streams_mismatched"]
                    else ""
                )
            ),
        },
        {
            "name": "dropped",
            "passed": w["dropped"] == 0,
            "detail": f"{w['dropped']} dropped"
            + (f" ({_pairs(w['dropped_by_cause'])})" if w["dropped_by_cause"] else ""),
        },
        {
            "name": "errors",
            "passed": not errors and backend_errors == 0,
            "detail": (
                f"{len(errors)} run/stream error(s), {backend_errors} failed batch(es)"
                + (f"; first: {errors[0]}" if errors else "")
            ),
        },
    ]
    warm, end = rss["warm_bytes"], rss["end_bytes"]
    if warm and end:
        growth = rss["growth_pct"]
        checks.append(
            {
                "name": "rss growth",
                "passed": growth <= max_rss_growth_pct,
                "detail": f"{warm / 2**20:.1f} MB after warm-up -> {end / 2**20:.1f} MB at the "
                f"end: {growth:+.2f} % (limit {max_rss_growth_pct:g} %)",
            }
        )
    else:
        checks.append(
            {"name": "rss growth", "passed": False, "detail": f"not measured ({rss['source']})"}
        )
    first, last = latency["quarters"][0]["p99"], latency["quarters"][-1]["p99"]
    if first is None or last is None:
        checks.append(
            {
                "name": "latency",
                "passed": False,
                "detail": "no classified window in the first or the last quarter",
            }
        )
    else:
        limit = max(first * max_p99_ratio, first + latency_floor_ms)
        checks.append(
            {
                "name": "latency",
                "passed": last <= limit,
                "detail": f"p99 Q1 {first:.1f} ms -> Q4 {last:.1f} ms: x{latency['p99_ratio']:.2f}"
                f" (limit {limit:.1f} ms = max(x{max_p99_ratio:g}, +{latency_floor_ms:g} ms))",
            }
        )
    return checks


# =========================================================================== the run


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

    ``backend`` is a name for ``activate_backend`` (auto, tensorrt, onnxruntime, torch) or a
    ready Backend (activated here if it is not). ``fs`` is the source's rate (default: the
    model's); ``max_queue`` defaults to 4 × ``max_batch``. ``progress(done, expected)`` is
    called from the inference thread at most every 0.25 s and once at the end; ``log`` gets
    one line saying which backend runs and why. Raises ValueError / ModelLoadError /
    BackendUnavailable (one line) on bad knobs or an unusable model before anything runs.
    """
    from mrm_edge.runtime.backends.base import Backend
    from mrm_edge.runtime.app import stop_on_signals
    from mrm_edge.runtime.engine import Monitor
    from mrm_edge.runtime.model import DeployedModel
    from mrm_edge.runtime.selection import activate_backend
    from mrm_edge.runtime.sources.synthetic import SyntheticSource

    if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
        raise ValueError(f"soak: streams is {streams!r}, expected an integer >= 1")
    for name, value in (
        ("seconds", seconds),
        ("chunk_s", chunk_s),
        ("put_timeout_s", put_timeout_s),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"soak: {name} is {value!r}, expected a number > 0")
    model = DeployedModel.load(model_dir)
    rate = model.sampling_rate
    fs_in = rate if fs is None else fs
    hop = round(hop_s * rate)
    if hop < 1 or abs(hop - hop_s * rate) > 1e-6:
        raise ValueError(f"soak: hop {hop_s!r} s is not a whole number of samples at {rate} Hz")
    window = model.card.window_samples
    per_stream = expected_windows_per_stream(seconds, fs_in, rate, window, hop)
    if per_stream < 4:
        raise ValueError(
            f"soak: {seconds:g} s of signal at hop {hop_s:g} s gives {per_stream} window(s) per "
            f"stream; need >= 4 so that every quarter of the run has windows"
        )
    queue = max_queue if max_queue is not None else 4 * max_batch
    expected = per_stream * streams
    source = SyntheticSource(
        streams, fs=fs_in, seconds=seconds, speed=None, seed=seed, chunk_seconds=chunk_s
    )
    sink = SoakSink(
        seconds=seconds,
        window_s=window / rate,
        expected_total=expected,
        rss_interval_s=rss_interval_s,
        progress=progress,
        seed=seed,
    )
    if isinstance(backend, Backend):
        be, reason = backend, "given by the caller"
        if not be.is_active:
            be.activate()
    else:
        be, reason = activate_backend(model, backend, precision)
    try:
        log(f"backend {be.describe()}: {reason}")
        monitor = Monitor(
            model,
            be,
            source,
            hop_s=hop_s,
            max_batch=max_batch,
            max_delay_ms=max_delay_ms,
            max_queue=queue,
            overload=overload,  # type: ignore[arg-type]  # the batcher validates it
            sinks=[sink],
            backend_reason=reason,
            put_timeout_s=put_timeout_s,
        )
        t0 = time.monotonic()
        with stop_on_signals(monitor):
            summary = monitor.run()
        wall = time.monotonic() - t0
    finally:
        be.deactivate()
        source.close()

    config = {
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
    windows = _window_figures(sink, monitor, per_stream, streams, source)
    rss = _rss_figures(sink)
    latency = _latency_figures(sink)
    errors = list(summary.errors)
    run = {
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
        "errors": errors,
        "stopped_by": summary.stopped_by,
    }
    switches = [
        f"backend switched: {sw['from']} -> {sw['to']} ({sw['reason']})"
        for sw in run["backend_switches"]
    ]
    checks = _checks(
        windows,
        rss,
        latency,
        errors + switches,
        summary.backend_errors,
        max_rss_growth_pct=max_rss_growth_pct,
        max_p99_ratio=max_p99_ratio,
        latency_floor_ms=latency_floor_ms,
    )
    return SoakReport(
        model=model.name,
        backend=summary.backend,
        backend_reason=summary.backend_reason,
        source=summary.source,
        config=config,
        windows=windows,
        rss=rss,
        latency=latency,
        run=run,
        checks=checks,
    )


def _window_figures(sink: SoakSink, monitor: Any, per_stream: int, streams: int, source: Any):
    lost = duplicated = mismatched = 0
    examples: dict[str, str] = {}
    for sid in source.patients:  # every stream the source had, seen by the sink or not
        c = sink.per_stream.get(sid, Counter())
        got = c["classified"] + c["rejected"] + c["dropped"]
        if got != per_stream:
            mismatched += 1
            lost += max(0, per_stream - got)
            duplicated += max(0, got - per_stream)
            if len(examples) < 5:
                examples[sid] = f"{got}/{per_stream}"
    totals = Counter()
    for c in sink.per_stream.values():
        totals.update(c)
    return {
        "expected_per_stream": per_stream,
        "expected": per_stream * streams,
        "produced": sum(monitor.windows_produced.values()),
        "classified": totals["classified"],
        "rejected": totals["rejected"],
        "rejected_by_reason": dict(sink.rejected_by_reason),
        "dropped": totals["dropped"],
        "dropped_by_cause": dict(sink.dropped_by_cause),
        "accounted": sink.accounted,
        "lost": lost,
        "duplicated": duplicated,
        "streams_mismatched": mismatched,
        "mismatch_examples": examples,
    }


def _rss_figures(sink: SoakSink) -> dict[str, Any]:
    marks = sink.rss_marks
    warm = marks.get("q1")
    # The end: at the last expected window; if some never came, at the sink's close.
    end_at = "last window" if "last" in marks else "close"
    end = marks.get("last", marks.get("close"))
    values = [v for _, _, v in sink.rss]
    return {
        "source": sink.rss_source,
        "start_bytes": marks.get("start"),
        "warm_bytes": warm,
        "end_bytes": end,
        "end_at": end_at,
        "close_bytes": marks.get("close"),
        "peak_bytes": max(values) if values else None,
        "growth_pct": _pct(warm, end) if warm and end else None,
        "quarter_marks_bytes": {k: v for k, v in marks.items() if k.startswith("q")},
        "samples": [[round(t, 3), round(s, 3), v] for t, s, v in sink.rss],
        "note": "warm-up = the end of the first quarter (the first window of the second)",
    }


def _latency_figures(sink: SoakSink) -> dict[str, Any]:
    quarters = []
    for q in range(4):
        lo, hi = sink.quarter_bounds(q)
        counts = sink.quarter_counts[q]
        quarters.append(
            {
                "quarter": q + 1,
                "from_s": lo,
                "to_s": hi,
                "classified": counts["classified"],
                "rejected": counts["rejected"],
                "dropped": counts["dropped"],
                "latency_sampled": min(sink.latency[q].seen, RESERVOIR_PER_QUARTER),
            }
            | sink.latency[q].percentiles()
        )
    first, last = quarters[0]["p99"], quarters[-1]["p99"]
    return {
        "quarters": quarters,
        "p99_ratio": last / first if first and last is not None else None,
        "note": "quarters of the window-end span [window, seconds] of simulated time",
    }


# =========================================================================== the command


def _check_writable(path: Path) -> None:
    """Fail now, not after an hour of soak, when the report cannot be written."""
    existed = path.exists()
    try:
        path.open("a").close()
    except OSError as e:
        raise click.ClickException(f"--json {path}: cannot write ({e.strerror})") from None
    if not existed:
        path.unlink()


@click.command("soak")
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
def soak_command(
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
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from mrm_edge.predict import default_model_dir

    if json_path is not None:
        _check_writable(Path(json_path))
    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("soak windows", total=None)
        report = run_soak(
            Path(model_dir) if model_dir else default_model_dir(),
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
            log=lambda text: console.print(text, soft_wrap=True, markup=False, highlight=False),
        )
    for line in report.lines():
        click.echo(line)
    if json_path is not None:
        Path(json_path).write_text(report.to_json() + "\n")
    if not report.passed:
        sys.exit(1)
