"""mrm_edge.stats: the one latency reservoir and its percentiles (bench, soak, runtime)."""

import random

import numpy as np
import pytest

from mrm_edge.stats import Reservoir, latency_summary, percentiles_ms


def test_percentiles_match_numpy() -> None:
    ms = np.arange(1, 101, dtype=float)
    p = percentiles_ms(ms)
    assert p == pytest.approx(
        {"p50": np.percentile(ms, 50), "p90": np.percentile(ms, 90), "p99": np.percentile(ms, 99)}
    )


def test_latency_summary_empty_and_full() -> None:
    assert latency_summary([]) == {
        "p50": None, "p90": None, "p99": None, "max": None, "mean": None, "n": 0
    }  # fmt: skip
    s = latency_summary([1.0, 2.0, 3.0])
    assert s["max"] == 3.0 and s["mean"] == 2.0 and s["n"] == 3 and s["p50"] == 2.0


def test_reservoir_exact_until_full_then_bounded() -> None:
    r = Reservoir(10, random.Random(1))
    assert len(r) == 0 and r.percentiles()["p50"] is None
    for v in range(5):
        r.add(float(v))
    assert len(r) == 5 and sorted(r.values()) == [0.0, 1.0, 2.0, 3.0, 4.0]
    for v in range(5, 1000):
        r.add(float(v))
    assert len(r) == 10 and r.seen == 1000 and r.max == 999.0
    assert set(r.values()) <= set(map(float, range(1000)))
    assert r.percentiles()["max"] == 999.0  # the max of every value, not of the sample
