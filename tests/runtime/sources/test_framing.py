"""MRME framing: encoder/decoder round trip at any byte split, and every malformed input
turned away with its own one-line reason."""

from __future__ import annotations

import itertools
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mrm_edge.runtime.sources.framing import (
    Data,
    End,
    FrameDecoder,
    FrameEncoder,
    FramingError,
    Hello,
    SampleFormat,
    max_frame_samples,
)


def decode_in_pieces(stream: bytes, cuts: list[int]) -> list:
    dec = FrameDecoder()
    events = []
    bounds = [0, *sorted(set(cuts)), len(stream)]
    for a, b in itertools.pairwise(bounds):
        events += dec.feed(stream[a:b])
    dec.eof()  # a complete stream ends cleanly
    return events


@st.composite
def sessions(draw):
    fmt = draw(st.sampled_from(["float32", "int16"]))
    rate = draw(st.integers(50, 20_000))
    sid = draw(st.text(st.characters(codec="utf-8", categories=["L", "N", "P"]), min_size=1,
                       max_size=20))  # fmt: skip
    gains = None
    if fmt == "int16":
        gains = draw(st.lists(st.floats(100, 5000), min_size=12, max_size=12))
    sizes = draw(st.lists(st.integers(1, 40), min_size=0, max_size=5))
    seed = draw(st.integers(0, 2**32 - 1))
    return fmt, rate, sid, gains, sizes, seed


@settings(max_examples=60, deadline=None)
@given(st.lists(sessions(), min_size=1, max_size=2), st.lists(st.integers(0, 10**6), max_size=12))
def test_round_trip_at_any_split(specs, cuts) -> None:
    stream, expected = b"", []
    for fmt, rate, sid, gains, sizes, seed in specs:
        rng = np.random.default_rng(seed)
        enc = FrameEncoder(sid, rate, fmt, gains, first_index=int(rng.integers(0, 2**40)))
        stream += enc.hello()
        expected.append(("hello", sid, rate, fmt, gains))
        for n in sizes:
            x = rng.uniform(-5, 5, size=(n, 12)).astype(np.float32)
            if fmt == "float32" and n > 2:
                x[1, 3] = np.nan  # lead-off on the wire is data, not an error
            expected.append(("data", enc.next_index, x))
            stream += enc.data(x)
        stream += enc.end()
        expected.append(("end",))
    cuts = [c % (len(stream) + 1) for c in cuts]
    events = decode_in_pieces(stream, cuts)
    assert len(events) == len(expected)
    session: Hello | None = None
    for ev, exp in zip(events, expected, strict=True):
        if exp[0] == "hello":
            _, sid, rate, fmt, gains = exp
            assert isinstance(ev, Hello)
            assert (ev.stream_id, ev.sample_rate) == (sid, rate)
            assert ev.sample_format is SampleFormat.parse(fmt)
            if gains is not None:
                np.testing.assert_array_equal(ev.gains, np.float32(gains))
            session = ev
        elif exp[0] == "data":
            assert isinstance(ev, Data) and session is not None
            assert ev.first_index == exp[1]
            assert ev.samples.dtype == np.float32 and ev.samples.shape == exp[2].shape
            if session.gains is None:
                np.testing.assert_array_equal(ev.samples, exp[2])  # bit-exact, NaN included
            else:
                # int16: within half a count of the lead's gain, plus float32 rounding.
                tol = 0.5 / np.asarray(session.gains) + 1e-6
                assert np.all(np.abs(ev.samples - exp[2]) <= tol)
        else:
            assert isinstance(ev, End)


def test_int16_nan_is_no_sample_and_clipping_is_counted() -> None:
    enc = FrameEncoder("bed-1", 500, "int16", gains=1000.0)
    x = np.zeros((3, 12), np.float32)
    x[0, 0] = np.nan
    x[1, 1] = 40.0  # 40,000 counts: does not fit
    x[2, 2] = -1.234
    dec = FrameDecoder()
    (hello, data) = dec.feed(enc.hello() + enc.data(x))
    assert hello.gains == (1000.0,) * 12
    assert np.isnan(data.samples[0, 0]) and np.isnan(data.samples).sum() == 1
    assert data.samples[1, 1] == pytest.approx(32.767)
    assert data.samples[2, 2] == pytest.approx(-1.234, abs=5e-4)
    assert enc.clipped == 1


def test_float32_passes_nan_and_inf_through() -> None:
    enc = FrameEncoder("bed-1", 500)
    x = np.ones((2, 12), np.float32)
    x[0, 5], x[1, 7] = np.nan, np.inf
    (_, data) = FrameDecoder().feed(enc.hello() + enc.data(x))
    np.testing.assert_array_equal(data.samples, x)


def test_encoder_splits_frames_over_the_cap() -> None:
    enc = FrameEncoder("bed-1", 50)
    cap = max_frame_samples(50)
    x = np.zeros((cap * 2 + 5, 12), np.float32)
    events = FrameDecoder().feed(enc.hello() + enc.data(x))
    assert [len(e.samples) for e in events[1:]] == [cap, cap, 5]
    assert [e.first_index for e in events[1:]] == [0, cap, 2 * cap]


# --- malformed input -----------------------------------------------------------------------
def hello(magic=b"MRME", version=1, fmt=2, leads=12, rate=500, sid=b"bed-1", gains=None) -> bytes:
    out = struct.pack("<4sBBBIH", magic, version, fmt, leads, rate, len(sid)) + sid
    if gains is not None:
        out += struct.pack("<12f", *gains)
    return out


def data(n: int, index: int = 0, width: int = 4, kind: int = 1) -> bytes:
    return struct.pack("<BIQ", kind, n, index) + bytes(n * 12 * width)


MALFORMED = {
    "bad magic": (b"GET / HTTP/1.1\r\n\r\n", "bad magic b'G', expected b'MRME'"),
    "version": (hello(version=2), "unsupported version 2, expected 1"),
    "sample format": (hello(fmt=3), "unknown sample format 3, expected 1 (int16) or 2"),
    "lead count": (hello(leads=8), "lead count 8, expected 12 (I, II, III, aVR"),
    "zero rate": (hello(rate=0), "sample rate 0 Hz, expected 50..20000 Hz"),
    "absurd rate": (hello(rate=10**6), "sample rate 1000000 Hz, expected 50..20000 Hz"),
    "empty id": (hello(sid=b""), "stream id length 0, expected 1..255"),
    "long id": (hello(sid=b"x" * 300), "stream id length 300, expected 1..255"),
    "id not utf-8": (hello(sid=b"\xff\xfe"), "stream id b'\\xff\\xfe' is not UTF-8"),
    "id control chars": (hello(sid=b"bed\n1"), "stream id 'bed\\n1' has control characters"),
    "zero gain": (hello(fmt=1, gains=[1000.0] * 11 + [0.0]), "gain of lead V6 is 0.0"),
    "nan gain": (hello(fmt=1, gains=[float("nan")] + [1.0] * 11), "gain of lead I is nan"),
    "zero samples": (hello() + data(0), "DATA frame of 0 samples, expected 1..30000"),
    "oversize": (hello() + struct.pack("<BI", 1, 30001), "DATA frame of 30001 samples"),
    "frame type": (hello() + data(2) + b"\x07", "unknown frame type 0x07, expected 0x01"),
    "absurd index": (hello() + data(1, 2**64 - 1), f"first-sample index {2**64 - 1}, expected <"),
    "index at cap": (hello() + data(1, 2**48), "first-sample index 281474976710656, expected"),
    "hello twice": (hello() + hello(), "unknown frame type 0x4d"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_input_gets_its_own_one_line_error(name: str) -> None:
    stream, message = MALFORMED[name]
    dec = FrameDecoder()
    with pytest.raises(FramingError) as info:
        for i in range(len(stream)):  # byte by byte: the worst split
            dec.feed(stream[i : i + 1])
    text = str(info.value)
    assert message in text
    assert "\n" not in text and "(at byte " in text
    with pytest.raises(FramingError):  # no resynchronising on garbage
        dec.feed(hello())


def test_garbage_is_refused_on_its_first_bytes() -> None:
    with pytest.raises(FramingError, match="bad magic b'GET '"):
        FrameDecoder().feed(b"GET / HTTP/1.1\r\n")
    with pytest.raises(FramingError, match="bad magic b'MRX'"):
        FrameDecoder().feed(b"MRX")


def test_error_keeps_the_events_decoded_before_it() -> None:
    dec = FrameDecoder()
    with pytest.raises(FramingError) as info:
        dec.feed(hello() + data(3, index=7) + b"\x09")
    kinds = [type(e) for e in info.value.events]
    assert kinds == [Hello, Data]
    assert info.value.events[1].first_index == 7
    assert "at byte 175" in str(info.value)  # 18 B HELLO + 13 B header + 3 x 48 B


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (hello()[:9], "disconnected mid-frame (9 bytes of a HELLO at byte 0)"),
        (hello()[:15], "disconnected mid-frame (15 of 18 bytes of a HELLO at byte 0)"),
        (hello() + data(2)[:20], "disconnected mid-frame (20 of 109 bytes of a frame type 0x01"),
        (hello() + data(2)[:3], "disconnected mid-frame (3 bytes of a frame type 0x01"),
    ],
)
def test_eof_mid_frame(stream: bytes, message: str) -> None:
    dec = FrameDecoder()
    dec.feed(stream)
    with pytest.raises(FramingError) as info:
        dec.eof()
    assert message in str(info.value)


def test_eof_between_frames_is_clean() -> None:
    dec = FrameDecoder()
    dec.feed(hello() + data(2))
    dec.eof()  # inside a session but between frames: "disconnected", not a framing error
    assert dec.hello is not None
    dec.feed(b"\x02")
    assert dec.hello is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_rate": 10}, "sample rate 10 Hz"),
        ({"stream_id": ""}, "stream id of 0 bytes"),
        ({"sample_format": "int8"}, "expected float32 or int16"),
        ({"gains": [1.0] * 3, "sample_format": "int16"}, "3 gains, expected 12"),
        ({"gains": 1000.0}, "only sent with the int16 sample format"),
        ({"first_index": 2**48}, "first-sample index 281474976710656, expected 0..2"),
    ],
)
def test_encoder_validates_like_the_decoder(kwargs: dict, message: str) -> None:
    args = {"stream_id": "bed-1", "sample_rate": 500} | kwargs
    with pytest.raises(ValueError, match=message):
        FrameEncoder(**args)
