"""What the two live device sources (tcp.py, stdin.py) share: one byte stream's MRME
sessions turned into runtime events, and how a silent device's stall is named."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mrm_edge.runtime.sources.base import Chunk, StreamEnd
from mrm_edge.runtime.sources.framing import Data, FrameDecoder, Hello

log = logging.getLogger(__name__)


def check_stall_timeout(stall_timeout_s: float | None) -> float | None:
    """``stall_timeout_s`` if it is > 0 or None; ValueError otherwise."""
    if stall_timeout_s is not None and not stall_timeout_s > 0:
        raise ValueError(f"stall_timeout_s is {stall_timeout_s}, expected > 0 or None")
    return stall_timeout_s


@dataclass(eq=False)
class DeviceSession:
    """One byte stream (a connection, a pipe): its decoder, the open session's HELLO (its
    stream is live while set) and whether that stream was marked stalled (it has then
    ended already, and data that resumes opens a new segment downstream)."""

    decoder: FrameDecoder = field(default_factory=FrameDecoder)
    hello: Hello | None = None
    stalled: bool = False

    def chunk(self, data: Data) -> Chunk:
        """The chunk a DATA frame of the open session carries, timestamped on the device's
        sample clock (``first_index / rate``), so the gap detector sees samples the device
        numbered but never delivered."""
        hello = self.hello
        assert hello is not None  # the decoder yields DATA only inside a session
        if self.stalled:
            self.stalled = False
            log.info("stream %r: data resumed after a stall", hello.stream_id)
        return Chunk(
            hello.stream_id, data.samples, hello.sample_rate, data.first_index / hello.sample_rate
        )

    def end(self, reason: str) -> StreamEnd | None:
        """Close the open session, if any: its stream's end, unless it ended as stalled."""
        hello, stalled = self.hello, self.stalled
        self.hello, self.stalled = None, False
        if hello is None or stalled:
            return None
        return StreamEnd(hello.stream_id, reason)

    def stall(self, stall_s: float) -> StreamEnd:
        """End the open session's stream for a device silent ``stall_s`` seconds (the byte
        stream stays open), with how much of a frame is pending if it went silent mid-frame."""
        assert self.hello is not None
        self.stalled = True
        pending = self.decoder.pending()
        mid = f", mid-frame: {pending}" if pending else ""
        return StreamEnd(self.hello.stream_id, f"stalled (no data for {stall_s:g} s{mid})")
