"""The lsl source and ``mrm-edge send --lsl`` with real liblsl outlets and inlets on this
machine: liblsl is kept on loopback, in a session of its own, by lsl_api.cfg beside this
file (env LSLAPICFG, set before liblsl first reads its configuration); every test's streams
carry names or a type of their own, so tests never see each other's outlets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

os.environ["LSLAPICFG"] = str(Path(__file__).with_name("lsl_api.cfg"))
try:
    import pylsl
except (ImportError, RuntimeError) as e:  # RuntimeError: pylsl without liblsl (aarch64)
    why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    pytest.skip(f"pylsl with liblsl is not usable ({why}): the lsl extra", allow_module_level=True)

from mrm_edge.runtime.app import open_monitor
from mrm_edge.runtime.backends import OnnxRuntimeBackend
from mrm_edge.runtime.config import MonitorConfig
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.sinks.jsonl import JsonlSink
from mrm_edge.runtime.sources.base import Chunk, SourceProblem, StreamEnd
from mrm_edge.runtime.sources.limits import DeviceLimits
from mrm_edge.runtime.sources.lsl import (
    LslSource,
    SampleClock,
    channel_layout,
    parse_spec,
)
from mrm_edge.runtime.sources.registry import make_source

from mrm_edge.artifacts import default_model_dir
from mrm_edge.data.dataset import LEADS
from mrm_edge.data.signal import resample
from mrm_edge.records import read_recording
from tests.eventlog import read_events, wait_until

MRM_EDGE = [sys.executable, "-m", "mrm_edge.cli"]
WINDOW, HOP, RATE = 1000, 100, 100


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def stream_info(name: str, *, type_: str = "ECG", channels=None, rate=500.0, fmt=None,
                source_id: str = "") -> pylsl.StreamInfo:  # fmt: skip
    """A StreamInfo whose ``channels`` (``[(label, unit)]``, default the 12 leads in mV)
    are described in ``desc`` (None: no description at all)."""
    channels = [(lead, "mV") for lead in LEADS] if channels is None else channels
    n = len(channels) if channels else 12
    info = pylsl.StreamInfo(name, type_, n, rate, fmt or pylsl.cf_float32, source_id)
    if channels:
        desc = info.desc().append_child("channels")
        for label, unit in channels:
            c = desc.append_child("channel")
            c.append_child_value("label", label)
            c.append_child_value("unit", unit)
    return info


# ------------------------------------------------------------------------- units, labels
def test_the_spec_names_a_stream_by_name_or_by_a_property() -> None:
    assert parse_spec("bed-4") == ("name", "bed-4")
    assert parse_spec("type=ECG") == ("type", "ECG")
    assert parse_spec("source_id = cart 12") == ("source_id", "cart 12")
    for bad, why in [("", "expected 1..255"), ("colour=red", "unknown stream property"),
                     ("name=a'b", "without quotes")]:  # fmt: skip
        with pytest.raises(ValueError, match=why):
            parse_spec(bad)
    with pytest.raises(ValueError, match=r"--source 'lsl:'.*expected 1\.\.255"):
        make_source("lsl:")


def test_without_pylsl_the_source_says_which_extra_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pylsl", None)  # import pylsl: ImportError
    with pytest.raises(ValueError, match=r"--source 'lsl:bed-1': the lsl source needs pylsl") as e:
        make_source("lsl:bed-1")
    assert "pip install 'mrm-edge[lsl]'" in str(e.value) and "\n" not in str(e.value)


def test_labels_are_mapped_by_name_and_microvolts_scaled_to_millivolts() -> None:
    # Stored V6..V1 then the limb leads, in µV, with a respiration channel in between.
    stored = [*reversed(LEADS[6:]), "Resp", *LEADS[:6]]
    units = {"Resp": "ohms", **{lead: "microvolts" for lead in LEADS[6:]}}
    info = stream_info("labels", channels=[(s, units.get(s, "millivolts")) for s in stored])
    layout = channel_layout(info)
    assert [stored[i] for i in layout.order] == list(LEADS)
    block = np.arange(13, dtype=np.float32)[None, :] + 1.0  # channel i holds i + 1
    got = layout.leads(block)[0]
    want = [stored.index(lead) + 1.0 for lead in LEADS]
    np.testing.assert_allclose(got, [w * (1e-3 if i >= 6 else 1) for i, w in enumerate(want)])


@pytest.mark.parametrize(
    ("info", "why"),
    [
        (lambda: stream_info("u", channels=[(lead, "V") for lead in LEADS]),
         "field 'unit' of channel 'I' is 'V', expected millivolts"),
        (lambda: stream_info("d", channels=[]), "field 'desc/channels' describes 0 channel"),
        (lambda: stream_info("m", channels=[(lead, "mV") for lead in [*LEADS[:11], "X"]]),
         "field .label. lacks lead\\(s\\) V6"),
        (lambda: stream_info("2", channels=[(lead, "mV") for lead in [*LEADS, "I"]]),
         "names lead\\(s\\) I more than once"),
        (lambda: stream_info("r", rate=0.0), "field 'nominal_srate' is 0 \\(irregular\\)"),
        (lambda: stream_info("h", rate=1e7), "field 'nominal_srate' is 1e\\+07 Hz"),
        (lambda: stream_info("f", rate=250.5), "field 'nominal_srate' is 250.5 Hz"),
        (lambda: stream_info("s", fmt=pylsl.cf_string), "field 'channel_format' is string"),
        (lambda: pylsl.StreamInfo("w", "ECG", 10_000, 500), "field 'channel_count' is 10000"),
    ],
)  # fmt: skip
def test_a_stream_without_what_the_monitor_needs_is_refused_naming_the_field(info, why) -> None:
    with pytest.raises(ValueError, match=why) as e:
        channel_layout(info())
    assert "\n" not in str(e.value)


def test_the_sample_clock_counts_samples_and_turns_skipped_time_into_a_gap() -> None:
    clock = SampleClock(500)
    assert clock.index(100.0, 100) == 0
    assert clock.index(100.2 + 0.01, 100) == 100  # 10 ms late: scheduling jitter, absorbed
    assert clock.index(100.4 + 0.3, 100) == 350  # 300 ms late: 150 samples lost
    assert clock.index(100.9 - 0.2, 100) == 450  # early: counted on, re-anchored
    assert clock.index(100.9, 100) == 550  # on the new anchor's time


# ------------------------------------------------------------------- live, in-process
class Collector:
    """Runs a source on a thread and keeps its events by kind."""

    def __init__(self, source: LslSource) -> None:
        self.source = source
        self.chunks: dict[str, list[Chunk]] = defaultdict(list)
        self.ends: dict[str, list[str]] = defaultdict(list)
        self.problems: list[SourceProblem] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for ev in self.source:
            if isinstance(ev, Chunk):
                self.chunks[ev.stream_id].append(ev)
            elif isinstance(ev, StreamEnd):
                self.ends[ev.stream_id].append(ev.reason)
            else:
                self.problems.append(ev)

    def samples(self, sid: str) -> int:
        return sum(len(c.samples) for c in self.chunks[sid])

    def problem(self, text: str) -> SourceProblem | None:
        return next((p for p in self.problems if text in p.reason), None)

    def close(self) -> None:
        self.source.close()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive(), "close() did not end the iteration"


def outlet(info: pylsl.StreamInfo) -> pylsl.StreamOutlet:
    return pylsl.StreamOutlet(info, max_buffered=60)


def test_hostile_outlets_are_refused_or_bounded_and_a_good_stream_goes_on() -> None:
    """Beside a good 500 Hz stream: outlets with a 10 MHz rate, 10,000 channels, volts, no
    description, an irregular rate; one pushing 60 s of signal at once; one of NaNs."""
    kind = unique("ECG-hostile")
    limits = DeviceLimits(rate_burst_s=5.0, rate_cut_s=1.0)
    source = LslSource("type", kind, limits=limits, stall_timeout_s=None)
    got = Collector(source)
    bad = [
        outlet(stream_info("rate", type_=kind, rate=1e7)),
        outlet(pylsl.StreamInfo("wide", kind, 10_000, 500, pylsl.cf_float32, "")),
        outlet(stream_info("volts", type_=kind, channels=[(lead, "volts") for lead in LEADS])),
        outlet(stream_info("nodesc", type_=kind, channels=[])),
        outlet(stream_info("irregular", type_=kind, rate=0.0)),
    ]
    good, flood, nans = (outlet(stream_info(n, type_=kind)) for n in ("good", "flood", "nan"))
    try:
        for o in (good, flood, nans):
            assert o.wait_for_consumers(10), "the source never opened an inlet"
        x = np.ones((100, 12), np.float32)
        flood.push_chunk(np.zeros((30_000, 12), np.float32))  # 60 s of signal at once
        nans.push_chunk(np.full((100, 12), np.nan, np.float32))
        for _ in range(30):
            good.push_chunk(x)
            time.sleep(0.1)
        wait_until(lambda: got.samples("good") == 3000 and got.ends["flood"], 20, "the flood cut")
        for name, field in [("rate", "nominal_srate"), ("wide", "channel_count"),
                            ("volts", "unit"), ("nodesc", "desc/channels"),
                            ("irregular", "nominal_srate")]:  # fmt: skip
            wait_until(lambda n=name: any(f"'{n}'" in p.where for p in got.problems), 10, name)
            [p] = [p for p in got.problems if f"'{name}'" in p.where]
            assert f"field '{field}'" in p.reason and "\n" not in p.reason, p
        [throttled] = [p for p in got.problems if "throttled" in p.reason]  # said once
        assert throttled.kind == "limit" and "'flood'" in throttled.where
        assert got.ends["flood"][0].startswith("cut: ") and got.problem("cut: ").kind == "limit"
        assert max(len(c.samples) for c in got.chunks["flood"]) <= 250  # bounded pulls
        assert got.samples("flood") < 30_000
        assert np.isnan(np.concatenate([c.samples for c in got.chunks["nan"]])).all()
        stamps = [c.timestamp for c in got.chunks["good"]]
        assert stamps == sorted(stamps) and "good" not in got.ends
    finally:
        got.close()
        del bad


def test_lost_samples_are_a_gap_and_a_silent_outlet_stalls_then_resumes() -> None:
    """Chunks stamped on the outlet's clock: 0.4 s skipped is a gap of 200 samples on the
    sample clock; 1 s of silence (the stall timeout 0.5 s) ends the stream as stalled, and
    samples again resume it (the engine opens a new segment after a stream end)."""
    name = unique("gappy")
    got = Collector(LslSource("name", name, stall_timeout_s=0.5))
    o = outlet(stream_info(name))
    try:
        assert o.wait_for_consumers(10)
        t0, x = pylsl.local_clock(), np.zeros((100, 12), np.float32)
        for first in (0, 100, 400):  # samples 200..399 never sent
            o.push_chunk(x, t0 + (first + 99) / 500)
        wait_until(lambda: got.samples(name) == 300, 10, "the first chunks")
        wait_until(lambda: got.ends[name], 10, "the stall")
        assert got.ends[name] == ["stalled (no samples for 0.5 s)"]
        o.push_chunk(x)
        wait_until(lambda: got.samples(name) == 400, 10, "the resumed chunk")
        *before, after = got.chunks[name]
        indices = [round(c.timestamp * 500) + i for c in before for i in range(len(c.samples))]
        assert indices == [*range(200), *range(400, 500)]
        assert after.timestamp == 0.0  # a new segment's clock
    finally:
        got.close()  # ends the iteration (asserted there)
        del o


def test_several_matching_outlets_are_several_patients_named_by_source_id() -> None:
    kind = unique("ECG-ward")
    got = Collector(LslSource("type", kind, stall_timeout_s=None))
    beds = [outlet(stream_info(f"monitor {i}", type_=kind, source_id=f"bed-{i}")) for i in (1, 2)]
    try:
        for o in beds:
            assert o.wait_for_consumers(10)
        beds.append(outlet(stream_info("monitor 1 again", type_=kind, source_id="bed-1")))
        wait_until(lambda: got.problem("already streams this id"), 10, "the twin refused")
        for o in beds[:2]:
            o.push_chunk(np.zeros((500, 12), np.float32))
        wait_until(lambda: got.samples("bed-1") == got.samples("bed-2") == 500, 10, "both beds")
        assert set(got.chunks) == {"bed-1", "bed-2"}
    finally:
        got.close()
        del beds


# --------------------------------------------------------------------- real processes
def test_send_lsl_streams_equal_the_offline_windows(
    ptbxl_root: Path, cpsc_root: Path, tmp_path: Path
) -> None:
    """`mrm-edge send --lsl` (a subprocess, a PTB-XL record and a 43 s CPSC 2018 one at
    10x) into the monitor (the shipped model) reading ``lsl:type=ECG``: every window is
    there and each classified one equals offline inference on the same window."""
    records = {unique("a"): ptbxl_root / "records500/00000/00001_hr.hea",
               unique("b"): cpsc_root / "A1986.mat"}  # fmt: skip
    model = DeployedModel.load(default_model_dir())
    log = tmp_path / "events.jsonl"
    backend = OnnxRuntimeBackend(model.onnx["fp32"].path, providers=["CPUExecutionProvider"])
    source = make_source("lsl:type=ECG")
    with backend, open_monitor(model, source, MonitorConfig(hop_s=1.0), backend,
                               sinks=[JsonlSink(log)]) as mon:  # fmt: skip
        runner = threading.Thread(target=mon.run)
        runner.start()
        ids = [a for sid in records for a in ("--stream-id", sid)]
        sender = subprocess.run(
            [*MRM_EDGE, "send", "--lsl", "--speed", "10x", "-q", *ids, *map(str, records.values())],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert sender.returncode == 0, sender.stderr

        def ended() -> bool:
            return {e["stream"] for e in read_events(log) if e.get("event") == "end"} >= set(
                records
            )

        wait_until(ended, 30, "both streams' ends")
        mon.stop("test done")
        runner.join(timeout=60)
        events = read_events(log)
        ends = {e["stream"]: e["detail"] for e in events if e.get("event") == "end"}
        for sid, path in records.items():
            assert ends[sid] == "stalled (outlet gone)", ends[sid]
            rec = read_recording(path)
            offline = resample(rec.signal, rec.sampling_rate, RATE)
            n = (offline.shape[1] - WINDOW) // HOP + 1
            got = sorted((e for e in events if e["type"] == "window" and e["stream"] == sid),
                         key=lambda e: e["start"])  # fmt: skip
            assert [e["start"] for e in got] == [k * HOP for k in range(n)], sid
            cut = np.stack([offline[:, k * HOP : k * HOP + WINDOW] for k in range(n)])
            expect = backend.infer(np.ascontiguousarray(cut, dtype=np.float32))
            ok = [e for e in got if e["status"] == "ok"]
            assert len(ok) >= n // 2, [e.get("reason") for e in got]
            for e in ok:
                p = np.array([e["probabilities"][lab] for lab in model.card.labels])
                np.testing.assert_allclose(p, expect[e["start"] // HOP], atol=1e-5, err_msg=sid)


def test_an_outlet_killed_and_restarted_is_stalled_then_resumed(
    ptbxl_root: Path, tmp_path: Path
) -> None:
    """A real `mrm-edge monitor` process on ``lsl:NAME``; the `send --lsl --loop` process
    feeding it is killed (SIGKILL) mid-run and started again: the stream ends as stalled,
    resumes as a new segment of the same stream id, and the monitor runs on."""
    sid, events = unique("bed"), tmp_path / "events.jsonl"
    record = str(ptbxl_root / "records100/00000/00001_lr.hea")
    send = [*MRM_EDGE, "send", "--lsl", "--speed", "3x", "--loop", "-q", "--stream-id", sid, record]
    mon = subprocess.Popen(
        [*MRM_EDGE, "monitor", "--source", f"lsl:{sid}", "--no-ui", "--events", str(events),
         "--stall-timeout", "2", "--backend", "onnxruntime", "--precision", "fp32", "--hop", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    senders = []
    try:
        wait_until(lambda: any(e["type"] == "start" for e in read_events(events)), 120, "start")

        def windows(segment: int) -> list[dict]:
            mine = [e for e in read_events(events) if e.get("stream") == sid]
            return [e for e in mine if e["type"] == "window" and e["segment"] == segment]

        senders.append(subprocess.Popen(send, stderr=subprocess.DEVNULL))
        wait_until(lambda: len(windows(0)) >= 2, 60, "windows before the kill")
        senders[0].kill()
        senders[0].wait()

        def stream(event: str) -> list[dict]:
            return [
                e for e in read_events(events) if e.get("event") == event and e["stream"] == sid
            ]

        wait_until(lambda: stream("end"), 20, "the stall")
        assert stream("end")[0]["detail"].startswith("stalled"), stream("end")
        senders.append(subprocess.Popen(send, stderr=subprocess.DEVNULL))
        wait_until(lambda: len(windows(1)) >= 2, 60, "windows after the restart")
        assert [e["segment"] for e in stream("start")] == [0, 1]
        assert all(e["status"] == "ok" for e in windows(0) + windows(1))
        assert mon.poll() is None, "the monitor stopped"
    finally:
        for s in senders:
            s.kill()
            s.wait()
        mon.send_signal(signal.SIGINT)
        _, err = mon.communicate(timeout=60)
    assert mon.returncode == 0, err
