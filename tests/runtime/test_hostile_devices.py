"""Issue 20, finding 1, through the real CLI: a device whose DATA frame jumps its first-sample
index far ahead (one frame is enough) beside good devices. A real ``mrm-edge monitor`` with the
shipped model listens on a free loopback port; every device is a real socket sending MRME at
real-time pace. The jump is a resynchronisation (its windows counted as rejected at once, one
``resync`` stream event), the hostile stream goes on at its new index, an index past the
protocol's cap closes only that connection, the good streams are classified in full, resident
memory stays flat, and SIGTERM ends the run with exit 0 and its summary. In plain text and
over mutual TLS (the same frames inside TLS records)."""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.sources.framing import FRAME_DATA, FrameEncoder

from mrm_edge.records import read_recording
from tests.eventlog import read_events, wait_until
from tests.runtime.sources.pki import device_context, tls_connect

MRM_EDGE = Path(sys.executable).parent / "mrm-edge"
FS, FRAME_S, GOOD_S = 500, 0.25, 24  # good devices: 24 s of signal each, in 0.25 s frames
N_GOOD = 2
JUMP_TO = 2**47  # far ahead (7.7 years of samples at 500 Hz), under the 2**48 cap
RSS_GROWTH_BOUND = 200 * 2**20  # the bug grew it by 0.9-1.8 GB in seconds


def paced(sock: socket.socket, frames: list[bytes], stop: threading.Event) -> None:
    """Send ``frames`` one every FRAME_S seconds (a real-time device) until done or stopped."""
    t0 = time.monotonic()
    for i, frame in enumerate(frames):
        if stop.wait(max(0.0, t0 + i * FRAME_S - time.monotonic())):
            return
        try:
            sock.sendall(frame)
        except OSError:
            return


def frames_of(enc: FrameEncoder, x: np.ndarray) -> list[bytes]:
    step = int(FRAME_S * FS)
    return [enc.data(x[a : a + step]) for a in range(0, len(x), step)]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module", params=["plain", "tls"])
def hostile_run(
    request: pytest.FixtureRequest, ptbxl_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict:
    d = tmp_path_factory.mktemp("hostile")
    events, out, err = d / "events.jsonl", d / "stdout.txt", d / "stderr.txt"
    cmd = [MRM_EDGE, "monitor", "--source", "tcp:127.0.0.1:0", "--no-ui", "--events", events,
           "--backend", "onnxruntime", "--precision", "fp32", "--hop", "1", "--max-delay", "20",
           "--stall-timeout", "30"]  # fmt: skip
    connect = lambda port: socket.create_connection(("127.0.0.1", port), timeout=10)  # noqa: E731
    if request.param == "tls":  # mutual TLS: every device with the same certificate
        pki = request.getfixturevalue("pki")
        cmd += ["--tls-cert", pki.server.cert, "--tls-key", pki.server.key,
                "--tls-client-ca", pki.ca]  # fmt: skip
        ctx = device_context(pki.ca, pki.devices["device-a"])
        connect = lambda port: tls_connect(port, ctx, timeout=10)  # noqa: E731
    rec = read_recording(ptbxl_root / "records500/00000/00001_hr.hea").signal.T
    x = np.tile(rec.astype(np.float32), (3, 1))[: GOOD_S * FS]
    stop, threads, socks = threading.Event(), [], []
    rss: list[int] = []
    with out.open("w") as fo, err.open("w") as fe:
        mon = subprocess.Popen(list(map(str, cmd)), stdout=fo, stderr=fe)
        try:
            wait_until(lambda: any(e["type"] == "start" for e in read_events(events)), 120, "start")
            [start] = [e for e in read_events(events) if e["type"] == "start"]
            port = int(start["source"].rsplit(":", 1)[1])
            baseline = rss_bytes(mon.pid)

            def device(frames: list[bytes]) -> None:
                s = connect(port)
                socks.append(s)
                threads.append(threading.Thread(target=paced, args=(s, frames, stop)))
                threads[-1].start()

            # The hostile device: 2 s of signal, then one frame that jumps the index to
            # JUMP_TO, then on at the new index in real time (as a device would after it).
            enc = FrameEncoder("hostile", FS)
            head = [enc.hello() + enc.data(x[: 2 * FS]) + enc.data(x[:FS], first_index=JUMP_TO)]
            device(head + frames_of(enc, x[FS:]))
            # A device whose index is past the protocol's cap (near 2**63).
            absurd = FrameEncoder("absurd", FS)
            huge = struct.pack("<BIQ", FRAME_DATA, FS, 2**63 - 7) + x[:FS].tobytes()
            device([absurd.hello() + absurd.data(x[:FS]) + huge])
            for i in range(N_GOOD):
                enc = FrameEncoder(f"good-{i}", FS)
                device([enc.hello(), *frames_of(enc, x), enc.end()])

            def ended() -> set[str]:
                return {e["stream"] for e in read_events(events) if e.get("event") == "end"}

            deadline = time.monotonic() + GOOD_S + 60
            while not {f"good-{i}" for i in range(N_GOOD)} <= ended():
                assert time.monotonic() < deadline, "the good streams never ended"
                rss.append(rss_bytes(mon.pid) - baseline)
                time.sleep(0.2)
            t_term = time.monotonic()
            mon.send_signal(signal.SIGTERM)  # the hostile device is still sending
            mon.wait(timeout=60)
            stop_s = time.monotonic() - t_term
        finally:
            stop.set()
            if mon.poll() is None:
                mon.kill()
            for t in threads:
                t.join(5)
            for s in socks:
                s.close()
    return {
        "rc": mon.returncode,
        "stop_s": stop_s,
        "rss_growth": max(rss),
        "events": read_events(events),
        "stderr": err.read_text(),
    }


def test_good_streams_are_classified_in_full_beside_the_hostile_ones(hostile_run) -> None:
    windows = [e for e in hostile_run["events"] if e["type"] == "window"]
    for i in range(N_GOOD):
        mine = [w for w in windows if w["stream"] == f"good-{i}"]
        # 24 s of signal, 10 s windows every 1 s: 15 windows, each classified (none lost).
        assert len(mine) == GOOD_S - 10 + 1, [w["status"] for w in mine]
        assert {w["status"] for w in mine} == {"ok"}, [w.get("reason") for w in mine]


def test_the_jump_is_one_resync_and_the_hostile_stream_goes_on(hostile_run) -> None:
    events = hostile_run["events"]
    [resync] = [e for e in events if e.get("event") == "resync"]
    assert resync["stream"] == "hostile"
    assert "resynchronised" in resync["detail"] and "over the 30 s limit" in resync["detail"]
    skipped = int(resync["detail"].rsplit(": ", 1)[1].split()[0])
    assert skipped > JUMP_TO // 5 // 100 - 10  # every gap window, at 100 Hz and hop 1 s
    # It goes on at the new index: windows after the jump are cut and classified.
    after = [
        e
        for e in events
        if e["type"] == "window" and e["stream"] == "hostile" and e["start"] >= JUMP_TO // 5
    ]
    assert any(w["status"] == "ok" for w in after), after[:3]
    summary = [e for e in events if e["type"] == "summary"][-1]
    assert summary["rejected_by_reason"]["resync"] == skipped


def test_an_index_past_the_cap_closes_only_that_connection(hostile_run) -> None:
    lines = [ln for ln in hostile_run["stderr"].splitlines() if "'absurd'" in ln]
    assert any("first-sample index 9223372036854775801, expected < 2**48" in ln for ln in lines)
    assert "Traceback" not in hostile_run["stderr"]


def test_memory_stays_flat_and_sigterm_exits_cleanly_with_a_summary(hostile_run) -> None:
    assert hostile_run["rss_growth"] < RSS_GROWTH_BOUND, hostile_run["rss_growth"] / 2**20
    assert hostile_run["rc"] == 0, hostile_run["stderr"][-2000:]
    assert hostile_run["stop_s"] < 20  # generous: "did not hang", not a timing
    summary = hostile_run["stderr"].split("windows ")[-1]  # the summary is on stderr
    assert "classified" in summary and "resync" in summary
