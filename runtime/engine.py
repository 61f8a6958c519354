"""The streaming monitor: sources in, classified windows and alarms out, nothing lost silently.

    source thread                              inference worker thread
    ─────────────                              ───────────────────────
    for event in source:                       batch = batcher.get_batch()
      Chunk → StreamPreprocessor(stream).push    x = to_model_batch(batch)
      StreamEnd → .finish()                      p = backend.infer(x)   (retry, then fallback)
        ok window ──► DynamicBatcher ─────────►  postprocess → sinks
        rejected window ─► postprocess → sinks

One ``StreamPreprocessor`` per stream, created on the stream's first chunk at that chunk's
rate. Windows of every stream meet in one ``DynamicBatcher``, whose knobs are the monitor's:

* ``max_batch`` — a batch leaves as soon as this many windows wait (throughput);
* ``max_delay_ms`` — or once the oldest has waited this long (latency bound; at real-time
  pace with few streams, batches are small and this is what sets the latency floor);
* ``max_queue`` / ``overload`` — memory bound and what a full queue does: ``drop-oldest``
  (fresh data wins; default), ``drop-newest`` or ``block`` (the source waits up to
  ``put_timeout_s``, then the window is dropped).

Accounting: every window a preprocessor produces ends as exactly one of *classified*,
*rejected* (quality, gap, or a backend that failed twice, with the reason) or *dropped*
(overload, or still queued when a run is stopped without draining), each reported to the
sinks and counted per stream. The batcher does not say *which* item drop-oldest evicted, so
the monitor numbers items and keeps the outstanding ones in order: items leave the batcher
in FIFO order, so when a batch arrives every outstanding item older than its first item was
evicted (there is one producer, the source thread, so numbering is arrival order).

A stream's end is final only once its last window has a result: the alarms still on are
then closed and the sinks told, so events of one stream are never reordered around its end.

Latency is window-complete-to-result (``Window.ready_time`` → delivery to the sinks).

Stopping: ``stop()`` (from any thread; ``run_monitor`` wires SIGINT/SIGTERM to it) closes
the source, lets the windows already queued be classified (``drain=True``; a second signal
passes ``drain=False``: queued windows are reported as dropped, "stopped before
inference"), and closes the sinks with the summary, so the event log is complete and valid
up to the stop. Streams cut short are not ``finish()``-ed: their tail would be zero padding
standing in for signal that never came.

Errors: a backend error is retried once (a transient failure costs no window). A batch
that fails twice moves the run to the next of ``fallbacks`` (``run_monitor`` passes the
options after the chosen one in the selection plan, e.g. TensorRT → ONNX Runtime CUDA →
ONNX Runtime CPU INT8 → CPU FP32 → PyTorch): the failing backend is deactivated first (its
device memory may be what the next one needs), the next is activated (one that fails to
start is skipped, with why, for the one after), the *same* batch is re-run there with the
same retry, and the run stays on it. Each switch is reported once: a ``BackendSwitch`` to the
sinks (a ``backend`` line in the event log) and an entry in ``summary.backend_switches``.
Only when no fallback is left are the batch's windows rejected, "backend error: <error>;
no fallback left" (just "backend error: <error>" for a monitor given no fallbacks), and the
run goes on: later batches try the last backend again. If no fallback starts, the failed
backend is restarted and kept; if even that fails, every later window is rejected "backend
error: no backend left (…)". A malformed chunk fails only its stream. A failing source or
sink stops the run; ``run()`` still returns the summary, with the error in
``summary.errors``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from mrm_edge.runtime.backends.base import Backend
from mrm_edge.runtime.batcher import DynamicBatcher, OverloadPolicy
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.postprocess import PostprocessConfig, Postprocessor
from mrm_edge.runtime.stream.preprocess import StreamPreprocessor, Window, to_model_batch
from mrm_edge.runtime.stream.quality import QualityConfig
from mrm_edge.runtime.sinks import BackendSwitch, DroppedWindow, RunInfo, Sink, StreamEvent
from mrm_edge.runtime.sinks.summary import Summary, Tally
from mrm_edge.runtime.sources.base import Chunk, Source, SourceProblem, StreamEnd

from mrm_edge.data.errors import first_line

if TYPE_CHECKING:
    from mrm_edge.runtime.selection import Candidate
    from rich.console import Console

__all__ = ["Monitor", "run_monitor", "stop_on_signals"]

_POLL_S = 0.1  # how often waiting threads look at the stop flag and the clock
_SOURCE_STOP_S = 5.0  # how long a stopped source may take to return before we go on without it
_WORKER_ABANDON_S = 5.0  # after drain=False, how long a stuck inference may hold the run


@dataclass(frozen=True)
class _Item:
    """A window in flight: its arrival number (see the module docstring) and segment."""

    seq: int
    window: Window
    segment: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.window.stream_id, self.segment)


class Monitor:
    """Classify the live streams of ``source`` with ``backend`` (see the module docstring).

    Args:
        model: the deployed model (card: labels, thresholds, rate, window, leads).
        backend: activated here if not active (and then deactivated at the end); an active
            backend is left active for its owner.
        source: yields Chunk / StreamEnd events.
        hop_s: seconds between consecutive window starts (a multiple of 1 / model rate).
        max_batch, max_delay_ms, max_queue, overload: the batcher's knobs (module docstring).
        sinks: receive windows, alarms, drops, stream events, and the summary at the end.
        duration_s: stop after this many seconds of wall time (None: until the source ends).
        postprocess: smoothing and alarm hysteresis (default ``PostprocessConfig()``).
        quality: signal-quality thresholds for the preprocessors (default ``QualityConfig()``).
        backend_reason: why this backend (reported to the sinks and in the summary).
        put_timeout_s: under ``overload="block"``, how long the source waits for room.
        fallbacks: where to move when ``backend`` fails a batch twice, in order (module
            docstring, "Errors"): inactive backends, or selection ``Candidate``s (built only
            when needed). The monitor activates them and deactivates them at the end.
    """

    def __init__(
        self,
        model: DeployedModel,
        backend: Backend,
        source: Source,
        *,
        hop_s: float = 1.0,
        max_batch: int = 32,
        max_delay_ms: float = 50.0,
        max_queue: int = 4096,
        overload: OverloadPolicy = "drop-oldest",
        sinks: Sequence[Sink] = (),
        duration_s: float | None = None,
        postprocess: PostprocessConfig | None = None,
        quality: QualityConfig | None = None,
        backend_reason: str = "",
        put_timeout_s: float = 1.0,
        fallbacks: Sequence[Backend | Candidate] = (),
    ) -> None:
        rate = model.sampling_rate
        if isinstance(hop_s, bool) or not isinstance(hop_s, (int, float)) or not hop_s > 0:
            raise ValueError(f"Monitor: hop_s must be a positive number of seconds, got {hop_s!r}")
        hop = round(hop_s * rate)
        if hop < 1 or abs(hop - hop_s * rate) > 1e-6:
            raise ValueError(
                f"Monitor: hop_s {hop_s!r} is not a whole number of samples at the model's "
                f"{rate} Hz"
            )
        if duration_s is not None and not (isinstance(duration_s, (int, float)) and duration_s > 0):
            raise ValueError(f"Monitor: duration_s must be > 0 s or None, got {duration_s!r}")
        self.model = model
        self.backend = backend
        """The backend running now (a fallback after a switch)."""
        self.fallbacks: deque[Backend | Candidate] = deque(fallbacks)
        self._chained = bool(self.fallbacks)  # rejection reasons then say none is left
        self._owned: list[Backend] = []  # backends this monitor activated: released at the end
        self._no_backend: str | None = None  # set when no backend could be (re)started
        self.source = source
        self.hop_s = float(hop_s)
        self.hop = hop
        self.duration_s = duration_s
        self.sinks: list[Sink] = list(sinks)
        self.quality = quality
        self.backend_reason = backend_reason
        self.put_timeout_s = put_timeout_s
        self.overload = overload
        self.post = Postprocessor(model.labels, model.thresholds, postprocess)
        self.batcher: DynamicBatcher[_Item] = DynamicBatcher(
            max_batch, max_delay_ms, max_queue, overload
        )
        self.clock: Callable[[], float] = time.monotonic  # the preprocessors' ready_time clock
        self.tally = Tally(self.clock, queue_depth=lambda: len(self.batcher))
        self.knobs: dict[str, Any] = {
            "hop_s": self.hop_s,
            "max_batch": max_batch,
            "max_delay_ms": max_delay_ms,
            "max_queue": max_queue,
            "overload": overload,
            "duration_s": duration_s,
            "smoothing": self.post.config.describe(),
            "fallbacks": [_label(f) for f in self.fallbacks],
        }
        self.windows_produced: Counter[str] = Counter()
        """Windows each stream's preprocessors produced (the accounting's ground truth)."""

        # Source-thread state.
        self._pre: dict[str, StreamPreprocessor] = {}
        self._segment: dict[str, int] = {}
        self._failed: set[tuple[str, int]] = set()
        # Shared state, under _track_lock.
        self._track_lock = threading.Lock()
        self._seq = 0
        self._outstanding: OrderedDict[int, _Item] = OrderedDict()
        self._in_flight: Counter[tuple[str, int]] = Counter()
        self._ending: dict[tuple[str, int], tuple[int, int, str, str]] = {}
        # Delivery to post-processing, tally and sinks: one at a time, in order.
        self._emit_lock = threading.Lock()
        self._sinks_closed = False
        # Control.
        self._stop = threading.Event()
        self._discard = threading.Event()
        self._stopped_by: str | None = None
        self._ran = False

    # ================================================================== control

    def stop(self, reason: str = "stop requested", *, drain: bool = True) -> None:
        """Stop the run soon (any thread, signal handlers included). ``drain=False`` also
        reports the windows still queued as dropped instead of classifying them."""
        if self._stopped_by is None:
            self._stopped_by = reason
        if not drain:
            self._discard.set()
        self._stop.set()
        self.source.close()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> Summary:
        """Run until the source ends (and every window has a result), ``duration_s``
        passes, or ``stop()``; close the sinks with the summary and return it."""
        if self._ran:
            raise RuntimeError("Monitor.run: a Monitor runs once; make a new one")
        self._ran = True
        if not self.backend.is_active:
            self.backend.activate()
            self._owned.append(self.backend)
        summary: Summary | None = None
        try:
            self._open_sinks()
            summary = self._run_threads()
        finally:
            try:
                self._close_sinks(summary)
            finally:
                for be in self._owned:
                    with contextlib.suppress(Exception):
                        be.deactivate()
        return summary

    def _run_threads(self) -> Summary:
        started = self.tally.started = self.clock()  # elapsed counts from here
        source_thread = threading.Thread(target=self._source_loop, name="monitor-source")
        worker = threading.Thread(target=self._worker_loop, name="monitor-inference")
        # Daemon threads: a source or backend that ignores every request to stop must not
        # keep the process alive after run() has given up on it (bounded waits below).
        source_thread.daemon = worker.daemon = True
        worker.start()
        source_thread.start()
        while source_thread.is_alive():
            if self.duration_s is not None and self.clock() - started >= self.duration_s:
                self.stop("duration reached")
            if self._stop.is_set():
                source_thread.join(_SOURCE_STOP_S)
                if source_thread.is_alive():
                    self.tally.error(
                        f"source {self.source.describe()} did not stop within {_SOURCE_STOP_S:g} s"
                    )
                break
            source_thread.join(_POLL_S)
        self.batcher.close()  # the worker drains what is queued, then returns
        abandon_at: float | None = None
        while worker.is_alive():
            if self._discard.is_set() and abandon_at is None:
                abandon_at = self.clock() + _WORKER_ABANDON_S
            if abandon_at is not None and self.clock() >= abandon_at:
                self.tally.error(f"inference did not finish within {_WORKER_ABANDON_S:g} s")
                break
            worker.join(_POLL_S)
        self._settle_leftovers()
        self.tally.max_queue_depth = self.batcher.stats.max_depth
        return self.tally.summary(
            model=self.model.name,
            backend=self.backend.describe(),
            backend_reason=self.backend_reason,
            source=self.source.describe(),
            stopped_by=self._stopped_by or "source ended",
            knobs=self.knobs,
        )

    # ================================================================== source side

    def _source_loop(self) -> None:
        try:
            for event in self.source:
                if self._stop.is_set():
                    break
                if isinstance(event, StreamEnd):
                    self._end_stream(event.stream_id, event.reason)
                elif isinstance(event, Chunk):
                    self._chunk(event)
                elif isinstance(event, SourceProblem):
                    self.tally.source_problem()
                    with self._emit_lock:
                        if not self._sinks_closed:
                            self._deliver("source_problem", event)
            else:
                # The source is exhausted (not closed by a stop, which also ends the
                # iteration): streams it never ended end with it.
                if not self._stop.is_set():
                    for sid in list(self._pre):
                        self._end_stream(sid, "source ended")
        except BaseException as e:
            self._fatal(f"source {self.source.describe()} failed: {first_line(e)}")
        # Streams cut short by a stop: no finish() (its tail would be padding), but their
        # end is reported once their queued windows have results.
        for sid in list(self._pre):
            pre = self._pre.pop(sid)
            self._mark_ending(sid, self._segment[sid], pre, "stopped", "monitor stopped")

    def _chunk(self, chunk: Chunk) -> None:
        sid = chunk.stream_id
        pre = self._pre.get(sid)
        if pre is None:
            segment = self._segment[sid] + 1 if sid in self._segment else 0
            if (sid, segment - 1) in self._failed:
                return  # a failed stream stays failed for the rest of the run
            try:
                pre = StreamPreprocessor.from_card(
                    sid,
                    chunk.sample_rate,
                    self.model.card,
                    self.hop,
                    quality=self.quality,
                    clock=self.clock,
                )
            except (ValueError, TypeError) as e:
                self._segment[sid] = segment
                self._fail_stream(sid, segment, f"cannot start: {first_line(e)}")
                return
            self._pre[sid] = pre
            self._segment[sid] = segment
            self.tally.stream_started(sid, segment)
            self._deliver_stream(StreamEvent(sid, "start", f"{chunk.sample_rate} Hz", segment))
        segment = self._segment[sid]
        if chunk.sample_rate != pre.resampler.fs_in:
            self._drop_stream(
                sid,
                f"chunk at {chunk.sample_rate} Hz, the stream started at {pre.resampler.fs_in} Hz",
            )
            return
        try:
            windows = pre.push(chunk.samples, chunk.timestamp)
        except ValueError as e:
            self._drop_stream(sid, first_line(e))
            return
        self._dispatch(windows, segment)

    def _end_stream(self, sid: str, reason: str) -> None:
        pre = self._pre.pop(sid, None)
        if pre is None:
            return  # never started, or already failed
        segment = self._segment[sid]
        self._dispatch(pre.finish(), segment)
        self._mark_ending(sid, segment, pre, reason, "stream ended")

    def _drop_stream(self, sid: str, error: str) -> None:
        """A stream whose data cannot be processed: fail it, keep the others going."""
        pre = self._pre.pop(sid)
        segment = self._segment[sid]
        self._fail_stream(sid, segment, error)
        self._mark_ending(sid, segment, pre, "failed", "stream failed")

    def _fail_stream(self, sid: str, segment: int, error: str) -> None:
        self._failed.add((sid, segment))
        self.tally.stream_failed(sid, error)
        self._deliver_stream(StreamEvent(sid, "error", error, segment))

    def _dispatch(self, windows: list[Window], segment: int) -> None:
        for w in windows:
            self.windows_produced[w.stream_id] += 1
            if not w.ok:
                self._emit_rejected(w, segment)
                continue
            with self._track_lock:
                item = _Item(self._seq, w, segment)
                self._seq += 1
                self._outstanding[item.seq] = item
                self._in_flight[item.key] += 1
            timeout = self.put_timeout_s if self.overload == "block" else None
            if not self.batcher.put(item, timeout=timeout):
                with self._track_lock:
                    self._outstanding.pop(item.seq, None)
                cause = "stopped before inference" if self.batcher.closed else "overload"
                self._emit_dropped([item], f"{cause} ({self.overload})")

    def _mark_ending(
        self, sid: str, segment: int, pre: StreamPreprocessor, reason: str, cause: str
    ) -> None:
        """Record the stream's end; it is delivered once its in-flight windows are done."""
        key = (sid, segment)
        with self._track_lock:
            self._ending[key] = (pre.buffer.sample_count, pre.sampling_rate, reason, cause)
        self._finish_ended()

    # ================================================================== inference side

    def _worker_loop(self) -> None:
        try:
            while True:
                batch = self.batcher.get_batch(timeout=_POLL_S)
                if batch is None:
                    if self.batcher.closed:
                        return
                    continue
                self._settle(batch)
                if self._discard.is_set():
                    self._emit_dropped(batch, "stopped before inference")
                else:
                    self._infer(batch)
                self._finish_ended()
        except BaseException as e:
            self._fatal(f"inference worker failed: {first_line(e)}")

    def _settle(self, batch: list[_Item]) -> None:
        """Take ``batch`` off the outstanding list; whatever is older was evicted."""
        first = batch[0].seq
        evicted: list[_Item] = []
        with self._track_lock:
            while self._outstanding:
                seq, item = next(iter(self._outstanding.items()))
                if seq >= first:
                    break
                del self._outstanding[seq]
                evicted.append(item)
            for item in batch:
                self._outstanding.pop(item.seq, None)
        if evicted:
            self._emit_dropped(evicted, f"overload ({self.overload})")

    def _infer(self, batch: list[_Item]) -> None:
        x = to_model_batch([it.window for it in batch])
        spent = 0.0  # backend time only: activating a fallback is not inference
        p: np.ndarray | None = None
        reason = ""
        while p is None:
            if self._no_backend is not None:
                reason = f"backend error: {self._no_backend}"
                break
            p, error, dt = self._attempt(x, len(batch))
            spent += dt
            if p is not None:
                break
            error_text = first_line(error) if error else "no output"
            not_started = self._fall_back(error_text, len(batch))
            if not_started is None:
                continue  # a fallback is active: the same batch again, there
            reason = f"backend error: {error_text}"
            if self._chained:
                reason += f"; no fallback left{not_started}"
            break
        self.tally.batch(len(batch), spent, failed=p is None)
        if p is None:
            for it in batch:
                self._emit_rejected(it.window, it.segment, reason=reason)
                self._done([it])
            return
        for it, probs in zip(batch, p, strict=True):
            self._emit_classified(it.window, it.segment, probs)
            self._done([it])

    def _attempt(
        self, x: np.ndarray, n: int
    ) -> tuple[np.ndarray | None, BaseException | None, float]:
        """Run ``x`` on the current backend, retried once (a transient failure should not
        cost windows): (probabilities or None, the last error, seconds spent)."""
        t0 = time.perf_counter()
        error: BaseException | None = None
        for _try in range(2):
            try:
                p = np.asarray(self.backend.infer(x))
                if p.shape != (n, len(self.model.labels)):
                    raise ValueError(
                        f"output shape {p.shape}, expected ({n}, {len(self.model.labels)})"
                    )
                return p, None, time.perf_counter() - t0
            except Exception as e:
                error = e
        return None, error, time.perf_counter() - t0

    def _fall_back(self, error: str, windows: int) -> str | None:
        """The current backend failed a batch twice: move to the next fallback that starts.
        None when one is active now; otherwise a note for the rejection reason (which
        fallbacks failed to start; "" when there were none to try)."""
        if not self.fallbacks:
            return ""
        old = self.backend
        old_desc = old.describe()
        with contextlib.suppress(Exception):  # release first: the next may need its memory
            old.deactivate()
        skipped: list[str] = []
        while self.fallbacks:
            entry = self.fallbacks.popleft()
            label = _label(entry)
            try:
                be = entry if isinstance(entry, Backend) else entry.make()
                be.activate()
            except Exception as e:
                skipped.append(f"{label}: {first_line(e)}")
                continue
            self._owned.append(be)
            self.backend = be
            ev = self.tally.backend_switch(
                BackendSwitch(old_desc, be.describe(), error, tuple(skipped), windows)
            )
            with self._emit_lock:
                if not self._sinks_closed:
                    self._deliver("backend_switch", ev)
            return None
        # No fallback started: the failed backend is the only one left; restart it so that
        # later batches can try it again (the failure may have been transient after all).
        note = f" (failed to start: {'; '.join(skipped)})"
        try:
            old.activate()
        except Exception as e:
            self._no_backend = (
                f"no backend left ({old_desc} could not restart: {first_line(e)}){note}"
            )
            return note
        if old not in self._owned:
            self._owned.append(old)
        return note

    def _done(self, items: list[_Item]) -> None:
        """These items have their results; a stream whose last window this was ends now,
        before the rest of the batch (which may hold its restarted segment) is delivered."""
        with self._track_lock:
            for it in items:
                self._in_flight[it.key] -= 1
            ending = any(self._in_flight[it.key] <= 0 and it.key in self._ending for it in items)
        if ending:
            self._finish_ended()

    def _finish_ended(self) -> None:
        """Deliver the end of every ended stream whose windows all have results."""
        with self._track_lock:
            ready = [k for k in self._ending if self._in_flight[k] <= 0]
            done = [(k, self._ending.pop(k)) for k in ready]
        for (sid, segment), (at, rate, reason, cause) in done:
            self._emit_end(sid, segment, at, rate, reason, cause)

    def _settle_leftovers(self) -> None:
        """After the worker: nothing may stay unaccounted (an abandoned worker's batch)."""
        with self._track_lock:
            left = list(self._outstanding.values())
            self._outstanding.clear()
        if left:
            self._emit_dropped(left, "stopped before inference")
        with self._track_lock:
            self._in_flight.clear()
        self._finish_ended()

    # ================================================================== delivery

    def _emit_classified(self, w: Window, segment: int, probs: np.ndarray) -> None:
        with self._emit_lock:
            if self._sinks_closed:
                return
            latency = (self.clock() - w.ready_time) * 1e3
            result, events = self.post.classified(w, probs, latency, segment)
            self.tally.classified(w.stream_id, latency, result.alarms)
            self._deliver("window", result)
            for ev in events:
                self.tally.alarm(w.stream_id, ev.state, result.alarms)
                self._deliver("alarm", ev)

    def _emit_rejected(self, w: Window, segment: int, reason: str | None = None) -> None:
        with self._emit_lock:
            if self._sinks_closed:
                return
            latency = (self.clock() - w.ready_time) * 1e3
            result = self.post.rejected(w, latency, segment, reason)
            self.tally.rejected(w.stream_id, result.reason_kinds, result.alarms)
            self._deliver("window", result)

    def _emit_dropped(self, items: list[_Item], cause: str) -> None:
        with self._emit_lock:
            for it in items:
                w = it.window
                self.tally.dropped(w.stream_id, cause)
                if not self._sinks_closed:
                    rec = DroppedWindow(
                        w.stream_id, w.start, w.sampling_rate, w.data.shape[0], cause, it.segment
                    )
                    self._deliver("dropped", rec)
        self._done(items)

    def _emit_end(
        self, sid: str, segment: int, at: int, rate: int, reason: str, cause: str
    ) -> None:
        with self._emit_lock:
            if self._sinks_closed:
                return
            events = self.post.end_stream(sid, at, rate, segment, cause)
            for ev in events:
                self.tally.alarm(sid, ev.state, ())
                self._deliver("alarm", ev)
            if reason != "failed":
                self.tally.stream_ended(sid, reason)
                self._deliver("stream", StreamEvent(sid, "end", reason, segment))

    def _deliver_stream(self, event: StreamEvent) -> None:
        with self._emit_lock:
            if not self._sinks_closed:
                self._deliver("stream", event)

    def _deliver(self, method: str, record: Any) -> None:
        """Hand ``record`` to every sink (emit lock held). A failing sink stops the run:
        the event log is a contract, and a monitor silently without it is worse than a
        stopped one."""
        for sink in self.sinks:
            try:
                getattr(sink, method)(record)
            except Exception as e:
                self._fatal(f"sink {type(sink).__name__} failed: {first_line(e)}")

    def _fatal(self, message: str) -> None:
        self.tally.error(message)
        self.stop(f"error: {message}")

    def _open_sinks(self) -> None:
        info = RunInfo(
            model=self.model.name,
            labels=tuple(self.model.labels),
            thresholds=self.model.thresholds,
            sampling_rate=self.model.sampling_rate,
            window_s=self.model.window_s,
            hop_s=self.hop_s,
            backend=self.backend.describe(),
            backend_reason=self.backend_reason,
            source=self.source.describe(),
            knobs=self.knobs,
            stats=self.tally.live,
        )
        opened: list[Sink] = []
        try:
            for sink in self.sinks:
                sink.open(info)
                opened.append(sink)
        except BaseException:
            for sink in opened:
                with contextlib.suppress(Exception):
                    sink.close(None)
            self._sinks_closed = True
            raise

    def _close_sinks(self, summary: Summary | None) -> None:
        with self._emit_lock:
            if self._sinks_closed:
                return
            self._sinks_closed = True
        errors: list[str] = []
        for sink in self.sinks:
            try:
                sink.close(summary)
            except Exception as e:
                errors.append(f"sink {type(sink).__name__} failed to close: {first_line(e)}")
        if summary is not None:
            summary.errors += errors


def _label(entry: Backend | Candidate) -> str:
    if isinstance(entry, Backend):
        return f"{entry.name} {entry.precision}"
    return entry.label


# ====================================================================== command-level entry


@contextlib.contextmanager
def stop_on_signals(
    monitor: Monitor, signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)
) -> Iterator[None]:
    """While inside, SIGINT/SIGTERM stop ``monitor`` cleanly (queued windows are still
    classified); a second signal stops without draining. Only the main thread can own
    signal handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    count = 0

    def handler(signum: int, frame: Any) -> None:
        nonlocal count
        count += 1
        monitor.stop(f"signal {signal.Signals(signum).name}", drain=count == 1)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_monitor(
    model_dir: str | Path,
    source: Source | Callable[[DeployedModel], Source],
    *,
    backend: str = "auto",
    precision: str | None = None,
    hop_s: float = 1.0,
    max_batch: int = 32,
    max_delay_ms: float = 50.0,
    max_queue: int = 4096,
    overload: OverloadPolicy = "drop-oldest",
    duration_s: float | None = None,
    events_path: str | Path | None = None,
    ui: bool = True,
    console: Console | None = None,
    postprocess: PostprocessConfig | None = None,
    quality: QualityConfig | None = None,
    intra_op_threads: int | None = None,
) -> Summary:
    """Everything ``mrm-edge monitor`` does: load and verify the model directory, pick and
    activate the backend (printing which and why), open the event log (``events_path``) and
    the live view (``ui``), run until the source ends / ``duration_s`` / SIGINT or SIGTERM,
    print the summary and return it.

    ``source`` is a Source, or a function of the loaded model that makes one (e.g. a
    synthetic source at the card's rate). Raises ModelLoadError, BackendUnavailable or
    ValueError (bad knob, unwritable event log) before anything runs, each one line.
    """
    from mrm_edge.runtime.selection import activate_with_fallbacks
    from mrm_edge.runtime.sinks.jsonl import JsonlSink
    from mrm_edge.runtime.sinks.live import LiveView
    from rich.console import Console

    console = console or Console()
    model = DeployedModel.load(model_dir)
    src = source if isinstance(source, Source) else source(model)
    sinks: list[Sink] = []
    if events_path is not None:
        sinks.append(JsonlSink(events_path))  # opened now: a bad path fails before the run
    try:
        be, reason, chain = activate_with_fallbacks(
            model, backend, precision, intra_op_threads=intra_op_threads
        )
        try:
            console.print(f"[bold]backend[/bold] {be.describe()}")
            console.print(f"  why: {reason}", markup=False)
            if chain:
                console.print(f"  fallback: {' → '.join(c.label for c in chain)}", markup=False)
            for name, why in model.refused.items():
                console.print(f"  refused {name}: {why}", markup=False)
            if ui:
                sinks.append(LiveView(console))
            monitor = Monitor(
                model,
                be,
                src,
                hop_s=hop_s,
                max_batch=max_batch,
                max_delay_ms=max_delay_ms,
                max_queue=max_queue,
                overload=overload,
                sinks=sinks,
                duration_s=duration_s,
                postprocess=postprocess,
                quality=quality,
                backend_reason=reason,
                fallbacks=chain,
            )
            with stop_on_signals(monitor):
                summary = monitor.run()
        finally:
            be.deactivate()  # a no-op if the monitor switched away from it
    finally:
        src.close()
        for sink in sinks:  # no-ops after a run; closes the log if the run never started
            with contextlib.suppress(Exception):
                sink.close(None)
    console.print(summary.render())
    return summary
