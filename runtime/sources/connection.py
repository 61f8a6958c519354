"""One device connection of the TCP server (tcp.py): its socket, plain or TLS, read without
ever blocking the server's one I/O thread, and its per-connection state (session, owner
identity, deadlines, rate ceiling)."""

from __future__ import annotations

import selectors
import socket
import ssl
from dataclasses import dataclass

from mrm_edge.runtime.sources.device import DeviceSession
from mrm_edge.runtime.sources.framing import Hello
from mrm_edge.runtime.sources.limits import RateCeiling
from mrm_edge.runtime.sources.tls import peer_identity

RECV_BYTES = 256 * 1024


@dataclass(eq=False, kw_only=True)
class DeviceConnection(DeviceSession):
    sock: socket.socket  # an ssl.SSLSocket (handshake not yet done) under TLS
    peer: str  # "host:port"
    accepted: float  # monotonic second of the accept (the HELLO deadline counts from it)
    last_rx: float
    identity: str | None = None  # known once the TLS handshake is done (plain: the peer IP)
    last_hello: Hello | None = None  # the last HELLO accepted on this connection
    rate: RateCeiling | None = None  # its stream's rate ceiling (sessions.py), if one applies
    next_index: int | None = None  # the first-sample index the session's next DATA should have
    uncharged_s: float = 0.0  # signal seconds owed to the rate ceiling beyond the bytes
    paused_until: float | None = None  # throttled: not read until then
    throttle_reported: bool = False
    wants_write: bool = False  # the TLS handshake waits for the socket to be writable

    @property
    def tls(self) -> bool:
        return isinstance(self.sock, ssl.SSLSocket)

    def where(self) -> str:
        sid = f" stream {self.hello.stream_id!r}" if self.hello else ""
        return f"{'tls' if self.tls else 'tcp'} {self.peer}{sid}"

    def handshake(self) -> bool:
        """Advance the TLS handshake; True once it is done (at once for plain text).
        Raises ssl.SSLError (or OSError) when it fails."""
        if self.identity is not None:
            return True
        assert isinstance(self.sock, ssl.SSLSocket)
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self.wants_write = False
            return False
        except ssl.SSLWantWriteError:
            self.wants_write = True
            return False
        self.wants_write = False
        self.identity = peer_identity(self.sock)
        return True

    def recv(self) -> bytes | None:
        """Bytes received (b"": the peer closed), or None when none are ready yet (a TLS
        record may be incomplete though the socket was readable). Raises OSError."""
        try:
            return self.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None

    def pending(self) -> bool:
        """Whether TLS holds decrypted bytes already (the selector cannot see them)."""
        return isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0


class Throttle:
    """Connections the rate ceiling has paused: not watched by ``selector`` until due."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self.selector = selector
        self.paused: set[DeviceConnection] = set()

    def pause(self, conn: DeviceConnection, until: float) -> None:
        conn.paused_until = until
        self.selector.unregister(conn.sock)
        self.paused.add(conn)

    def discard(self, conn: DeviceConnection) -> bool:
        """Forget ``conn``; True if it was paused (so it is not registered)."""
        if conn not in self.paused:
            return False
        self.paused.discard(conn)
        return True

    def next_due(self) -> list[float]:
        return [c.paused_until for c in self.paused if c.paused_until is not None]

    def resume_due(self, now: float) -> list[DeviceConnection]:
        """Watch again the connections whose pause is over; returns them (to be read)."""
        due = [c for c in self.paused if c.paused_until is not None and c.paused_until <= now]
        for conn in due:
            self.paused.discard(conn)
            conn.paused_until, conn.last_rx = None, now  # paused is not silent
            self.selector.register(conn.sock, selectors.EVENT_READ, conn)
        return due
