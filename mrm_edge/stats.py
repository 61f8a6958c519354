"""Latency statistics shared by the runtime's summary, the soak and the bench: a bounded
uniform reservoir of values and their percentiles.

Torch-free and light (numpy only): the edge runtime imports it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

#: The percentiles every latency figure reports, by name.
PERCENTILES = (("p50", 50), ("p90", 90), ("p99", 99))


def percentiles_ms(ms: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50 / p90 / p99 of ``ms`` (at least one value)."""
    values = np.percentile(np.asarray(ms, np.float64), [p for _, p in PERCENTILES])
    return {name: float(v) for (name, _), v in zip(PERCENTILES, values, strict=True)}


def latency_summary(values: Sequence[float] | np.ndarray) -> dict[str, float | int | None]:
    """p50 / p90 / p99, max, mean and count of ``values``; every figure None when empty."""
    if len(values) == 0:
        return {"p50": None, "p90": None, "p99": None, "max": None, "mean": None, "n": 0}
    a = np.asarray(values, np.float64)
    return {**percentiles_ms(a), "max": float(a.max()), "mean": float(a.mean()), "n": len(a)}


class Reservoir:
    """At most ``size`` values, a uniform sample of all added (reservoir sampling), so memory
    stays bounded however long a run is while the percentiles stay unbiased.

    The buffer is preallocated and written at once: pages of ``np.empty`` stay unmapped until
    touched and would show up as resident-memory growth later, which the soak's RSS check
    would then measure instead of the runtime. Not thread-safe: callers that add from
    several threads hold their own lock.
    """

    def __init__(self, size: int, rng: random.Random | None = None) -> None:
        self._values = np.full(size, np.nan, np.float64)
        self.size = size
        self.seen = 0
        self.max: float | None = None
        """The largest value added (over all of them, not only the sample)."""
        self._rng = rng if rng is not None else random.Random(0)

    def __len__(self) -> int:
        """How many values the sample holds now (at most ``size``)."""
        return min(self.seen, self.size)

    def add(self, value: float) -> None:
        if self.seen < self.size:
            self._values[self.seen] = value
        else:  # every value seen so far is kept with probability size / seen
            j = self._rng.randrange(self.seen + 1)
            if j < self.size:
                self._values[j] = value
        self.seen += 1
        self.max = value if self.max is None or value > self.max else self.max

    def values(self) -> np.ndarray:
        """The sample (a view: copy it to keep it past later adds)."""
        return self._values[: len(self)]

    def percentiles(self) -> dict[str, float | None]:
        """p50 / p90 / p99 of the sample and the max of every value; None when empty."""
        if not self.seen:
            return {"p50": None, "p90": None, "p99": None, "max": None}
        return {**percentiles_ms(self.values()), "max": self.max}
