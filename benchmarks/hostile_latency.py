"""What one hostile device costs the others (issue 20): the good streams' per-window latency
with one hostile device beside N - 1 good ones, against N good ones, in one run, rounds
interleaved (clean, hostile, clean, hostile, ...). Not a test: a measurement to rerun::

    python -m benchmarks.hostile_latency --devices 9 --rounds 2 --seconds 40 --hop 5

Each round: a ``TcpSource`` on loopback (default limits at real time: rate ceiling 4x) and
the ``Monitor`` with the shipped model on ONNX Runtime CPU fp32 in this process; the devices
in a child process (their work is not the monitor's). The hop (default 5 s) keeps the
backend under capacity on a small CPU: at 1 s, 9 streams ask about a core of the shipped
model's inference, and what is measured is then the backlog, not a device. Good devices
send a real PTB-XL record (500 Hz, looped) in 0.2 s frames at real-time pace from a shared
start time.
The hostile device, as fast as the socket takes it, cycles through what costs the monitor
most: a frame jumping its index ahead by 29 s (just under the 30 s resync limit: zero-filled,
29 windows rejected one by one), one jumping 2**40 samples (a resync), one jumping back, a
NaN frame, 1-sample frames; cut by the rate ceiling, it reconnects at once.

Latency is end to end: from when the good device sent the frame that completed a window (its
scheduled send time) to when the monitor delivered that window's result to its sinks, so it
includes any time the window waited behind the hostile device's work in the source thread.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

FS, FRAME = 500, 100  # the devices' rate; samples per 0.2 s frame
REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "mrm-net-ptbxl-superdiagnostic"
RECORD = REPO.parent / "shared/data/ptb-xl/records500/00000/00001_hr.hea"


def _signal() -> np.ndarray:
    from mrm_edge.records import read_recording

    return read_recording(RECORD).signal.T.astype(np.float32)


def _good(port: int, sid: str, t0: float, seconds: float) -> None:
    from mrm_edge.runtime.sources.framing import FrameEncoder

    x = np.tile(_signal(), (int(seconds // 10) + 2, 1))
    enc = FrameEncoder(sid, FS)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(enc.hello())
        for j in range(int(seconds * FS / FRAME)):
            time.sleep(max(0.0, t0 + j * FRAME / FS - time.monotonic()))
            s.sendall(enc.data(x[j * FRAME : (j + 1) * FRAME]))
        s.sendall(enc.end())


def _hostile(port: int, t0: float, seconds: float) -> None:
    from mrm_edge.runtime.sources.framing import FRAME_DATA, FrameEncoder

    x, nan = _signal()[:FRAME], np.full((FRAME, 12), np.nan, np.float32)
    time.sleep(max(0.0, t0 - time.monotonic()))
    while time.monotonic() < t0 + seconds:
        enc, index = FrameEncoder("hostile", FS), 0
        try:
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(enc.hello())
                while time.monotonic() < t0 + seconds:
                    for jump, block in ((29 * FS, x), (2**40, x), (-(2**30), nan), (0, x[:1])):
                        index = max(0, index + jump)
                        header = struct.pack("<BIQ", FRAME_DATA, len(block), index)
                        s.sendall(header + block.tobytes())
                        index += len(block)
        except OSError:
            time.sleep(0.01)  # cut (rate ceiling): reconnect


def _devices(port: int, n_good: int, hostile: bool, pipe: Any, seconds: float) -> None:
    from mrm_edge.runtime.sources.framing import FrameEncoder  # noqa: F401

    _signal()  # imports and the record read before the clock starts

    pipe.send("ready")
    t0 = pipe.recv()
    threads = [
        threading.Thread(target=_good, args=(port, f"good-{i}", t0, seconds)) for i in range(n_good)
    ]
    if hostile:
        threads.append(threading.Thread(target=_hostile, args=(port, t0, seconds), daemon=True))
    for t in threads:
        t.start()
    for t in threads[:n_good]:
        t.join()


def _completing_frame_time(start: int, t0: float) -> float:
    """Scheduled send time of the frame that completes the 100 Hz window at ``start``
    (the resampler releases output i once input 5·i + 50 has arrived)."""
    last_input = (start + 999) * 5 + 50
    return t0 + (last_input // FRAME) * FRAME / FS


def one_round(devices: int, hostile: bool, seconds: float, hop_s: float) -> dict[str, Any]:
    from mrm_edge.runtime.app import open_monitor
    from mrm_edge.runtime.backends import OnnxRuntimeBackend
    from mrm_edge.runtime.config import MonitorConfig
    from mrm_edge.runtime.model import DeployedModel
    from mrm_edge.runtime.sinks.base import Sink
    from mrm_edge.runtime.sources.tcp import TcpSource

    seen: list[tuple[str, int, float]] = []
    resyncs = [0]

    class Recorder(Sink):
        def window(self, result: Any) -> None:
            if result.stream_id.startswith("good") and result.status == "ok":
                seen.append((result.stream_id, result.start, time.monotonic()))

        def stream(self, event: Any) -> None:
            resyncs[0] += event.kind == "resync"

    model = DeployedModel.load(SHIPPED)
    src = TcpSource("127.0.0.1", 0)
    backend = OnnxRuntimeBackend(model.onnx["fp32"].path)
    with open_monitor(model, src, MonitorConfig(hop_s=hop_s), backend, sinks=[Recorder()]) as mon:
        runner = threading.Thread(target=mon.run)
        runner.start()
        while not mon.chain.backend.is_active:  # the session is built before the devices start
            time.sleep(0.05)
        n_good = devices - 1 if hostile else devices
        ours, theirs = mp.Pipe()
        child = mp.get_context("spawn").Process(
            target=_devices, args=(src.port, n_good, hostile, theirs, seconds)
        )
        child.start()
        assert ours.recv() == "ready"
        t0 = time.monotonic() + 0.5  # CLOCK_MONOTONIC: the same clock in both processes
        ours.send(t0)
        child.join(seconds + 60)
        time.sleep(3.0)  # the last windows' results
        mon.stop()
        runner.join(30)
    summary = mon.tally.summary(
        model="", backend="", backend_reason="", source="", stopped_by="", knobs={}
    )
    lat = np.array([(t - _completing_frame_time(s, t0)) * 1e3 for _, s, t in seen])
    expected = n_good * (int((seconds - 10) // hop_s) + 1)
    return {
        "round": "hostile" if hostile else "clean",
        "good_devices": n_good,
        "good_windows": len(seen),
        "good_windows_expected": expected,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
        "max_ms": float(lat.max()) if len(lat) else None,
        "resyncs": resyncs[0],
        "rejected_by_reason": dict(summary.rejected_by_reason),
        "source_problems": dict(summary.source_problems_by_kind),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=9, help="devices per round (default 9)")
    ap.add_argument("--rounds", type=int, default=2, help="pairs of rounds (default 2)")
    ap.add_argument("--seconds", type=float, default=40.0, help="signal per round (default 40)")
    ap.add_argument("--hop", type=float, default=5.0, help="seconds between windows (default 5)")
    ap.add_argument("--json", type=Path, help="also write the rounds here")
    args = ap.parse_args(argv)
    rows = []
    for _ in range(args.rounds):
        for hostile in (False, True):
            row = one_round(args.devices, hostile, args.seconds, args.hop)
            rows.append(row)
            print(json.dumps(row), flush=True)
    for kind in ("clean", "hostile"):
        mine = [r for r in rows if r["round"] == kind and r["p99_ms"] is not None]
        if mine:
            p99 = ", ".join(f"{r['p99_ms']:.0f}" for r in mine)
            print(f"{kind}: good windows' end-to-end latency p99 per round (ms): {p99}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
