"""TCP source on loopback: a real sender subprocess, misbehaving clients that end only
their own stream, reconnects, idle and connection limits, and shutdown."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.sources.framing import FrameEncoder
from mrm_edge.runtime.sources.limits import DeviceLimits
from mrm_edge.runtime.sources.tcp import TcpSource

from mrm_edge.records import read_recording
from tests.runtime.sources import collect

RNG = np.random.default_rng(1)
X = RNG.normal(0, 0.5, size=(500, 12)).astype(np.float32)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def hung_up(sock: socket.socket) -> bool:
    """True when the server closed this connection (EOF or reset) within the timeout."""
    try:
        return sock.recv(16) == b""
    except ConnectionResetError:
        return True


@pytest.mark.realdata
@pytest.mark.parametrize("fmt", ["float32", "int16"])
def test_sender_subprocess_streams_real_records(
    fmt: str, ptbxl_root: Path, cpsc_root: Path
) -> None:
    paths = [ptbxl_root / "records500/00000/00003_hr.hea", cpsc_root / "A1981.mat"]
    with TcpSource() as src:
        cmd = [sys.executable, "-m", "mrm_edge.cli", "send", "--port", str(src.port),
               "--speed", "max", "--format", fmt, "-q", *map(str, paths)]  # fmt: skip
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        try:
            got = collect(src, n_ends=2, timeout=30)
        finally:
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not got.timed_out
    for path in paths:
        rec = read_recording(path)
        x = rec.signal.T
        if fmt == "float32":
            np.testing.assert_array_equal(got.signal(rec.name), x)
        else:  # default gain 1000 counts/mV: within half a count
            assert np.max(np.abs(got.signal(rec.name) - x)) <= 0.5e-3 + 1e-6
        chunks = got.chunks[rec.name]
        starts = np.cumsum([0] + [len(c.samples) for c in chunks[:-1]]) / rec.sampling_rate
        assert [c.timestamp for c in chunks] == list(starts)  # index / rate
        assert {c.sample_rate for c in chunks} == {rec.sampling_rate}
        assert got.ends[rec.name] == ["ended by device"]


def test_bad_clients_end_only_their_own_stream() -> None:
    with TcpSource() as src:
        good = connect(src.port)
        enc = FrameEncoder("good", 250)
        good.sendall(enc.hello() + enc.data(X[:100]))

        garbage = connect(src.port)  # not MRME at all: no stream to end
        garbage.sendall(b"GET / HTTP/1.1\r\nHost: monitor\r\n\r\n")

        bad = connect(src.port)  # valid HELLO, then an unknown frame type
        benc = FrameEncoder("bad", 250)
        bad.sendall(benc.hello() + benc.data(X[:10]) + b"\x07junk")

        cut = connect(src.port)  # hangs up halfway through a frame
        cenc = FrameEncoder("cut", 250)
        half = cenc.data(X[:50])
        half = half[: len(half) // 2]
        cut.sendall(cenc.hello() + cenc.data(X[:20]) + half)
        cut.close()

        good.sendall(enc.data(X[100:]) + enc.end())
        got = collect(src, n_ends=3)
        assert hung_up(garbage) and hung_up(bad)
        for s in (good, garbage, bad):
            s.close()
    assert not got.timed_out
    assert set(got.ends) == {"good", "bad", "cut"}
    np.testing.assert_array_equal(got.signal("good"), X)  # intact
    assert got.ends["good"] == ["ended by device"]
    [bad_reason] = got.ends["bad"]
    assert bad_reason.startswith("protocol error: unknown frame type 0x07, expected 0x01")
    np.testing.assert_array_equal(got.signal("bad"), X[:10])  # its good part still arrived
    [cut_reason] = got.ends["cut"]
    assert cut_reason.startswith("disconnected mid-frame (")
    np.testing.assert_array_equal(got.signal("cut"), X[:20])
    assert any("bad magic b'GET '" in p for p in src.problems), list(src.problems)
    # ...and, having no stream to end, reaches the monitor as a SourceProblem event.
    assert [p.where.startswith("tcp 127.0.0.1:") for p in got.problems] == [True]
    assert "bad magic b'GET '" in got.problems[0].reason


def test_reconnect_resumes_the_stream_and_a_second_claimant_is_refused() -> None:
    with TcpSource() as src:
        first = connect(src.port)
        enc = FrameEncoder("bed-7", 100)
        first.sendall(enc.hello() + enc.data(X[:50]))
        wait_until(lambda: "bed-7" in src.sessions.live)

        impostor = connect(src.port)
        impostor.sendall(FrameEncoder("bed-7", 100).hello() + enc.data(np.ones((5, 12))))
        assert hung_up(impostor)
        impostor.close()
        first.close()
        got = collect(src, n_ends=1)
        assert got.ends == {"bed-7": ["disconnected"]}  # one end: the impostor's never began
        np.testing.assert_array_equal(got.signal("bed-7"), X[:50])
        assert any("stream id 'bed-7' is already connected" in p for p in src.problems)

        # The device comes back after 0.3 s of outage and carries on counting samples.
        with connect(src.port) as again:
            enc2 = FrameEncoder("bed-7", 100, first_index=80)
            again.sendall(enc2.hello() + enc2.data(X[50:100]) + enc2.end())
            got2 = collect(src, n_ends=1)
    assert [c.stream_id for c in got2.chunks["bed-7"]] == ["bed-7"]
    assert got2.chunks["bed-7"][0].timestamp == pytest.approx(0.8)  # the gap is visible
    np.testing.assert_array_equal(got2.signal("bed-7"), X[50:100])
    assert got2.ends == {"bed-7": ["ended by device"]}


def test_several_sessions_on_one_connection() -> None:
    with TcpSource() as src, connect(src.port) as s:
        a, b = FrameEncoder("a", 100), FrameEncoder("b", 200, "int16")
        s.sendall(a.hello() + a.data(X[:10]) + a.end() + b.hello() + b.data(X[:10]) + b.end())
        got = collect(src, n_ends=2)
    assert got.ends == {"a": ["ended by device"], "b": ["ended by device"]}
    assert got.chunks["b"][0].sample_rate == 200


def test_idle_connections_are_dropped() -> None:
    with TcpSource(idle_timeout_s=0.3) as src:
        silent = connect(src.port)
        silent.sendall(FrameEncoder("quiet", 100).hello())
        mute = connect(src.port)  # never even says hello
        t0 = time.monotonic()
        got = collect(src, n_ends=1)
        assert time.monotonic() - t0 >= 0.25
        assert got.ends == {"quiet": ["stalled (no data for 0.3 s)"]}
        assert hung_up(silent) and hung_up(mute)
        silent.close()
        mute.close()


def test_connections_over_the_limit_are_refused() -> None:
    with TcpSource(limits=DeviceLimits(max_connections=1)) as src:
        first = connect(src.port)
        enc = FrameEncoder("one", 100)
        first.sendall(enc.hello())
        wait_until(lambda: "one" in src.sessions.live)
        with connect(src.port) as second:
            assert hung_up(second)
        assert any("max_connections (1) reached" in p for p in src.problems)
        first.sendall(enc.data(X[:10]) + enc.end())  # the first device is unaffected
        got = collect(src, n_ends=1)
        first.close()
    np.testing.assert_array_equal(got.signal("one"), X[:10])


def test_close_shuts_the_server_and_every_connection() -> None:
    src = TcpSource()
    client = connect(src.port)
    client.sendall(FrameEncoder("open", 100).hello())
    wait_until(lambda: "open" in src.sessions.live)
    t0 = time.monotonic()
    src.close()
    assert time.monotonic() - t0 < 2.0
    assert not src._thread.is_alive()
    assert hung_up(client)
    client.close()
    with pytest.raises(ConnectionRefusedError):
        connect(src.port).close()
    assert list(src.events()) == []


def test_bind_errors_are_one_line() -> None:
    with TcpSource() as src, pytest.raises(OSError, match=f"tcp 127.0.0.1:{src.port}: cannot"):
        TcpSource(port=src.port)
    with pytest.raises(ValueError, match=r"tcp port 70000, expected 0\.\.65535"):
        TcpSource(port=70000)
