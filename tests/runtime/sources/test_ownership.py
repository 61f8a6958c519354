"""Stream ownership on real sockets: a stream id belongs to the identity that opened it (the
certificate subject under mutual TLS, the peer IP in plain text on loopback). Device B
cannot duplicate, take over or resume device A's stream, live, stalled or ended; A can
resume its own. Each refusal is a ``source`` event of kind ``ownership``. Plus the
allow-list (bed assignments) and its file errors."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.sources.base import SourceProblem
from mrm_edge.runtime.sources.framing import FrameEncoder
from mrm_edge.runtime.sources.ownership import AllowList, AllowListError, StreamOwners
from mrm_edge.runtime.sources.tcp import TcpSource
from mrm_edge.runtime.sources.tls import server_context

from tests.runtime.sources import collect
from tests.runtime.sources.pki import Pki, device_context, tls_connect
from tests.runtime.sources.test_tcp import hung_up, wait_until

FS = 100
X = np.random.default_rng(5).normal(0, 0.5, size=(400, 12)).astype(np.float32)
A, B = "CN=device-a,O=Ward 3", "CN=device-b,O=Ward 3"


def tls_source(pki: Pki, **kw) -> TcpSource:
    return TcpSource(tls=server_context(pki.server_files()), **kw)


def device(pki: Pki, name: str, port: int):
    return tls_connect(port, device_context(pki.ca, pki.devices[name]))


def drain(src: TcpSource, quiet_s: float = 0.3) -> list:
    """The events queued until none came for ``quiet_s``; the source stays open (unlike
    ``collect``, whose watchdog closes it)."""
    out = []
    with contextlib.suppress(queue.Empty):
        while True:
            out.append(src._events.get(timeout=quiet_s))
    return out


def refused(src: TcpSource, sock) -> str:
    """The sole ownership refusal the source logged for ``sock``'s attempt (it hung up)."""
    assert hung_up(sock)
    sock.close()
    events = drain(src)
    [problem] = events  # only the refusal: the owner's stream is untouched
    assert isinstance(problem, SourceProblem) and problem.kind == "ownership", problem
    return problem.reason


def test_b_cannot_duplicate_a_live_stream(pki: Pki) -> None:
    with tls_source(pki) as src:
        a = device(pki, "device-a", src.port)
        enc = FrameEncoder("bed-1", FS)
        a.sendall(enc.hello() + enc.data(X[:100]))
        got = collect(src, n_chunks=1)
        b = device(pki, "device-b", src.port)
        b.sendall(FrameEncoder("bed-1", FS).hello() + FrameEncoder("bed-1", FS).data(X[:5]))
        why = refused(src, b)
        assert why == f"refused: stream id 'bed-1' belongs to {A!r}, not {B!r}; connection closed"
        a.sendall(enc.data(X[100:]) + enc.end())  # A is unaffected
        got2 = collect(src, n_ends=1)
        a.close()
    np.testing.assert_array_equal(np.concatenate([got.signal("bed-1"), got2.signal("bed-1")]), X)
    assert got2.ends == {"bed-1": ["ended by device"]}


def test_b_cannot_take_over_a_stalled_stream_and_a_resumes_it(pki: Pki) -> None:
    with tls_source(pki, stall_timeout_s=0.3) as src:
        a = device(pki, "device-a", src.port)
        enc = FrameEncoder("bed-2", FS)
        a.sendall(enc.hello() + enc.data(X[:100]))
        got = collect(src, n_ends=1)
        assert got.ends == {"bed-2": ["stalled (no data for 0.3 s)"]}
        b = device(pki, "device-b", src.port)
        b.sendall(FrameEncoder("bed-2", FS).hello())
        assert "belongs to 'CN=device-a,O=Ward 3'" in refused(src, b)
        # A's stalled connection is still the stream's: it wakes up and carries on.
        a.sendall(enc.data(X[100:200]) + enc.end())
        got2 = collect(src, n_ends=1)
        np.testing.assert_array_equal(got2.signal("bed-2"), X[100:200])
        a.close()


def test_a_reconnect_replaces_its_own_stalled_connection(pki: Pki) -> None:
    with tls_source(pki, stall_timeout_s=0.3) as src:
        a1 = device(pki, "device-a", src.port)
        a1.sendall(FrameEncoder("bed-3", FS).hello() + FrameEncoder("bed-3", FS).data(X[:50]))
        assert collect(src, n_ends=1).ends == {"bed-3": ["stalled (no data for 0.3 s)"]}
        a2 = device(pki, "device-a", src.port)  # the same identity, a new connection
        enc = FrameEncoder("bed-3", FS, first_index=80)
        a2.sendall(enc.hello() + enc.data(X[50:100]) + enc.end())
        got = collect(src, n_ends=1)
        assert hung_up(a1)  # the half-dead connection was closed at once
        a1.close()
        a2.close()
    np.testing.assert_array_equal(got.signal("bed-3"), X[50:100])
    assert got.chunks["bed-3"][0].timestamp == pytest.approx(0.8)
    assert any("replaced by a reconnect" in p for p in src.problems)


def test_b_cannot_resume_an_ended_stream_and_a_can(pki: Pki) -> None:
    with tls_source(pki) as src:
        with device(pki, "device-a", src.port) as a:
            enc = FrameEncoder("bed-4", FS)
            a.sendall(enc.hello() + enc.data(X[:50]) + enc.end())
            assert collect(src, n_ends=1).ends == {"bed-4": ["ended by device"]}
        b = device(pki, "device-b", src.port)
        b.sendall(FrameEncoder("bed-4", FS).hello())
        assert "belongs to 'CN=device-a,O=Ward 3'" in refused(src, b)
        with device(pki, "device-a", src.port) as a:  # A comes back: accepted
            enc = FrameEncoder("bed-4", FS, first_index=50)
            a.sendall(enc.hello() + enc.data(X[50:100]) + enc.end())
            got = collect(src, n_ends=1)
    np.testing.assert_array_equal(got.signal("bed-4"), X[50:100])
    assert got.ends == {"bed-4": ["ended by device"]}


def test_plain_text_identity_is_the_peer_address(pki: Pki) -> None:
    # 127.0.0.2 is loopback too (Linux routes 127/8 to lo): another host's stand-in.
    with TcpSource() as src:
        with socket.create_connection(("127.0.0.1", src.port), timeout=5) as a:
            enc = FrameEncoder("bed-5", FS)
            a.sendall(enc.hello() + enc.data(X[:50]) + enc.end())
            assert collect(src, n_ends=1).ends == {"bed-5": ["ended by device"]}
        other = socket.create_connection(
            ("127.0.0.1", src.port), timeout=5, source_address=("127.0.0.2", 0)
        )
        other.sendall(FrameEncoder("bed-5", FS).hello())
        assert refused(src, other) == (
            "refused: stream id 'bed-5' belongs to '127.0.0.1', not '127.0.0.2'; connection closed"
        )
        assert src.sessions.owners._owner["bed-5"] == "127.0.0.1"


def test_allow_list_assigns_beds(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "beds.json"
    path.write_text(json.dumps({A: ["bed-1*"], "CN=nobody": ["*"]}))
    allow = AllowList.load(path)
    with tls_source(pki, allow_list=allow) as src:
        with device(pki, "device-a", src.port) as a:
            enc = FrameEncoder("bed-12", FS)
            a.sendall(enc.hello() + enc.data(X[:20]) + enc.end())
            assert collect(src, n_ends=1).ends == {"bed-12": ["ended by device"]}
            a.sendall(FrameEncoder("bed-9", FS).hello())  # not its bed: refused
            reason = refused(src, a)
        assert reason == f"refused: {A!r} may not open stream 'bed-9' (allow-list {path}); " + (
            "connection closed"
        )
        b = device(pki, "device-b", src.port)
        b.sendall(FrameEncoder("bed-13", FS).hello())
        assert refused(src, b).startswith(f"refused: {B!r} is not in the allow-list {path}")


def test_owners_remember_every_stream_and_the_cap() -> None:
    owners = StreamOwners()
    assert owners.claim("s", "x") is None and owners.claim("s", "x") is None
    assert owners.claim("s", "y") == "stream id 's' belongs to 'x', not 'y'"
    assert owners._owner == {"s": "x"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", r"not JSON \(Expecting property name enclosed in double quotes at line 1\)"),
        ('["bed-1"]', r"expected a JSON object mapping certificate subjects to lists"),
        ('{"CN=a": "bed-1"}', r"'CN=a': expected a list of stream ids \(strings\)"),
        ('{"CN=a": [1]}', r"'CN=a': expected a list of stream ids"),
        ('{" ": ["x"]}', r"an empty subject"),
    ],
)
def test_allow_list_file_errors_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "beds.json"
    path.write_text(text)
    with pytest.raises(AllowListError, match=rf"^allow-list {path}: {message}"):
        AllowList.load(path)
    with pytest.raises(AllowListError, match=r"nope\.json: no such file"):
        AllowList.load(tmp_path / "nope.json")


def test_refusals_do_not_wait_for_timeouts(pki: Pki) -> None:
    with tls_source(pki) as src:
        a = device(pki, "device-a", src.port)
        a.sendall(FrameEncoder("bed-6", FS).hello())
        wait_until(lambda: "bed-6" in src.sessions.live)
        t0 = time.monotonic()
        b = device(pki, "device-b", src.port)
        b.sendall(FrameEncoder("bed-6", FS).hello())
        assert hung_up(b)
        assert time.monotonic() - t0 < 2.0
        b.close()
        a.close()
