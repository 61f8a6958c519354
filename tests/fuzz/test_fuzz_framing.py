"""Fuzzing the MRME framing, bounded in time: whatever the bytes and however they are cut
into reads, the decoder yields only valid events or FramingError (never another exception),
and finishes. Each example runs under a hard cap (an interval timer that interrupts a
decoder stuck in a loop, which hypothesis' ``deadline`` alone cannot: it only measures);
``max_examples`` bounds each test. Then a real TcpSource fed random bytes by several
clients at once: it survives, and a well-behaved client's stream is intact."""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from datetime import timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mrm_edge.runtime.sources.framing import (
    MAGIC,
    MAX_ID_BYTES,
    MAX_RATE,
    MIN_RATE,
    N_LEADS,
    VERSION,
    Data,
    End,
    FrameDecoder,
    FrameEncoder,
    FramingError,
    Hello,
    SampleFormat,
    max_frame_samples,
)
from mrm_edge.runtime.sources.tcp import TcpSource

from tests import fuzz
from tests.runtime.sources import collect

CAP_S = 2.0  # per example; a healthy decode of these sizes takes milliseconds
FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=1),
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # CI: the same examples every run, no flaky new finds mid-review
)


def hard_cap(seconds: float = CAP_S) -> contextlib.AbstractContextManager[None]:
    return fuzz.hard_cap(seconds, "decoder")


def check_event(ev: object, hello: Hello | None) -> Hello | None:
    """Assert ``ev`` is a well-formed event in its place; returns the session's HELLO."""
    if isinstance(ev, Hello):
        assert hello is None, "HELLO inside a session"
        assert MIN_RATE <= ev.sample_rate <= MAX_RATE
        assert 1 <= len(ev.stream_id.encode()) <= MAX_ID_BYTES and ev.stream_id.isprintable()
        assert isinstance(ev.sample_format, SampleFormat)
        if ev.sample_format is SampleFormat.INT16:
            assert ev.gains is not None and len(ev.gains) == N_LEADS
            assert all(np.isfinite(g) and g > 0 for g in ev.gains)
        else:
            assert ev.gains is None
        return ev
    assert hello is not None, f"{type(ev).__name__} outside a session"
    if isinstance(ev, Data):
        n = ev.samples.shape[0]
        assert ev.samples.dtype == np.float32 and ev.samples.shape == (n, N_LEADS)
        assert 1 <= n <= max_frame_samples(hello.sample_rate)
        assert 0 <= ev.first_index < 2**64
        return hello
    assert isinstance(ev, End), f"unexpected event {ev!r}"
    return None


def decode(stream: bytes, cuts: list[int]) -> tuple[list, FramingError | None]:
    """Feed ``stream`` cut at ``cuts`` as recv() would, then EOF: the events, and the
    FramingError that ended it (None: a clean end). Anything else propagates: a bug."""
    dec = FrameDecoder()
    events: list = []
    hello = None
    bounds = [0, *sorted({c % (len(stream) + 1) for c in cuts}), len(stream)]
    with hard_cap():
        for a, b in itertools.pairwise(bounds):
            try:
                got = dec.feed(stream[a:b])
            except FramingError as e:
                assert "\n" not in str(e) and str(e)
                for ev in e.events:
                    hello = check_event(ev, hello)
                events += e.events
                try:  # a failed decoder stays failed
                    dec.feed(b"MRME")
                except FramingError:
                    return events, e
                raise AssertionError("the decoder accepted input after an error") from None
            for ev in got:
                hello = check_event(ev, hello)
            events += got
        try:
            dec.eof()
        except FramingError as e:
            assert str(e).startswith("disconnected mid-frame (") and "\n" not in str(e)
            return events, e
    return events, None


@st.composite
def valid_stream(draw) -> tuple[bytes, list[tuple[int, object]]]:
    """A valid byte stream of 1-3 sessions, and each event with the offset where it ends."""
    out, marks = b"", []
    for _ in range(draw(st.integers(1, 3))):
        fmt = draw(st.sampled_from(["float32", "int16"]))
        rate = draw(st.sampled_from([MIN_RATE, 100, 257, 500, MAX_RATE]))
        sid = draw(st.text(st.characters(codec="utf-8", categories=["L", "N"]), min_size=1,
                           max_size=8))  # fmt: skip
        enc = FrameEncoder(sid, rate, fmt, first_index=draw(st.integers(0, 2**40)))
        out += enc.hello()
        marks.append((len(out), "hello"))
        for n in draw(st.lists(st.integers(1, 6), max_size=4)):
            out += enc.data(np.full((n, N_LEADS), 0.5, np.float32))
            marks.append((len(out), n))
        if draw(st.booleans()):
            out += enc.end()
            marks.append((len(out), "end"))
        else:
            break  # a stream may end with its last session open
    return out, marks


def kind(ev: object) -> object:
    return "hello" if isinstance(ev, Hello) else "end" if isinstance(ev, End) else len(ev.samples)


cuts = st.lists(st.integers(0, 10**6), max_size=16)


@FUZZ
@given(st.binary(max_size=1500), cuts)
def test_arbitrary_bytes(data: bytes, at: list[int]) -> None:
    decode(data, at)


PREFIXES = [
    b"M",
    MAGIC,
    MAGIC + bytes([VERSION]),
    MAGIC + bytes([VERSION, 2, N_LEADS]),
    FrameEncoder("p", 100).hello(),  # a whole HELLO: the rest goes to the frame parser
    FrameEncoder("q", 500, "int16").hello(),
    FrameEncoder("r", 100).hello() + b"\x01",  # inside a DATA header
]


@FUZZ
@given(st.sampled_from(PREFIXES), st.binary(max_size=600), cuts)
def test_bytes_after_a_plausible_header(prefix: bytes, rest: bytes, at: list[int]) -> None:
    # Random bytes rarely get past the magic; these start where the checks get interesting.
    decode(prefix + rest, at)


@FUZZ
@given(valid_stream(), st.integers(0, 10**6), cuts)
def test_truncation_keeps_every_complete_frame(
    sm: tuple[bytes, list], keep: int, at: list[int]
) -> None:
    stream, marks = sm
    k = keep % (len(stream) + 1)
    events, error = decode(stream[:k], at)
    assert [kind(e) for e in events] == [what for end, what in marks if end <= k]
    at_boundary = k == 0 or any(end == k for end, _ in marks)
    assert (error is None) == at_boundary, error


@FUZZ
@given(
    valid_stream(),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
    st.sampled_from(["flip", "insert", "delete"]),
    cuts,
)
def test_corruption_keeps_what_came_before_it(
    sm: tuple[bytes, list], edits: list[tuple[int, int]], how: str, at: list[int]
) -> None:
    stream, marks = sm
    buf = bytearray(stream)
    first = len(stream)
    for pos, value in edits:
        p = pos % (len(buf) + (how == "insert"))
        if how == "flip" and buf:
            buf[p % len(buf)] ^= value or 1
        elif how == "insert":
            buf.insert(p, value)
        elif how == "delete" and buf:
            del buf[p % len(buf)]
        first = min(first, p)
    events, _ = decode(bytes(buf), at)
    # Frames wholly before the first edited byte decode as they were sent.
    intact = [what for end, what in marks if end <= first]
    assert [kind(e) for e in events[: len(intact)]] == intact


@FUZZ
@given(valid_stream(), cuts)
def test_any_split_decodes_like_one_read(sm: tuple[bytes, list], at: list[int]) -> None:
    stream, marks = sm
    events, error = decode(stream, at)
    assert error is None
    assert [kind(e) for e in events] == [what for _, what in marks]


@settings(max_examples=6, deadline=None, derandomize=True)
@given(st.lists(st.binary(min_size=1, max_size=3000), min_size=3, max_size=6), st.data())
def test_tcp_source_survives_random_clients(junk: list[bytes], data: st.DataObject) -> None:
    x = np.random.default_rng(3).normal(0, 1, size=(300, N_LEADS)).astype(np.float32)
    # Some clients begin like a device, so their junk reaches the frame parser.
    heads = [FrameEncoder(f"fuzz-{i}", 250).hello() if data.draw(st.booleans()) else b""
             for i in range(len(junk))]  # fmt: skip
    with TcpSource(stall_timeout_s=None) as src:
        good = socket.create_connection(("127.0.0.1", src.port), timeout=5)
        enc = FrameEncoder("good", 250)
        good.sendall(enc.hello() + enc.data(x[:100]))

        def fuzz(i: int) -> None:
            # The server may hang up before all is sent: that is its right.
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", src.port), timeout=5) as s,
            ):
                s.sendall(heads[i] + junk[i])

        clients = [threading.Thread(target=fuzz, args=(i,)) for i in range(len(junk))]
        for t in clients:
            t.start()
        for t in clients:
            t.join(timeout=10)
        good.sendall(enc.data(x[100:]) + enc.end())
        good.close()
        # Every client has hung up: once the server has seen each EOF, all is queued.
        deadline = time.monotonic() + 10
        while src._conns and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not src._conns, "the server did not see every client hang up"
        assert src._thread.is_alive()  # it survived
        got = collect(src, timeout=0.5)  # drain the queue (then the watchdog closes it)
    np.testing.assert_array_equal(got.signal("good"), x)
    assert got.ends["good"] == ["ended by device"]
    for sid, reasons in got.ends.items():  # every fuzz stream ended once, with a reason
        assert len(reasons) == 1 and reasons[0], sid
