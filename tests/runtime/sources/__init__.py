"""Tests of the runtime's sources, plus the helpers they share (kept here, not in a
conftest, so test_sender.py can import them too)."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from mrm_edge.runtime.sources.base import Chunk, Source, SourceProblem, StreamEnd


@dataclass
class Collected:
    chunks: dict[str, list[Chunk]] = field(default_factory=lambda: defaultdict(list))
    ends: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    order: list[Chunk | StreamEnd | SourceProblem] = field(default_factory=list)
    problems: list[SourceProblem] = field(default_factory=list)  # outside any stream
    timed_out: bool = False

    def signal(self, sid: str) -> np.ndarray:
        return np.concatenate([c.samples for c in self.chunks[sid]])


def collect(
    source: Source, n_ends: int | None = None, timeout: float = 10.0, n_chunks: int | None = None
) -> Collected:
    """Events of ``source`` until ``n_ends`` stream ends (or ``n_chunks`` chunks), the
    source's own end, or ``timeout`` s — then the source is closed, so no test can hang
    on a server that never ends by itself."""
    out = Collected()
    fired = threading.Event()

    def expire() -> None:
        fired.set()
        source.close()

    watchdog = threading.Timer(timeout, expire)
    watchdog.start()
    try:
        for ev in source.events():
            out.order.append(ev)
            if isinstance(ev, Chunk):
                out.chunks[ev.stream_id].append(ev)
                if n_chunks is not None and sum(map(len, out.chunks.values())) >= n_chunks:
                    break
            elif isinstance(ev, SourceProblem):
                out.problems.append(ev)
            else:
                out.ends[ev.stream_id].append(ev.reason)
                if n_ends is not None and _n_ends(out) >= n_ends:
                    break
    finally:
        out.timed_out = fired.is_set()
        watchdog.cancel()
    return out


def _n_ends(out: Collected) -> int:
    return sum(len(v) for v in out.ends.values())
