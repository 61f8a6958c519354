"""The monitor's ``--source`` values, turned into sources.

    synthetic                 synthetic patients (the default); --streams of them
    wfdb:PATH[,PATH...]       replay records: .hea, record stems, .mat, or directories
    tcp:HOST:PORT             listen for MRME devices (port 0: any free port; IPv6 as
                              tcp:[::1]:PORT; 0.0.0.0 listens on every interface)
    stdin                     one MRME device on standard input

``speed`` paces the file and synthetic sources (live devices pace themselves), ``loop``
applies to wfdb replay (as does ``min_seconds``: shorter records are refused, the monitor
passes the model's window), ``streams`` and ``seed`` to synthetic patients, and
``stall_timeout_s`` to the live sources (tcp, stdin): a connected device silent this long
has its stream marked stalled (see tcp.py; None: never).
"""

from __future__ import annotations

from collections.abc import Sequence

from mrm_edge.runtime.sources.base import DEFAULT_STALL_TIMEOUT_S, Source

SPECS = "synthetic, wfdb:PATH[,PATH...], tcp:HOST:PORT or stdin"


def _tcp_address(spec: str, arg: str) -> tuple[str, int]:
    host, sep, port_text = arg.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host:
        raise ValueError(f"--source {spec!r}: expected tcp:HOST:PORT, e.g. tcp:127.0.0.1:5555")
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ValueError(f"--source {spec!r}: port {port_text!r}, expected 0..65535")
    return host, port


def make_source(
    spec: str,
    *,
    streams: int = 4,
    speed: float | None = 1.0,
    loop: bool = False,
    seed: int = 0,
    chunk_seconds: float | Sequence[float] = 0.2,
    stall_timeout_s: float | None = DEFAULT_STALL_TIMEOUT_S,
    min_seconds: float | None = None,
) -> Source:
    """The source ``spec`` names; ValueError (one line) for an unknown or malformed spec.
    Sources are imported on demand, so e.g. a tcp monitor never loads wfdb."""
    kind, sep, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "synthetic" and not sep:
        from mrm_edge.runtime.sources.synthetic import SyntheticSource

        return SyntheticSource(streams, speed=speed, seed=seed, chunk_seconds=chunk_seconds)
    if kind == "wfdb":
        paths = [p.strip() for p in arg.split(",") if p.strip()]
        if not paths:
            raise ValueError(f"--source {spec!r}: expected wfdb:PATH[,PATH...]")
        from mrm_edge.runtime.sources.wfdb import WfdbReplaySource

        return WfdbReplaySource(
            paths, chunk_seconds=chunk_seconds, speed=speed, loop=loop, min_seconds=min_seconds
        )
    if kind == "tcp":
        host, port = _tcp_address(spec, arg)
        from mrm_edge.runtime.sources.tcp import TcpSource

        return TcpSource(host, port, stall_timeout_s=stall_timeout_s)
    if kind == "stdin" and not sep:
        from mrm_edge.runtime.sources.stdin import StdinSource

        return StdinSource(stall_timeout_s=stall_timeout_s)
    raise ValueError(f"--source {spec!r}: unknown source, expected {SPECS}")


__all__ = ["SPECS", "make_source"]
