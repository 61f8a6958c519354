"""Live devices over TCP, plain or mutual TLS: one connection per device, MRME framing
(framing.py), one I/O thread with a selector for every connection. What a connection may
send, what ends its stream, stalls, reconnects and backpressure: docs/devices.md; its
rules (admission, ownership, limits) are in sessions.py."""

from __future__ import annotations

import contextlib
import logging
import queue
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mrm_edge.runtime.sources.base import DEFAULT_STALL_TIMEOUT_S, Event, Source, SourceProblem
from mrm_edge.runtime.sources.device import check_stall_timeout
from mrm_edge.runtime.sources.framing import FramingError
from mrm_edge.runtime.sources.limits import DeviceLimits
from mrm_edge.runtime.sources.network import (
    INSECURE_NOTICE,
    NetworkOptions,
    check_plaintext_bind,
    is_loopback,
    parse_address,
)
from mrm_edge.runtime.sources.ownership import AllowList
from mrm_edge.runtime.sources.sessions import DeviceConnection, DeviceSessions
from mrm_edge.runtime.sources.tls import handshake_reason

if TYPE_CHECKING:
    from mrm_edge.runtime.sources.registry import SourceOptions

log = logging.getLogger(__name__)

_ACCEPTS_PER_ROUND = 64  # a connect flood must not starve the devices already connected
# A soft bound: this far behind, the I/O thread stops reading and TCP flow control slows the
# devices down; nothing is dropped.
_MAX_PENDING_EVENTS = 4096
_ACCEPT, _WAKE = "accept", "wake"


class TcpSource(Source):
    """TCP server for MRME devices. Listens from construction (``port`` is the bound
    port, useful with port 0); ``close()`` shuts the server and every connection.
    ``tls``: a server context (tls.server_context) for mutual TLS; None: plain text,
    refused off loopback unless ``insecure_plaintext``."""

    @classmethod
    def from_spec(cls, argument: str, options: SourceOptions) -> TcpSource:
        """``--source tcp:HOST:PORT`` with ``options.network``'s TLS, allow-list, limits."""
        host, port = parse_address(argument)
        net = options.network or NetworkOptions()
        check_plaintext_bind(host, port, net.tls, net.insecure_plaintext)  # before the files
        return cls(
            host,
            port,
            stall_timeout_s=options.stall_timeout_s,
            tls=net.server_context(),
            allow_list=AllowList.load(net.allow_list) if net.allow_list else None,
            limits=net.limits.at_speed(options.speed),
            insecure_plaintext=net.insecure_plaintext,
        )

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: ssl.SSLContext | None = None,
        allow_list: AllowList | None = None,
        limits: DeviceLimits | None = None,
        insecure_plaintext: bool = False,
        idle_timeout_s: float | None = 30.0,
        stall_timeout_s: float | None = DEFAULT_STALL_TIMEOUT_S,
    ) -> None:
        super().__init__()
        if not 0 <= port <= 65535:
            raise ValueError(f"tcp port {port}, expected 0..65535 (0: any free port)")
        if idle_timeout_s is not None and not idle_timeout_s > 0:
            raise ValueError(f"idle_timeout_s is {idle_timeout_s}, expected > 0 or None")
        self.limits = limits or DeviceLimits()
        check_plaintext_bind(host, port, tls is not None, insecure_plaintext)  # not listening yet
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        backlog = min(self.limits.max_connections, 128)
        try:
            self._server = socket.create_server((host, port), family=family, backlog=backlog)
        except OSError as e:
            raise OSError(f"tcp {host}:{port}: cannot listen ({e.strerror or e})") from None
        self._server.setblocking(False)
        self.host: str = self._server.getsockname()[0]
        self.port: int = self._server.getsockname()[1]
        self.tls = tls
        self.idle_timeout_s = idle_timeout_s
        self.stall_timeout_s = check_stall_timeout(stall_timeout_s)
        self.problems: deque[str] = deque(maxlen=100)  # recent one-line connection problems
        self._events: queue.Queue[Event] = queue.Queue()
        self.sessions = DeviceSessions(tls, allow_list, self.limits, self._events, self._drop)
        self._conns: set[DeviceConnection] = set()
        self._ready: set[DeviceConnection] = set()  # TLS bytes decrypted but not yet read
        # Throttled by the rate ceiling, with when to read them again; meanwhile they are not
        # watched by the selector, and their bytes wait in the kernel (TCP flow control).
        self._paused: dict[DeviceConnection, float] = {}
        self._next_reap = 0.0  # monotonic time of the next idle scan
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._server, selectors.EVENT_READ, _ACCEPT)
        self._selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self.insecure = tls is None and not is_loopback(self.host)
        if self.insecure:  # only with insecure_plaintext: announced, and in the event log
            self._problem(f"tcp {self.address}", INSECURE_NOTICE, kind="insecure")
        self._thread = threading.Thread(
            target=self._serve, name=f"TcpSource:{self.port}", daemon=True
        )
        self._thread.start()
        log.info("%s", self.describe())

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

    def describe(self) -> str:
        how = " (mutual TLS)" if self.tls else " (INSECURE plain text)" if self.insecure else ""
        return f"tcp{how}: listening on {self.address}"  # ends with the port: tools read it

    # -- I/O thread ---------------------------------------------------------------------
    def _serve(self) -> None:
        try:
            paused = False
            while not self.closed:
                if self._events.qsize() >= _MAX_PENDING_EVENTS:
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
                self._resume_due(time.monotonic())
                for conn in list(self._ready):
                    self._ready.discard(conn)
                    if conn in self._conns:
                        self._service(conn)
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
        ts = (self.stall_timeout_s, self.idle_timeout_s, self.limits.hello_timeout_s)
        return [t for t in ts if t is not None]

    def _select_timeout(self) -> float:
        now = time.monotonic()
        due = [now + 0.5] if not self._timeouts() else [self._next_reap]
        due.extend(self._paused.values())
        return 0.0 if self._ready else min(0.5, max(0.0, min(due) - now))

    def _resume_due(self, now: float) -> None:
        """Watch again, and read, the throttled connections whose pause is over."""
        for conn in [c for c, until in self._paused.items() if until <= now]:
            del self._paused[conn]
            conn.last_rx = now  # paused is not silent
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)
            self._ready.add(conn)

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
            sock.setblocking(False)
            conn = self.sessions.admit(sock, addr, len(self._conns), time.monotonic())
            if isinstance(conn, tuple):
                kind, why = conn
                self._problem(f"{'tls' if self.tls else 'tcp'} {addr[0]}:{addr[1]}", why, kind)
                sock.close()
                continue
            self._conns.add(conn)
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)
            log.debug("%s: connected", conn.where())

    def _service(self, conn: DeviceConnection) -> None:
        if conn in self._paused:
            return  # throttled: its bytes wait in the kernel (TCP flow control)
        try:
            if conn.identity is None and not self._handshake(conn):
                return
            data = conn.recv()
        except ssl.SSLError as e:
            what = "TLS handshake refused" if conn.identity is None else "TLS error"
            self._drop(conn, f"{what}: {handshake_reason(e)}", kind="tls")
            return
        except OSError as e:
            self._drop(conn, f"disconnected ({e.strerror or type(e).__name__})")
            return
        if data is None:
            return
        if not data:
            try:
                conn.decoder.eof()
            except FramingError as e:
                self._drop(conn, str(e))  # "disconnected mid-frame (...)"
            else:
                self._drop(conn, "disconnected")
            return
        conn.last_rx = now = time.monotonic()
        error, kind = None, "protocol"
        try:
            events = conn.decoder.feed(data)
        except FramingError as e:
            # Deliver what was good before the bad byte, then close this connection only.
            events, error = e.events, f"protocol error: {e}"
        refused = self.sessions.deliver(conn, events, now)
        if refused is not None:
            kind, error = refused
        if error is not None:
            self._drop(conn, error, kind)
        elif conn in self._conns:
            self._limit_rate(conn, len(data))
            if conn.pending():
                self._ready.add(conn)

    def _handshake(self, conn: DeviceConnection) -> bool:
        """One step of the TLS handshake; watches for writability while it needs to write."""
        done = conn.handshake()
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.wants_write else 0)
        if self._selector.get_key(conn.sock).events != want:
            self._selector.modify(conn.sock, want, conn)
        return done

    def _limit_rate(self, conn: DeviceConnection, nbytes: int) -> None:
        """The rate ceiling: throttle a device over it, cut one that stays over it."""
        now = time.monotonic()
        pause = self.sessions.rate(conn, nbytes, now)
        if isinstance(pause, tuple):
            self._drop(conn, pause[1], pause[0])
        elif pause > 0:
            self._paused[conn] = now + pause
            self._selector.unregister(conn.sock)
            if not conn.throttle_reported:
                conn.throttle_reported = True
                assert conn.rate is not None
                reason = f"throttled: {conn.rate.reason(now)}; reading paused"
                self._problem(conn.where(), reason, kind="limit")

    def _drop(self, conn: DeviceConnection, reason: str, kind: str = "protocol") -> None:
        # Say why before hanging up, so whoever sees the hang-up can already read why.
        if reason == "disconnected":
            log.info("%s: disconnected", conn.where())
        else:
            # A connection that never opened a stream has no stream end to carry the reason.
            event = conn.hello is None
            self._problem(conn.where(), f"{reason}; connection closed", kind, event=event)
        if conn in self._conns:
            self._conns.discard(conn)
            self._ready.discard(conn)
            if self._paused.pop(conn, None) is None:  # a paused one is not registered
                self._selector.unregister(conn.sock)
            conn.sock.close()
        self.sessions.end(conn, reason)

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
            overdue = self.sessions.hello_overdue(conn, now)
            if overdue is not None:
                self._drop(conn, overdue, kind="limit")
            elif conn in self._paused:
                continue  # throttled: we are not reading it, it is not silent
            elif idle is not None and silent > idle:
                self._drop(conn, f"stalled (no data for {idle:g} s)")
            elif stall is not None and silent > stall and conn.hello and not conn.stalled:
                end = conn.stall(stall)  # the connection stays open
                self._events.put(end)
                self._problem(conn.where(), f"{end.reason}; waiting for it to resume", event=False)

    def _problem(self, where: str, reason: str, kind: str = "protocol", event: bool = True) -> None:
        """Log a one-line problem and keep it in ``problems``; ``event``: also hand it to the
        monitor as a SourceProblem of ``kind`` (for problems no stream end reports)."""
        line = f"{where}: {reason}"
        self.problems.append(line)
        log.warning("%s", line)
        if event:
            self._events.put(SourceProblem(where, reason, kind))
