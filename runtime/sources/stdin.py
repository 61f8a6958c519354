"""One device's MRME byte stream read from a pipe, for shell pipelines::

    mrm-edge send --stdout RECORD | mrm-edge monitor --source stdin

The same sessions, events and stall as a TCP connection (device.py, docs/devices.md).
Reads use ``select`` on the file descriptor when there is one, so ``close()`` from
another thread ends the iteration within 0.1 s even while the writer is silent;
in-memory streams (no descriptor) never stall."""

from __future__ import annotations

import io
import logging
import os
import select
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

from mrm_edge.runtime.sources.base import (
    DEFAULT_STALL_TIMEOUT_S,
    Event,
    Source,
)
from mrm_edge.runtime.sources.device import DeviceSession, check_stall_timeout
from mrm_edge.runtime.sources.framing import Data, FramingError, Hello

if TYPE_CHECKING:
    from mrm_edge.runtime.sources.registry import SourceOptions

log = logging.getLogger(__name__)

_READ_BYTES = 256 * 1024


class StdinSource(Source):
    """MRME frames from ``stream`` (default: standard input's binary buffer)."""

    @classmethod
    def from_spec(cls, argument: str, options: SourceOptions) -> StdinSource:
        """``--source stdin``: one device on standard input."""
        return cls(stall_timeout_s=options.stall_timeout_s)

    def __init__(
        self,
        stream: BinaryIO | None = None,
        *,
        label: str = "stdin",
        stall_timeout_s: float | None = DEFAULT_STALL_TIMEOUT_S,
    ) -> None:
        super().__init__()
        self.stall_timeout_s = check_stall_timeout(stall_timeout_s)
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.label = label

    def _fd(self) -> int | None:
        try:
            return self.stream.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None  # an in-memory stream: reads never block

    def _reads(self) -> Iterator[bytes | None]:
        """Blocks of bytes until EOF (an empty block) or close(); None: 0.1 s of silence."""
        fd = self._fd()
        while not self.closed:
            if fd is not None:
                ready, _, _ = select.select([fd], [], [], 0.1)
                if not ready:
                    yield None
                    continue
                # The raw descriptor, not the buffered reader: select only sees the former.
                data = os.read(fd, _READ_BYTES)
            else:
                read1 = getattr(self.stream, "read1", self.stream.read)
                data = read1(_READ_BYTES)
            yield data
            if not data:
                return

    def events(self) -> Iterator[Event]:
        session = DeviceSession()
        last_rx = time.monotonic()
        for data in self._reads():
            if data is None:
                silent, stall = time.monotonic() - last_rx, self.stall_timeout_s
                if session.hello and not session.stalled and stall is not None and silent > stall:
                    end = session.stall(stall)
                    log.warning("%s: %s; waiting for it to resume", self.label, end.reason)
                    yield end
                continue
            if not data:
                break
            last_rx = time.monotonic()
            error = None
            try:
                frames = session.decoder.feed(data)
            except FramingError as e:
                frames, error = e.events, e
            for frame in frames:
                if isinstance(frame, Hello):
                    session.hello = frame
                elif isinstance(frame, Data):
                    yield session.chunk(frame)
                elif (end := session.end("ended by device")) is not None:
                    yield end
            if error is not None:
                if session.hello is None:
                    raise FramingError(f"{self.label}: {error}") from None
                log.warning(
                    "%s stream %r: protocol error: %s", self.label, session.hello.stream_id, error
                )
                if (end := session.end(f"protocol error: {error}")) is not None:
                    yield end
                return
        if self.closed:
            return
        try:
            session.decoder.eof()
            reason = "disconnected"
        except FramingError as e:
            reason = str(e)
        if session.hello is None and reason != "disconnected":
            raise FramingError(f"{self.label}: {reason}")
        if (end := session.end(reason)) is not None:
            yield end

    def describe(self) -> str:
        return f"stdin: MRME frames from {self.label}"
