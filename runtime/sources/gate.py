"""What the TCP device server (tcp.py) checks about a connection, apart from the selector
work: admitting it (the connection cap, wrapping it in TLS), who it is, whether it may
open a stream (ownership.py), its HELLO deadline and its rate ceiling (limits.py)."""

from __future__ import annotations

import socket
import ssl

from mrm_edge.runtime.sources.connection import DeviceConnection
from mrm_edge.runtime.sources.framing import N_LEADS, FrameDecoder, Hello
from mrm_edge.runtime.sources.limits import DeviceLimits, RateCeiling
from mrm_edge.runtime.sources.network import INSECURE_FLAG
from mrm_edge.runtime.sources.ownership import AllowList, StreamOwners
from mrm_edge.runtime.sources.tls import handshake_reason

__all__ = ["INSECURE_NOTICE", "DeviceGate", "Refusal"]

INSECURE_NOTICE = (
    f"INSECURE: plain text on a non-loopback address ({INSECURE_FLAG}): any host on this "
    "network can read the ECG and open streams"
)

Refusal = tuple[str, str]  # (kind of source event, one-line reason)


class DeviceGate:
    """The server's admission rules; ``tls`` None means plain text (identity: the peer IP)."""

    def __init__(
        self,
        tls: ssl.SSLContext | None,
        allow_list: AllowList | None,
        limits: DeviceLimits,
        max_frame_seconds: float,
    ) -> None:
        self.tls = tls
        self.limits = limits
        self.max_frame_seconds = max_frame_seconds
        self.owners = StreamOwners(allow_list)
        # One rate ceiling per stream id (as many as ownership allows): a device that
        # reconnects, after a cut or not, does not get a fresh burst.
        self._rates: dict[str, RateCeiling] = {}

    def admit(
        self, sock: socket.socket, addr: tuple, open_now: int, now: float
    ) -> DeviceConnection | Refusal:
        """A new connection for ``sock`` (non-blocking), or why it is refused (the caller
        closes the socket)."""
        cap = self.limits.max_connections
        if open_now >= cap:
            return "limit", f"refused, max_connections ({cap}) reached"
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except OSError as e:  # the peer has already gone
                return "tls", f"refused ({handshake_reason(e)})"
        peer = f"{addr[0]}:{addr[1]}"
        conn = DeviceConnection(sock, peer, FrameDecoder(self.max_frame_seconds), now, now)
        conn.identity = None if self.tls is not None else str(addr[0])
        return conn

    def claim(self, conn: DeviceConnection, hello: Hello, now: float) -> Refusal | None:
        """Whether ``conn``'s identity may open ``hello``'s stream (ownership, allow-list);
        if it may, ``conn`` is charged to that stream's rate ceiling from now on."""
        assert conn.identity is not None  # a HELLO is read only after the handshake
        refused = self.owners.claim(hello.stream_id, conn.identity)
        if refused is not None:
            return "ownership", f"refused: {refused}"
        if self.limits.rate_ceiling is not None:
            conn.rate = self._rates.setdefault(hello.stream_id, RateCeiling(self.limits, now))
        return None

    def hello_overdue(self, conn: DeviceConnection, now: float) -> str | None:
        """Why ``conn`` is dropped for not having opened a stream in time, if it is."""
        limit = self.limits.hello_timeout_s
        if limit is None or conn.last_hello is not None or now - conn.accepted <= limit:
            return None
        step = "TLS handshake" if conn.identity is None else "HELLO"
        return f"no HELLO within {limit:g} s of connecting ({step} not complete)"

    def rate(self, conn: DeviceConnection, nbytes: int, now: float) -> Refusal | float:
        """The rate ceiling after ``nbytes`` more were read: ("limit", why) to cut the
        connection, else the seconds to stop reading it (0: under the ceiling).

        Counted in bytes at the last HELLO's bytes per second of signal, not in decoded
        samples: a frame may hold 60 s, and the bytes of a partial one count too. Seconds a
        frame costs beyond its bytes (``conn.uncharged_s``, sessions.py) count too."""
        h = conn.last_hello
        if conn.rate is None or h is None:
            return 0.0  # before the first HELLO the HELLO deadline applies
        bytes_per_s = h.sample_rate * N_LEADS * h.sample_format.width
        signal_s, conn.uncharged_s = nbytes / bytes_per_s + conn.uncharged_s, 0.0
        pause = conn.rate.take(signal_s, now)
        if conn.rate.must_cut:
            why = f"{conn.rate.reason(now)} for {conn.rate.cut_s:g} s (--rate-ceiling)"
            return "limit", f"cut: {why}"
        return pause
