"""The device side of the MRME framing: plays ECG records as live devices would, each
record one device (its own TCP connection and thread, or in turn on standard output; or its
own Lab Streaming Layer outlet); the command is ``mrm-edge send`` (cli/send.py), the
behaviour and exit status: docs/devices.md.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from mrm_edge.runtime.sources.base import Pacer, SpecError
from mrm_edge.runtime.sources.framing import DEFAULT_INT16_GAIN, FrameEncoder, SampleFormat
from mrm_edge.runtime.sources.tls import TlsFiles, client_context, client_failure
from mrm_edge.runtime.sources.wfdb import load_records

from mrm_edge.data.dataset import LEADS

CONNECT_TIMEOUT_S = 5.0
SEND_TIMEOUT_S = 30.0  # a receiver that takes nothing for this long is treated as gone
TLS_VERDICT_S = 5.0  # after END over TLS, how long to wait for the monitor to hang up
LSL_LINGER_S = 1.0  # an outlet kept this long after its last push: inlets take the rest


@dataclass
class SendResult:
    stream_id: str
    path: Path
    samples: int = 0  # sent, per lead
    clipped: int = 0  # int16 samples clipped to the format's range
    error: str | None = None


@dataclass
class _Device:
    result: SendResult
    encoder: FrameEncoder
    samples: np.ndarray  # [n, 12] mV
    chunk: int  # samples per DATA frame
    done: threading.Event = field(default_factory=threading.Event)


def _play(
    write: Callable[[bytes], object],
    dev: _Device,
    speed: float | None,
    loop: bool,
    stop: threading.Event,
) -> None:
    """HELLO, DATA paced like a device (a chunk goes out once it would have been
    acquired), END — also when stopped early, so the receiver sees a clean end."""
    enc, x, chunk = dev.encoder, dev.samples, dev.chunk
    fs = enc.sample_rate
    pacer = Pacer(speed, stop)
    write(enc.hello())
    sent = 0
    while not stop.is_set():
        for a in range(0, len(x), chunk):
            block = x[a : a + chunk]
            if not pacer.wait_until((sent + len(block)) / fs):
                break
            write(enc.data(block))
            sent += len(block)
            dev.result.samples = sent
        if not loop:
            break
    write(enc.end())
    dev.result.clipped = enc.clipped


@dataclass(frozen=True)
class _Tls:
    files: TlsFiles
    context: ssl.SSLContext
    server_name: str  # checked against the monitor's certificate (DNS name or IP)


def _send_tcp(
    dev: _Device, host: str, port: int, speed: float | None, loop: bool,
    stop: threading.Event, tls: _Tls | None = None,
) -> None:  # fmt: skip
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S) as raw:
            if tls is not None:
                _send_tls(raw, tls, lambda write: _play(write, dev, speed, loop, stop))
            else:
                raw.settimeout(SEND_TIMEOUT_S)
                _play(raw.sendall, dev, speed, loop, stop)
                raw.shutdown(socket.SHUT_WR)
    except ssl.SSLError as e:
        assert tls is not None
        dev.result.error = f"{host}:{port}: {client_failure(e, tls.files)}"
    except OSError as e:
        dev.result.error = f"{host}:{port}: {e.strerror or type(e).__name__}"
        if tls is not None:
            dev.result.error += (
                f" (the monitor may have refused this device's certificate {tls.files.cert};"
                " see its log)"
            )
    finally:
        dev.done.set()


def _send_tls(raw: socket.socket, tls: _Tls, play: Callable[[Callable], None]) -> None:
    """One device session over TLS. Under TLS 1.3 a monitor that refuses our certificate
    says so after our side of the handshake is done, so: after END, half-close and wait for
    the monitor to hang up; an alert instead of that means it refused us (ssl.SSLError)."""
    with tls.context.wrap_socket(raw, server_hostname=tls.server_name) as sock:
        sock.settimeout(SEND_TIMEOUT_S)
        try:
            play(sock.sendall)
        except OSError:
            _raise_alert(sock)  # the alert that explains the hang-up, if one came
            raise
        # The TCP half-close under TLS (SSLSocket.shutdown would drop the TLS layer, and
        # the alert with it): END already says the session is complete.
        socket.socket.shutdown(sock, socket.SHUT_WR)
        sock.settimeout(TLS_VERDICT_S)
        with contextlib.suppress(TimeoutError):
            sock.recv(1)  # b"": the monitor read it all and hung up; an alert raises


def _raise_alert(sock: ssl.SSLSocket) -> None:
    """Raise the TLS alert the monitor sent before hanging up, if one can be read."""
    sock.settimeout(1.0)
    try:
        sock.recv(1)
    except ssl.SSLError:
        raise
    except OSError:
        return


def _send_stream(
    devices: list[_Device], out: BinaryIO, speed: float | None, loop: bool, stop: threading.Event
) -> None:
    def write(b: bytes) -> None:
        out.write(b)
        out.flush()  # a pipe reader must see each frame when it is due, not at 8 KiB

    for dev in devices:
        if stop.is_set():
            dev.result.error = "not sent (stopped)"
            continue
        try:
            _play(write, dev, speed, loop, stop)
        except (BrokenPipeError, ValueError, OSError) as e:
            dev.result.error = f"output closed by the reader ({type(e).__name__})"
            stop.set()


def _stream_ids(loaded: list, stream_ids: Sequence[str] | None) -> list[str]:
    """The given stream ids, one per loaded record (default: the records'), all distinct."""
    ids = list(stream_ids or [r.stream_id for r in loaded])
    if len(ids) != len(loaded):
        raise ValueError(f"{len(ids)} stream ids for {len(loaded)} records, expected one each")
    if len(set(ids)) != len(ids):
        raise ValueError(f"stream ids {ids} repeat; each device needs its own")
    return ids


def send_records(
    paths: Iterable[str | Path],
    host: str = "127.0.0.1",
    port: int | None = None,
    *,
    speed: float | None = 1.0,
    chunk_seconds: float = 0.2,
    sample_format: str = "float32",
    gain: float = DEFAULT_INT16_GAIN,
    stream_ids: Sequence[str] | None = None,
    loop: bool = False,
    prefer_rate: int | None = None,
    stop: threading.Event | None = None,
    tls: TlsFiles | None = None,
    server_name: str | None = None,
) -> list[SendResult]:
    """Stream each record as one device; returns one :class:`SendResult` per record.

    ``port`` None: write to standard output, records in sequence.
    Paths may be files, record stems or directories (as for the wfdb source). ``tls``:
    mutual TLS with these files, the monitor's certificate checked for ``server_name``
    (default ``host``). Raises DataError/ValueError for bad records, arguments or TLS
    files before anything is sent.
    """
    if not chunk_seconds > 0:
        raise ValueError(f"chunk_seconds is {chunk_seconds}, expected > 0")
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"port {port}, expected 1..65535")
    fmt = SampleFormat.parse(sample_format)
    secure = None if tls is None else _Tls(tls, client_context(tls), server_name or host)
    loaded = load_records(paths, prefer_rate)
    ids = _stream_ids(loaded, stream_ids)
    devices = []
    for sid, (_, path, x, fs, _) in zip(ids, loaded, strict=True):
        enc = FrameEncoder(sid, fs, fmt, gain if fmt is SampleFormat.INT16 else None)
        chunk = max(1, round(chunk_seconds * fs))
        devices.append(_Device(SendResult(sid, path), enc, x, chunk))
    if stop is None:
        stop = threading.Event()
    if port is None:
        _send_stream(devices, sys.stdout.buffer, speed, loop, stop)
        return [d.result for d in devices]
    threads = []
    for d in devices:
        args = (d, host, port, speed, loop, stop, secure)
        name = f"send:{d.result.stream_id}"
        threads.append(threading.Thread(target=_send_tcp, args=args, name=name, daemon=True))
    for t in threads:
        t.start()
    try:
        for d in devices:
            while not d.done.wait(timeout=0.2):  # short waits keep Ctrl-C responsive
                pass
    finally:
        stop.set()  # on Ctrl-C: every device sends END and hangs up
        # Wait on the devices' own flags, not Thread.join: a join that Ctrl-C interrupted
        # can leave the thread looking finished while it is still sending its END.
        for d in devices:
            d.done.wait(timeout=SEND_TIMEOUT_S)
    return [d.result for d in devices]


def publish_records(
    paths: Iterable[str | Path],
    *,
    speed: float | None = 1.0,
    chunk_seconds: float = 0.2,
    stream_ids: Sequence[str] | None = None,
    loop: bool = False,
    prefer_rate: int | None = None,
    stop: threading.Event | None = None,
) -> list[SendResult]:
    """Each record as one Lab Streaming Layer outlet (:class:`EcgOutlet`), paced
    as :func:`send_records` paces a device; each starts once an inlet has connected (an
    outlet with none drops its samples). Raises as :func:`send_records`, before anything is
    sent; a missing pylsl is a ValueError naming the extra."""
    if not chunk_seconds > 0:
        raise ValueError(f"chunk_seconds is {chunk_seconds}, expected > 0")
    loaded = load_records(paths, prefer_rate)
    ids = _stream_ids(loaded, stream_ids)
    stop = stop or threading.Event()
    results, threads = [], []
    for sid, (_, path, x, fs, _) in zip(ids, loaded, strict=True):
        results.append(SendResult(sid, path))
        outlet = EcgOutlet(sid, fs)
        args = (outlet, x, max(1, round(chunk_seconds * fs)), results[-1], speed, loop, stop)
        threads.append(threading.Thread(target=_publish, args=args, name=f"lsl:{sid}"))
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(timeout=0.2)  # short waits keep Ctrl-C responsive
    finally:
        stop.set()
    return results


def _publish(
    outlet: EcgOutlet, x: np.ndarray, chunk: int, result: SendResult,
    speed: float | None, loop: bool, stop: threading.Event,
) -> None:  # fmt: skip
    """One record through ``outlet`` once it has an inlet, its chunks pushed as they fall
    due; the outlet then lingers so the inlets can take the last ones."""
    while not outlet.wait_for_inlet(0.2):
        if stop.is_set():
            result.error = "not sent (stopped before an inlet connected)"
            return
    pacer = Pacer(speed, stop)
    while not stop.is_set():
        for a in range(0, len(x), chunk):
            block = x[a : a + chunk]
            if not pacer.wait_until((result.samples + len(block)) / outlet.rate):
                break
            outlet.push(block)
            result.samples += len(block)
        if not loop:
            break
    outlet.close()


class EcgOutlet:
    """A record published as an LSL outlet (``mrm-edge send --lsl``): name and source_id
    ``stream_id`` (stable: a restarted sender is the same patient), type ECG, float32, the
    12 leads as channel labels in mV; each chunk stamped on the sample clock."""

    def __init__(self, stream_id: str, rate: int) -> None:
        from mrm_edge.runtime.sources.lsl import load_pylsl

        try:
            self._lsl = load_pylsl()
        except SpecError as e:
            raise ValueError(str(e)) from None
        lsl = self._lsl
        info = lsl.StreamInfo(stream_id, "ECG", len(LEADS), rate, lsl.cf_float32, stream_id)
        channels = info.desc().append_child("channels")
        for lead in LEADS:
            channel = channels.append_child("channel")
            channel.append_child_value("label", lead)
            channel.append_child_value("unit", "millivolts")
            channel.append_child_value("type", "ECG")
        self._outlet = lsl.StreamOutlet(info)
        self.rate = rate
        self._t0: float | None = None
        self._pushed = 0

    def wait_for_inlet(self, timeout_s: float) -> bool:
        return bool(self._outlet.wait_for_consumers(timeout_s))

    def push(self, block: np.ndarray) -> None:
        """``block`` [n, 12] mV; its last sample stamped ``t0 + index / rate``."""
        if self._t0 is None:
            self._t0 = self._lsl.local_clock()
        self._pushed += len(block)
        stamp = self._t0 + (self._pushed - 1) / self.rate
        self._outlet.push_chunk(np.ascontiguousarray(block, np.float32), stamp)

    def close(self) -> None:
        time.sleep(LSL_LINGER_S)
        del self._outlet
