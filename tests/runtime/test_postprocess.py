"""Post-processing: smoothing over the last k windows, positive findings, alarm hysteresis,
rejected windows, stream ends."""

from __future__ import annotations

import numpy as np
import pytest
from mrm_edge.runtime.postprocess import (
    PostprocessConfig,
    Postprocessor,
    StreamPostprocessor,
    reason_kinds,
)
from mrm_edge.runtime.stream.preprocess import Window
from mrm_edge.runtime.stream.quality import QualityConfig, assess_quality

from mrm_edge.data.dataset import LEADS

LABELS = ("A", "B")
RATE, WINDOW, HOP = 100, 1000, 100


def window(start: int, data: np.ndarray | None = None, gap: tuple[str, ...] = ()) -> Window:
    x = np.random.default_rng(start).normal(size=(WINDOW, 12)).astype(np.float32) * 0.3
    x = x if data is None else data
    q = assess_quality(x, RATE, QualityConfig(), LEADS)
    reasons = (*gap, *q.reasons)
    return Window(
        "s", start, x, RATE, q, "rejected" if reasons else "ok", "; ".join(reasons), 0.0, gap
    )


def run(sp: StreamPostprocessor, p_a: list[float]) -> list[tuple[int, str]]:
    """Feed label A's probabilities (B stays at 0); return (window index, state) events."""
    out = []
    for i, p in enumerate(p_a):
        _, events = sp.update(np.array([p, 0.0]), i * HOP, RATE)
        out += [(i, e.state) for e in events if e.label == "A"]
    return out


def stream(**cfg) -> StreamPostprocessor:
    config, alarmable = PostprocessConfig(**cfg), np.ones(2, bool)
    return StreamPostprocessor("s", LABELS, np.array([0.5, 0.5]), config, 0, alarmable)


def test_smoothing_is_the_mean_of_the_last_k_windows() -> None:
    sp = stream(smoothing=3)
    seen = [sp.update(np.array([p, 1 - p]), 0, RATE)[0][0] for p in (0.9, 0.3, 0.6, 0.0)]
    np.testing.assert_allclose(seen, [0.9, 0.6, 0.6, 0.3])
    sp1 = stream(smoothing=1)
    assert sp1.update(np.array([0.7, 0.2]), 0, RATE)[0].tolist() == [0.7, 0.2]


def test_alarm_on_after_n_on_consecutive_windows_at_or_above_threshold() -> None:
    # Smoothing off so the counts are visible directly.
    sp = stream(smoothing=1, n_on=3, n_off=2, off_margin=0.1)
    events = run(sp, [0.6, 0.6, 0.4, 0.5, 0.7, 0.9, 0.9])
    assert events == [(5, "on")]  # 0.4 broke the first run; 0.5 (= threshold) counts


def test_alarm_off_needs_n_off_windows_below_threshold_minus_margin() -> None:
    sp = stream(smoothing=1, n_on=1, n_off=2, off_margin=0.1)
    # On at once; 0.45 is below the threshold but inside the hysteresis band: stays on.
    events = run(sp, [0.8, 0.45, 0.45, 0.45, 0.39, 0.45, 0.3, 0.2, 0.9])
    assert events == [(0, "on"), (7, "off"), (8, "on")]
    assert sp.active() == ("A",)


def test_hovering_at_the_threshold_does_not_toggle() -> None:
    sp = stream(smoothing=1, n_on=2, n_off=3, off_margin=0.05)
    p = [0.52, 0.49, 0.51, 0.48, 0.5, 0.47, 0.51, 0.49] * 4
    assert run(sp, p) == []  # never two in a row above
    sp = stream(smoothing=1, n_on=1, n_off=3, off_margin=0.05)
    assert run(sp, p) == [(0, "on")]  # never below 0.45: stays on


def test_smoothing_delays_onset_by_at_most_k_minus_1_hops() -> None:
    sp = stream(smoothing=3, n_on=1)
    # A step from 0.2 to 0.9: the mean passes 0.5 on the second window after the step.
    assert run(sp, [0.2, 0.2, 0.2, 0.9, 0.9, 0.9]) == [(4, "on")]


def test_defaults_are_documented_values() -> None:
    c = PostprocessConfig()
    assert (c.smoothing, c.n_on, c.n_off, c.off_margin) == (3, 2, 3, 0.05)
    assert "last 3" in c.describe()


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"smoothing": 0}, "smoothing"), ({"n_on": 1.5}, "n_on"), ({"off_margin": 1.0}, "off")],
)
def test_bad_config_is_one_line(kw: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        PostprocessConfig(**kw)


def test_postprocessor_results_thresholds_per_label_and_positive_after_smoothing() -> None:
    post = Postprocessor(
        LABELS, {"A": 0.3, "B": 0.9}, PostprocessConfig(smoothing=2), alarm_labels=LABELS
    )
    r1, _ = post.classified(window(0), np.array([0.35, 0.95]), 1.0)
    assert r1.positive == ("A", "B") and r1.ok and r1.end_s == 10.0
    r2, _ = post.classified(window(100), np.array([0.2, 0.95]), 1.0)
    # Raw A is 0.2 < 0.3, but the smoothed mean (0.275) decides: not positive.
    assert r2.probabilities == {"A": 0.2, "B": 0.95}
    assert r2.smoothed == pytest.approx({"A": 0.275, "B": 0.95})
    assert r2.positive == ("B",)


def test_rejected_windows_do_not_update_smoothing_or_counters() -> None:
    post = Postprocessor(
        LABELS, {"A": 0.5, "B": 0.5}, PostprocessConfig(smoothing=2, n_on=2), alarm_labels=LABELS
    )
    flat = np.zeros((WINDOW, 12), np.float32)
    r, ev = post.classified(window(0), np.array([0.9, 0.0]), 1.0)
    assert ev == []
    rej = post.rejected(window(100, flat), 0.1)
    assert rej.status == "rejected" and rej.probabilities is None and rej.positive == ()
    assert "flat" in rej.reason and rej.reason_kinds == ("flat lead",)
    assert set(rej.bad_leads) == set(LEADS)
    # The second classified window completes n_on = 2 although a rejected one came between,
    # and the smoothing mean is over the two classified windows only.
    r, ev = post.classified(window(200), np.array([0.7, 0.0]), 1.0)
    assert [(e.label, e.state, e.start) for e in ev] == [("A", "on", 200)]
    assert r.smoothed["A"] == pytest.approx(0.8) and r.alarms == ("A",)
    assert post.rejected(window(300, flat), 0.1).alarms == ("A",)  # the state holds


def test_backend_error_reason_overrides() -> None:
    post = Postprocessor(LABELS, {"A": 0.5, "B": 0.5}, alarm_labels=LABELS)
    r = post.rejected(window(0), 2.0, reason="backend error: boom")
    assert (r.reason, r.reason_kinds, r.bad_leads) == (
        "backend error: boom",
        ("backend error",),
        (),
    )


def test_stream_end_closes_open_alarms_and_forgets_state() -> None:
    post = Postprocessor(
        LABELS, {"A": 0.5, "B": 0.5}, PostprocessConfig(smoothing=1, n_on=1), alarm_labels=LABELS
    )
    _, ev = post.classified(window(0), np.array([0.9, 0.9]), 1.0)
    assert {e.label for e in ev} == {"A", "B"}
    closed = post.end_stream("s", 2000, RATE)
    assert [(e.label, e.state, e.cause, e.start) for e in closed] == [
        ("A", "off", "stream ended", 2000),
        ("B", "off", "stream ended", 2000),
    ]
    assert closed[0].probability == pytest.approx(0.9) and closed[0].start_s == 20.0
    assert post.end_stream("s", 2000, RATE) == [] and post.stream("s").active() == ()


def test_segments_are_independent() -> None:
    post = Postprocessor(
        LABELS, {"A": 0.5, "B": 0.5}, PostprocessConfig(smoothing=1, n_on=1), alarm_labels=LABELS
    )
    post.classified(window(0), np.array([0.9, 0.0]), 1.0, segment=0)
    r, ev = post.classified(window(0), np.array([0.1, 0.0]), 1.0, segment=1)
    assert ev == [] and r.alarms == () and r.segment == 1
    assert post.stream("s", 0).active() == ("A",)


def test_reason_kinds() -> None:
    x = np.random.default_rng(0).normal(size=(WINDOW, 12)).astype(np.float32)
    x[:, 11] = 0.0
    x[5, 0] = np.nan
    w = window(0, x, gap=("12 samples (0.024 s) missing before t=3.000 s",))
    assert reason_kinds(w) == ("samples missing", "non-finite samples", "flat lead")
    assert reason_kinds(window(0)) == ()
