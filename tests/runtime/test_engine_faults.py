"""Faults in the streaming monitor: a backend failing mid-stream (retry, then fallback along
the chain), and overload (a slow backend or a slow sink behind many fast streams).

Every backend here is a real ONNX Runtime session. The only test doubles (tests/fakes/)
are wrappers named for what they inject: ``FailingBackend`` raises on chosen calls (what a
CUDA out-of-memory or a failed execution looks like to the engine; there is no GPU here to
provoke one), and ``SlowBackend`` / ``SlowSink`` sleep around the real thing to play a slow
consumer. Every test
checks the window accounting exactly: per stream, classified + rejected + dropped == the
windows the signal length, window and hop give, and the JSONL log has one line per outcome.
"""

from __future__ import annotations

import importlib.util
import io
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mrm_edge.runtime.app import run_monitor
from mrm_edge.runtime.backends import Backend, OnnxRuntimeBackend
from mrm_edge.runtime.config import MonitorConfig
from mrm_edge.runtime.engine import Monitor
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.selection import activate_backend
from mrm_edge.runtime.sinks.base import Sink
from mrm_edge.runtime.sinks.jsonl import JsonlSink
from mrm_edge.runtime.sinks.live import LiveView
from mrm_edge.runtime.sources.base import ArraySource

from tests.fakes.backends import OOM, FailingBackend, SlowBackend
from tests.fakes.sinks import SlowSink
from tests.runtime.test_engine import (
    assert_conserved,
    assert_log_matches,
    expected_windows,
    of_type,
    parse,
    synthetic,
)
from tests.runtime.test_model import make_model_dir

# ====================================================================== helpers


@pytest.fixture(scope="module")
def tiny(tiny_onnx_model: Path) -> DeployedModel:
    """The tiny trained MRM-Net (real PTB-XL), FP32 ONNX."""
    return DeployedModel.load(tiny_onnx_model)


def ort(model: DeployedModel) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(model.onnx["fp32"].path, intra_op_threads=1)


def run(
    model: DeployedModel,
    backend: Backend,
    recs: dict[str, Any],
    log: Path,
    *,
    extra_sinks: tuple[Sink, ...] = (),
    fallbacks: tuple[Any, ...] = (),
    **config: Any,
) -> tuple[Monitor, Any, list[dict[str, Any]]]:
    src = ArraySource(recs, chunk_seconds=[0.5, 1.3], speed=None)
    sinks = [JsonlSink(log), *extra_sinks]
    mon = Monitor(model, backend, src, MonitorConfig(**config), sinks=sinks, fallbacks=fallbacks)
    summary = mon.run()
    return mon, summary, parse(log)


def assert_exact_accounting(mon: Monitor, summary: Any, lines: list[dict], recs: dict) -> None:
    """Per stream: classified + rejected + dropped == the windows its length gives, and
    the log holds exactly one outcome line per window."""
    assert_conserved(mon, summary)
    assert_log_matches(lines, summary)
    outcomes = Counter(d["stream"] for d in of_type(lines, "window") + of_type(lines, "dropped"))
    for sid, (x, fs) in recs.items():
        want = expected_windows(len(x), fs)
        c = summary.per_stream[sid]
        assert c["classified"] + c["rejected"] + c["dropped"] == want == outcomes[sid], sid
    for d in of_type(lines, "window"):  # each window line is a complete outcome
        if d["status"] == "ok":
            assert d["probabilities"] is not None and "reason" not in d
        else:
            assert d["status"] == "rejected" and d["reason"] and d["probabilities"] is None


def probabilities(lines: list[dict]) -> dict[tuple[str, int], list[float]]:
    return {
        (d["stream"], d["start"]): list(d["probabilities"].values())
        for d in of_type(lines, "window")
        if d["status"] == "ok"
    }


@pytest.fixture(scope="module")
def reference(tiny: DeployedModel, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Probabilities of a fault-free run on the recordings the fault tests use."""
    log = tmp_path_factory.mktemp("ref") / "e.jsonl"
    _, summary, lines = run(tiny, ort(tiny), recordings(), log, max_batch=4)
    assert summary.classified == summary.windows > 0
    return probabilities(lines)


def recordings() -> dict[str, Any]:
    return synthetic(3, 16.0)  # 3 streams x 7 windows at 500 Hz


# ====================================================================== backend faults


@pytest.mark.realdata
def test_transient_error_is_retried_and_costs_nothing(
    tiny: DeployedModel, reference: dict, tmp_path: Path
) -> None:
    primary = FailingBackend(ort(tiny), fail_calls=(2,))
    spare = FailingBackend(ort(tiny))
    recs = recordings()
    mon, summary, lines = run(
        tiny, primary, recs, tmp_path / "e.jsonl", max_batch=4, fallbacks=[spare]
    )
    assert_exact_accounting(mon, summary, lines, recs)
    assert summary.classified == summary.windows == 21 and summary.rejected == 0
    assert summary.backend_errors == 0 and summary.backend_switches == []
    assert [ok for _, ok in primary.calls].count(False) == 1  # failed once, retried once
    assert spare.activations == 0 and not of_type(lines, "backend")
    assert probabilities(lines) == reference


@pytest.mark.realdata
@pytest.mark.parametrize(
    "error", [lambda: MemoryError(OOM), lambda: RuntimeError("ORT Run failed: execution")]
)
def test_persistent_error_falls_back_and_no_window_is_lost(
    tiny: DeployedModel, reference: dict, tmp_path: Path, error: Callable[[], BaseException]
) -> None:
    primary = FailingBackend(ort(tiny), error=error, fail_from=3)
    spare = FailingBackend(ort(tiny))  # a second real session, failing nothing
    recs = recordings()
    view = io.StringIO()
    from rich.console import Console

    mon, summary, lines = run(
        tiny,
        primary,
        recs,
        tmp_path / "e.jsonl",
        extra_sinks=(LiveView(Console(file=view, width=200)),),
        max_batch=4,
        fallbacks=[spare],
    )
    assert_exact_accounting(mon, summary, lines, recs)
    assert summary.classified == summary.windows == 21 and summary.rejected == 0
    # Two tries on the primary for the failing batch, then the same batch on the spare.
    assert [ok for _, ok in primary.calls] == [True, True, False, False]
    failed_batch = primary.calls[2][0]
    assert spare.calls[0] == (failed_batch, True)
    assert primary.classified + spare.classified == 21
    assert not primary.is_active and not spare.is_active  # released: at the switch, at the end
    # One switch, reported once: sinks, summary, summary text, live view.
    text = type(error()).__name__
    (switch,) = summary.backend_switches
    assert switch["from"].startswith("failing on cpu") and switch["windows"] == failed_batch
    assert switch["reason"].startswith(f"{text}: ") and switch["skipped"] == []
    (line,) = of_type(lines, "backend")
    assert line["from"] == switch["from"] and line["reason"] == switch["reason"]
    assert line["windows"] == failed_batch
    assert any(s.startswith("backend switched at") for s in summary.lines())
    assert "switched from failing on cpu" in view.getvalue()
    assert lines[-1]["backend_switches"] == summary.backend_switches
    # The re-run batch and everything after it: the same probabilities a clean run gives.
    got = probabilities(lines)
    assert got.keys() == reference.keys()
    for k, p in got.items():
        np.testing.assert_allclose(p, reference[k], atol=1e-6, err_msg=str(k))


@pytest.mark.realdata
def test_a_fallback_that_fails_to_start_is_skipped_with_its_reason(
    tiny: DeployedModel, tmp_path: Path
) -> None:
    primary = FailingBackend(ort(tiny), fail_from=1)
    broken = FailingBackend(ort(tiny), fail_activations=(1,))
    spare = FailingBackend(ort(tiny))
    recs = recordings()
    mon, summary, lines = run(
        tiny, primary, recs, tmp_path / "e.jsonl", max_batch=4, fallbacks=[broken, spare]
    )
    assert_exact_accounting(mon, summary, lines, recs)
    assert summary.classified == 21 and broken.calls == [] and spare.classified == 21
    (switch,) = summary.backend_switches
    assert switch["skipped"] == ["failing fp32: BackendUnavailable: failing: injected: device lost"]
    assert of_type(lines, "backend")[0]["skipped"] == switch["skipped"]


@pytest.mark.realdata
def test_when_every_backend_fails_windows_are_rejected_with_the_reason_and_the_run_goes_on(
    tiny: DeployedModel, tmp_path: Path
) -> None:
    primary = FailingBackend(ort(tiny), fail_from=3)
    spare = FailingBackend(ort(tiny), error=lambda: MemoryError("out of host memory"), fail_from=1)
    recs = recordings()
    mon, summary, lines = run(
        tiny, primary, recs, tmp_path / "e.jsonl", max_batch=4, fallbacks=[spare]
    )
    assert_exact_accounting(mon, summary, lines, recs)
    assert summary.ok and summary.stopped_by == "source ended"  # the run went on to the end
    assert summary.classified == primary.classified > 0
    assert summary.rejected == 21 - primary.classified
    assert summary.rejected_by_reason == {"backend error": summary.rejected}
    # The spare got every later batch too (two tries each): the run kept trying.
    assert spare.classified == 0 and sum(n for n, _ in spare.calls) == 2 * summary.rejected
    assert summary.backend_errors == len(spare.calls) // 2 >= 2
    assert len(summary.backend_switches) == 1 and len(of_type(lines, "backend")) == 1
    reasons = {d["reason"] for d in of_type(lines, "window") if d["status"] == "rejected"}
    assert reasons == {"backend error: MemoryError: out of host memory; no fallback left"}
    ends = [d for d in of_type(lines, "stream") if d["event"] == "end"]
    assert {d["stream"] for d in ends} == set(recs)  # every stream ended after its results


@pytest.mark.realdata
def test_no_fallback_starts_so_the_failed_backend_is_restarted_and_tried_again(
    tiny: DeployedModel, tmp_path: Path
) -> None:
    primary = FailingBackend(ort(tiny), fail_calls=(1, 2))  # one bad batch, then well again
    broken = FailingBackend(ort(tiny), fail_activations=(1,))
    recs = recordings()
    mon, summary, lines = run(
        tiny, primary, recs, tmp_path / "e.jsonl", max_batch=4, fallbacks=[broken]
    )
    assert_exact_accounting(mon, summary, lines, recs)
    first = primary.calls[0][0]
    assert summary.rejected == first and summary.classified == 21 - first
    assert primary.activations == 2 and summary.backend_switches == []
    (reason,) = {d["reason"] for d in of_type(lines, "window") if d["status"] == "rejected"}
    assert reason == (
        f"backend error: RuntimeError: {OOM}; no fallback left (failed to start: "
        "failing fp32: BackendUnavailable: failing: injected: device lost)"
    )


@pytest.mark.realdata
def test_no_backend_left_rejects_every_later_window_with_the_reason(
    tiny: DeployedModel, tmp_path: Path
) -> None:
    primary = FailingBackend(ort(tiny), fail_from=2, fail_activations=(2,))
    broken = FailingBackend(ort(tiny), fail_activations=(1,))
    recs = recordings()
    mon, summary, lines = run(
        tiny, primary, recs, tmp_path / "e.jsonl", max_batch=4, fallbacks=[broken]
    )
    assert_exact_accounting(mon, summary, lines, recs)
    first = primary.calls[0][0]
    assert summary.classified == first and summary.rejected == 21 - first
    assert len(primary.calls) == 3  # nothing ran after the restart failed
    not_started = " (failed to start: failing fp32: BackendUnavailable: failing: injected: "
    not_started += "device lost)"
    reasons = Counter(d["reason"] for d in of_type(lines, "window") if d["status"] == "rejected")
    assert reasons == {
        # the batch that failed, with why nothing could take over
        f"backend error: RuntimeError: {OOM}; no fallback left{not_started}": primary.calls[1][0],
        # every later one: nothing is running any more
        "backend error: no backend left (failing on cpu, fp32, unlimited could not restart: "
        "BackendUnavailable: failing: injected: device lost)" + not_started: 21
        - first
        - primary.calls[1][0],
    }
    assert summary.ok  # a backend failure is not a run error: the log says what happened


# ====================================================================== the chain from selection


OPENVINO_CHAIN = (
    ["openvino CPU int8", "openvino CPU fp32"] if importlib.util.find_spec("openvino") else []
)


def test_the_fallback_chain_follows_the_selection_plan(tmp_path: Path) -> None:
    m = DeployedModel.load(make_model_dir(tmp_path / "m", precisions=("fp32", "fp16", "int8")))
    backend, why, chain = activate_backend(m)
    try:
        assert backend.precision == "int8" and why.startswith("onnxruntime CPU int8")
        # OpenVINO (the openvino extra) comes after ONNX Runtime in the static order.
        assert [c.label.split(" (")[0] for c in chain] == [
            "onnxruntime CPU fp32",
            "onnxruntime CPU fp16",
            *OPENVINO_CHAIN,
        ]
        assert not any(c.family == "torch" for c in chain)  # no weights in this directory
    finally:
        backend.deactivate()
    # An explicit choice still falls back, to what comes after it in auto's order.
    backend, why, chain = activate_backend(m, "onnxruntime", "fp32")
    try:
        assert backend.precision == "fp32" and why.startswith("requested onnxruntime")
        assert [c.label.split(" (")[0] for c in chain] == ["onnxruntime CPU fp16", *OPENVINO_CHAIN]
    finally:
        backend.deactivate()


def test_run_monitor_falls_back_along_the_plan(tmp_path: Path, monkeypatch) -> None:
    """``mrm-edge monitor``'s path: INT8 is chosen, its session starts failing (injected by
    patching ORT's run for the INT8 file only), the run moves to FP32 and loses nothing."""
    from rich.console import Console

    d = make_model_dir(tmp_path / "m", precisions=("fp32", "int8"))
    real_infer = OnnxRuntimeBackend._infer
    calls = Counter()

    def int8_runs_out_of_memory(self: OnnxRuntimeBackend, x: np.ndarray) -> np.ndarray:
        calls[self.precision] += 1
        if self.precision == "int8" and calls["int8"] > 1:
            raise RuntimeError(OOM)
        return real_infer(self, x)

    monkeypatch.setattr(OnnxRuntimeBackend, "_infer", int8_runs_out_of_memory)
    out = io.StringIO()
    log = tmp_path / "e.jsonl"
    recs = synthetic(3, 15.0, fs=100)
    summary = run_monitor(
        d,
        ArraySource(recs, speed=None),
        MonitorConfig(max_batch=4),
        events_path=log,
        ui=False,
        console=Console(file=out, width=200),
    )
    lines = parse(log)
    assert summary.ok and summary.classified == summary.windows == 18 and summary.rejected == 0
    assert lines[0]["backend"].startswith("onnxruntime on cpu, int8")
    assert summary.backend.startswith("onnxruntime on cpu, fp32")
    (switch,) = summary.backend_switches
    assert switch["to"] == summary.backend and switch["reason"] == f"RuntimeError: {OOM}"
    assert calls["int8"] == 3 and calls["fp32"] >= 1
    assert "backend switched at" in out.getvalue() and len(of_type(lines, "backend")) == 1
    assert Counter(d["stream"] for d in of_type(lines, "window")) == {
        sid: expected_windows(len(x), fs) for sid, (x, fs) in recs.items()
    }


def test_no_backend_is_freed_under_an_inference_the_monitor_abandoned(
    tmp_path: Path, monkeypatch
) -> None:
    """A stop without draining gives a stuck inference ``_WORKER_ABANDON_S``, then ends the
    run without it. That call is still inside its backend: nothing may deactivate the backend
    under it (a native session freed under a running call crashes the process); it is left
    to its owner once the call has returned."""
    from mrm_edge.runtime import engine

    monkeypatch.setattr(engine, "_WORKER_ABANDON_S", 0.3)
    m = DeployedModel.load(make_model_dir(tmp_path / "m"))
    stuck = SlowBackend(ort(m), delay_s=3.0)
    mon = Monitor(m, stuck, ArraySource(synthetic(2, 12.0, fs=100), speed=None))

    def stop_once_inside() -> None:
        deadline = time.monotonic() + 60
        while not mon.chain.in_use and time.monotonic() < deadline:
            time.sleep(0.01)
        mon.stop("test", drain=False)

    stopper = threading.Thread(target=stop_once_inside)
    stopper.start()
    summary = mon.run()
    stopper.join()
    assert any("inference did not finish" in e for e in summary.errors), summary.errors
    assert mon.chain.in_use and stuck.is_active  # released would mean freed under the call
    deadline = time.monotonic() + 60
    while mon.chain.in_use and time.monotonic() < deadline:
        time.sleep(0.05)
    mon.chain.release()  # the call has returned: now it goes
    assert not stuck.is_active


def test_a_stop_drains_for_a_bounded_time_then_drops_the_rest(
    small: DeployedModel, tmp_path: Path, monkeypatch
) -> None:
    """A slow backend behind a deep queue: a stop classifies what it can within
    ``_DRAIN_S`` and drops the rest, counted, so the stop ends in bounded time (a service
    manager's stop timeout would otherwise SIGKILL the run before its summary)."""
    from mrm_edge.runtime import engine

    monkeypatch.setattr(engine, "_DRAIN_S", 0.5)
    slow = SlowBackend(ort(small), delay_s=0.2)
    src = ArraySource(synthetic(8, 60.0, fs=100), speed=None)
    log = tmp_path / "e.jsonl"
    config = MonitorConfig(max_batch=1, overload="block")
    mon = Monitor(small, slow, src, config, sinks=[JsonlSink(log)])

    def stop_when_queued() -> None:
        deadline = time.monotonic() + 60
        while len(mon.batcher) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        mon.stop("test")  # drain=True: the first signal

    stopper = threading.Thread(target=stop_when_queued)
    stopper.start()
    t0 = time.monotonic()
    summary = mon.run()
    took = time.monotonic() - t0
    stopper.join()
    lines = parse(log)
    assert_conserved(mon, summary)
    assert_log_matches(lines, summary)
    causes = Counter(d["cause"] for d in of_type(lines, "dropped"))
    assert causes["stopped before inference"] >= 40, causes  # 50 queued, ~3 classified
    assert summary.classified > 0 and not summary.errors
    assert took < 30, took  # 50 x 0.2 s would be 10 s more; generous for a loaded CI


# ====================================================================== overload


class Sampler:
    """Samples the batcher's depth and this process's RSS from a thread while a run goes."""

    def __init__(self, mon: Monitor, every_s: float = 0.002) -> None:
        self.mon, self.every_s = mon, every_s
        self.depths: list[int] = []
        self.rss: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.depths.append(len(self.mon.batcher))
            self.rss.append(rss_bytes())
            time.sleep(self.every_s)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/statm (pages)."""
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> DeployedModel:
    """A card and a small real ONNX graph: inference is cheap, so the doubles set the pace."""
    return DeployedModel.load(make_model_dir(tmp_path_factory.mktemp("small") / "m"))


MANY = (32, 180.0)  # streams, seconds: 32 x 171 windows, ~260 MB of windows if all were kept


@pytest.fixture(scope="module")
def many() -> dict[str, Any]:
    """Many streams at 100 Hz (the model's rate: no resampling, so the producer is as fast
    as it gets); read-only here, shared by the overload tests."""
    n, seconds = MANY
    return {f"p{i:02d}": rec for i, rec in enumerate(synthetic(n, seconds, 100).values())}


@pytest.mark.parametrize("slow", ["backend", "sink"])
@pytest.mark.parametrize("policy", ["drop-oldest", "drop-newest", "block"])
def test_overload_sheds_counted_windows_within_the_memory_bound(
    small: DeployedModel, many: dict[str, Any], tmp_path: Path, policy: str, slow: str
) -> None:
    recs, (n_streams, seconds) = many, MANY
    max_queue, max_batch = 16, 4
    backend: Backend = OnnxRuntimeBackend(small.onnx["fp32"].path, intra_op_threads=1)
    sinks: list[Sink] = []
    if slow == "backend":
        backend = SlowBackend(backend, delay_s=0.01)
    else:
        # Each sink has its own queue now (a slow sink alone no longer slows the engine);
        # one that has fallen a whole (small) queue behind makes the producer wait, and the
        # overload is then shed by the batcher's policy like a slow backend's.
        sinks.append(SlowSink(delay_s=0.0015, queue_capacity=8))
    log = tmp_path / "e.jsonl"
    src = ArraySource(recs, chunk_seconds=2.0, speed=None)
    mon = Monitor(
        small,
        backend,
        src,
        MonitorConfig(
            max_batch=max_batch,
            max_delay_ms=0,
            max_queue=max_queue,
            overload=policy,
            put_timeout_s=0.0005,  # block: the source waits this long for room, then sheds
        ),
        sinks=[JsonlSink(log), *sinks],
    )
    baseline = rss_bytes()
    with Sampler(mon) as sampler:
        summary = mon.run()
    lines = parse(log)
    assert_exact_accounting(mon, summary, lines, recs)
    per_stream = expected_windows(int(seconds * 100), 100)
    assert summary.windows == n_streams * per_stream
    # Shedding happened, and only by the policy, counted the same by batcher and summary.
    stats = mon.batcher.stats
    assert summary.dropped > 0 and summary.rejected == 0
    assert summary.dropped_by_cause == {f"overload ({policy})": summary.dropped}
    shed = stats.dropped_oldest if policy == "drop-oldest" else stats.dropped_newest
    assert shed == summary.dropped and stats.dropped == shed
    assert stats.submitted == summary.windows and stats.dispatched == summary.classified
    # The bound held the whole time: sampled from outside, and the batcher's own peak.
    assert len(sampler.depths) > 10 and max(sampler.depths) <= max_queue
    assert stats.max_depth <= max_queue and summary.max_queue_depth == stats.max_depth
    # Memory: a full queue is 16 windows (~0.8 MB). Growth stays under 200 MB, less than the
    # windows produced would take if they were held instead of shed.
    kept = summary.windows * small.card.window_samples * 12 * 4
    growth = max(sampler.rss) - baseline
    assert growth < 200 * 2**20 < kept, f"RSS grew {growth / 2**20:.0f} MB while shedding"
