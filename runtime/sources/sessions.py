"""The TCP server's (tcp.py) connections and rules, apart from the selector work: one
device connection (its socket, plain or TLS, read without ever blocking the server's one
I/O thread, and its state); admitting one (the connection cap, wrapping it in TLS),
whether its identity may open a stream (ownership.py) and no other connection holds it
live, its HELLO deadline and its rate ceiling (limits.py); and what its frames mean for
the streams."""

from __future__ import annotations

import logging
import queue
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from mrm_edge.runtime.sources.base import Event
from mrm_edge.runtime.sources.device import DeviceSession
from mrm_edge.runtime.sources.framing import MAX_FRAME_SECONDS, N_LEADS, Data, FrameEvent, Hello
from mrm_edge.runtime.sources.limits import DeviceLimits, RateCeiling
from mrm_edge.runtime.sources.ownership import AllowList, StreamOwners
from mrm_edge.runtime.sources.tls import handshake_reason, peer_identity

log = logging.getLogger("mrm_edge.runtime.sources.tcp")

Refusal = tuple[str, str]  # (kind of source event, one-line reason)

# The least a DATA frame costs in the rate ceiling, in seconds of signal: devices send
# 0.2-1 s frames; at the default ceiling (4x) this allows 200 frames a second.
MIN_FRAME_CHARGE_S = 0.02


RECV_BYTES = 256 * 1024


@dataclass(eq=False, kw_only=True)
class DeviceConnection(DeviceSession):
    sock: socket.socket  # an ssl.SSLSocket (handshake not yet done) under TLS
    peer: str  # "host:port"
    accepted: float  # monotonic second of the accept (the HELLO deadline counts from it)
    last_rx: float
    identity: str | None = None  # known once the TLS handshake is done (plain: the peer IP)
    last_hello: Hello | None = None  # the last HELLO accepted on this connection
    rate: RateCeiling | None = None  # its stream's rate ceiling, if one applies
    next_index: int | None = None  # the first-sample index the session's next DATA should have
    uncharged_s: float = 0.0  # signal seconds owed to the rate ceiling beyond the bytes
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


class DeviceSessions:
    """Streams by id and the connection serving each; events go to ``events``. ``tls``
    None means plain text (identity: the peer IP). ``drop`` closes a connection with a
    reason (the server's), for a stalled one a reconnect replaces."""

    def __init__(
        self,
        tls: ssl.SSLContext | None,
        allow_list: AllowList | None,
        limits: DeviceLimits,
        events: queue.Queue[Event],
        drop: Callable[[DeviceConnection, str], None],
    ) -> None:
        self.tls = tls
        self.limits = limits
        self.owners = StreamOwners(allow_list)
        self.events = events
        self.drop = drop
        self.live: dict[str, DeviceConnection] = {}
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
        identity = None if self.tls is not None else str(addr[0])
        peer = f"{addr[0]}:{addr[1]}"
        return DeviceConnection(sock=sock, peer=peer, accepted=now, last_rx=now, identity=identity)

    def deliver(
        self, conn: DeviceConnection, events: list[FrameEvent], now: float
    ) -> Refusal | None:
        """Queue the events; returns (kind, why) the connection must be refused, if it must."""
        for ev in events:
            if isinstance(ev, Hello):
                refused = self._open(conn, ev, now)
                if refused is not None:
                    return refused
            elif isinstance(ev, Data):
                chunk = conn.chunk(ev)
                self._charge(conn, ev, chunk.sample_rate)
                self.events.put(chunk)
            else:
                self.end(conn, "ended by device")
        return None

    @staticmethod
    def _charge(conn: DeviceConnection, data: Data, rate: int) -> None:
        """What a DATA frame costs the monitor beyond its bytes, charged to the rate ceiling
        (limits.py) as signal seconds: an index jump declares the samples skipped missing,
        and the monitor fills them (up to one frame's worth is charged per jump); and every
        frame costs at least ``MIN_FRAME_CHARGE_S``, so tiny frames cannot flood it."""
        extra_s = max(0.0, MIN_FRAME_CHARGE_S - len(data.samples) / rate)
        if conn.next_index is not None and data.first_index > conn.next_index:
            extra_s += min((data.first_index - conn.next_index) / rate, MAX_FRAME_SECONDS)
        conn.uncharged_s += extra_s
        conn.next_index = data.first_index + len(data.samples)

    def _open(self, conn: DeviceConnection, ev: Hello, now: float) -> Refusal | None:
        assert conn.identity is not None  # a HELLO is read only after the handshake
        refused = self.owners.claim(ev.stream_id, conn.identity)
        if refused is not None:
            return "ownership", f"refused: {refused}"
        if self.limits.rate_ceiling is not None:  # charged to the stream's ceiling from now on
            conn.rate = self._rates.setdefault(ev.stream_id, RateCeiling(self.limits, now))
        other = self.live.get(ev.stream_id)
        if other is not None and other.stalled:  # the same identity: ownership checked it
            self.drop(other, f"replaced by a reconnect from {conn.peer}")
        elif other is not None:
            why = f"stream id {ev.stream_id!r} is already connected from {other.peer}"
            return "protocol", f"protocol error: {why}"
        conn.hello = conn.last_hello = ev
        conn.next_index = None
        self.live[ev.stream_id] = conn
        fmt = ev.sample_format.name.lower()
        log.info("%s: stream opened (%d Hz, %s)", conn.where(), ev.sample_rate, fmt)
        return None

    def end(self, conn: DeviceConnection, reason: str) -> None:
        """End ``conn``'s open stream, if any, with ``reason``."""
        if conn.hello is not None and self.live.get(conn.hello.stream_id) is conn:
            del self.live[conn.hello.stream_id]
        event = conn.end(reason)
        if event is not None:
            self.events.put(event)

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
        frame costs beyond its bytes (``conn.uncharged_s``) count too."""
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
