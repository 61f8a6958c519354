"""Lab Streaming Layer inlets: ``--source lsl:NAME`` or ``lsl:PROP=VALUE`` (PROP one of name,
type, source_id, hostname). Every matching outlet on the network is one patient, its stream
id the outlet's source_id (its name when it has none); outlets are found continuously, so
one that starts late, or again after a crash, is picked up. What a stream must declare, how
its clock becomes sample indices, stalls and limits: docs/devices.md#lab-streaming-layer."""

from __future__ import annotations

import itertools
import logging
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from mrm_edge.runtime.sources.base import (
    DEFAULT_STALL_TIMEOUT_S,
    Chunk,
    Event,
    Source,
    SourceProblem,
    SpecError,
    StreamEnd,
)
from mrm_edge.runtime.sources.device import check_stall_timeout
from mrm_edge.runtime.sources.limits import DeviceLimits, RateCeiling

from mrm_edge.data.errors import DataError
from mrm_edge.data.leads import lead_order
from mrm_edge.data.signal import MAX_RATE, MIN_RATE

if TYPE_CHECKING:
    from mrm_edge.runtime.sources.registry import SourceOptions

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'mrm-edge[lsl]' (aarch64: also liblsl, docs/devices.md)"
PROPS = ("name", "type", "source_id", "hostname")
MAX_CHANNELS = 256  # an ECG amplifier with extras; 10,000 channels is no ECG
UNITS = {  # the unit's name, lower case, to mV per unit
    **dict.fromkeys(("mv", "millivolt", "millivolts"), 1.0),
    **dict.fromkeys(("uv", "µv", "μv", "microvolt", "microvolts"), 1e-3),
}
NUMERIC = {"float32": np.float32, "double64": np.float64, "int8": np.int8, "int16": np.int16,
           "int32": np.int32, "int64": np.int64}  # fmt: skip
FORMATS = ("undefined", "float32", "double64", "string", "int32", "int16", "int8", "int64")
# A late timestamp within this is the sender's scheduling jitter, not lost samples (outlets
# commonly stamp a chunk when they push it); beyond it, the samples it skips are a gap.
JITTER_S = 0.05
INFO_TIMEOUT_S = 5.0  # an outlet that will not hand over its description in this is refused
PULL_S = 0.05  # one pull's wait: bounds close() and the stall check
PULL_MAX_S = 0.5  # signal per pull, so a huge pushed chunk arrives in bounded pieces
BUFFER_VALUES = 4_000_000  # the inlet's buffer, in values (liblsl drops the oldest beyond)
RESOLVE_EVERY_S = 0.25
_MAX_PENDING_EVENTS = 4096  # as tcp: this far behind, the inlets wait (liblsl buffers)


def load_pylsl() -> Any:
    """pylsl, or a one-line SpecError naming the extra (pylsl raises RuntimeError when it
    finds no liblsl, e.g. on aarch64)."""
    try:
        import pylsl
        import pylsl.util
    except (ImportError, RuntimeError) as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpecError(f"the lsl source needs pylsl and liblsl ({why}): {INSTALL_HINT}") from None
    return pylsl


def parse_spec(argument: str) -> tuple[str, str]:
    """``NAME`` → ("name", NAME); ``PROP=VALUE`` → (PROP, VALUE); SpecError otherwise."""
    prop, sep, value = argument.partition("=")
    if not sep:
        prop, value = "name", argument
    prop, value = prop.strip().lower(), value.strip()
    if prop not in PROPS:
        raise SpecError(f"unknown stream property {prop!r}, expected one of {', '.join(PROPS)}")
    if not value or not re.fullmatch(r"[^'\"\[\]]{1,255}", value):
        raise SpecError(f"{prop} {value!r}: expected 1..255 characters without quotes or []")
    return prop, value


@dataclass(frozen=True)
class Layout:
    """How a stream's samples become the runtime's: its rate, the value type to pull, the
    12 leads' channel indices in the model's order and each one's scale to mV."""

    rate: int
    dtype: type
    channels: int
    order: list[int]
    scale: np.ndarray  # [12] float32 mV per unit

    def leads(self, block: np.ndarray) -> np.ndarray:
        """``[n, channels]`` as pulled → ``[n, 12]`` float32 mV."""
        return block[:, self.order].astype(np.float32) * self.scale


def check_header(info: Any) -> int:
    """The stream's integer rate, after the checks its resolved info allows (before an inlet
    is opened); ValueError naming the field otherwise."""
    fmt = FORMATS[info.channel_format()] if 0 <= info.channel_format() < len(FORMATS) else "?"
    if fmt not in NUMERIC:
        raise ValueError(f"field 'channel_format' is {fmt}, expected a numeric format")
    if not 12 <= info.channel_count() <= MAX_CHANNELS:
        raise ValueError(
            f"field 'channel_count' is {info.channel_count()}, expected 12..{MAX_CHANNELS}"
        )
    rate = info.nominal_srate()
    if rate == 0:
        raise ValueError("field 'nominal_srate' is 0 (irregular), expected a regular rate")
    if not (MIN_RATE <= rate <= MAX_RATE and float(rate).is_integer()):
        raise ValueError(
            f"field 'nominal_srate' is {rate:g} Hz, expected whole Hz in {MIN_RATE}..{MAX_RATE}"
        )
    return int(rate)


def channel_layout(info: Any) -> Layout:
    """The layout of a stream from its full info (with ``desc``); ValueError, one line
    naming the field, for a missing description, a missing or doubled lead, a unit other
    than mV or µV."""
    rate, n = check_header(info), info.channel_count()
    channels = info.desc().child("channels")
    labels, units = [], []
    channel = channels.child("channel")
    while not channel.empty() and len(labels) < n:
        labels.append(channel.child_value("label"))
        units.append(channel.child_value("unit"))
        channel = channel.next_sibling("channel")
    if len(labels) != n:
        raise ValueError(
            f"field 'desc/channels' describes {len(labels)} channel(s), expected one "
            f"<channel> with label and unit for each of the {n}"
        )
    try:
        order, _ = lead_order("desc/channels", labels)
    except DataError as e:  # its text names WFDB's field: name ours
        raise ValueError(str(e).replace("'sig_name'", "'label'")) from None
    scale = []
    for i in order:
        per_unit = UNITS.get(units[i].strip().lower())
        if per_unit is None:
            raise ValueError(
                f"field 'unit' of channel {labels[i]!r} is {units[i]!r}, expected millivolts "
                "(mV) or microvolts (uV, µV)"
            )
        scale.append(per_unit)
    dtype = NUMERIC[FORMATS[info.channel_format()]]
    return Layout(rate, dtype, n, order, np.array(scale, np.float32))


class SampleClock:
    """A segment's sample indices from LSL timestamps: consecutive chunks follow on by
    count; a chunk later than that by over ``JITTER_S`` (and 1.5 samples) starts after
    the samples it skipped, so they become a gap; an earlier one (a clock step, a device
    faster than its nominal rate) re-anchors the count."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.tolerance_s = max(JITTER_S, 1.5 / rate)
        self.anchor: float | None = None
        self.next_index = 0

    def runs(self, stamps: np.ndarray) -> list[tuple[int, int]]:
        """``[a, b)`` spans of a pull's samples whose stamps follow on within the tolerance."""
        steps = np.abs(np.diff(stamps) - 1 / self.rate) > self.tolerance_s
        cuts = [0, *(np.flatnonzero(steps) + 1).tolist(), len(stamps)]
        return list(itertools.pairwise(cuts))

    def index(self, first_stamp: float, n: int) -> int:
        """The index of a chunk's first sample (stamped ``first_stamp`` s) of ``n``."""
        if self.anchor is None:
            self.anchor = first_stamp
        late = first_stamp - (self.anchor + self.next_index / self.rate)
        if late > self.tolerance_s:
            self.next_index += round(late * self.rate)
        elif late < -self.tolerance_s:
            self.anchor = first_stamp - self.next_index / self.rate
        first = self.next_index
        self.next_index += n
        return first


class LslSource(Source):
    """Every LSL outlet matching ``prop == value``, one stream each (see the module)."""

    @classmethod
    def from_spec(cls, argument: str, options: SourceOptions) -> LslSource:
        """``--source lsl:NAME`` / ``lsl:PROP=VALUE`` with the network limits' stream cap and
        rate ceiling."""
        limits = options.network.limits if options.network else DeviceLimits()
        prop, value = parse_spec(argument)
        return cls(prop, value, limits=limits.at_speed(options.speed),
                   stall_timeout_s=options.stall_timeout_s)  # fmt: skip

    def __init__(
        self,
        prop: str,
        value: str,
        *,
        limits: DeviceLimits | None = None,
        stall_timeout_s: float | None = DEFAULT_STALL_TIMEOUT_S,
    ) -> None:
        super().__init__()
        self.prop, self.value = parse_spec(f"{prop}={value}")
        self.stall_timeout_s = check_stall_timeout(stall_timeout_s)
        self.limits = limits or DeviceLimits()
        self._lsl = load_pylsl()
        self._resolver = self._lsl.ContinuousResolver(pred=f"{self.prop}='{self.value}'")
        self._events: queue.Queue[Event] = queue.Queue()
        self._lock = threading.Lock()
        self._live: dict[str, str] = {}  # stream id -> uid of the outlet its inlet reads
        self._refused: set[str] = set()  # uids never to open again
        self._reported: set[tuple[str, str]] = set()  # (uid, kind of problem) said once
        self._buckets: dict[str, RateCeiling] = {}  # per stream id, for the whole run
        self._threads: list[threading.Thread] = []

    def describe(self) -> str:
        return f"lsl: outlets with {self.prop} {self.value!r}"

    def events(self) -> Iterator[Event]:
        next_resolve = 0.0
        while not self.closed:
            if time.monotonic() >= next_resolve:
                next_resolve = time.monotonic() + RESOLVE_EVERY_S
                for info in self._resolver.results():
                    self._admit(info)
            try:
                yield self._events.get(timeout=0.1)
            except queue.Empty:
                continue

    def close(self) -> None:
        super().close()
        for t in self._threads:  # each ends within PULL_S (or an open's timeout: daemons)
            t.join(timeout=0.1)

    # -- admission (consumer thread) ------------------------------------------------------
    def _admit(self, info: Any) -> None:
        """Open an inlet on a newly seen outlet, unless it is refused."""
        uid, sid = info.uid(), info.source_id() or info.name()
        where = f"lsl stream {sid!r} ({info.name()!r} on {info.hostname() or '?'})"
        with self._lock:
            if uid in self._refused or self._live.get(sid) == uid:
                return
            if sid in self._live:
                return self._report(uid, where, "another outlet already streams this id")
            if len(self._live) >= self.limits.max_connections:
                why = f"{len(self._live)} streams open, the most allowed (--max-connections)"
                return self._report(uid, where, why, "limit")
            try:
                check_header(info)
            except ValueError as e:
                self._refused.add(uid)
                return self._report(uid, where, f"refused: {e}")
            self._live[sid] = uid
        args = (info, sid, where)
        thread = threading.Thread(target=self._serve, args=args, name=f"lsl:{sid}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _report(self, uid: str, where: str, why: str, kind: str = "protocol") -> None:
        """A problem said once per outlet and kind of problem (its text up to a colon)."""
        key = (uid, why.partition(":")[0])
        if key not in self._reported:
            self._reported.add(key)
            self._problem(where, why, kind)

    def _problem(self, where: str, why: str, kind: str = "protocol") -> None:
        log.warning("%s: %s", where, why)
        self._events.put(SourceProblem(where, why, kind))

    # -- one inlet (its own thread) -------------------------------------------------------
    def _serve(self, info: Any, sid: str, where: str) -> None:
        util = self._lsl.util
        values_per_s = check_header(info) * info.channel_count()
        try:
            inlet = self._lsl.StreamInlet(
                info,
                max_buflen=max(1, min(30, BUFFER_VALUES // values_per_s)),  # seconds
                recover=False,  # a lost outlet ends this inlet; its return is a new outlet
                processing_flags=self._lsl.proc_clocksync,  # the sender's clock onto ours
            )
            layout = channel_layout(inlet.info(timeout=INFO_TIMEOUT_S))
            inlet.open_stream(timeout=INFO_TIMEOUT_S)
            self._pull(inlet, layout, sid, where)
        except ValueError as e:
            self._refused.add(info.uid())
            self._problem(where, f"refused: {e}")
        except util.TimeoutError:
            self._report(info.uid(), where, f"no description in {INFO_TIMEOUT_S:g} s; retrying")
        except util.LostError:
            self._refused.add(info.uid())  # an outlet's uid never comes back
            log.info("%s: outlet gone", where)
        except RuntimeError as e:  # liblsl's internal errors: this stream only
            self._problem(where, f"inlet failed ({e})")
        finally:
            with self._lock:
                self._live.pop(sid, None)

    def _pull(self, inlet: Any, layout: Layout, sid: str, where: str) -> None:
        """Chunks until closed, cut or the outlet is lost (LostError, after the stream end)."""
        rate = layout.rate
        buf = np.empty((max(1, round(PULL_MAX_S * rate)), layout.channels), layout.dtype)
        clock, live, last_rx = SampleClock(rate), False, time.monotonic()
        try:
            while not self.closed:
                _, stamps = inlet.pull_chunk(PULL_S, len(buf), buf)
                now, n = time.monotonic(), len(stamps)
                if n == 0:
                    stall = self.stall_timeout_s
                    if live and stall is not None and now - last_rx > stall:
                        live, clock = False, SampleClock(rate)
                        self._put(StreamEnd(sid, f"stalled (no samples for {stall:g} s)"))
                        log.warning("%s: stalled; waiting for it to resume", where)
                    continue
                if not live:
                    live = True
                    log.info("%s: streaming at %d Hz", where, rate)
                x = layout.leads(buf[:n])
                for a, b in clock.runs(np.asarray(stamps)):  # a gap may sit inside a pull
                    self._put(Chunk(sid, x[a:b], rate, clock.index(float(stamps[a]), b - a) / rate))
                if not self._under_ceiling(sid, where, n / rate):
                    live = False
                    return
                last_rx = time.monotonic()
        except self._lsl.util.LostError:
            if live and not self.closed:
                self._put(StreamEnd(sid, "stalled (outlet gone)"))
            raise

    def _under_ceiling(self, sid: str, where: str, signal_s: float) -> bool:
        """Wait out the rate ceiling; False (the stream cut, its outlet refused) for one
        that stays over it."""
        if self.limits.rate_ceiling is None:
            return True
        now = time.monotonic()
        bucket = self._buckets.setdefault(sid, RateCeiling(self.limits, now))
        pause = bucket.take(signal_s, now)
        if bucket.must_cut:
            why = f"cut: {bucket.reason(now)} for {bucket.cut_s:g} s (--rate-ceiling)"
            self._refused.add(self._live.get(sid, ""))
            self._problem(where, why, "limit")
            self._put(StreamEnd(sid, why))
            return False
        if pause > 0:
            why = f"throttled: {bucket.reason(now)}; reading paused"
            self._report(self._live.get(sid, ""), where, why, "limit")
            self._closed.wait(pause)  # meanwhile liblsl buffers, then drops the oldest
        return True

    def _put(self, event: Event) -> None:
        while self._events.qsize() >= _MAX_PENDING_EVENTS and not self._closed.wait(0.005):
            pass
        self._events.put(event)
