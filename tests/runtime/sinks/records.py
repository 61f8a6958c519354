"""Records the sink tests feed their sinks: a run's info, window results, a summary."""

from __future__ import annotations

from mrm_edge.runtime.postprocess import WindowResult
from mrm_edge.runtime.sinks.base import RunInfo
from mrm_edge.runtime.sinks.summary import Summary, Tally

LABELS = ("CD", "HYP", "MI", "NORM", "STTC")


def info(stats=None) -> RunInfo:
    return RunInfo(
        model="tiny",
        labels=LABELS,
        thresholds=dict.fromkeys(LABELS, 0.5),
        sampling_rate=100,
        window_s=10.0,
        hop_s=1.0,
        backend="onnxruntime on cpu, int8",
        backend_reason="because",
        source="array",
        knobs={"max_batch": 32},
        stats=stats,
    )


def ok_result(start: int = 300, stream: str = "p1") -> WindowResult:
    p = dict(zip(LABELS, (0.1, 0.2, 0.7, 0.05, 0.123456789), strict=True))
    return WindowResult(
        stream_id=stream,
        start=start,
        sampling_rate=100,
        window_samples=1000,
        status="ok",
        reason="",
        latency_ms=12.3456,
        probabilities=p,
        smoothed=p,
        positive=("MI",),
        findings=("MI",),
        alarms=("MI",),
    )


def rejected_result() -> WindowResult:
    return WindowResult(
        stream_id="p2",
        start=0,
        sampling_rate=100,
        window_samples=1000,
        status="rejected",
        reason="lead V6 flat for 10.0 s (peak-to-peak < 0.01 mV)",
        latency_ms=0.2,
        reason_kinds=("flat lead",),
        bad_leads=("V6",),
    )


def summary() -> Summary:
    t = Tally()
    t.classified("p1", 10.0, ())
    t.rejected("p2", ("flat lead",), ())
    t.dropped("p1", "overload (drop-oldest)")
    return t.summary(
        model="tiny", backend="b", backend_reason="r", source="array", stopped_by="source ended"
    )
