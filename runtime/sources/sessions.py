"""The device sessions of the TCP server (tcp.py): what a connection's frames mean for the
streams. A HELLO opens a stream (if the gate lets this identity, and no other connection
holds it live), DATA becomes chunks, END or a dropped connection ends it, and a silent
device's stream is marked stalled."""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable

from mrm_edge.runtime.sources.base import Event, StreamEnd
from mrm_edge.runtime.sources.connection import DeviceConnection
from mrm_edge.runtime.sources.device import chunk_of, stall_reason
from mrm_edge.runtime.sources.framing import MAX_FRAME_SECONDS, Data, FrameEvent, Hello
from mrm_edge.runtime.sources.gate import DeviceGate, Refusal

__all__ = ["DeviceSessions"]

log = logging.getLogger("mrm_edge.runtime.sources.tcp")

# The least a DATA frame costs in the rate ceiling, in seconds of signal: devices send
# 0.2-1 s frames; at the default ceiling (4x) this allows 200 frames a second.
MIN_FRAME_CHARGE_S = 0.02


class DeviceSessions:
    """Streams by id and the connection serving each; events go to ``events``. ``drop``
    closes a connection with a reason (the server's), for a stalled one a reconnect
    replaces."""

    def __init__(
        self,
        gate: DeviceGate,
        events: queue.Queue[Event],
        drop: Callable[[DeviceConnection, str], None],
    ) -> None:
        self.gate = gate
        self.events = events
        self.drop = drop
        self.live: dict[str, DeviceConnection] = {}

    def deliver(self, conn: DeviceConnection, events: list[FrameEvent]) -> Refusal | None:
        """Queue the events; returns (kind, why) the connection must be refused, if it must."""
        for ev in events:
            if isinstance(ev, Hello):
                refused = self._open(conn, ev)
                if refused is not None:
                    return refused
            elif isinstance(ev, Data):
                h = conn.hello
                assert h is not None  # the decoder yields DATA only inside a session
                if conn.stalled:
                    conn.stalled = False  # its next chunk opens a new segment downstream
                    log.info("%s: data resumed after a stall", conn.where())
                self._charge(conn, h, ev)
                self.events.put(chunk_of(h, ev))
            else:
                self.end(conn, "ended by device")
        return None

    @staticmethod
    def _charge(conn: DeviceConnection, hello: Hello, data: Data) -> None:
        """What a DATA frame costs the monitor beyond its bytes, charged to the rate ceiling
        (limits.py) as signal seconds: an index jump declares the samples skipped missing,
        and the monitor fills them (up to one frame's worth is charged per jump); and every
        frame costs at least ``MIN_FRAME_CHARGE_S``, so tiny frames cannot flood it."""
        frame_s = len(data.samples) / hello.sample_rate
        extra_s = max(0.0, MIN_FRAME_CHARGE_S - frame_s)
        if conn.next_index is not None and data.first_index > conn.next_index:
            jump_s = (data.first_index - conn.next_index) / hello.sample_rate
            extra_s += min(jump_s, MAX_FRAME_SECONDS)
        conn.uncharged_s += extra_s
        conn.next_index = data.first_index + len(data.samples)

    def _open(self, conn: DeviceConnection, ev: Hello) -> Refusal | None:
        refused = self.gate.claim(conn, ev, time.monotonic())
        if refused is not None:
            return refused
        other = self.live.get(ev.stream_id)
        if other is not None and other.stalled:  # the same identity: the gate checked it
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
        if conn.hello is None:
            return
        sid = conn.hello.stream_id
        if not conn.stalled:  # a stalled stream has already ended, with "stalled (...)"
            self.events.put(StreamEnd(sid, reason))
        if self.live.get(sid) is conn:
            del self.live[sid]
        conn.hello, conn.stalled = None, False

    def mark_stalled(self, conn: DeviceConnection, stall_s: float) -> str:
        """End the stream of a connected but silent device (the connection stays open);
        returns the reason."""
        assert conn.hello is not None
        reason = stall_reason(conn.decoder, stall_s)
        self.events.put(StreamEnd(conn.hello.stream_id, reason))
        conn.stalled = True
        return reason
