"""The cost of mutual TLS on the tcp device input: N devices over TLS against the same N in
plain text, on loopback, measured in two ways::

    python -m benchmarks.tls_cost --devices 64 --json tls-cost.json

1. **Receive at max speed** (the transport alone): N devices in a child process each send
   ``--seconds`` of 12-lead float32 signal at ``--fs`` as fast as the socket takes it to a
   ``TcpSource``; the receiving process's CPU time (all its threads) and wall time per
   second of signal received.
2. **Real time through the Monitor** (what a deployment pays): N devices at real-time pace
   for ``--realtime-seconds`` to ``mrm-edge monitor``'s Monitor with the shipped model on
   ONNX Runtime CPU at ``--hop``; classified windows per second and the monitor process's
   CPU use (process CPU seconds per wall second, 1.0 = one core).

Certificates (a CA, the monitor's, one device's, EC P-256) are made in a temporary
directory with the ``openssl`` command. The devices run in another process so that their
encryption is not counted as the monitor's.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from mrm_edge.runtime.sources.base import Chunk, Pacer, StreamEnd
from mrm_edge.runtime.sources.framing import FrameEncoder
from mrm_edge.runtime.sources.limits import DeviceLimits
from mrm_edge.runtime.sources.tcp import TcpSource
from mrm_edge.runtime.sources.tls import TlsFiles, client_context, server_context

__all__ = ["make_certificates", "measure"]


def make_certificates(d: Path) -> tuple[TlsFiles, TlsFiles]:
    """(the monitor's files, a device's files), one CA, made with ``openssl``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl command is needed to make test certificates")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=bench CA",
        "-days", "1", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign")  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("device", "extendedKeyUsage=clientAuth\n"),
    ):
        (d / f"{name}.ext").write_text(ext)
        run("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN=bench {name}")  # fmt: skip
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "1",
            "-extfile", f"{name}.ext")  # fmt: skip
    ca = d / "ca.pem"
    return TlsFiles(d / "server.pem", d / "server.key", ca), TlsFiles(
        d / "device.pem", d / "device.key", ca
    )


def _devices(port: int, files: TlsFiles | None, n: int, seconds: float, fs: int,
             speed: float | None) -> None:  # fmt: skip
    """The child process: ``n`` devices, one thread each, 0.2 s DATA frames."""
    x = np.random.default_rng(0).normal(0, 0.3, (round(seconds * fs), 12)).astype(np.float32)
    ctx = None if files is None else client_context(files)

    def one(i: int) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=60)
        sock = raw if ctx is None else ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        enc, step, pacer = FrameEncoder(f"dev-{i:03d}", fs), fs // 5, Pacer(speed)
        sock.sendall(enc.hello())
        for a in range(0, len(x), step):
            pacer.wait_until((a + step) / fs)
            sock.sendall(enc.data(x[a : a + step]))
        sock.sendall(enc.end())
        socket.socket.shutdown(sock, socket.SHUT_WR)
        sock.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _start_devices(port: int, files: TlsFiles | None, n: int, seconds: float, fs: int,
                   speed: float | None) -> mp.process.BaseProcess:  # fmt: skip
    proc = mp.get_context("spawn").Process(
        target=_devices, args=(port, files, n, seconds, fs, speed), daemon=True
    )
    proc.start()
    return proc


def _receive(tls: ssl.SSLContext | None, device: TlsFiles | None, n: int, seconds: float,
             fs: int) -> dict[str, float]:  # fmt: skip
    no_limits = DeviceLimits(max_connections=max(64, n), rate_ceiling=None)
    with TcpSource(tls=tls, limits=no_limits, stall_timeout_s=None) as src:
        proc = _start_devices(src.port, device, n, seconds, fs, None)
        samples, ends, t0, cpu0 = 0, 0, None, time.process_time()
        for ev in src.events():
            if isinstance(ev, Chunk):
                t0 = t0 or time.monotonic()
                samples += len(ev.samples)
            elif isinstance(ev, StreamEnd):
                ends += 1
                if ends == n:
                    break
        wall, cpu = time.monotonic() - (t0 or time.monotonic()), time.process_time() - cpu0
        proc.join(timeout=60)
    signal_s = samples / fs
    return {"signal_s": signal_s, "wall_s": wall, "signal_s_per_s": signal_s / wall,
            "cpu_s": cpu, "cpu_ms_per_signal_s": 1e3 * cpu / signal_s}  # fmt: skip


def _realtime(tls: ssl.SSLContext | None, device: TlsFiles | None, n: int, seconds: float,
              fs: int, hop_s: float) -> dict[str, float]:  # fmt: skip
    from mrm_edge.runtime.app import open_monitor
    from mrm_edge.runtime.backends import OnnxRuntimeBackend
    from mrm_edge.runtime.config import MonitorConfig
    from mrm_edge.runtime.model import DeployedModel

    from mrm_edge.artifacts import default_model_dir

    model = DeployedModel.load(default_model_dir())
    backend = OnnxRuntimeBackend(model.onnx["int8"].path, providers=["CPUExecutionProvider"])
    src = TcpSource(tls=tls, limits=DeviceLimits(max_connections=max(64, n)))
    config = MonitorConfig(hop_s=hop_s, max_batch=n, max_delay_ms=50)
    with backend, open_monitor(model, src, config, backend) as mon:
        out: dict[str, Any] = {}
        runner = threading.Thread(target=lambda: out.update(s=mon.run()))
        cpu0, t0 = time.process_time(), time.monotonic()
        runner.start()
        proc = _start_devices(src.port, device, n, seconds, fs, 1.0)
        proc.join(timeout=seconds + 120)
        produced = mon.accounting.windows_produced  # counted live by the running monitor
        while sum(produced.values()) < n * (int((seconds - 10) // hop_s) + 1):
            if time.monotonic() - t0 > seconds + 120:
                break
            time.sleep(0.1)
        time.sleep(1.0)  # the last batch
        mon.stop("measured")
        runner.join(timeout=60)
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    s = out["s"]
    return {"classified": s.classified, "dropped": s.dropped, "wall_s": wall,
            "windows_per_s": s.classified / wall, "cpu_s": cpu, "cpu_cores": cpu / wall,
            "latency_p99_ms": s.latency_ms["p99"]}  # fmt: skip


def measure(devices: int = 64, seconds: float = 60.0, realtime_seconds: float = 30.0,
            fs: int = 500, hop_s: float = 10.0,
            modes: tuple[str, ...] = ("plain", "tls")) -> dict[str, Any]:  # fmt: skip
    """Both measurements for each of ``modes``, in that order (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        server, device = make_certificates(Path(tmp))
        ctx = server_context(server)
        result: dict[str, Any] = {"devices": devices, "fs": fs, "hop_s": hop_s}
        settings = {"plain": (None, None), "tls": (ctx, device)}
        for mode in modes:
            tls, dev = settings[mode]
            result[mode] = {
                "max_speed": _receive(tls, dev, devices, seconds, fs),
                "realtime": _realtime(tls, dev, devices, realtime_seconds, fs, hop_s),
            }
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tls_cost", description=__doc__)
    p.add_argument("--devices", type=int, default=64)
    p.add_argument("--seconds", type=float, default=60.0, help="signal per device, max speed")
    p.add_argument("--realtime-seconds", type=float, default=30.0)
    p.add_argument("--fs", type=int, default=500)
    p.add_argument("--hop", type=float, default=10.0)
    p.add_argument("--order", choices=["plain,tls", "tls,plain"], default="plain,tls")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    modes = tuple(a.order.split(","))
    r = measure(a.devices, a.seconds, a.realtime_seconds, a.fs, a.hop, modes)
    for mode in modes:
        m, rt = r[mode]["max_speed"], r[mode]["realtime"]
        print(f"{mode:5s} max speed: {m['signal_s_per_s']:6.0f} s of signal/s, "
              f"{m['cpu_ms_per_signal_s']:.3f} ms CPU per s of signal | real time: "
              f"{rt['classified']} windows classified ({rt['windows_per_s']:.2f}/s), "
              f"dropped {rt['dropped']}, {rt['cpu_s']:.1f} s CPU ({rt['cpu_cores']:.2f} "
              f"cores), p99 {rt['latency_p99_ms']:.0f} ms")  # fmt: skip
    if a.json:
        a.json.write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
