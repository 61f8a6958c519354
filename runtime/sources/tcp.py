"""Live devices over TCP: one connection per device, MRME framing (see framing.py).

One I/O thread serves every connection with a selector, so 500 bedside devices cost one
thread, not 500. It decodes frames into :class:`Chunk` events on a queue that
``events()`` drains. Per connection:

* HELLO opens the stream named by its stream id; DATA frames become chunks whose
  timestamp is ``first_sample_index / rate`` on the device's sample clock, so the
  runtime's gap detector sees samples the device numbered but never delivered.
* END ends the stream (reason "ended by device"); the connection may then open another
  session with a new HELLO, or close.
* EOF inside a session ends the stream with "disconnected" (or "disconnected mid-frame
  (...)" when the bytes stopped inside a frame).
* A stream whose device stays connected but sends nothing for ``stall_timeout_s``
  (default 5 s) is *marked stalled*: its stream ends with "stalled (no data for 5 s)"
  (plus how much of a frame is pending, if the silence began mid-frame), so its windows
  stop and the sinks see why, while the connection stays open. When data resumes, its
  chunks carry the same stream id again and the monitor opens a *new segment* of that
  stream, exactly as after a reconnect — not the same segment with the silence rejected
  as a gap, which after a long stall would mean zero-filling (and rejecting) every
  missed window. A connection silent for ``idle_timeout_s`` (default 30 s) is closed; its
  stream, if not already marked stalled, ends "stalled (...)".
* Malformed input closes *that* connection, with a logged one-line reason and the stream
  ending "protocol error: ..."; every other connection carries on. Garbage before a
  valid HELLO has no stream to end: it is logged, kept in ``problems`` and yielded as a
  ``SourceProblem`` event (the monitor's event log gets a ``source`` line).

Reconnects resume: a device that comes back with the same stream id produces chunks
with the same stream id again, and, as it continues its first-sample index, timestamps
that continue too (the outage shows up as a gap). A second connection claiming a stream
id that is still connected is refused (protocol error on the newcomer, the established
stream is untouched) — unless the established one is marked stalled: then it is the
half-dead side of a device that has reconnected, so it is closed and the newcomer takes
the stream over at once, rather than after ``idle_timeout_s``.

Backpressure: when the consumer falls ``max_pending_events`` behind (a soft bound: one
read may add a few more), the I/O thread stops reading, and TCP flow control slows the
devices down; nothing is dropped.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mrm_edge.runtime.sources.base import (
    DEFAULT_STALL_TIMEOUT_S,
    Event,
    Source,
    SourceProblem,
    SpecError,
    StreamEnd,
)
from mrm_edge.runtime.sources.device import check_stall_timeout, chunk_of, stall_reason
from mrm_edge.runtime.sources.framing import (
    MAX_FRAME_SECONDS,
    Data,
    FrameDecoder,
    FrameEvent,
    FramingError,
    Hello,
)

if TYPE_CHECKING:
    from mrm_edge.runtime.sources.registry import SourceOptions

log = logging.getLogger(__name__)

_RECV_BYTES = 256 * 1024
_ACCEPTS_PER_ROUND = 64  # a connect flood must not starve the devices already connected
_ACCEPT, _WAKE = "accept", "wake"


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    peer: str
    decoder: FrameDecoder
    last_rx: float
    hello: Hello | None = None  # the open session's HELLO; its stream is live while set
    stalled: bool = False  # the open session's stream was marked stalled (already ended)

    def where(self) -> str:
        sid = f" stream {self.hello.stream_id!r}" if self.hello else ""
        return f"tcp {self.peer}{sid}"


def parse_address(argument: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``) → (host, port); SpecError if malformed."""
    host, sep, port_text = argument.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host:
        raise SpecError("expected tcp:HOST:PORT, e.g. tcp:127.0.0.1:5555")
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise SpecError(f"port {port_text!r}, expected 0..65535")
    return host, port


class TcpSource(Source):
    """TCP server for MRME devices. Listens from construction (``port`` is the bound
    port, useful with port 0); ``close()`` shuts the server and every connection."""

    name = "tcp"

    @classmethod
    def from_spec(cls, argument: str, options: SourceOptions) -> TcpSource:
        """``--source tcp:HOST:PORT``."""
        host, port = parse_address(argument)
        return cls(host, port, stall_timeout_s=options.stall_timeout_s)

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_connections: int = 64,
        idle_timeout_s: float | None = 30.0,
        stall_timeout_s: float | None = DEFAULT_STALL_TIMEOUT_S,
        max_frame_seconds: float = MAX_FRAME_SECONDS,
        max_pending_events: int = 4096,
    ) -> None:
        super().__init__()
        if not 0 <= port <= 65535:
            raise ValueError(f"tcp port {port}, expected 0..65535 (0: any free port)")
        if max_connections < 1:
            raise ValueError(f"max_connections is {max_connections}, expected >= 1")
        if idle_timeout_s is not None and not idle_timeout_s > 0:
            raise ValueError(f"idle_timeout_s is {idle_timeout_s}, expected > 0 or None")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._server = socket.create_server(
                (host, port), family=family, backlog=min(max_connections, 128)
            )
        except OSError as e:
            raise OSError(f"tcp {host}:{port}: cannot listen ({e.strerror or e})") from None
        self._server.setblocking(False)
        self.host: str = self._server.getsockname()[0]
        self.port: int = self._server.getsockname()[1]
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.stall_timeout_s = check_stall_timeout(stall_timeout_s)
        self.max_frame_seconds = max_frame_seconds
        self.max_pending_events = max_pending_events
        self.problems: deque[str] = deque(maxlen=100)  # recent one-line connection problems
        self._events: queue.Queue[Event] = queue.Queue()
        self._conns: set[_Connection] = set()
        self._live: dict[str, _Connection] = {}
        self._next_reap = 0.0  # monotonic time of the next idle scan
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._server, selectors.EVENT_READ, _ACCEPT)
        self._selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self._thread = threading.Thread(
            target=self._serve, name=f"TcpSource:{self.port}", daemon=True
        )
        self._thread.start()
        log.info("tcp source listening on %s:%d", self.host, self.port)

    # -- consumer side ----------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        while not self.closed:
            try:
                event = self._events.get(timeout=0.1)
            except queue.Empty:
                if not self._thread.is_alive():
                    return  # the server failed (logged); nothing more will come
                continue
            yield event

    def close(self) -> None:
        super().close()
        with contextlib.suppress(OSError):  # already shut down
            self._wake_w.send(b"x")  # interrupt the select at once
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)

    def __enter__(self) -> TcpSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def live_streams(self) -> list[str]:
        """Stream ids with an open session now (a snapshot)."""
        return list(self._live)

    def describe(self) -> str:
        return f"tcp: listening on {self.address}"

    # -- I/O thread ---------------------------------------------------------------------
    def _serve(self) -> None:
        try:
            paused = False
            while not self.closed:
                if self._events.qsize() >= self.max_pending_events:
                    paused = True
                    self._closed.wait(0.005)
                    continue
                if paused:
                    # Time spent waiting for our consumer is not the devices' silence.
                    paused = False
                    now = time.monotonic()
                    for conn in self._conns:
                        conn.last_rx = now
                for key, _ in self._selector.select(timeout=self._select_timeout()):
                    if key.data == _ACCEPT:
                        self._accept()
                    elif key.data == _WAKE:
                        self._drain_wake()
                    else:
                        self._service(key.data)
                self._reap_idle()
        except Exception:
            log.exception("tcp source on %s failed", self.address)
            for conn in list(self._conns):
                self._drop(conn, "source failed")
        finally:
            for conn in list(self._conns):
                conn.sock.close()
            self._conns.clear()
            self._selector.close()
            self._server.close()
            self._wake_r.close()
            self._wake_w.close()
            log.info("tcp source on %s closed", self.address)

    def _timeouts(self) -> list[float]:
        return [t for t in (self.stall_timeout_s, self.idle_timeout_s) if t is not None]

    def _select_timeout(self) -> float:
        if not self._timeouts():
            return 0.5
        return min(0.5, max(0.0, self._next_reap - time.monotonic()))

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_r.recv(64)

    def _accept(self) -> None:
        for _ in range(_ACCEPTS_PER_ROUND):
            try:
                sock, addr = self._server.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # e.g. out of file descriptors: keep serving the others
                self._problem(f"tcp {self.address}", f"accept failed ({e.strerror or e})")
                return
            peer = f"{addr[0]}:{addr[1]}"
            if len(self._conns) >= self.max_connections:
                self._problem(
                    f"tcp {peer}", f"refused, max_connections ({self.max_connections}) reached"
                )
                sock.close()
                continue
            sock.setblocking(False)
            decoder = FrameDecoder(self.max_frame_seconds)
            conn = _Connection(sock, peer, decoder, time.monotonic())
            self._conns.add(conn)
            self._selector.register(sock, selectors.EVENT_READ, conn)
            log.debug("tcp %s: connected", peer)

    def _service(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._drop(conn, f"disconnected ({e.strerror or type(e).__name__})")
            return
        if not data:
            try:
                conn.decoder.eof()
            except FramingError as e:
                self._drop(conn, str(e))  # "disconnected mid-frame (...)"
            else:
                self._drop(conn, "disconnected")
            return
        conn.last_rx = time.monotonic()
        error = None
        try:
            events = conn.decoder.feed(data)
        except FramingError as e:
            # Deliver what was good before the bad byte, then close this connection only.
            events, error = e.events, f"protocol error: {e}"
        refused = self._deliver(conn, events)
        if refused is not None:
            error = f"protocol error: {refused}"
        if error is not None:
            self._drop(conn, error)

    def _deliver(self, conn: _Connection, events: list[FrameEvent]) -> str | None:
        """Queue the events; returns why the connection must be refused, if it must."""
        for ev in events:
            if isinstance(ev, Hello):
                other = self._live.get(ev.stream_id)
                if other is not None and other.stalled:
                    self._drop(other, f"replaced by a reconnect from {conn.peer}")
                elif other is not None:
                    return f"stream id {ev.stream_id!r} is already connected from {other.peer}"
                conn.hello = ev
                self._live[ev.stream_id] = conn
                fmt = ev.sample_format.name.lower()
                log.info("%s: stream opened (%d Hz, %s)", conn.where(), ev.sample_rate, fmt)
            elif isinstance(ev, Data):
                h = conn.hello
                assert h is not None  # the decoder yields DATA only inside a session
                if conn.stalled:
                    conn.stalled = False  # its next chunk opens a new segment downstream
                    log.info("%s: data resumed after a stall", conn.where())
                self._events.put(chunk_of(h, ev))
            else:
                self._end_stream(conn, "ended by device")
        return None

    def _end_stream(self, conn: _Connection, reason: str) -> None:
        if conn.hello is None:
            return
        sid = conn.hello.stream_id
        if not conn.stalled:  # a stalled stream has already ended, with "stalled (...)"
            self._events.put(StreamEnd(sid, reason))
        if self._live.get(sid) is conn:
            del self._live[sid]
        conn.hello, conn.stalled = None, False

    def _drop(self, conn: _Connection, reason: str) -> None:
        # Say why before hanging up, so whoever sees the hang-up can already read why.
        if reason == "disconnected":
            log.info("%s: disconnected", conn.where())
        else:
            # A connection that never opened a stream has no stream end to carry the reason.
            self._problem(conn.where(), f"{reason}; connection closed", event=conn.hello is None)
        if conn in self._conns:
            self._conns.discard(conn)
            self._selector.unregister(conn.sock)
            conn.sock.close()
        self._end_stream(conn, reason)

    def _reap_idle(self) -> None:
        # Scanning every connection on every wake-up would cost O(devices) per frame with
        # hundreds of devices; a scan every quarter timeout (at most 0.25 s) is plenty.
        now = time.monotonic()
        timeouts = self._timeouts()
        if not timeouts or now < self._next_reap:
            return
        self._next_reap = now + min(0.25, min(timeouts) / 4)
        idle, stall = self.idle_timeout_s, self.stall_timeout_s
        for conn in list(self._conns):
            silent = now - conn.last_rx
            if idle is not None and silent > idle:
                self._drop(conn, f"stalled (no data for {idle:g} s)")
            elif stall is not None and silent > stall and conn.hello and not conn.stalled:
                self._mark_stalled(conn, stall)

    def _mark_stalled(self, conn: _Connection, stall: float) -> None:
        """End the stream of a connected but silent device; the connection stays open."""
        assert conn.hello is not None
        reason = stall_reason(conn.decoder, stall)
        self._problem(conn.where(), f"{reason}; waiting for it to resume", event=False)
        self._events.put(StreamEnd(conn.hello.stream_id, reason))
        conn.stalled = True

    def _problem(self, where: str, reason: str, event: bool = True) -> None:
        """Log a one-line problem and keep it in ``problems``; ``event``: also hand it to the
        monitor as a SourceProblem (for problems no stream end reports)."""
        line = f"{where}: {reason}"
        self.problems.append(line)
        log.warning("%s", line)
        if event:
            self._events.put(SourceProblem(where, reason))


__all__ = ["TcpSource", "parse_address"]
