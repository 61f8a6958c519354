"""Synthetic source: ids, determinism whatever the chunking, bounded and unbounded runs,
pacing."""

from __future__ import annotations

import time

import numpy as np
import pytest
from mrm_edge.runtime.sources.synthetic import SyntheticSource, synthetic_ids

from mrm_edge.data.synthetic import SyntheticStream, make_patients
from tests.runtime.sources import collect


def test_bounded_streams_are_deterministic_and_chunk_invariant() -> None:
    a = collect(SyntheticSource(3, fs=250, seconds=2.0, speed=None, seed=5), n_ends=3)
    b = collect(
        SyntheticSource(3, fs=250, seconds=2.0, speed=None, seed=5, chunk_seconds=[0.05, 0.33]),
        n_ends=3,
    )
    assert list(a.chunks) == ["synthetic-00", "synthetic-01", "synthetic-02"]
    patients = make_patients(3, 5)
    for i, sid in enumerate(a.chunks):
        expected = SyntheticStream(patients[i], 250).read(500).T
        np.testing.assert_array_equal(a.signal(sid), expected)
        np.testing.assert_array_equal(b.signal(sid), expected)
        assert a.ends[sid] == ["end of record"]
        ts = [c.timestamp for c in b.chunks[sid]]
        starts = np.cumsum([0] + [len(c.samples) for c in b.chunks[sid][:-1]]) / 250
        np.testing.assert_allclose(ts, starts)
        kinds = {(c.samples.shape[1], c.samples.dtype) for c in b.chunks[sid]}
        assert kinds == {(12, np.dtype(np.float32))}
    # Patients differ from one another, and with the seed.
    assert not np.array_equal(a.signal("synthetic-00"), a.signal("synthetic-01"))
    c = collect(SyntheticSource(1, fs=250, seconds=2.0, speed=None, seed=6), n_ends=1)
    assert not np.array_equal(c.signal("synthetic-00"), a.signal("synthetic-00"))


def test_unbounded_runs_until_closed() -> None:
    src = SyntheticSource(2, speed=None)
    got = collect(src, n_chunks=60)
    src.close()
    assert not got.ends and len(got.signal("synthetic-01")) == 30 * 100
    assert list(src.events()) == []


def test_pacing() -> None:
    src = SyntheticSource(2, fs=100, seconds=2.0, speed=8.0, chunk_seconds=0.25)
    t0 = time.monotonic()
    got = collect(src, n_ends=2)
    elapsed = time.monotonic() - t0
    assert not got.timed_out
    assert 0.22 <= elapsed < 2.0, elapsed


def test_ids_stay_sortable_past_a_hundred_streams() -> None:
    ids = synthetic_ids(101)
    assert ids[0] == "synthetic-000" and ids == sorted(ids)
    assert SyntheticSource(101, speed=None).describe().startswith("synthetic: 101 patients")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_streams": 0}, "n_streams is 0"),
        ({"fs": 0}, "fs is 0"),
        ({"seconds": -1.0}, "seconds is -1.0"),
        ({"speed": 0.0}, "speed must be positive"),
        ({"chunk_seconds": 0.0}, "chunk_seconds is 0.0"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticSource(**({"n_streams": 1} | kwargs))
