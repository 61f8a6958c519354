"""Where and how the TCP device server may listen: the address, plain text only on
loopback (or with the loud ``--insecure-plaintext-network``), and the network options
``mrm-edge monitor`` passes to the tcp source (docs/devices.md)."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from mrm_edge.runtime.sources.base import SpecError
from mrm_edge.runtime.sources.limits import DeviceLimits

INSECURE_FLAG = "--insecure-plaintext-network"
INSECURE_NOTICE = (
    f"INSECURE: plain text on a non-loopback address ({INSECURE_FLAG}): any host on this "
    "network can read the ECG and open streams"
)


@dataclass(frozen=True)
class NetworkOptions:
    """The tcp source's security and limit knobs (tls.py, ownership.py, limits.py)."""

    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    allow_list: Path | None = None
    limits: DeviceLimits = field(default_factory=DeviceLimits)
    insecure_plaintext: bool = False

    def __post_init__(self) -> None:
        given = [self.tls_cert, self.tls_key, self.tls_client_ca]
        if any(given) and not all(given):
            raise ValueError(
                "TLS needs all of --tls-cert, --tls-key and --tls-client-ca (mutual TLS)"
            )

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def server_context(self) -> ssl.SSLContext | None:
        """The checked TLS server context, or None for plain text."""
        if self.tls_cert is None or self.tls_key is None or self.tls_client_ca is None:
            return None
        from mrm_edge.runtime.sources.tls import TlsFiles, server_context

        return server_context(TlsFiles(self.tls_cert, self.tls_key, self.tls_client_ca))


def parse_address(argument: str, kind: str = "tcp") -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``) → (host, port); SpecError if malformed
    (``kind`` names the spec's kind in the message)."""
    host, sep, port_text = argument.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host:
        raise SpecError(f"expected {kind}:HOST:PORT, e.g. {kind}:127.0.0.1:5555")
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise SpecError(f"port {port_text!r}, expected 0..65535")
    return host, port


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address (127.0.0.0/8, ::1).
    ``0.0.0.0`` and ``::`` (every interface) are not; an unresolvable name is not."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_plaintext_bind(host: str, port: int, tls: bool, insecure: bool) -> None:
    """ValueError (one line: the reason and the options) for plain text off loopback."""
    if tls or insecure or is_loopback(host):
        return
    raise ValueError(
        f"tcp {host}:{port}: refusing to listen in plain text on a non-loopback address "
        "(any host there could read the ECG and open streams); give --tls-cert, --tls-key "
        f"and --tls-client-ca for mutual TLS, or {INSECURE_FLAG} on an isolated test network"
    )
