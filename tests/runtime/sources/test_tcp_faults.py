"""Live sources at fault: stalls, disconnects, reconnects and bad bytes.

First at the source (TcpSource, StdinSource on a real pipe), then through the real Monitor
with the shipped model on ONNX Runtime and real sockets: a faulty device ends only its own
stream, with a one-line reason saying what was expected; the windows it sent before the
fault are classified; a concurrent well-behaved device is classified in full; the
accounting is exact (every window the preprocessors produced has exactly one result)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.app import open_monitor
from mrm_edge.runtime.backends import OnnxRuntimeBackend
from mrm_edge.runtime.config import MonitorConfig
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.sinks.jsonl import JsonlSink
from mrm_edge.runtime.sources.base import DEFAULT_STALL_TIMEOUT_S, Chunk
from mrm_edge.runtime.sources.framing import FrameEncoder
from mrm_edge.runtime.sources.registry import SourceOptions, make_source
from mrm_edge.runtime.sources.stdin import StdinSource
from mrm_edge.runtime.sources.tcp import TcpSource

from mrm_edge.data.signal import resample
from mrm_edge.records import read_recording
from tests.runtime.sources import collect

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "models" / "mrm-net-ptbxl-superdiagnostic"
FS = 500  # PTB-XL _hr records
HOP_S = 5.0  # few windows per stream: the shipped model takes ~0.1 s a window on CPU
X = np.random.default_rng(2).normal(0, 0.5, size=(400, 12)).astype(np.float32)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def hung_up(sock: socket.socket) -> bool:
    try:
        return sock.recv(16) == b""
    except ConnectionResetError:
        return True


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.02)


# ------------------------------------------------------------------ at the source


def test_a_silent_device_is_marked_stalled_and_resumes_on_the_same_connection() -> None:
    with TcpSource(stall_timeout_s=0.3) as src, connect(src.port) as dev:
        enc = FrameEncoder("bed-1", 100)
        dev.sendall(enc.hello() + enc.data(X[:100]))
        t0 = time.monotonic()
        first = collect(src, n_ends=1, timeout=5)
        assert time.monotonic() - t0 >= 0.25
        assert first.ends == {"bed-1": ["stalled (no data for 0.3 s)"]}
        np.testing.assert_array_equal(first.signal("bed-1"), X[:100])
        assert "bed-1" in src.sessions.live  # the connection is kept open
        assert any("'bed-1': stalled (no data for 0.3 s); waiting" in p for p in src.problems)

        dev.sendall(enc.data(X[100:200]) + enc.end())  # the device wakes up
        second = collect(src, n_ends=1, timeout=5)
    assert not second.timed_out
    np.testing.assert_array_equal(second.signal("bed-1"), X[100:200])
    assert second.chunks["bed-1"][0].timestamp == pytest.approx(1.0)  # its clock went on
    assert second.ends == {"bed-1": ["ended by device"]}  # one end per stall, one at END


def test_a_stall_inside_a_frame_says_how_much_of_it_came() -> None:
    with TcpSource(stall_timeout_s=0.3) as src, connect(src.port) as dev:
        enc = FrameEncoder("bed-2", 100)
        frame = enc.data(X[:10])  # 13 + 10 x 12 x 4 = 493 bytes
        head = enc.hello() + enc.data(X[:50])
        dev.sendall(head + frame[:100])
        got = collect(src, n_ends=1, timeout=5)
        np.testing.assert_array_equal(got.signal("bed-2"), X[:50])
        assert got.ends["bed-2"] == [
            f"stalled (no data for 0.3 s, mid-frame: 100 of 493 bytes of a frame type 0x01 "
            f"at byte {len(head)})"
        ]
        dev.sendall(frame[100:] + enc.end())  # the rest of the frame, late: still good
        late = collect(src, n_ends=1, timeout=5)
    np.testing.assert_array_equal(late.signal("bed-2"), X[:10])
    assert late.ends == {"bed-2": ["ended by device"]}


def test_a_stalled_device_that_then_goes_idle_is_closed_without_a_second_end() -> None:
    with TcpSource(stall_timeout_s=0.2, idle_timeout_s=0.6) as src, connect(src.port) as dev:
        enc = FrameEncoder("bed-3", 100)
        dev.sendall(enc.hello() + enc.data(X[:10]))
        closed = "'bed-3': stalled (no data for 0.6 s); connection closed"
        wait_until(lambda: any(closed in p for p in src.problems), what=closed)
        assert hung_up(dev)
        got = collect(src, timeout=0.5)  # what was queued meanwhile: one end only
    assert got.ends == {"bed-3": ["stalled (no data for 0.2 s)"]}


def test_a_reconnect_takes_over_a_stalled_stream_at_once() -> None:
    with TcpSource(stall_timeout_s=0.3) as src:
        old = connect(src.port)  # its network went away: the socket is half dead
        enc = FrameEncoder("bed-4", 100)
        old.sendall(enc.hello() + enc.data(X[:100]))
        first = collect(src, n_ends=1, timeout=5)
        assert first.ends == {"bed-4": ["stalled (no data for 0.3 s)"]}
        with connect(src.port) as new:  # the device, back on a new connection
            enc2 = FrameEncoder("bed-4", 100, first_index=150)
            new.sendall(enc2.hello() + enc2.data(X[100:200]) + enc2.end())
            second = collect(src, n_ends=1, timeout=5)
        assert hung_up(old)
        old.close()
    np.testing.assert_array_equal(second.signal("bed-4"), X[100:200])
    assert second.chunks["bed-4"][0].timestamp == pytest.approx(1.5)
    assert second.ends == {"bed-4": ["ended by device"]}
    assert any("'bed-4': replaced by a reconnect from 127.0.0.1:" in p for p in src.problems)


def test_a_connected_live_stream_is_still_not_taken_over() -> None:
    with TcpSource(stall_timeout_s=30) as src, connect(src.port) as dev:
        enc = FrameEncoder("bed-5", 100)
        dev.sendall(enc.hello() + enc.data(X[:10]))
        wait_until(lambda: "bed-5" in src.sessions.live)
        with connect(src.port) as impostor:
            impostor.sendall(FrameEncoder("bed-5", 100).hello())
            assert hung_up(impostor)
        dev.sendall(enc.data(X[10:20]) + enc.end())
        got = collect(src, n_ends=1, timeout=5)
    np.testing.assert_array_equal(got.signal("bed-5"), X[:20])
    assert got.ends == {"bed-5": ["ended by device"]}


def test_a_stalled_pipe_resumes_in_the_same_iteration() -> None:
    r, w = os.pipe()
    enc = FrameEncoder("pipe-2", 100)
    with os.fdopen(r, "rb", buffering=0) as reader, os.fdopen(w, "wb", buffering=0) as writer:
        src = StdinSource(reader, label="pipe", stall_timeout_s=0.3)

        def device() -> None:
            writer.write(enc.hello() + enc.data(X[:50]))
            time.sleep(0.8)
            writer.write(enc.data(X[50:80]) + enc.end())
            writer.close()

        t = threading.Thread(target=device)
        t.start()
        got = collect(src, n_ends=2, timeout=10)
        t.join()
    assert not got.timed_out
    assert got.ends == {"pipe-2": ["stalled (no data for 0.3 s)", "ended by device"]}
    kinds = ["chunk" if isinstance(e, Chunk) else "end" for e in got.order]
    assert kinds == ["chunk", "end", "chunk", "end"]
    np.testing.assert_array_equal(got.signal("pipe-2"), X[:80])


def test_the_stall_timeout_is_a_knob_with_a_default() -> None:
    assert DEFAULT_STALL_TIMEOUT_S == 5.0
    with (
        make_source("tcp:127.0.0.1:0") as default,
        make_source("tcp:127.0.0.1:0", SourceOptions(stall_timeout_s=1.5)) as chosen,
    ):
        assert default.stall_timeout_s == 5.0
        assert chosen.stall_timeout_s == 1.5
    assert make_source("stdin", SourceOptions(stall_timeout_s=None)).stall_timeout_s is None
    with pytest.raises(ValueError, match=r"stall_timeout_s is 0, expected > 0 or None"):
        TcpSource(stall_timeout_s=0)


# ------------------------------------------------------------------ through the Monitor


@pytest.fixture(scope="module")
def model() -> DeployedModel:
    return DeployedModel.load(SHIPPED)


@pytest.fixture(scope="module")
def backend(model: DeployedModel):
    be = OnnxRuntimeBackend(model.onnx["fp32"].path, providers=["CPUExecutionProvider"])
    be.activate()
    yield be
    be.deactivate()


@pytest.fixture(scope="module")
def ecg(ptbxl_root: Path) -> dict[str, np.ndarray]:
    """Real 12-lead signals [n, 12] mV at 500 Hz, PTB-XL records (read through wfdb) back
    to back: "bad" 30 s, "good" 20 s."""

    def rec(i: int) -> np.ndarray:
        r = read_recording(ptbxl_root / f"records500/00000/{i:05d}_hr.hea")
        assert r.sampling_rate == FS
        return r.signal.T.astype(np.float32)

    return {
        "bad": np.concatenate([rec(1), rec(2), rec(5)]),
        "good": np.concatenate([rec(3), rec(4)]),
    }


class Run:
    """A Monitor on ``source`` in a thread, writing a real JSONL event log."""

    def __init__(self, model: DeployedModel, backend, source: TcpSource, log: Path) -> None:
        self.log, self.source, self.model, self.backend = log, source, model, backend
        self._opened = contextlib.ExitStack()  # closed by stop(): the source, as in use
        config = MonitorConfig(hop_s=HOP_S, max_delay_ms=20)
        self.mon = self._opened.enter_context(
            open_monitor(model, source, config, backend, sinks=[JsonlSink(log)])
        )
        self.result: dict = {}
        self.thread = threading.Thread(target=lambda: self.result.update(s=self.mon.run()))
        self.thread.start()

    def lines(self) -> list[dict]:
        text = self.log.read_text() if self.log.exists() else ""
        return [json.loads(s) for s in text.splitlines() if s.endswith("}")]

    def ends(self) -> dict[tuple[str, int], str]:
        return {
            (d["stream"], d["segment"]): d["detail"]
            for d in self.lines()
            if d["type"] == "stream" and d["event"] == "end"
        }

    def wait_end(self, sid: str, segment: int = 0, timeout: float = 60) -> str:
        wait_until(lambda: (sid, segment) in self.ends(), timeout, f"{sid}#{segment} to end")
        return self.ends()[(sid, segment)]

    def stop(self):
        self.mon.stop("test done")
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        self._opened.close()
        summary = self.result["s"]
        assert summary.ok, summary.errors
        assert summary.dropped == 0
        windows = [d for d in self.lines() if d["type"] == "window"]
        for sid, n in self.mon.accounting.windows_produced.items():  # exactly one result per window
            assert sum(d["stream"] == sid for d in windows) == n, sid
        return windows

    def check_classified(self, windows: list[dict], sid: str, segment: int, x: np.ndarray):
        """The segment's windows are those of offline inference on ``x`` (its signal)."""
        offline = resample(x.T, FS, self.model.card.sampling_rate)  # [12, n] at the model's rate
        win, hop = self.model.card.window_samples, round(HOP_S * self.model.card.sampling_rate)
        n = (offline.shape[1] - win) // hop + 1
        assert n >= 1, "the test sends too little signal for a window"
        got = sorted(
            (d for d in windows if d["stream"] == sid and d["segment"] == segment),
            key=lambda d: d["start"],
        )
        assert [d["start"] for d in got] == [k * hop for k in range(n)], (sid, segment)
        assert all(d["status"] == "ok" for d in got), [d.get("reason") for d in got]
        cut = np.stack([offline[:, k * hop : k * hop + win] for k in range(n)])
        expect = self.backend.infer(np.ascontiguousarray(cut, dtype=np.float32))
        p = np.array([[d["probabilities"][lab] for lab in self.model.card.labels] for d in got])
        np.testing.assert_allclose(p, expect, atol=1e-5)


def send_all(port: int, sid: str, x: np.ndarray, first_index: int = 0) -> None:
    enc = FrameEncoder(sid, FS, first_index=first_index)
    with connect(port) as s:
        s.sendall(enc.hello() + b"".join(enc.data(x[a : a + 100]) for a in range(0, len(x), 100)))
        s.sendall(enc.end())


@pytest.mark.realdata
def test_monitor_stall_marks_only_that_stream_and_resume_opens_a_new_segment(
    model, backend, ecg, tmp_path: Path
) -> None:
    bad, good = ecg["bad"], ecg["good"]
    cut = 15 * FS
    with TcpSource(stall_timeout_s=0.5) as src:
        run = Run(model, backend, src, tmp_path / "events.jsonl")
        dev = connect(src.port)
        enc = FrameEncoder("sleepy", FS)
        dev.sendall(enc.hello() + enc.data(bad[:cut]))
        assert run.wait_end("sleepy") == "stalled (no data for 0.5 s)"
        # While it is stalled, another device is classified from start to end.
        send_all(src.port, "good", good)
        assert run.wait_end("good") == "ended by device"
        assert ("sleepy", 1) not in run.ends()
        dev.sendall(enc.data(bad[cut:]) + enc.end())  # it wakes up, its clock went on
        assert run.wait_end("sleepy", segment=1) == "ended by device"
        dev.close()
        windows = run.stop()
    starts = [(d["stream"], d["segment"], d["event"]) for d in run.lines() if d["type"] == "stream"]
    assert starts.count(("sleepy", 1, "start")) == 1
    run.check_classified(windows, "sleepy", 0, bad[:cut])  # before the stall: 2 windows
    run.check_classified(windows, "sleepy", 1, bad[cut:])  # after: a new segment
    run.check_classified(windows, "good", 0, good)


@pytest.mark.realdata
@pytest.mark.parametrize("how", ["clean", "mid-frame"])
def test_monitor_disconnect_then_reconnect_resumes_the_stream(
    how: str, model, backend, ecg, tmp_path: Path
) -> None:
    bad, good = ecg["bad"], ecg["good"]
    cut = 12 * FS
    with TcpSource(stall_timeout_s=None) as src:
        run = Run(model, backend, src, tmp_path / "events.jsonl")
        enc = FrameEncoder("roamer", FS)
        with connect(src.port) as dev:
            dev.sendall(enc.hello() + enc.data(bad[:cut]))
            if how == "mid-frame":
                dev.sendall(enc.data(bad[cut : cut + 50])[:200])  # then the cable is pulled
        reason = run.wait_end("roamer")
        if how == "clean":
            assert reason == "disconnected"
        else:
            assert reason.startswith("disconnected mid-frame (200 of 2413 bytes of a frame")
        send_all(src.port, "good", good)
        send_all(src.port, "roamer", bad[cut:], first_index=cut)  # back, same id
        assert run.wait_end("roamer", segment=1) == "ended by device"
        assert run.wait_end("good") == "ended by device"
        windows = run.stop()
    run.check_classified(windows, "roamer", 0, bad[:cut])
    run.check_classified(windows, "roamer", 1, bad[cut:])
    run.check_classified(windows, "good", 0, good)


def _fixed(magic=b"MRME", version=1, fmt=2, leads=12, rate=500, sid=b"x") -> bytes:
    return struct.pack("<4sBBBIH", magic, version, fmt, leads, rate, len(sid)) + sid


# What the bad device sends after its first 15 s of good data, what that stream's end
# reason starts with (None: the problem comes after the session, so the stream has ended
# cleanly and the problem line is the only trace), and the problem line's expectation.
BAD_INPUT = {
    "garbage": (b"\xffGET / HTTP/1.1\r\n", "protocol error: unknown frame type 0xff, expected"),
    "data-count": (struct.pack("<BIQ", 1, 0, 7500), "protocol error: DATA frame of 0 samples"),
    "bad-magic": (b"\x02" + _fixed(magic=b"MRMX"), "bad magic b'MRMX', expected b'MRME'"),
    "bad-version": (b"\x02" + _fixed(version=3), "unsupported version 3, expected 1"),
    "bad-leads": (b"\x02" + _fixed(leads=8), "lead count 8, expected 12 (I, II"),
    "bad-rate": (b"\x02" + _fixed(rate=10), "sample rate 10 Hz, expected 50..20000 Hz"),
    "bad-gain": (
        b"\x02" + _fixed(fmt=1) + struct.pack("<12f", *[1000.0] * 11, -1.0),
        "gain of lead V6 is -1.0, expected finite counts/mV > 0",
    ),
    "half-frame-silence": (
        b"half",
        "stalled (no data for 1 s, mid-frame: 13 of 493 bytes of a frame type 0x01",
    ),
    "half-frame-disconnect": (
        b"half",
        "disconnected mid-frame (13 of 493 bytes of a frame type 0x01",
    ),
}


def bad_tail(case: str, enc: FrameEncoder, x: np.ndarray) -> bytes:
    tail, _ = BAD_INPUT[case]
    if case.startswith("half-frame"):
        return enc.data(x[:10])[:13]  # a DATA header, and not one sample of its payload
    return tail


@pytest.mark.realdata
@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_monitor_bad_input_ends_only_that_stream_after_its_good_windows(
    case: str, model, backend, ecg, tmp_path: Path
) -> None:
    bad, good = ecg["bad"], ecg["good"]
    cut = 15 * FS
    _, expected = BAD_INPUT[case]
    with TcpSource(stall_timeout_s=1.0) as src:
        run = Run(model, backend, src, tmp_path / "events.jsonl")
        dev = connect(src.port)
        enc = FrameEncoder("bad", FS)
        # The bad-* tails start with END: a clean session, then a bad HELLO for the next.
        dev.sendall(enc.hello() + enc.data(bad[:cut]) + bad_tail(case, enc, bad[cut:]))
        if case == "half-frame-disconnect":
            dev.close()
        send_all(src.port, "good", good)
        reason = run.wait_end("bad")
        assert run.wait_end("good") == "ended by device"
        if case.startswith("bad-"):  # a bad HELLO for a second session: no stream to end
            assert reason == "ended by device"
            wait_until(lambda: any(expected in p for p in src.problems), what=expected)
            [line] = [p for p in src.problems if expected in p]
            assert line.startswith(f"tcp 127.0.0.1:{dev.getsockname()[1]}: protocol error: ")
            assert line.endswith("; connection closed")
        else:
            assert reason.startswith(expected), reason
            assert "expected" in reason or "of a frame" in reason
            wait_until(lambda: any(expected in p for p in src.problems), what=expected)
        if case != "half-frame-disconnect":
            assert case == "half-frame-silence" or hung_up(dev)
            dev.close()
        windows = run.stop()
    assert "\n" not in reason
    run.check_classified(windows, "bad", 0, bad[:cut])  # what it sent before the fault
    run.check_classified(windows, "good", 0, good)
