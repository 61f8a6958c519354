"""Device limits on real sockets: the HELLO deadline drops a client that holds a connection
without opening a stream (plain, mid-TLS-handshake, after the handshake); the connection
cap refuses the extra connection with a logged reason; a flooding device is throttled,
then cut, while 8 well-behaved devices keep every window (through the real Monitor)."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.app import open_monitor
from mrm_edge.runtime.backends import OnnxRuntimeBackend
from mrm_edge.runtime.config import MonitorConfig
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.sinks.jsonl import JsonlSink
from mrm_edge.runtime.sources.base import Pacer
from mrm_edge.runtime.sources.framing import FrameEncoder
from mrm_edge.runtime.sources.limits import DeviceLimits, RateCeiling
from mrm_edge.runtime.sources.tcp import TcpSource
from mrm_edge.runtime.sources.tls import server_context

from mrm_edge.records import read_recording
from tests.runtime.sources import collect
from tests.runtime.sources.pki import Pki, device_context, tls_connect
from tests.runtime.sources.test_ownership import drain
from tests.runtime.sources.test_tcp import hung_up, wait_until

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "models" / "mrm-net-ptbxl-superdiagnostic"
X = np.random.default_rng(6).normal(0, 0.5, size=(200, 12)).astype(np.float32)


def test_rate_ceiling_throttles_then_cuts() -> None:
    limits = DeviceLimits(rate_ceiling=2.0, rate_burst_s=1.0, rate_cut_s=0.5)
    bucket = RateCeiling(limits, now=0.0)
    assert bucket.take(1.0, now=0.0) == 0.0  # the burst
    assert bucket.take(1.0, now=0.5) == 0.0  # refilled: 2 s of signal per second
    assert bucket.take(1.0, now=0.5) == pytest.approx(0.5)  # 1 s over: 0.5 s to catch up
    assert bucket.take(1.0, now=1.0) == pytest.approx(0.5)
    assert not bucket.must_cut  # throttled 0.5 s so far: not over rate_cut_s yet
    assert bucket.take(1.0, now=1.5) == pytest.approx(0.5)
    assert bucket.must_cut  # throttled 1 s, and over again
    assert bucket.reason(1.5) == "sending 3.3x real time, over the rate ceiling of 2x"


@pytest.mark.parametrize(
    ("jump", "n_frames", "why"),
    [(25 * 100, 5, "index jumps"), (0, 4000, "tiny frames")],
)
def test_what_a_frame_makes_the_monitor_do_counts_against_the_ceiling(
    jump: int, n_frames: int, why: str
) -> None:
    """Issue 20: index jumps (zero-filled downstream) and a flood of 1-sample frames cost
    a device its rate ceiling like signal, though their bytes are few (a few kB here): over
    the 60 s burst, it is throttled."""
    with TcpSource() as src, socket.create_connection(("127.0.0.1", src.port)) as s:
        enc = FrameEncoder("bed-1", 100)
        frames = [enc.data(X[:1], first_index=i * (jump + 1)) for i in range(n_frames)]
        s.sendall(enc.hello() + b"".join(frames))
        wait_until(lambda: any("throttled: sending" in p for p in src.problems), timeout=30)
    [line] = [p for p in src.problems if "throttled" in p]
    assert "over the rate ceiling of 4x" in line, why


def test_a_reconnect_does_not_refill_the_rate_ceiling() -> None:
    """The bucket is the stream's: a device that overdraws it (a 60 s index jump, a few
    bytes), hangs up and comes back at once is cut (throttled past rate_cut_s already),
    where a fresh connection's burst would have let its 0.2 s in."""
    limits = DeviceLimits(rate_ceiling=4.0, rate_burst_s=1.0)
    enc = FrameEncoder("bed-1", 50)
    overdraw = enc.data(X[:1]) + enc.data(X[:1], first_index=61 * 50) + enc.end()
    with TcpSource(limits=limits) as src:
        for n, frames in ((1, overdraw), (2, enc.data(X[:10]) + enc.end())):
            with socket.create_connection(("127.0.0.1", src.port)) as s:
                s.sendall(enc.hello() + frames)
                wait_until(lambda n=n: sum(" over the rate" in p for p in src.problems) == n, 20)
                wait_until(lambda: "bed-1" not in src.sessions.live, 20)
    assert "throttled: sending" in src.problems[0] and "cut: sending" in src.problems[-1]


def test_limits_are_checked_and_scale_with_speed() -> None:
    assert DeviceLimits().at_speed(None).rate_ceiling is None  # --speed max: no ceiling
    assert DeviceLimits(rate_ceiling=4).at_speed(2.0).rate_ceiling == 8
    for bad in ({"max_connections": 0}, {"hello_timeout_s": 0}, {"rate_ceiling": -1},
                {"rate_burst_s": float("inf")}):  # fmt: skip
        with pytest.raises(ValueError, match="expected"):
            DeviceLimits(**bad)


def test_hello_deadline_drops_clients_that_hold_a_connection(pki: Pki) -> None:
    limits = DeviceLimits(hello_timeout_s=0.5)
    with TcpSource(tls=server_context(pki.server_files()), limits=limits) as src:
        good = tls_connect(src.port, device_context(pki.ca, pki.devices["device-a"]))
        enc = FrameEncoder("good", 100)
        good.sendall(enc.hello())
        mute = socket.create_connection(("127.0.0.1", src.port), timeout=5)  # no handshake
        half = socket.create_connection(("127.0.0.1", src.port), timeout=5)
        half.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, then silence
        shy = tls_connect(src.port, device_context(pki.ca, pki.devices["device-b"]))  # no HELLO
        t0 = time.monotonic()
        for s in (mute, half, shy):
            assert hung_up(s)
            s.close()
        waited = time.monotonic() - t0
        good.sendall(enc.data(X) + enc.end())  # the device that did say HELLO is untouched
        got = collect(src, n_ends=1)
        good.close()
    assert 0.4 <= waited < 3.0, waited
    np.testing.assert_array_equal(got.signal("good"), X)
    reasons = sorted(p.reason for p in got.problems)
    assert [p.kind for p in got.problems] == ["limit"] * 3
    assert reasons == sorted(
        ["no HELLO within 0.5 s of connecting (TLS handshake not complete); connection closed"] * 2
        + ["no HELLO within 0.5 s of connecting (HELLO not complete); connection closed"]
    )


def test_hello_deadline_in_plain_text() -> None:
    with TcpSource(limits=DeviceLimits(hello_timeout_s=0.3)) as src:
        with socket.create_connection(("127.0.0.1", src.port), timeout=5) as slow:
            slow.sendall(b"MRM")  # a trickle that never completes a HELLO
            assert hung_up(slow)
        [problem] = drain(src)
    assert problem.kind == "limit" and problem.reason.startswith("no HELLO within 0.3 s")


def test_connection_cap_refuses_the_extra_connection(pki: Pki) -> None:
    with TcpSource(
        tls=server_context(pki.server_files()), limits=DeviceLimits(max_connections=2)
    ) as src:
        devs = [
            tls_connect(src.port, device_context(pki.ca, pki.devices[n]))
            for n in ("device-a", "device-b")
        ]
        encs = [FrameEncoder(f"bed-{i}", 100) for i in range(2)]
        for d, e in zip(devs, encs, strict=True):
            d.sendall(e.hello())
        wait_until(lambda: len(src.sessions.live) == 2)
        with socket.create_connection(("127.0.0.1", src.port), timeout=5) as extra:
            assert hung_up(extra)
        for d, e in zip(devs, encs, strict=True):
            d.sendall(e.data(X) + e.end())
        got = collect(src, n_ends=2)
        for d in devs:
            d.close()
    for i in range(2):
        np.testing.assert_array_equal(got.signal(f"bed-{i}"), X)
    [problem] = got.problems
    assert problem.kind == "limit"
    assert problem.reason == "refused, max_connections (2) reached"


# ------------------------------------------------------------------ flood, through the Monitor
FS, HOP_S, GOOD, PACE = 500, 5.0, 8, 10.0  # good devices at 10x real time


def _good_device(port: int, pki: Pki, sid: str, x: np.ndarray, errors: list) -> None:
    try:
        with tls_connect(port, device_context(pki.ca, pki.devices["device-a"])) as s:
            enc = FrameEncoder(sid, FS)
            s.sendall(enc.hello())
            pacer, step = Pacer(PACE), FS // 5
            for a in range(0, len(x), step):
                pacer.wait_until((a + step) / FS)
                s.sendall(enc.data(x[a : a + step]))
            s.sendall(enc.end())
    except OSError as e:
        errors.append(f"{sid}: {e}")


@pytest.mark.realdata
def test_a_flooding_device_is_throttled_then_cut_while_8_devices_keep_every_window(
    pki: Pki, ptbxl_root: Path, tmp_path: Path
) -> None:
    recs = [read_recording(ptbxl_root / f"records500/00000/{i:05d}_hr.hea").signal.T
            for i in range(1, 3)]  # fmt: skip
    x = np.concatenate(recs).astype(np.float32)  # 20 s: three windows at hop 5 s
    flood = np.tile(x, (30, 1))  # 600 s, sent as fast as the socket takes it
    model = DeployedModel.load(SHIPPED)
    log = tmp_path / "events.jsonl"
    limits = DeviceLimits(rate_ceiling=20.0, rate_burst_s=5.0, rate_cut_s=1.0)
    backend = OnnxRuntimeBackend(model.onnx["fp32"].path, providers=["CPUExecutionProvider"])
    config = MonitorConfig(hop_s=HOP_S, max_batch=8, max_delay_ms=20)
    with (
        backend,
        TcpSource(tls=server_context(pki.server_files()), limits=limits) as src,
        open_monitor(model, src, config, backend, sinks=[JsonlSink(log)]) as mon,
    ):
        result: dict = {}
        runner = threading.Thread(target=lambda: result.update(s=mon.run()))
        runner.start()
        flooder = tls_connect(src.port, device_context(pki.ca, pki.devices["device-b"]))
        enc = FrameEncoder("flood", FS)
        flood_error: list = []

        def blast() -> None:
            try:
                frames = (enc.data(flood[a : a + 100]) for a in range(0, len(flood), 100))
                flooder.sendall(enc.hello() + b"".join(frames))
            except OSError as e:  # cut by the monitor
                flood_error.append(e)

        blaster = threading.Thread(target=blast)
        blaster.start()
        errors: list = []
        goods = [threading.Thread(target=_good_device, args=(src.port, pki, f"bed-{i}", x, errors))
                 for i in range(GOOD)]  # fmt: skip
        for t in goods:
            t.start()
        blaster.join(timeout=60)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            lines = [json.loads(s) for s in log.read_text().splitlines()]
            ended = {d["stream"] for d in lines if d["type"] == "stream" and d["event"] == "end"}
            if ended >= {f"bed-{i}" for i in range(GOOD)} | {"flood"}:
                break
            time.sleep(0.2)
        mon.stop("test done")
        runner.join(timeout=60)
        flooder.close()
        for t in goods:
            t.join(timeout=10)
    assert not errors, errors
    summary = result["s"]
    assert summary.ok and summary.dropped == 0
    lines = [json.loads(s) for s in log.read_text().splitlines()]
    ends = {
        d["stream"]: d["detail"] for d in lines if d["type"] == "stream" and d["event"] == "end"
    }
    assert ends["flood"].startswith("cut: sending "), ends["flood"]
    assert "over the rate ceiling of 20x for 1 s" in ends["flood"]
    throttled = [d for d in lines if d["type"] == "source" and d["reason"].startswith("throttled")]
    assert len(throttled) == 1 and throttled[0]["kind"] == "limit"
    flood_signal_s = summary.per_stream["flood"]["windows"] * HOP_S
    assert flood_signal_s < 100, "the flood was not held back"
    for i in range(GOOD):  # every window of every good device, classified
        sid = f"bed-{i}"
        assert ends[sid] == "ended by device"
        got = sorted(d["start"] for d in lines if d["type"] == "window" and d["stream"] == sid)
        assert got == [0, 500, 1000], sid
        assert summary.per_stream[sid]["classified"] == 3, sid
