"""Fuzzing the TLS-wrapped framing as the plain one is fuzzed (test_fuzz_framing.py),
bounded: random bytes sent inside mutual-TLS sessions by authenticated devices (after a
HELLO or not), and random bytes sent in place of a TLS handshake, several clients at once.
The server survives, every fuzz stream ends once with a reason, every refused handshake
is a ``tls`` source event, and a well-behaved device's stream is intact."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from mrm_edge.runtime.sources.base import Chunk
from mrm_edge.runtime.sources.framing import N_LEADS, FrameEncoder
from mrm_edge.runtime.sources.limits import DeviceLimits
from mrm_edge.runtime.sources.tcp import TcpSource
from mrm_edge.runtime.sources.tls import server_context

from tests import fuzz
from tests.fuzz.test_fuzz_framing import valid_stream
from tests.runtime.sources import collect
from tests.runtime.sources.pki import Pki, device_context, tls_connect

# Handshakes cost a few ms each on 2 loaded cores: fewer examples than the plain fuzzer.
TLS_FUZZ = settings(max_examples=10, deadline=None, derandomize=True)


def _client(port: int, ctx: ssl.SSLContext | None, head: bytes, junk: bytes) -> None:
    # The server may hang up before all is sent, or refuse the handshake: its right.
    with contextlib.suppress(OSError):
        if ctx is None:  # junk where a ClientHello belongs
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(junk)
        else:
            with tls_connect(port, ctx) as s:
                s.sendall(head + junk)


@TLS_FUZZ
@given(st.lists(st.binary(min_size=1, max_size=3000), min_size=3, max_size=5), st.data())
def test_tls_source_survives_random_clients(pki: Pki, junk: list[bytes], data) -> None:
    x = np.random.default_rng(7).normal(0, 1, size=(300, N_LEADS)).astype(np.float32)
    device = device_context(pki.ca, pki.devices["device-b"])
    kinds = [data.draw(st.sampled_from(["raw", "tls", "tls+hello"])) for _ in junk]
    with (
        fuzz.hard_cap(60, "tls fuzz example"),
        TcpSource(
            tls=server_context(pki.server_files()),
            stall_timeout_s=None,
            limits=DeviceLimits(hello_timeout_s=2.0),
        ) as src,  # fmt: skip
    ):
        good = tls_connect(src.port, device_context(pki.ca, pki.devices["device-a"]))
        enc = FrameEncoder("good", 250)
        good.sendall(enc.hello() + enc.data(x[:100]))
        clients = []
        for i, (kind, j) in enumerate(zip(kinds, junk, strict=True)):
            head = FrameEncoder(f"fuzz-{i}", 250).hello() if kind == "tls+hello" else b""
            ctx = None if kind == "raw" else device
            clients.append(threading.Thread(target=_client, args=(src.port, ctx, head, j)))
        for t in clients:
            t.start()
        for t in clients:
            t.join(timeout=20)
        good.sendall(enc.data(x[100:]) + enc.end())
        good.close()
        deadline = time.monotonic() + 20
        while src._conns and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not src._conns, "the server did not see every client hang up"
        assert src._thread.is_alive()  # it survived
        got = collect(src, timeout=0.5)
    np.testing.assert_array_equal(got.signal("good"), x)
    assert got.ends["good"] == ["ended by device"]
    for sid, reasons in got.ends.items():  # every fuzz stream ended once, with a reason
        assert len(reasons) == 1 and reasons[0], sid
    for p in got.problems:  # one line each, of a known kind
        assert p.kind in ("tls", "protocol", "limit") and "\n" not in p.reason
    raw = sum(k == "raw" for k in kinds)
    # Junk in place of a ClientHello: refused at the handshake, or by the HELLO deadline.
    assert sum(p.kind in ("tls", "limit") for p in got.problems) >= raw


@TLS_FUZZ
@given(valid_stream(), st.lists(st.integers(1, 4096), min_size=1, max_size=12))
def test_any_split_into_tls_records_decodes_like_one_read(
    pki: Pki, sm: tuple[bytes, list], sizes: list[int]
) -> None:
    stream, marks = sm
    with (
        fuzz.hard_cap(30, "tls split example"),
        TcpSource(tls=server_context(pki.server_files()), stall_timeout_s=None) as src,
    ):
        with tls_connect(src.port, device_context(pki.ca, pki.devices["device-a"])) as s:
            pos, i = 0, 0
            while pos < len(stream):  # one TLS record (at least) per write
                n = sizes[i % len(sizes)]
                s.sendall(stream[pos : pos + n])
                pos, i = pos + n, i + 1
        n_sessions = sum(what == "hello" for _, what in marks)
        got = collect(src, n_ends=n_sessions, timeout=10)
    assert not got.timed_out
    sent = [what for _, what in marks if isinstance(what, int)]
    received = [len(c.samples) for c in got.order if isinstance(c, Chunk)]
    assert received == sent
    assert not got.problems
