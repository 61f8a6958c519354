"""The streaming monitor end to end: streaming equals offline on real records, every window
accounted for (classified, rejected with a reason, or dropped and counted), quality
rejections, overload, stop and signals, backend errors, alarms at stream ends, run_monitor.

Most tests use a small real ONNX graph (tests.fakes.make_onnx) or stub backends
(tests/fakes/backends.py), so they run in a fraction of a second each; the acceptance test
uses the tiny MRM-Net trained on the real PTB-XL subset (the session's ``tiny_model_dir``),
exported to ONNX here."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mrm_edge.runtime.app import run_monitor
from mrm_edge.runtime.backends import Backend, OnnxRuntimeBackend
from mrm_edge.runtime.config import MonitorConfig
from mrm_edge.runtime.engine import Monitor
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.postprocess import PostprocessConfig
from mrm_edge.runtime.sinks.jsonl import JsonlSink
from mrm_edge.runtime.sources.base import ArraySource, Chunk, Event, Source, StreamEnd
from mrm_edge.runtime.stream.quality import QualityConfig, assess_quality

from mrm_edge.data.dataset import LEADS
from mrm_edge.data.signal import resample
from mrm_edge.data.synthetic import make_patients, synthesize
from mrm_edge.records import read_recording
from tests.fakes.backends import StubBackend
from tests.fakes.sinks import StopAfter
from tests.fakes.sources import ScriptedSource, StartSignallingSource
from tests.runtime.test_model import make_model_dir

RATE, WINDOW, HOP = 100, 1000, 100
JOIN_S = 10.0  # bound on every wait in these tests


# ====================================================================== helpers


def parse(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def of_type(lines: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in lines if d["type"] == kind]


def expected_windows(n_in: int, fs: int) -> int:
    n = -(-n_in * RATE // fs)  # samples at the model's rate: ceil(n · 100 / fs)
    return 0 if n < WINDOW else (n - WINDOW) // HOP + 1


def synthetic(n: int, seconds: float, fs: int = 500, seed: int = 0) -> dict[str, Any]:
    """``{patient_id: ([samples, 12] mV, fs)}`` from the synthetic generator."""
    return {
        p.patient_id: (np.ascontiguousarray(synthesize(p, seconds, fs).T), fs)
        for p in make_patients(n, seed)
    }


def assert_conserved(mon: Monitor, summary) -> None:
    """Every window produced is classified, rejected or dropped — once."""
    produced = mon.accounting.windows_produced
    assert summary.windows == sum(produced.values())
    assert summary.windows == summary.classified + summary.rejected + summary.dropped
    for sid, n in produced.items():
        assert summary.per_stream[sid]["windows"] == n, sid


def assert_log_matches(lines: list[dict[str, Any]], summary) -> None:
    """The event log holds one line per window result / drop, none twice, summary last."""
    assert lines[0]["type"] == "start" and lines[-1]["type"] == "summary"
    windows = of_type(lines, "window")
    dropped = of_type(lines, "dropped")
    keys = [(d["stream"], d["segment"], d["start"]) for d in windows + dropped]
    assert len(keys) == len(set(keys)), "a window appears twice"
    assert len(windows) == summary.classified + summary.rejected
    assert len(dropped) == summary.dropped
    assert sum(d["status"] == "rejected" for d in windows) == summary.rejected


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> DeployedModel:
    """A card and a small real ONNX graph (mean over time → MatMul → Sigmoid)."""
    return DeployedModel.load(make_model_dir(tmp_path_factory.mktemp("small") / "m"))


def monitor(
    model: DeployedModel, backend: Backend, source: Source, log: Path, fallbacks=(), **config
) -> Monitor:
    sinks = [JsonlSink(log)]
    return Monitor(
        model, backend, source, MonitorConfig(**config), sinks=sinks, fallbacks=fallbacks
    )


# ====================================================================== streaming == offline


def real_records(ptbxl_root: Path, cpsc_root: Path) -> list[Path]:
    return [
        ptbxl_root / "records100/00000/00001_lr.hea",
        ptbxl_root / "records100/00000/00002_lr.hea",
        ptbxl_root / "records500/00000/00001_hr.hea",
        ptbxl_root / "records500/00000/00003_hr.hea",
        *sorted(cpsc_root.glob("A19*.mat")),  # 500 Hz, 10 to 54 s
    ]


@pytest.mark.realdata
@pytest.mark.slow  # the session's tiny model trains first (shared with the export/CLI tests)
def test_streaming_equals_offline_on_real_records(
    tiny_onnx_model: Path, ptbxl_root: Path, cpsc_root: Path, tmp_path: Path
) -> None:
    """The acceptance test: real records at 100 and 500 Hz, all streams at once, random
    chunk sizes, through Monitor with ONNX Runtime CPU FP32 and a 1 s hop. Every window's
    probabilities equal the backend on the same window cut from the whole record resampled
    offline (1e-5); (samples − window) // hop + 1 windows per stream, none missing or
    doubled; quality rejections are those of the offline window."""
    paths = real_records(ptbxl_root, cpsc_root)
    assert len(paths) == 14
    records = {}
    for p in paths:
        rec = read_recording(p)
        records[p.stem] = (np.ascontiguousarray(rec.signal.T), rec.sampling_rate)
    assert {fs for _, fs in records.values()} == {100, 500}
    rng = np.random.default_rng(2018)
    chunks = list(rng.uniform(0.01, 2.5, size=97))  # seconds; ArraySource cycles through them
    model = DeployedModel.load(tiny_onnx_model)
    log = tmp_path / "events.jsonl"
    backend = OnnxRuntimeBackend(model.onnx["fp32"].path, providers=["CPUExecutionProvider"])
    with backend:
        mon = monitor(model, backend, ArraySource(records, chunk_seconds=chunks), log, hop_s=1.0)
        summary = mon.run()
        assert summary.ok and summary.dropped == 0 and summary.stopped_by == "source ended"
        assert_conserved(mon, summary)
        lines = parse(log)
        assert_log_matches(lines, summary)
        windows = of_type(lines, "window")
        checked = 0
        for sid, (x, fs) in records.items():
            got = sorted((d for d in windows if d["stream"] == sid), key=lambda d: d["start"])
            offline = resample(x.T, fs, RATE).T
            n = expected_windows(len(x), fs)
            assert len(offline) == -(-len(x) * RATE // fs)
            assert [d["start"] for d in got] == [k * HOP for k in range(n)], sid
            cut = np.stack([offline[k * HOP : k * HOP + WINDOW] for k in range(n)])
            expect = backend.infer(np.ascontiguousarray(cut.transpose(0, 2, 1)))
            for k, d in enumerate(got):
                ok = assess_quality(cut[k], RATE, QualityConfig(), LEADS).ok
                assert d["status"] == ("ok" if ok else "rejected"), (sid, k)
                assert d["end_s"] == pytest.approx((k * HOP + WINDOW) / RATE)
                if ok:
                    p = np.array([d["probabilities"][lab] for lab in model.card.labels])
                    np.testing.assert_allclose(p, expect[k], atol=1e-5, err_msg=f"{sid}[{k}]")
                    checked += 1
                else:
                    assert d["reason"] and d["probabilities"] is None
    assert checked >= 100
    assert summary.latency_ms["n"] == summary.classified


# ====================================================================== synthetic patients


def test_synthetic_patients_at_max_speed(small_model: DeployedModel, tmp_path: Path) -> None:
    recs = synthetic(6, 25.0)
    recs["syn-250hz"] = (np.ascontiguousarray(synthesize(make_patients(1, 9)[0], 22, 250).T), 250)
    recs["syn-100hz"] = (np.ascontiguousarray(synthesize(make_patients(1, 8)[0], 15, 100).T), 100)
    log = tmp_path / "events.jsonl"
    src = ArraySource(recs, chunk_seconds=[0.04, 0.5, 0.2, 1.3], speed=None)
    backend = OnnxRuntimeBackend(small_model.onnx["fp32"].path)
    mon = monitor(small_model, backend, src, log, max_batch=8, max_delay_ms=5)
    summary = mon.run()
    assert not backend.is_active  # activated and released by the monitor
    assert summary.ok and summary.stopped_by == "source ended"
    assert_conserved(mon, summary)
    for sid, (x, fs) in recs.items():
        assert mon.accounting.windows_produced[sid] == expected_windows(len(x), fs), sid
    assert summary.classified == summary.windows and summary.rejected == summary.dropped == 0
    lines = parse(log)
    assert_log_matches(lines, summary)
    lat = summary.latency_ms
    assert lat["n"] == summary.classified and 0 <= lat["p50"] <= lat["p90"] <= lat["p99"]
    assert all(d["latency_ms"] >= 0 for d in of_type(lines, "window"))
    assert summary.throughput_wps > 0 and summary.inference_wps > 0
    assert summary.batches >= summary.classified / 8 and summary.mean_batch <= 8
    assert summary.backend.startswith("onnxruntime on cpu, fp32")
    assert summary.knobs["max_batch"] == 8 and summary.knobs["overload"] == "drop-oldest"
    ends = [d for d in of_type(lines, "stream") if d["event"] == "end"]
    assert {d["stream"] for d in ends} == set(recs)
    assert all(d["detail"] == "end of record" for d in ends)
    assert lines[-1]["windows"] == summary.windows  # the summary line is the summary


def test_bad_signal_is_rejected_with_reasons_while_others_are_classified(
    small_model: DeployedModel, tmp_path: Path
) -> None:
    recs = synthetic(4, 20.0)
    ids = list(recs)
    nan_x = recs[ids[0]][0].copy()
    nan_x[6000:6500] = np.nan  # 12 s to 13 s at 500 Hz, every lead
    flat_x = recs[ids[1]][0].copy()
    flat_x[:, LEADS.index("V6")] = 0.0
    recs = {"nan": (nan_x, 500), "flat": (flat_x, 500), "ok-a": recs[ids[2]], "ok-b": recs[ids[3]]}
    log = tmp_path / "events.jsonl"
    src = ArraySource(recs, chunk_seconds=[0.3, 0.7], speed=None)
    mon = monitor(small_model, OnnxRuntimeBackend(small_model.onnx["fp32"].path), src, log)
    summary = mon.run()
    assert_conserved(mon, summary)
    per = summary.per_stream
    assert per["ok-a"]["classified"] == per["ok-b"]["classified"] == 11
    assert per["flat"]["rejected"] == 11 and per["flat"]["classified"] == 0
    assert 0 < per["nan"]["rejected"] < 11 and per["nan"]["classified"] > 0
    assert summary.rejected_by_reason == {
        "flat lead": 11,
        "non-finite samples": per["nan"]["rejected"],
    }
    windows = of_type(parse(log), "window")
    flat = [d for d in windows if d["stream"] == "flat"]
    assert all(d["reason"].startswith("lead V6 flat") and d["bad_leads"] == ["V6"] for d in flat)
    nan = [d for d in windows if d["stream"] == "nan" and d["status"] == "rejected"]
    assert all("NaN/Inf" in d["reason"] and d["probabilities"] is None for d in nan)
    # Rejected windows are the ones overlapping 12–13 s (plus the resampling filter's reach).
    assert all(d["start_s"] < 13.1 and d["end_s"] > 11.9 for d in nan)


# ====================================================================== overload, stop, errors


@pytest.mark.parametrize("policy", ["drop-oldest", "drop-newest"])
def test_overload_drops_are_counted_and_logged(
    small_model: DeployedModel, tmp_path: Path, policy: str
) -> None:
    log = tmp_path / "events.jsonl"
    backend = StubBackend(delay_s=0.02)
    src = ArraySource(synthetic(4, 30.0), chunk_seconds=2.0, speed=None)
    mon = monitor(
        small_model, backend, src, log, max_batch=2, max_queue=4, max_delay_ms=0, overload=policy
    )
    summary = mon.run()
    assert_conserved(mon, summary)
    assert summary.dropped > 0 and summary.rejected == 0
    assert summary.dropped_by_cause == {f"overload ({policy})": summary.dropped}
    assert backend.max_seen <= 2 and summary.max_queue_depth <= 4
    lines = parse(log)
    assert_log_matches(lines, summary)
    if policy == "drop-oldest":
        # Fresh data wins: the last windows (the queue's worth at the end) were classified.
        last = (mon.accounting.windows_produced["syn-000"] - 1) * HOP
        assert max(d["start"] for d in of_type(lines, "window")) == last
        assert min(d["start"] for d in of_type(lines, "dropped")) < last


def test_block_policy_waits_instead_of_dropping(small_model: DeployedModel, tmp_path: Path) -> None:
    src = ArraySource(synthetic(2, 16.0), chunk_seconds=2.0, speed=None)
    mon = monitor(
        small_model,
        StubBackend(delay_s=0.005),
        src,
        tmp_path / "e.jsonl",
        max_batch=1,
        max_queue=1,
        overload="block",
        put_timeout_s=JOIN_S,
    )
    summary = mon.run()
    assert_conserved(mon, summary)
    assert summary.dropped == 0 and summary.classified == 14


@pytest.mark.parametrize("drain", [True, False])
def test_stop_mid_run_leaves_a_complete_log(
    small_model: DeployedModel, tmp_path: Path, drain: bool
) -> None:
    log = tmp_path / "events.jsonl"
    src = ArraySource(synthetic(4, 120.0), chunk_seconds=0.25, speed=40.0)
    stopper = StopAfter(12, drain)
    mon = Monitor(
        small_model,
        StubBackend(delay_s=0.03),
        src,
        MonitorConfig(max_batch=2, max_delay_ms=0),
        sinks=[JsonlSink(log), stopper],
    )
    stopper.mon = mon
    t0 = time.monotonic()
    summary = mon.run()
    assert time.monotonic() - t0 < JOIN_S
    assert summary.stopped_by == "test stop" and summary.ok
    assert 12 <= summary.windows < 4 * expected_windows(120 * 500, 500)
    assert_conserved(mon, summary)
    lines = parse(log)  # every line parses: nothing half-written
    assert_log_matches(lines, summary)
    causes = set(summary.dropped_by_cause)
    if drain:  # what was queued at the stop was still classified
        assert causes <= {"overload (drop-oldest)"}
    else:
        assert causes <= {"overload (drop-oldest)", "stopped before inference"}
    ends = [d for d in of_type(lines, "stream") if d["event"] == "end"]
    assert {d["detail"] for d in ends} == {"stopped"}  # cut short, not finish()-ed
    assert {d["stream"] for d in ends} == set(mon.accounting.windows_produced)


def test_duration_stops_the_run(small_model: DeployedModel, tmp_path: Path) -> None:
    src = ArraySource(synthetic(2, 600.0), chunk_seconds=0.5, speed=30.0)
    mon = monitor(small_model, StubBackend(), src, tmp_path / "e.jsonl", duration_s=0.8)
    t0 = time.monotonic()
    summary = mon.run()
    assert 0.7 < time.monotonic() - t0 < 3.0
    assert summary.stopped_by == "duration reached" and summary.classified > 0
    assert_conserved(mon, summary)
    with pytest.raises(RuntimeError, match="runs once"):
        mon.run()


def test_backend_error_is_retried_once(small_model: DeployedModel, tmp_path: Path) -> None:
    backend = StubBackend(fail=1)
    src = ArraySource(synthetic(2, 12.0), speed=None)
    summary = monitor(small_model, backend, src, tmp_path / "e.jsonl", max_batch=32).run()
    assert summary.classified == 6 and summary.rejected == 0 and summary.backend_errors == 0


def test_persistent_backend_error_rejects_those_windows_and_goes_on(
    small_model: DeployedModel, tmp_path: Path
) -> None:
    log = tmp_path / "e.jsonl"
    backend = StubBackend(fail=-1)
    src = ArraySource(synthetic(3, 12.0), speed=None)
    mon = monitor(small_model, backend, src, log, max_batch=2, max_delay_ms=0)
    summary = mon.run()
    assert_conserved(mon, summary)
    assert summary.ok and summary.rejected == 9 and summary.classified == 0
    assert summary.rejected_by_reason == {"backend error": 9}
    assert summary.backend_errors == summary.batches and backend.calls == 2 * summary.batches
    reasons = {d["reason"] for d in of_type(parse(log), "window")}
    assert reasons == {"backend error: RuntimeError: boom"}


def chunks(sid: str, x: np.ndarray, fs: int, step: int = 1000) -> list[Event]:
    return [Chunk(sid, x[i : i + step], fs) for i in range(0, len(x), step)]


def test_a_malformed_stream_fails_alone(small_model: DeployedModel, tmp_path: Path) -> None:
    recs = synthetic(2, 12.0)
    (a, (xa, _)), (b, (xb, _)) = recs.items()
    bad = chunks(b, xb, 500)
    bad[3] = Chunk(b, xb[:100, :11], 500)  # 11 leads
    events = [e for pair in zip(chunks(a, xa, 500), bad, strict=True) for e in pair]
    events += [StreamEnd(a), StreamEnd(b)]
    log = tmp_path / "e.jsonl"
    mon = monitor(small_model, StubBackend(), ScriptedSource(events), log)
    summary = mon.run()
    assert summary.per_stream[a]["classified"] == 3
    assert summary.per_stream[b]["windows"] == 0
    assert "chunk must be [samples, 12]" in summary.per_stream[b]["error"]
    assert not summary.ok and summary.errors[0].startswith(f"stream {b}:")
    assert_conserved(mon, summary)
    errors = [d for d in of_type(parse(log), "stream") if d["event"] == "error"]
    assert len(errors) == 1 and errors[0]["stream"] == b


def test_alarms_close_at_stream_end_and_restart_is_a_new_segment(
    small_model: DeployedModel, tmp_path: Path
) -> None:
    x = next(iter(synthetic(1, 13.0).values()))[0]
    events = [
        *chunks("p", x, 500),
        StreamEnd("p", "disconnected"),
        *chunks("p", x[:5500], 500),
        StreamEnd("p"),
    ]
    log = tmp_path / "e.jsonl"
    cfg = PostprocessConfig(smoothing=1, n_on=2)
    mon = monitor(small_model, StubBackend(), ScriptedSource(events), log, postprocess=cfg)
    summary = mon.run()
    lines = parse(log)
    windows = of_type(lines, "window")
    assert [(d["segment"], d["start"]) for d in windows] == [
        *((0, k * HOP) for k in range(4)),  # 13 s: 4 windows
        *((1, k * HOP) for k in range(2)),  # the restart, 11 s: 2 windows from 0 again
    ]
    alarms = [
        (d["segment"], d["label"], d["state"], d["start"], d["cause"])
        for d in of_type(lines, "alarm")
    ]
    # CD (p = 0.9) goes on at each segment's second window and is closed by the segment's
    # end after its last window (13 s → sample 1300 at 100 Hz; 11 s → 1100).
    assert alarms == [
        (0, "CD", "on", 100, ""),
        (0, "CD", "off", 1300, "stream ended"),
        (1, "CD", "on", 100, ""),
        (1, "CD", "off", 1100, "stream ended"),
    ]
    # A segment's own events are in order; the restart's start may precede the previous
    # segment's end, which waits for that segment's last results.
    kinds = sorted(
        (d["segment"], d["event"] == "end", d["detail"]) for d in of_type(lines, "stream")
    )
    kinds = [("end" if end else "start", seg, detail) for seg, end, detail in kinds]
    assert kinds == [
        ("start", 0, "500 Hz"),
        ("end", 0, "disconnected"),
        ("start", 1, "500 Hz"),
        ("end", 1, "end of record"),
    ]
    assert summary.alarms == {"on": 2, "off": 2} and summary.per_stream["p"]["segments"] == 2


# ====================================================================== run_monitor


def test_run_monitor_end_to_end(tmp_path: Path) -> None:
    from rich.console import Console

    d = make_model_dir(tmp_path / "m", precisions=("fp32", "int8"))
    out = io.StringIO()
    log = tmp_path / "events.jsonl"
    summary = run_monitor(
        d,
        lambda model: ArraySource(synthetic(3, 15.0, fs=model.card.sampling_rate), speed=None),
        MonitorConfig(max_batch=4),
        events_path=log,
        ui=True,
        console=Console(file=out, width=200),
    )
    text = out.getvalue()
    assert "onnxruntime CPU int8" in text and "INT8 first" in text  # backend, why
    assert "windows 18: classified 18" in text  # the summary
    assert summary.ok and summary.backend.startswith("onnxruntime on cpu, int8")
    lines = parse(log)
    assert lines[0]["backend_reason"].startswith("onnxruntime CPU int8")
    assert lines[-1]["type"] == "summary" and lines[-1]["classified"] == 18
    with pytest.raises(ValueError, match="cannot write the event log"):
        run_monitor(
            d,
            ArraySource({}),
            events_path=tmp_path / "no" / "e.jsonl",
            ui=False,
            console=Console(file=io.StringIO()),
        )


def test_sigint_stops_cleanly_with_a_summary(tmp_path: Path) -> None:
    from rich.console import Console

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    d = make_model_dir(tmp_path / "m")
    started = threading.Event()

    def interrupt() -> None:
        if started.wait(JOIN_S):
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    killer = threading.Thread(target=interrupt)
    killer.start()
    log = tmp_path / "events.jsonl"
    try:
        summary = run_monitor(
            d,
            StartSignallingSource(started, synthetic(2, 300.0), chunk_seconds=0.5, speed=50.0),
            events_path=log,
            ui=False,
            console=Console(file=io.StringIO()),
        )
    finally:
        killer.join(JOIN_S)
    assert summary.stopped_by == "signal SIGINT" and summary.ok
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    lines = parse(log)
    assert lines[-1]["type"] == "summary" and lines[-1]["stopped_by"] == "signal SIGINT"
    assert Counter(d["type"] for d in lines)["window"] == summary.classified


# ====================================================================== stream_finished


class FinishRecordingSource(ScriptedSource):
    """Records ``stream_finished`` calls (the hook the watched inbox completes a file on)
    with the stream's tally at each: (classified, ended); ``stop_after`` stops the monitor
    as it yields the event at that index."""

    def __init__(self, events: list[Event], stop_after: int | None = None) -> None:
        super().__init__(events)
        self.stop_after = stop_after
        self.finished: list[tuple[str, str, int, tuple[int, str | None]]] = []
        self.mon: Monitor | None = None

    def events(self):
        for i, e in enumerate(self.script):
            yield e
            if i == self.stop_after and self.mon is not None:
                self.mon.stop("test stop")

    def stream_finished(self, stream_id: str, reason: str, dropped: int) -> None:
        counts = self.mon.tally.streams[stream_id] if self.mon else None
        tally = (counts.classified, counts.ended) if counts else (0, None)
        self.finished.append((stream_id, reason, dropped, tally))


def test_stream_finished_comes_once_per_stream_after_its_end_is_delivered(
    small_model: DeployedModel, tmp_path: Path
) -> None:
    recs = synthetic(3, 12.0)
    (a, (xa, _)), (b, (xb, _)), (c, (xc, _)) = recs.items()
    bad = chunks(b, xb, 500)
    bad[3] = Chunk(b, xb[:100, :11], 500)  # 11 leads: fails mid-stream
    events = [*chunks(a, xa, 500), *bad, Chunk(c, xc[:100], 0), StreamEnd(a), StreamEnd(b)]
    events.append(StreamEnd(c))  # c failed at its first chunk (rate 0): nothing waits for it
    src = FinishRecordingSource(events)
    mon = src.mon = monitor(small_model, StubBackend(delay_s=0.01), src, tmp_path / "e.jsonl")
    summary = mon.run()
    # b and c failed (c at its first chunk, rate 0: nothing of it waits); a's call came once
    # its three windows were classified and its end delivered.
    assert src.finished == [
        (b, "failed", 0, (0, None)),
        (c, "failed", 0, (0, None)),
        (a, "end of record", 0, (3, "end of record")),
    ]
    assert summary.per_stream[a]["classified"] == 3


def test_a_stream_end_the_source_gives_after_a_stop_still_ends_it(
    small_model: DeployedModel, tmp_path: Path
) -> None:
    """A stop between a stream's last chunk and its end: the end is honoured (its windows
    classified, reason the source's), not reported as cut short."""
    ((a, (xa, _)),) = synthetic(1, 12.0).items()
    events = [Chunk(a, xa, 500), StreamEnd(a)]
    src = FinishRecordingSource(events, stop_after=0)
    mon = src.mon = monitor(small_model, StubBackend(), src, tmp_path / "e.jsonl")
    summary = mon.run()
    assert summary.stopped_by == "test stop"
    assert summary.per_stream[a]["classified"] == 3 and summary.dropped == 0
    assert [(s, r, d) for s, r, d, _ in src.finished] == [(a, "end of record", 0)]
