"""Bounded fuzzers: fixed seeds, a capped number of examples, and :func:`hard_cap` per example
so that a hang fails the test instead of stalling CI."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def hard_cap(seconds: float, what: str) -> Iterator[None]:
    """Raise TimeoutError in the main thread if the block runs longer than ``seconds``.

    Hypothesis' ``deadline`` only measures an example after it returns; an interval timer
    interrupts one that never does."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"{what} still busy after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
