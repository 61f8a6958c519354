"""The streaming monitor's data path: sources in, classified windows and alarms out.

    source thread                              inference worker thread
    ─────────────                              ───────────────────────
    for event in source:                       batch = batcher.get_batch()
      Chunk → StreamPreprocessor(stream).push    x = to_model_batch(batch)
      StreamEnd → .finish()                      p = chain.infer(x)   (fallback.py)
        ok window ──► DynamicBatcher ─────────►  accounting → post-processing → sinks
        rejected window ─► accounting → post-processing → sinks

One ``StreamPreprocessor`` per stream, created on its first chunk at that chunk's rate; the
windows of every stream meet in one ``DynamicBatcher``. What a run guarantees (every window
accounted for, how a stop drains, what a failing stream, source or sink costs):
docs/monitor.md; the fallback: ``fallback.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mrm_edge.runtime.accounting import Accounting, InFlight
from mrm_edge.runtime.backends.base import Backend
from mrm_edge.runtime.batcher import DynamicBatcher
from mrm_edge.runtime.config import MonitorConfig
from mrm_edge.runtime.fallback import BackendChain, fallback_label
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.postprocess import Postprocessor
from mrm_edge.runtime.sinks.base import RunInfo, Sink, StreamEvent
from mrm_edge.runtime.sinks.fanout import SinkFanout
from mrm_edge.runtime.sinks.summary import Summary, Tally
from mrm_edge.runtime.sources.base import Chunk, Source, SourceProblem, StreamEnd
from mrm_edge.runtime.stream.preprocess import StreamPreprocessor, Window, to_model_batch
from mrm_edge.runtime.stream.windower import samples_from_seconds

from mrm_edge.errors import first_line

if TYPE_CHECKING:
    from mrm_edge.runtime.selection import Candidate


_POLL_S = 0.1  # how often waiting threads look at the stop flag and the clock
_SOURCE_STOP_S = 5.0  # how long a stopped source may take to return before we go on without it
_WORKER_ABANDON_S = 5.0  # after drain=False, how long a stuck inference may hold the run
# How long a stop lets queued windows be classified before dropping the rest. A slow backend
# behind a deep queue (minutes on a small CPU) must not outlast a service manager's stop
# timeout (systemd 90 s, Kubernetes 30 s) and end in SIGKILL without a summary: with the
# source's and a stuck inference's limits a stop takes 20 s at most.
_DRAIN_S = 10.0


class Monitor:
    """Classify the live streams of ``source`` with ``backend`` into ``sinks`` (see the module
    docstring); build one with ``app.open_monitor``. ``backend`` is activated here if not
    active (and then deactivated at the end); an active one is left to its owner.
    ``fallbacks``: where to move when it fails a batch twice, in order (fallback.py).
    """

    def __init__(
        self,
        model: DeployedModel,
        backend: Backend,
        source: Source,
        config: MonitorConfig | None = None,
        *,
        sinks: Sequence[Sink] = (),
        backend_reason: str = "",
        fallbacks: Sequence[Backend | Candidate] = (),
    ) -> None:
        config = config or MonitorConfig()
        card = model.card
        self.hop = samples_from_seconds(config.hop_s, card.sampling_rate, field="Monitor: hop_s")
        duration_s = config.duration_s
        if duration_s is not None and not (isinstance(duration_s, (int, float)) and duration_s > 0):
            raise ValueError(f"Monitor: duration_s must be > 0 s or None, got {duration_s!r}")
        self.model = model
        self.source = source
        self.config = config
        self.backend_reason = backend_reason
        self.batcher: DynamicBatcher[InFlight] = DynamicBatcher(
            config.max_batch, config.max_delay_ms, config.max_queue, config.overload
        )
        self.tally = Tally(queue_depth=lambda: len(self.batcher))
        post = Postprocessor(
            card.labels,
            model.thresholds,
            config.postprocess,
            alarm_labels=card.alarm_findings,
        )
        self.fanout = SinkFanout(sinks, self._fatal)
        self.accounting = Accounting(post, self.tally, self.fanout, source.stream_finished)
        self.chain = BackendChain(
            backend, fallbacks, outputs=len(card.labels), on_switch=self.accounting.backend_switch
        )
        # The config as the event log's start line records it, and what the run adds to it.
        self.knobs: dict[str, Any] = config.knobs() | {
            "alarm_labels": list(post.alarm_labels),  # the card's alarm policy
            # The opt-in to a card re-tuned since export, and what it accepted (model.py).
            "accept_card_tuning": model.accept_card_tuning,
            "card_tuning": model.tuning_lines(),
            "fallbacks": [fallback_label(f) for f in fallbacks],
        }
        # The stream registry (source thread only): each live stream's preprocessor, the
        # segment it is on, and the segments that failed (a failed stream stays failed).
        self._pre: dict[str, StreamPreprocessor] = {}
        self._segment: dict[str, int] = {}
        self._failed: set[tuple[str, int]] = set()
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

    def run(self) -> Summary:
        """Run until the source ends (and every window has a result), ``duration_s``
        passes, or ``stop()``; close the sinks with the summary and return it."""
        if self._ran:
            raise RuntimeError("Monitor.run: a Monitor runs once; make a new one")
        self._ran = True
        self.chain.start()
        summary: Summary | None = None
        try:
            self.fanout.open(self._run_info())  # all or nothing: it closes what it opened
            summary = self._run_threads()
        finally:
            try:
                self.accounting.close(summary)
            finally:
                self.chain.release()
        return summary

    def _run_info(self) -> RunInfo:
        return RunInfo(
            model=self.model.card.name,
            labels=tuple(self.model.card.labels),
            thresholds=self.model.thresholds,
            sampling_rate=self.model.card.sampling_rate,
            window_s=self.model.card.window_seconds,
            hop_s=float(self.config.hop_s),
            backend=self.chain.backend.describe(),
            backend_reason=self.backend_reason,
            source=self.source.describe(),
            knobs=self.knobs,
            stats=self.tally.live,
            refused=dict(self.model.refused),
            notify=self.fanout.notice,
            findings=tuple(self.model.card.alarm_findings),
            model_sha256=self.model.graph_sha256(self.chain.backend.precision),
            origin=self.source.origin,
            gflop_per_window=self.model.gflop_per_window,
        )

    def _run_threads(self) -> Summary:
        started = self.tally.started = time.monotonic()  # elapsed counts from here
        source_thread = threading.Thread(target=self._source_loop, name="monitor-source")
        worker = threading.Thread(target=self._worker_loop, name="monitor-inference")
        # Daemon threads: a source or backend that ignores every request to stop must not
        # keep the process alive after run() has given up on it (bounded waits below).
        source_thread.daemon = worker.daemon = True
        worker.start()
        source_thread.start()
        while source_thread.is_alive():
            duration_s = self.config.duration_s
            if duration_s is not None and time.monotonic() - started >= duration_s:
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
        self._await_worker(worker)
        # Nothing may stay unaccounted (what an abandoned worker left queued).
        left = self.batcher.take_all()
        if left:
            self.accounting.dropped(left, "stopped before inference")
        self.accounting.forget_in_flight()
        self.tally.max_queue_depth = self.batcher.stats.max_depth
        return self.tally.summary(
            model=self.model.card.name,
            backend=self.chain.backend.describe(),
            backend_reason=self.backend_reason,
            source=self.source.describe(),
            stopped_by=self._stopped_by or "source ended",
            knobs=self.knobs,
        )

    def _await_worker(self, worker: threading.Thread) -> None:
        """Wait for the worker to drain the queue: all of it when the source ended, for
        ``_DRAIN_S`` after a stop (then the rest is dropped, as after ``stop(drain=False)``);
        once dropping, give a stuck inference ``_WORKER_ABANDON_S`` at most."""
        drain_until: float | None = None
        abandon_at: float | None = None
        while worker.is_alive():
            if self._stop.is_set() and drain_until is None:
                drain_until = time.monotonic() + _DRAIN_S
            if (
                drain_until is not None
                and time.monotonic() >= drain_until
                and not self._discard.is_set()
            ):
                self.fanout.notice(
                    f"stop: {len(self.batcher)} queued windows not classified within "
                    f"{_DRAIN_S:g} s are dropped (stopped before inference)"
                )
                self._discard.set()
            if self._discard.is_set() and abandon_at is None:
                abandon_at = time.monotonic() + _WORKER_ABANDON_S
            if abandon_at is not None and time.monotonic() >= abandon_at:
                self.tally.error(f"inference did not finish within {_WORKER_ABANDON_S:g} s")
                break
            worker.join(_POLL_S)

    def _fatal(self, message: str) -> None:
        self.tally.error(message)
        self.stop(f"error: {message}")

    # ================================================================== source side

    def _source_loop(self) -> None:
        try:
            for event in self.source:
                # Even after a stop: a stream the source ended was not cut short, and a
                # problem it found is reported (a watched inbox's file already moved).
                if isinstance(event, StreamEnd):
                    self._end_stream(event.stream_id, event.reason)
                elif isinstance(event, SourceProblem):
                    self.accounting.source_problem(event)
                if self._stop.is_set():
                    break
                if isinstance(event, Chunk):
                    self._chunk(event)
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
            self.accounting.mark_ending(sid, self._segment[sid], pre, "stopped", "monitor stopped")

    def _chunk(self, chunk: Chunk) -> None:
        sid = chunk.stream_id
        pre = self._pre.get(sid)
        if pre is None:
            segment = self._segment[sid] + 1 if sid in self._segment else 0
            if (sid, segment - 1) in self._failed:
                return  # a failed stream stays failed for the rest of the run
            try:
                card = self.model.card
                pre = StreamPreprocessor(
                    sid,
                    chunk.sample_rate,
                    card.sampling_rate,
                    card.window_samples,
                    self.hop,
                    lead_names=card.leads,
                    quality=self.config.quality,
                )
            except (ValueError, TypeError) as e:
                self._segment[sid] = segment
                self._fail_stream(sid, segment, f"cannot start: {first_line(e)}")
                self.source.stream_finished(sid, "failed", 0)  # no window of it waits
                return
            self._pre[sid] = pre
            self._segment[sid] = segment
            self.tally.stream_started(sid, segment)
            self.accounting.stream_event(
                StreamEvent(sid, "start", f"{chunk.sample_rate} Hz", segment)
            )
        segment = self._segment[sid]
        if chunk.sample_rate != pre.resampler.fs_in:
            self._drop_stream(
                sid,
                f"chunk at {chunk.sample_rate} Hz, the stream started at {pre.resampler.fs_in} Hz",
            )
            return
        if self.fanout.wants_waveform:  # strip displays: a reference into a queue, no copy
            self.fanout.waveform(chunk)
        try:
            windows = pre.push(chunk.samples, chunk.timestamp)
        except ValueError as e:
            self._drop_stream(sid, first_line(e))
            return
        for resync in pre.take_resyncs():  # the jump came before this chunk's windows
            self.accounting.resynchronised(resync, segment)
        self._dispatch(windows, segment)

    def _end_stream(self, sid: str, reason: str) -> None:
        pre = self._pre.pop(sid, None)
        if pre is None:
            return  # never started, or already failed
        segment = self._segment[sid]
        self._dispatch(pre.finish(), segment)
        self.accounting.mark_ending(sid, segment, pre, reason, "stream ended")

    def _drop_stream(self, sid: str, error: str) -> None:
        """A stream whose data cannot be processed: fail it, keep the others going."""
        pre = self._pre.pop(sid)
        segment = self._segment[sid]
        self._fail_stream(sid, segment, error)
        self.accounting.mark_ending(sid, segment, pre, "failed", "stream failed")

    def _fail_stream(self, sid: str, segment: int, error: str) -> None:
        self._failed.add((sid, segment))
        self.tally.stream_failed(sid, error)
        self.accounting.stream_event(StreamEvent(sid, "error", error, segment))

    def _dispatch(self, windows: list[Window], segment: int) -> None:
        timeout = self.config.put_timeout_s if self.config.overload == "block" else None
        for w in windows:
            self.accounting.produced(w)
            if not w.ok:
                self.accounting.rejected(w, segment)
                continue
            item = InFlight(w, segment)
            self.accounting.admit(item)
            offer = self.batcher.offer(item, timeout=timeout)
            if offer.evicted is not None:
                self.accounting.dropped([offer.evicted], f"overload ({self.config.overload})")
            if not offer.queued:
                cause = "stopped before inference" if self.batcher.closed else "overload"
                self.accounting.dropped([item], f"{cause} ({self.config.overload})")

    # ================================================================== inference side

    def _worker_loop(self) -> None:
        try:
            while True:
                batch = self.batcher.get_batch(timeout=_POLL_S)
                if batch is None:
                    if self.batcher.closed:
                        return
                    continue
                if self._discard.is_set():
                    self.accounting.dropped(batch, "stopped before inference")
                else:
                    self._infer(batch)
                self.accounting.finish_ended()
        except BaseException as e:
            self._fatal(f"inference worker failed: {first_line(e)}")

    def _infer(self, batch: list[InFlight]) -> None:
        outcome = self.chain.infer(to_model_batch([it.window for it in batch]))
        p = outcome.probabilities
        self.tally.batch(len(batch), outcome.spent_s, failed=p is None)
        if p is None:
            for it in batch:
                self.accounting.failed(it, outcome.reason)
            return
        for it, probs in zip(batch, p, strict=True):
            self.accounting.classified(it, probs)
