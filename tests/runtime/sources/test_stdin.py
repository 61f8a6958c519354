"""Stdin source: a real sender subprocess piping frames in, the end reasons, errors
outside a session, and close() while the writer is silent."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.sources.framing import FrameEncoder, FramingError
from mrm_edge.runtime.sources.stdin import StdinSource

from mrm_edge.records import read_recording
from tests.runtime.sources import collect

X = np.random.default_rng(2).normal(0, 0.5, size=(300, 12)).astype(np.float32)


@pytest.mark.realdata
def test_sender_pipe_into_stdin_source(ptbxl_root: Path, cpsc_root: Path) -> None:
    paths = [ptbxl_root / "records100/00000/00004_lr.hea", cpsc_root / "A1982.mat"]
    cmd = [sys.executable, "-m", "mrm_edge.cli", "send", "--stdout", "--speed", "max",
           "-q", *map(str, paths)]  # fmt: skip
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        got = collect(StdinSource(proc.stdout, label="pipe"), timeout=30)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not got.timed_out
    for path in paths:
        rec = read_recording(path)
        np.testing.assert_array_equal(got.signal(rec.name), rec.signal.T)
        assert got.ends[rec.name] == ["ended by device"]
    assert [e.stream_id for e in got.order if not hasattr(e, "samples")] == ["00004_lr", "A1982"]


def session(sid: str = "bed-1", n: int = 100) -> tuple[FrameEncoder, bytes]:
    enc = FrameEncoder(sid, 250)
    return enc, enc.hello() + enc.data(X[:n])


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        (b"", "disconnected"),
        (b"\x01\x05\x00", "disconnected mid-frame (3 bytes of a frame type 0x01"),
        (b"\x09", "protocol error: unknown frame type 0x09"),
    ],
)
def test_end_reasons(tail: bytes, reason: str) -> None:
    _, head = session()
    got = collect(StdinSource(io.BytesIO(head + tail)))
    np.testing.assert_array_equal(got.signal("bed-1"), X[:100])
    [end] = got.ends["bed-1"]
    assert end.startswith(reason)
    assert got.chunks["bed-1"][0].timestamp == 0.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello, world", "pipe: bad magic b'hell', expected b'MRME'"),
        (b"MRME\x01", "pipe: disconnected mid-frame (5 bytes of a HELLO"),
    ],
)
def test_bad_input_outside_a_session_raises_one_line(data: bytes, message: str) -> None:
    with pytest.raises(FramingError) as info:
        list(StdinSource(io.BytesIO(data), label="pipe").events())
    assert message in str(info.value) and "\n" not in str(info.value)


def test_empty_input_is_no_stream() -> None:
    assert list(StdinSource(io.BytesIO(b"")).events()) == []


def test_close_ends_iteration_while_the_writer_is_silent() -> None:
    r, w = os.pipe()
    try:
        _, head = session(n=10)
        os.write(w, head)
        with os.fdopen(r, "rb", buffering=0, closefd=False) as stream:
            src = StdinSource(stream)
            threading.Timer(0.3, src.close).start()
            t0 = time.monotonic()
            events = list(src.events())
            assert time.monotonic() - t0 < 1.5
        assert len(events) == 1 and events[0].samples.shape == (10, 12)
    finally:
        os.close(r)
        os.close(w)
