"""The sender, in process (its API and ``mrm-edge send``) against a real TcpSource on loopback;
the subprocess runs are in tests/runtime/sources/test_tcp.py and test_stdin.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.sender import send_records
from mrm_edge.runtime.sources.base import Chunk
from mrm_edge.runtime.sources.framing import End, FrameDecoder, Hello
from mrm_edge.runtime.sources.tcp import TcpSource

from mrm_edge.cli.send import send
from mrm_edge.records import read_recording
from tests.runtime.sources import collect

pytestmark = pytest.mark.realdata


def main(argv: list[str]) -> int | str | None:
    """``mrm-edge send ARGV`` in this process: its exit status."""
    with pytest.raises(SystemExit) as info:
        send.main(argv, prog_name="mrm-edge send")
    return info.value.code


@pytest.fixture(scope="module")
def two(ptbxl_root: Path) -> list[Path]:
    return [ptbxl_root / f"records100/00000/0000{i}_lr.hea" for i in (5, 6)]


def test_paced_concurrent_devices_with_chosen_ids(two: list[Path]) -> None:
    with TcpSource() as src:
        results: list = []
        t0 = time.monotonic()
        sender = threading.Thread(
            target=lambda: results.extend(
                send_records(two, port=src.port, speed=20.0, stream_ids=["bed-1", "bed-2"])
            )
        )
        sender.start()
        got = collect(src, n_ends=2)
        elapsed = time.monotonic() - t0
        sender.join(timeout=10)
    # Two 10 s records at 20x: paced, so no sooner than 0.5 s. Side by side, not one after
    # another: each stream's first chunk came before the other's last (the order of arrival,
    # which a loaded machine does not change, where the wall time of the run it stretches).
    assert elapsed >= 0.45, elapsed
    order = [ev.stream_id for ev in got.order if isinstance(ev, Chunk)]
    for a, b in (("bed-1", "bed-2"), ("bed-2", "bed-1")):
        assert order.index(a) < len(order) - 1 - order[::-1].index(b), order
    assert [(r.stream_id, r.samples, r.error) for r in results] == [
        ("bed-1", 1000, None),
        ("bed-2", 1000, None),
    ]
    for sid, path in zip(["bed-1", "bed-2"], two, strict=True):
        np.testing.assert_array_equal(got.signal(sid), read_recording(path).signal.T)


def test_stdout_mode_writes_one_session_per_record(
    two: list[Path], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    results = send_records(two, port=None, speed=None, sample_format="int16")
    assert [r.error for r in results] == [None, None]
    events = FrameDecoder().feed(capsysbinary.readouterr().out)
    hellos = [e for e in events if isinstance(e, Hello)]
    assert [h.stream_id for h in hellos] == ["00005_lr", "00006_lr"]
    assert hellos[0].gains == (1000.0,) * 12
    assert sum(isinstance(e, End) for e in events) == 2


def test_loop_until_stopped_still_sends_end(two: list[Path]) -> None:
    stop = threading.Event()
    with TcpSource() as src:
        threading.Timer(0.3, stop.set).start()
        results = send_records(two[:1], port=src.port, speed=50.0, loop=True, stop=stop)
        got = collect(src, n_ends=1)
    assert results[0].error is None and results[0].samples > 1000  # went round at least once
    assert got.ends == {"00005_lr": ["ended by device"]}
    x = read_recording(two[0]).signal.T
    np.testing.assert_array_equal(got.signal("00005_lr")[1000:1100], x[:100])
    assert len(got.signal("00005_lr")) == results[0].samples


def test_main_reports_failures_in_one_line(
    two: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with TcpSource() as closed:
        port = closed.port  # free once closed: nothing listens there
    assert main(["--port", str(port), "-q", str(two[0])]) == 1
    err = capsys.readouterr().err
    assert f"00005_lr (00005_lr.hea): 127.0.0.1:{port}: Connection refused" in err

    bad = tmp_path / "x.hea"
    bad.write_text("garbage\n")
    assert main(["--port", "1", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mrm-edge send: error: ") and "x.hea" in err and "\n" not in err

    assert main(["--port", "1", "--stream-id", "a", *map(str, two)]) == 2
    assert "1 stream ids for 2 records, expected one each" in capsys.readouterr().err

    assert main([str(two[0])]) == 2  # neither --port nor --stdout
