"""The event log (``--events``): one JSON object per line (docs/monitor.md#event-log), each
written whole or not at all, so a full disk costs records, never the file's validity
(docs/threat-model.md#disks). No fsync per line: a power cut may lose what the OS had not
synced."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mrm_edge.runtime.sinks.base import BackendSwitch, DroppedWindow, RunInfo, Sink, StreamEvent

if TYPE_CHECKING:
    from mrm_edge.runtime.postprocess import AlarmEvent, WindowResult
    from mrm_edge.runtime.sinks.summary import Summary
    from mrm_edge.runtime.sources.base import SourceProblem


_DIGITS = 6  # probabilities to 1e-6: far below any threshold's meaning, and short lines


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats → None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _probs(p: dict[str, float] | None) -> dict[str, float] | None:
    return None if p is None else {k: round(float(v), _DIGITS) for k, v in p.items()}


QUIET_S = 30.0
"""A disk full again within this many seconds of recovering is not announced again."""


def _open_log(path: Path, append: bool) -> int:
    """The log's file descriptor, opened for appending; refuse to overwrite a file."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    try:
        try:
            return os.open(path, flags | os.O_EXCL, 0o644)
        except FileExistsError:
            if not append and path.is_file():  # a symlink to a file counts as the file
                raise ValueError(
                    f"{path}: the event log exists; refusing to overwrite it "
                    "(--events-append adds to it, or name a new file)"
                ) from None
            return os.open(path, flags)
    except OSError as e:
        raise ValueError(f"{path}: cannot write the event log ({e.strerror})") from e


class JsonlSink(Sink):
    """Write the event log to ``path``: created now, so a bad or existing path fails before
    the run starts; ``append`` adds to an existing file; closed by ``close``. Non-regular
    files (``/dev/stdout``, a FIFO) are written as they are. ``clock``: Unix seconds
    (injectable)."""

    def __init__(
        self, path: str | Path, *, append: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self._fd = _open_log(self.path, append)
        # Written before the next line: "\n" after an old partial line.
        self._pending = b"\n" if append and _ends_mid_line(self.path) else b""
        self.clock = clock
        self._notify: Callable[[str], None] = lambda text: None
        self._closed = False
        self.not_written = 0
        """Records lost to write errors, in all."""
        self.last_error = ""
        self._gap: tuple[int, float] | None = None  # (records lost, since) while failing
        self._quiet_until = -math.inf  # announcing a new failure waits till then
        self._announced = False  # the current gap's failure was announced

    def _write(self, doc: dict[str, Any]) -> None:
        if self._closed:
            return
        line = json.dumps(_clean(doc), allow_nan=False, separators=(",", ":")) + "\n"
        data = self._pending + self._gap_line() + line.encode("utf-8")
        try:
            self._write_whole(data)  # a gap's log_gap line goes with the next record or not
        except OSError as e:
            self._lost(e)
            return
        self._pending = b""
        if self._gap is not None:
            self._gap_closed()

    def _write_whole(self, data: bytes) -> None:
        """One line, all of it or none of it (see the module docstring)."""
        view, written = memoryview(data), 0
        try:
            while written < len(data):
                n = os.write(self._fd, view[written:])
                if n <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += n
        except OSError:
            if written:  # cut the partial line off again (O_APPEND: it ends the file)
                with contextlib.suppress(OSError):
                    end = os.lseek(self._fd, 0, os.SEEK_END)
                    os.ftruncate(self._fd, end - written)
            raise

    def _lost(self, error: OSError) -> None:
        """A record was not written: count it; announce the first of a gap (once)."""
        self.not_written += 1
        self.last_error = error.strerror or str(error)
        now = self.clock()
        if self._gap is None:
            self._gap = (0, now)
            self._announced = now >= self._quiet_until
            if self._announced:
                self._notify(
                    f"event log {self.path}: {self.last_error}; records are not being "
                    "written (monitoring goes on; retrying with each record)"
                )
        self._gap = (self._gap[0] + 1, self._gap[1])

    def _gap_line(self) -> bytes:
        """The log_gap line of the current gap (b"" when none)."""
        if self._gap is None:
            return b""
        lost, since = self._gap
        line = {"type": "log_gap", "not_written": lost, "since": round(since, 3)}
        line.update(until=round(self.clock(), 3), reason=self.last_error)
        return (json.dumps(line, separators=(",", ":")) + "\n").encode("utf-8")

    def _gap_closed(self) -> None:
        """A record (and its log_gap line) was written after a gap: announce it."""
        self._gap = None
        self._quiet_until = self.clock() + QUIET_S
        if self._announced:
            self._notify(
                f"event log {self.path}: writing again; {self.not_written} record(s) "
                "were not written (see its log_gap lines)"
            )

    def open(self, info: RunInfo) -> None:
        if info.notify is not None:
            self._notify = info.notify
        self._write(
            {
                "type": "start",
                "model": info.model,
                "labels": list(info.labels),
                "thresholds": dict(info.thresholds),
                "sampling_rate": info.sampling_rate,
                "window_s": info.window_s,
                "hop_s": info.hop_s,
                "backend": info.backend,
                "backend_reason": info.backend_reason,
                "source": info.source,
                "gflop_per_window": info.gflop_per_window,
                "knobs": dict(info.knobs),
                "time": round(time.time(), 3),
            }
        )

    def window(self, result: WindowResult) -> None:
        doc: dict[str, Any] = {
            "type": "window",
            "stream": result.stream_id,
            "segment": result.segment,
            "start": result.start,
            "start_s": result.start_s,
            "end_s": result.end_s,
            "status": result.status,
        }
        if not result.ok:
            doc["reason"] = result.reason
            doc["reason_kinds"] = list(result.reason_kinds)
            doc["bad_leads"] = list(result.bad_leads)
        doc.update(
            probabilities=_probs(result.probabilities),
            smoothed=_probs(result.smoothed),
            positive=list(result.positive),
            positive_basis="smoothed",
            findings=list(result.findings),
            alarms=list(result.alarms),
            latency_ms=round(result.latency_ms, 3),
            time=round(time.time(), 3),
        )
        self._write(doc)

    def alarm(self, event: AlarmEvent) -> None:
        self._write(
            {
                "type": "alarm",
                "stream": event.stream_id,
                "segment": event.segment,
                "label": event.label,
                "state": event.state,
                "start": event.start,
                "start_s": event.start_s,
                "probability": round(event.probability, _DIGITS),  # NaN: null (_clean)
                "threshold": event.threshold,
                "cause": event.cause,
                "time": round(time.time(), 3),
            }
        )

    def dropped(self, record: DroppedWindow) -> None:
        self._write(
            {
                "type": "dropped",
                "stream": record.stream_id,
                "segment": record.segment,
                "start": record.start,
                "start_s": record.start_s,
                "end_s": record.end_s,
                "cause": record.cause,
            }
        )

    def stream(self, event: StreamEvent) -> None:
        self._write(
            {
                "type": "stream",
                "stream": event.stream_id,
                "segment": event.segment,
                "event": event.kind,
                "detail": event.detail,
            }
        )

    def source_problem(self, event: SourceProblem) -> None:
        self._write(
            {
                "type": "source",
                "kind": event.kind,
                "where": event.where,
                "reason": event.reason,
                "time": round(time.time(), 3),
            }
        )

    def notice(self, text: str) -> None:
        # Its own disk-full notices too: the one of a new gap is lost with the gap (counted),
        # the "writing again" one is written.
        self._write({"type": "notice", "text": text, "time": round(time.time(), 3)})

    def backend_switch(self, event: BackendSwitch) -> None:
        line = {"type": "backend", **event.to_dict(), "elapsed_s": round(event.elapsed_s, 3)}
        self._write({**line, "time": round(time.time(), 3)})

    def close(self, summary: Summary | None) -> None:
        """Write the summary, with the records this log lost (``events_not_written``, also
        one line in its ``errors``: the report sink closes after this one and prints it),
        and close the file."""
        if self._closed:
            return
        try:
            if summary is not None:
                self._account(summary)
                self._write({"type": "summary", **summary.to_dict()})
                self._account(summary)  # the summary line itself may have been lost
        finally:
            self._closed = True
            os.close(self._fd)

    def _account(self, summary: Summary) -> None:
        if not self.not_written or summary.events_not_written == self.not_written:
            return
        summary.events_not_written = self.not_written
        summary.errors[:] = [e for e in summary.errors if not e.startswith("event log ")]
        summary.errors.append(
            f"event log {self.path}: {self.not_written} record(s) not written ({self.last_error})"
        )


def _ends_mid_line(path: Path) -> bool:
    """Whether ``path`` is a non-empty regular file whose last byte is not a newline (a run
    killed mid-line before whole-line writing, or another writer)."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        return False  # a FIFO is never opened for reading here: that could block
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"
