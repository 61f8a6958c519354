"""Limits that keep one bad device (or a flood of connections) from starving the others:
the connection cap, the HELLO deadline and the rate ceiling (throttle, then cut). The
options, their defaults and what each costs a device: docs/devices.md (Limits) and
docs/threat-model.md#devices."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class DeviceLimits:
    max_connections: int = 64
    hello_timeout_s: float | None = 5.0
    rate_ceiling: float | None = 4.0
    rate_burst_s: float = 60.0
    rate_cut_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError(f"max_connections is {self.max_connections}, expected >= 1")
        for name in ("hello_timeout_s", "rate_ceiling"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} is {value}, expected > 0 or None (off)")
        for name in ("rate_burst_s", "rate_cut_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} is {value}, expected > 0")

    def at_speed(self, speed: float | None) -> DeviceLimits:
        """These limits for a monitor running at ``speed`` × real time (None: max, no
        rate ceiling)."""
        if self.rate_ceiling is None:
            return self
        return replace(self, rate_ceiling=None if speed is None else self.rate_ceiling * speed)


class RateCeiling:
    """A token bucket in seconds of signal (the session's own declared sample clock), per
    stream id: ``rate_burst_s`` to start with, refilled at ``rate_ceiling`` per second of
    wall time. One bucket per stream for the whole run, so neither a new HELLO nor a
    reconnect (after a cut or not) refills it."""

    def __init__(self, limits: DeviceLimits, now: float) -> None:
        assert limits.rate_ceiling is not None
        self.ceiling = limits.rate_ceiling
        self.cut_s = limits.rate_cut_s
        self.capacity = limits.rate_burst_s
        self.tokens = self.capacity
        self.updated = self.started = now
        self.throttled_s = 0.0  # wall time spent throttled
        self.must_cut = False  # still over the ceiling after rate_cut_s of throttling
        self.received_s = 0.0  # seconds of signal received

    def take(self, signal_s: float, now: float) -> float:
        """Account for ``signal_s`` seconds of signal just received; returns how long (s)
        to stop reading this connection for it to be back under the ceiling (0: not over)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.ceiling)
        self.updated = now
        self.tokens -= signal_s
        self.received_s += signal_s
        if self.tokens >= 0:
            return 0.0
        pause = -self.tokens / self.ceiling
        self.must_cut = self.throttled_s > self.cut_s  # throttled this long, and over again
        self.throttled_s += pause
        return pause

    def reason(self, now: float) -> str:
        """The measured speed against the ceiling, for the throttle and cut messages."""
        speed = self.received_s / max(now - self.started, 1e-3)
        return f"sending {speed:.1f}x real time, over the rate ceiling of {self.ceiling:g}x"
