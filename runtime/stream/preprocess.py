"""One stream's path from raw chunks to model-ready windows.

    chunk [n, 12] mV at fs_in ──► GapDetector (timestamps, input rate)
                              ──► StreamingResampler → card's rate (fills gaps with zeros;
                                  a jump over the resync limit is skipped, see below)
                              ──► RingBuffer (gaps recorded at the model rate)
                              ──► Windower (start = k · hop) ──► quality check ──► Window

The only transformation is resampling to the card's rate with the offline filter, so a
record fed in chunks of any sizes gives the windows cut offline; a jump over the resync limit
costs O(1). Exactness, bounded cost and memory, the array layout: docs/monitor.md (The
pipeline), docs/threat-model.md (Devices).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from mrm_edge.runtime.stream.buffer import GapDetector, RingBuffer
from mrm_edge.runtime.stream.quality import QualityConfig, QualityReport, assess_quality
from mrm_edge.runtime.stream.resample import StreamingResampler
from mrm_edge.runtime.stream.windower import Windower

from mrm_edge.data.dataset import LEADS

# Fill for missing input is fed to the resampler in pieces of this many seconds, so a long
# outage never allocates a long array.
_FILL_PIECE_S = 10
# A forward jump longer than this many windows is a resynchronisation (docs/monitor.md):
# shorter gaps are outages worth a line per window; in a longer one every middle window is
# pure fill, and materialising them would let one device's timestamp cost unbounded time.
RESYNC_AFTER_WINDOWS = 3


@dataclass(frozen=True)
class Resync:
    """A forward jump over the resync limit: ``windows`` windows of ``stream_id``, the first
    starting at model-rate sample ``start``, were given up as rejected (``reason``)."""

    stream_id: str
    start: int
    windows: int
    reason: str


@dataclass
class Window:
    """One window ready for the model, or rejected with the reason.

    ``start`` is the index of its first sample at ``sampling_rate`` Hz since the stream
    started; ``data`` is float32 ``[window, leads]`` mV; ``status`` is ``"rejected"`` when it
    touches a gap or fails the quality check (``reason`` says which; "" when ok);
    ``ready_time`` is the ``time.monotonic()`` second at which it became complete.
    """

    stream_id: str
    start: int
    data: np.ndarray
    sampling_rate: int
    quality: QualityReport
    status: Literal["ok", "rejected"]
    reason: str
    ready_time: float
    gap_reasons: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def to_model_batch(windows: Sequence[Window]) -> np.ndarray:
    """Stack windows into the model's input layout: float32 ``[batch, leads, samples]``."""
    if not windows:
        raise ValueError("to_model_batch: no windows to stack")
    return np.ascontiguousarray(np.stack([w.data.T for w in windows]), dtype=np.float32)


class StreamPreprocessor:
    """Chunks of one stream in, ``Window`` s out.

    ``fs_in``: the source's rate (Hz); ``card_sampling_rate``, ``window`` (samples) and
    ``hop`` (samples, at the card's rate) come from the model card and the operator, and so
    do ``lead_names`` (the chunks' columns). The buffer keeps ``window + hop`` model-rate
    samples: chunks are fed to it in slices small enough that no window is evicted before
    it is cut.
    ``clock``: the time source for ``ready_time`` (injectable for tests).

    One preprocessor per stream, fed by one thread (it holds no lock); streams meet in the
    ``DynamicBatcher``, which is thread-safe.
    """

    def __init__(
        self,
        stream_id: str,
        fs_in: int,
        card_sampling_rate: int,
        window: int,
        hop: int,
        *,
        lead_names: Sequence[str] = LEADS,
        quality: QualityConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream_id = stream_id
        self.lead_names = tuple(lead_names)
        self.n_leads = len(self.lead_names)
        self.quality_config = quality or QualityConfig()
        self.resampler = StreamingResampler(fs_in, card_sampling_rate, self.n_leads)
        self.windower = Windower(stream_id, window, hop)
        self.buffer = RingBuffer(self.windower.window + self.windower.hop, self.n_leads)
        self.detector = GapDetector(self.resampler.fs_in)
        self.clock = clock
        self._finished = False
        # The resync limit in input samples (a jump of more than this is skipped in O(1)).
        self.resync_after = -(
            -RESYNC_AFTER_WINDOWS * window * self.resampler.fs_in // card_sampling_rate
        )
        self._resyncs: list[Resync] = []

    @property
    def sampling_rate(self) -> int:
        """The model's rate (Hz): the rate of window data and of window indices."""
        return self.resampler.fs_out

    @property
    def window(self) -> int:
        return self.windower.window

    def push(self, samples: np.ndarray, timestamp: float | None = None) -> list[Window]:
        """Feed ``samples`` ``[n, leads]`` mV at ``fs_in``; ``timestamp`` (s, source clock)
        is that of the first sample, or None when the chunk has none (its samples are
        counted; nothing can be found missing before it). Returns the windows this chunk
        completed, in order."""
        if self._finished:
            raise ValueError(f"StreamPreprocessor {self.stream_id}: push after finish()")
        x = np.asarray(samples)
        if x.ndim != 2 or x.shape[1] != self.n_leads:
            raise ValueError(
                f"StreamPreprocessor {self.stream_id}: chunk must be [samples, {self.n_leads}], "
                f"got shape {x.shape}"
            )
        with np.errstate(all="ignore"):  # NaN/Inf/huge samples are data: quality flags them
            return self._push(x, timestamp)

    def _push(self, x: np.ndarray, timestamp: float | None) -> list[Window]:
        windows: list[Window] = []
        check = self.detector.check(timestamp, x.shape[0])
        if check.n_missing > self.resync_after:
            self._resyncs.append(self._resync(check.n_missing, check.reason or "jump"))
        elif check.n_missing:
            windows += self._fill_missing(check.n_missing, check.reason or "samples missing")
        elif check.backwards_s:
            # Nothing is missing, but the signal on either side of this point need not join
            # up: flag the model-rate samples that read input on both sides.
            here = self.resampler.input_count
            lo, hi = self.resampler.outputs_depending_on(max(0, here - 1), here + 1)
            if hi > lo:
                self.buffer.mark_gap(lo, hi - lo, check.reason or "timestamp jumped back")
        windows += self._store(self.resampler.push(x))
        return windows

    def finish(self) -> list[Window]:
        """End of stream: release the resampler's tail (zero padding past the end, as the
        offline resample does) and the windows it completes. Idempotent."""
        if self._finished:
            return []
        self._finished = True
        with np.errstate(all="ignore"):
            return self._store(self.resampler.flush())

    def take_resyncs(self) -> list[Resync]:
        """The resynchronisations since the last call (before this push's windows)."""
        resyncs, self._resyncs = self._resyncs, []
        return resyncs

    def _resync(self, n_missing: int, reason: str) -> Resync:
        """Skip ``n_missing`` input samples in O(capacity): the resampler jumps as if fed
        zeros, the buffer holds fill, and the windows starting before the first output
        computed after the jump are given up (counted, not cut); the later ones that still
        read the gap's zeros through the filter are flagged by the recorded gap."""
        here, first = self.resampler.input_count, self.windower.next_start
        lo, hi = self.resampler.skip_zeros(n_missing)
        if hi > lo:
            self.buffer.append_gap(hi - lo, reason)
        reach = self.resampler.outputs_depending_on(here, here + n_missing)[1]
        if reach > hi:
            self.buffer.mark_gap(hi, reach - hi, reason)
        skipped = self.windower.skip(hi)
        limit_s = self.resync_after / self.resampler.fs_in
        why = f"resynchronised ({reason}; over the {limit_s:g} s limit): {skipped} windows rejected"
        return Resync(self.stream_id, first, skipped, why)

    def _fill_missing(self, n_missing: int, reason: str) -> list[Window]:
        """Insert ``n_missing`` zeros at the input rate and record, at the model rate, every
        sample they influence (the filter's reach on both sides included)."""
        here = self.resampler.input_count
        lo, hi = self.resampler.outputs_depending_on(here, here + n_missing)
        if hi > lo:
            self.buffer.mark_gap(lo, hi - lo, reason)
        windows: list[Window] = []
        piece = _FILL_PIECE_S * self.resampler.fs_in
        remaining = n_missing
        while remaining:
            step = min(piece, remaining)
            zeros = np.zeros((step, self.n_leads), np.float32)
            windows += self._store(self.resampler.push(zeros))
            remaining -= step
        return windows

    def _store(self, resampled: np.ndarray) -> list[Window]:
        """Append model-rate samples and cut the windows they complete. Slices of at most
        ``capacity − window`` samples: every window completed by a slice still lies in the
        buffer when it is cut."""
        windows: list[Window] = []
        step = self.buffer.capacity - self.window
        for i in range(0, len(resampled), step):
            self.buffer.append(resampled[i : i + step])
            for ref in self.windower.poll(self.buffer.sample_count, self.buffer):
                windows.append(self._cut(ref.start, ref.gap_reasons))
        return windows

    def _cut(self, start: int, gap_reasons: tuple[str, ...]) -> Window:
        data = self.buffer.view(start, self.window)
        report = assess_quality(data, self.sampling_rate, self.quality_config, self.lead_names)
        reasons = (*gap_reasons, *report.reasons)
        return Window(
            stream_id=self.stream_id,
            start=start,
            data=data,
            sampling_rate=self.sampling_rate,
            quality=report,
            status="rejected" if reasons else "ok",
            reason="; ".join(reasons),
            ready_time=self.clock(),
            gap_reasons=gap_reasons,
        )
