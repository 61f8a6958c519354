"""One device's MRME byte stream read from a pipe, for shell pipelines::

    mrm-edge send --stdout RECORD | mrm-edge monitor --source stdin

Same framing and same events as a TCP connection (see framing.py and tcp.py): chunks
timestamped ``first_sample_index / rate``, "ended by device" on END, "disconnected" (or
"disconnected mid-frame (...)") at EOF inside a session, and "protocol error: ..." for
malformed input inside a session. Several sessions may follow one another on the pipe
(``send --stdout A B``). Malformed input *outside* any session (e.g. not MRME at all)
has no stream to end, so it raises :class:`FramingError` naming the input: with one
device on the pipe, the monitor should stop and say so rather than sit idle.

Reads use ``select`` on the file descriptor when there is one, so ``close()`` from
another thread ends the iteration within 0.1 s even while the writer is silent.

A stalled pipe is one stalled stream: when the writer is inside a session but sends
nothing for ``stall_timeout_s`` (default 5 s), the stream ends "stalled (no data for
5 s)" — so the event log says why the windows stopped — and the source keeps reading;
data that resumes opens a new segment of the same stream downstream, as for TCP (see
tcp.py). There are no other streams to keep going, and no connection to close: the pipe
stays open until its writer closes it. In-memory streams (no descriptor) never stall.
"""

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


class StdinSource(Source):
    """MRME frames from ``stream`` (default: standard input's binary buffer)."""

    name = "stdin"

    @classmethod
    def from_spec(cls, argument: str, options: SourceOptions) -> StdinSource:
        """``--source stdin``: one device on standard input."""
        return cls(stall_timeout_s=options.stall_timeout_s)

    def __init__(
        self,
        stream: BinaryIO | None = None,
        *,
        label: str = "stdin",
        max_frame_seconds: float = MAX_FRAME_SECONDS,
        read_bytes: int = 256 * 1024,
        stall_timeout_s: float | None = DEFAULT_STALL_TIMEOUT_S,
    ) -> None:
        super().__init__()
        self.stall_timeout_s = check_stall_timeout(stall_timeout_s)
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.label = label
        self.max_frame_seconds = max_frame_seconds
        self.read_bytes = read_bytes

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
                data = os.read(fd, self.read_bytes)
            else:
                read1 = getattr(self.stream, "read1", self.stream.read)
                data = read1(self.read_bytes)
            yield data
            if not data:
                return

    def events(self) -> Iterator[Event]:
        decoder = FrameDecoder(self.max_frame_seconds)
        hello: Hello | None = None
        stalled = False  # the session's stream was marked stalled (it has already ended)
        last_rx = time.monotonic()
        for data in self._reads():
            if data is None:
                silent = time.monotonic() - last_rx
                stall = self.stall_timeout_s
                if hello is not None and not stalled and stall is not None and silent > stall:
                    stalled = True
                    yield StreamEnd(hello.stream_id, self._stall_reason(decoder, stall))
                continue
            if not data:
                break
            last_rx = time.monotonic()
            error = None
            try:
                frames = decoder.feed(data)
            except FramingError as e:
                frames, error = e.events, e
            for frame in frames:
                event, hello = self._convert(frame, hello)
                if isinstance(event, StreamEnd) and stalled:
                    event = None  # ended already, as stalled
                if not isinstance(frame, Data):
                    stalled = False  # a HELLO or END: the session, and its stall, are over
                elif stalled and hello is not None:
                    stalled = False  # data resumed: a new segment of the stream downstream
                    log.info("%s stream %r: data resumed", self.label, hello.stream_id)
                if event is not None:
                    yield event
            if error is not None:
                if hello is None:
                    raise FramingError(f"{self.label}: {error}") from None
                log.warning("%s stream %r: protocol error: %s", self.label, hello.stream_id, error)
                if not stalled:
                    yield StreamEnd(hello.stream_id, f"protocol error: {error}")
                return
        if self.closed:
            return
        try:
            decoder.eof()
            reason = "disconnected"
        except FramingError as e:
            reason = str(e)
        if hello is not None:
            if not stalled:
                yield StreamEnd(hello.stream_id, reason)
        elif reason != "disconnected":
            raise FramingError(f"{self.label}: {reason}")

    def _stall_reason(self, decoder: FrameDecoder, stall: float) -> str:
        reason = stall_reason(decoder, stall)
        log.warning("%s: %s; waiting for it to resume", self.label, reason)
        return reason

    @staticmethod
    def _convert(frame: FrameEvent, hello: Hello | None) -> tuple[Event | None, Hello | None]:
        """The runtime event for one frame, and the session's HELLO after it."""
        if isinstance(frame, Hello):
            return None, frame
        assert hello is not None  # the decoder yields DATA and END only inside a session
        if isinstance(frame, Data):
            return chunk_of(hello, frame), hello
        return StreamEnd(hello.stream_id, "ended by device"), None

    def describe(self) -> str:
        return f"stdin: MRME frames from {self.label}"


__all__ = ["StdinSource"]
