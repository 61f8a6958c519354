"""What the two live device sources (tcp.py, stdin.py) share: one MRME session's frames
turned into runtime events, and how a silent device's stall is named."""

from __future__ import annotations

from mrm_edge.runtime.sources.base import Chunk
from mrm_edge.runtime.sources.framing import Data, FrameDecoder, Hello

__all__ = ["check_stall_timeout", "chunk_of", "stall_reason"]


def check_stall_timeout(stall_timeout_s: float | None) -> float | None:
    """``stall_timeout_s`` if it is > 0 or None; ValueError otherwise."""
    if stall_timeout_s is not None and not stall_timeout_s > 0:
        raise ValueError(f"stall_timeout_s is {stall_timeout_s}, expected > 0 or None")
    return stall_timeout_s


def chunk_of(hello: Hello, data: Data) -> Chunk:
    """The chunk a DATA frame of ``hello``'s session carries, timestamped on the device's
    sample clock (``first_index / rate``), so the gap detector sees samples the device
    numbered but never delivered."""
    ts = data.first_index / hello.sample_rate
    return Chunk(hello.stream_id, data.samples, hello.sample_rate, ts)


def stall_reason(decoder: FrameDecoder, stall_s: float) -> str:
    """The stream end's reason for a device silent ``stall_s`` seconds, with how much of a
    frame is pending if the silence began mid-frame."""
    pending = decoder.pending()
    return f"stalled (no data for {stall_s:g} s{', mid-frame: ' + pending if pending else ''})"
