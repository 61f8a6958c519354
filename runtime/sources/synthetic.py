"""Synthetic patients as a live source: the monitor's default, and a load generator.

Each stream is one :func:`~mrm_edge.data.synthetic.make_patients` patient (varied rates,
rhythms, axes, noise), rendered chunk by chunk by ``SyntheticStream``, which is
deterministic and chunk-invariant: the same ``seed`` gives the same signal whatever the
chunk sizes or pace. Unbounded unless ``seconds`` is given.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
from mrm_edge.runtime.sources.base import Chunk, Event, Pacer, Source, StreamEnd

from mrm_edge.data.synthetic import SyntheticPatient, SyntheticStream, make_patients

if TYPE_CHECKING:
    from mrm_edge.runtime.sources.registry import SourceOptions


def synthetic_ids(n_streams: int) -> list[str]:
    """``synthetic-00``, ``synthetic-01``, ... (wider numbers past 100 streams, so ids sort)."""
    width = max(2, len(str(n_streams - 1)))
    return [f"synthetic-{i:0{width}d}" for i in range(n_streams)]


class SyntheticSource(Source):
    """``n_streams`` synthetic patients at ``fs`` Hz, paced at ``speed`` (None: max).

    ``patients`` maps stream id to its :class:`SyntheticPatient` (ground truth: rhythm,
    heart rate) for displays and tests.
    """

    @classmethod
    def from_spec(cls, argument: str, options: SourceOptions) -> SyntheticSource:
        """``--source synthetic``: ``options.streams`` patients."""
        return cls(
            options.streams,
            speed=options.speed,
            seed=options.seed,
        )

    def __init__(
        self,
        n_streams: int,
        fs: int = 500,
        seconds: float | None = None,
        speed: float | None = 1.0,
        seed: int = 0,
        chunk_seconds: float | Sequence[float] = 0.2,
    ) -> None:
        super().__init__()
        if isinstance(n_streams, bool) or not isinstance(n_streams, int) or n_streams < 1:
            raise ValueError(f"n_streams is {n_streams!r}, expected an int >= 1")
        if isinstance(fs, bool) or not isinstance(fs, int) or fs <= 0:
            raise ValueError(f"fs is {fs!r}, expected a positive int in Hz")
        if seconds is not None and not seconds > 0:
            raise ValueError(f"seconds is {seconds!r}, expected > 0 or None (unbounded)")
        sizes = [chunk_seconds] if isinstance(chunk_seconds, (int, float)) else chunk_seconds
        if not sizes or any(not s > 0 for s in sizes):
            raise ValueError(f"chunk_seconds is {chunk_seconds!r}, expected positive seconds")
        Pacer(speed)  # validates speed here rather than on the first iteration
        self.fs = fs
        self.seconds = seconds
        self.speed = speed
        self.seed = seed
        self._chunk_sizes = [max(1, round(s * fs)) for s in sizes]
        self.patients: dict[str, SyntheticPatient] = dict(
            zip(synthetic_ids(n_streams), make_patients(n_streams, seed), strict=True)
        )

    def events(self) -> Iterator[Event]:
        streams = {sid: SyntheticStream(p, self.fs) for sid, p in self.patients.items()}
        total = None if self.seconds is None else round(self.seconds * self.fs)
        pacer = Pacer(self.speed, self._closed)
        pos, i = 0, 0
        while not self.closed and (total is None or pos < total):
            n = self._chunk_sizes[i % len(self._chunk_sizes)]
            i += 1
            if total is not None:
                n = min(n, total - pos)
            # Render the round first, then wait: the synthesis cost hides inside the wait
            # instead of delaying chunks past their due time.
            chunks = [
                Chunk(sid, np.ascontiguousarray(s.read(n).T), self.fs, pos / self.fs)
                for sid, s in streams.items()
            ]
            if not pacer.wait_until((pos + n) / self.fs):
                return
            for chunk in chunks:
                if self.closed:
                    return
                yield chunk
            pos += n
        if not self.closed:
            for sid in streams:
                yield StreamEnd(sid)

    def describe(self) -> str:
        pace = "max speed" if self.speed is None else f"{self.speed:g}x"
        length = "unbounded" if self.seconds is None else f"{self.seconds:g} s"
        return f"synthetic: {len(self.patients)} patients at {self.fs} Hz, {length}, {pace}"
