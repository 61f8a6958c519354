"""Test double for a monotonic clock: time stands still until the test sets ``t``."""

from __future__ import annotations


class FakeClock:
    """Test double: a callable clock returning ``t`` (seconds), moved by the test."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t
