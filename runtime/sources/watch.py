"""The watched inbox, ``--source watch:DIR``: every ECG file that lands in ``DIR`` is
classified once, in arrival order, then moved to ``DIR/done/`` or ``DIR/failed/`` (with a
one-line ``.reason`` file). What has arrived and settled: arrivals.py; restart-safe through
a ledger keyed by content hash: ledger.py. The rules (settling, temp names, WFDB
companions, limits, restarts): docs/monitor.md#watched-inbox."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from mrm_edge.runtime.sources.arrivals import Arrivals, Record, signature
from mrm_edge.runtime.sources.base import (
    Chunk,
    Event,
    Source,
    SourceProblem,
    SpecError,
    StreamEnd,
    StreamOrigin,
)
from mrm_edge.runtime.sources.ledger import Entry, Ledger

from mrm_edge.data.errors import DataError
from mrm_edge.errors import first_line
from mrm_edge.records import read_recording

if TYPE_CHECKING:
    from mrm_edge.runtime.sources.registry import SourceOptions

log = logging.getLogger(__name__)

DONE, FAILED, STATE = "done", "failed", ".mrm-edge-inbox"
SETTLE_S = 1.0  # a file is read once unchanged (size, mtime, inode) this long
POLL_S = 0.25
ORPHAN_S = 60.0  # how long a .dat waits for its header, or a header for its signal files
MAX_BYTES = 64 << 20  # a record (all its files) larger than this is refused unread
RETRY_S = 30.0  # a file whose move failed (a full or read-only disk) is tried again after this
CHUNK_S = 60.0  # seconds of signal per chunk (a 10 s resting ECG is one chunk)
_ORIGINS_KEPT = 64


class _Changed(Exception):
    """A file changed or vanished between settling and reading: it settles again."""


class WatchSource(Source):
    """The inbox at ``folder``; the knobs' defaults are the module's constants."""

    @classmethod
    def from_spec(cls, argument: str, options: SourceOptions) -> WatchSource:
        """``--source watch:DIR``."""
        if not argument.strip():
            raise SpecError("expected watch:DIR")
        return cls(argument.strip(), min_seconds=options.min_seconds)

    def __init__(
        self,
        folder: str | Path,
        settle_s: float = SETTLE_S,
        poll_s: float = POLL_S,
        orphan_s: float = ORPHAN_S,
        max_bytes: int = MAX_BYTES,
        min_seconds: float | None = None,
    ) -> None:
        super().__init__()
        self.dir = Path(folder).absolute()
        if not self.dir.is_dir():
            raise SpecError(f"{self.dir}: not a directory")
        try:
            self.ledger = Ledger(self.dir / STATE / "ledger.sqlite")
        except Exception as e:  # sqlite3.Error or OSError: a folder we cannot write to
            raise SpecError(f"{self.dir}: cannot keep the inbox's ledger there ({e})") from None
        self.settle_s, self.poll_s = settle_s, poll_s
        self.max_bytes, self.min_seconds = max_bytes, min_seconds
        self.arrivals = Arrivals(self.dir, settle_s, orphan_s, skip=(DONE, FAILED))
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[int, tuple[str, ...], threading.Event]] = {}
        self._problems: deque[SourceProblem] = deque()  # from stream_finished's thread
        # The last records' patient ids and acquisition times, for sinks that ask after the
        # stream's end (an outbox's record report): a few, not the run's history.
        self._origins: OrderedDict[str, StreamOrigin] = OrderedDict()

    def describe(self) -> str:
        return f"watch: {self.dir} (settle {self.settle_s:g} s)"

    # ------------------------------------------------------------------ the loop

    def events(self) -> Iterator[Event]:
        lock = open(self.dir / STATE / "lock", "w")  # noqa: SIM115 (held for the whole run)
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RuntimeError(f"{self.dir}: another monitor watches this inbox") from None
            for row in self.ledger.unmoved():  # a crash between the ledger and the moves
                if row.state != "claimed":
                    yield from self._move(row)
            while not self.closed:
                for record in self.arrivals.scan():
                    if self.closed:
                        return
                    yield from self._take(record)
                    yield from self._drain_problems()
                yield from self._drain_problems()
                self._closed.wait(self.poll_s)
        finally:
            lock.close()

    def _drain_problems(self) -> Iterator[SourceProblem]:
        while self._problems:
            yield self._problems.popleft()

    def _problem(self, name: str, reason: str) -> SourceProblem:
        """A one-line problem with ``name``: logged (stderr) and handed to the monitor."""
        log.warning("%s: %s", self.dir / name, reason)
        return SourceProblem(f"watch {self.dir / name}", reason, kind="file")

    # ------------------------------------------------------------------ taking one record

    def _take(self, record: Record) -> Iterator[Event]:
        names = (record.entry, *record.companions)
        seen = self.arrivals.seen
        if any(n not in seen for n in names):  # moved with another record meanwhile
            return
        sizes = [(n, seen[n].sig[0]) for n in names]
        if record.refusal is not None:
            row = self.ledger.add(None, record.entry, sizes, "failed", reason=record.refusal)
            yield from self._finish(row, names, "failed", record.refusal)
            return
        total = sum(size for _, size in sizes)
        if total > self.max_bytes:
            why = f"{total} bytes, over the inbox's limit of {self.max_bytes} bytes"
            row = self.ledger.add(None, record.entry, sizes, "failed", reason=why)
            yield from self._finish(row, names, "failed", why)
            return
        try:
            sha256 = self._hash(names)
        except _Changed:
            return
        except OSError as e:
            why = f"unreadable ({e.strerror or e})"
            row = self.ledger.add(None, record.entry, sizes, "failed", reason=why)
            yield from self._finish(row, names, "failed", why)
            return
        rows = self.ledger.by_hash(sha256)
        own = [r for r in rows if r.name == record.entry and not r.moved]
        if own and own[0].state != "claimed":  # finished before a failed move: move again
            yield from self._move(own[0])
            return
        if rows and not own:
            first = rows[0]
            why = f"same content as {first.name} ({first.state} earlier), not classified again"
            row = self.ledger.add(sha256, record.entry, sizes, "duplicate", reason=why)
            yield from self._finish(row, names, "duplicate", why)
            return
        if own:  # claimed by a run that ended before finishing it: classified again
            row, sid = own[0].id, own[0].stream or _stream_id(record.entry, sha256)
        else:
            sid = _stream_id(record.entry, sha256)
            row = self.ledger.add(sha256, record.entry, sizes, "claimed", stream=sid)
        yield from self._classify(row, names, sid)

    def _hash(self, names: tuple[str, ...]) -> str:
        """sha256 of the files' sizes and bytes; _Changed if one is not as it settled."""
        h = hashlib.sha256()
        for name in names:
            try:
                fd = os.open(self.dir / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except FileNotFoundError:
                self.arrivals.forget([name])
                raise _Changed from None
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(fd)
                if signature(st) != self.arrivals.seen[name].sig:
                    self.arrivals.forget([name])
                    raise _Changed
                h.update(f"{st.st_size}\n".encode())
                left = st.st_size  # no further: a writer still appending is caught after
                while left > 0 and (block := f.read(min(left, 1 << 20))):
                    h.update(block)
                    left -= len(block)
        return h.hexdigest()

    def _unchanged(self, names: tuple[str, ...]) -> bool:
        for name in names:
            try:
                st = os.lstat(self.dir / name)
            except OSError:
                return False
            if signature(st) != self.arrivals.seen[name].sig:
                return False
        return True

    def _classify(self, row: int, names: tuple[str, ...], sid: str) -> Iterator[Event]:
        """The record as one stream, then wait until its end is delivered (one file in
        flight: a crash repeats at most that one)."""
        try:
            rec = read_recording(self.dir / names[0])
            why = self._unusable(rec.signal.shape[1], rec.seconds)
        except DataError as e:
            rec, why = None, first_line(e, with_type=False)
        except Exception as e:  # any parser failure is bad input, not a crash
            rec, why = None, f"unreadable record ({first_line(e)})"
        if not self._unchanged(names):  # replaced while it was read: it settles again
            self.arrivals.forget(names)
            self.ledger.forget(row)
            return
        if rec is None or why:
            yield from self._finish(row, names, "failed", why or "unreadable")
            return
        delivered = threading.Event()
        with self._lock:
            self._pending[sid] = (row, names, delivered)
            self._origins[sid] = StreamOrigin(rec.patient_id, _when(rec.start_time))
            while len(self._origins) > _ORIGINS_KEPT:
                self._origins.popitem(last=False)
        x = np.ascontiguousarray(rec.signal.T, dtype=np.float32)
        fs = rec.sampling_rate
        step = max(1, round(CHUNK_S * fs))
        for start in range(0, len(x), step):
            yield Chunk(sid, x[start : start + step], fs, start / fs)
        yield StreamEnd(sid, "end of file")
        while not delivered.wait(self.poll_s):
            if self.closed:
                return

    def _unusable(self, samples: int, seconds: float) -> str | None:
        if samples == 0:
            return "record has no samples"
        if self.min_seconds is not None and seconds < self.min_seconds:
            return (
                f"record is {seconds:.1f} s, the model needs at least {self.min_seconds:.1f} s "
                f"(one {self.min_seconds:g} s window)"
            )
        return None

    def origin(self, stream_id: str) -> StreamOrigin | None:
        """The file's patient id and acquisition time, where it states them."""
        with self._lock:
            return self._origins.get(stream_id)

    def stream_finished(self, stream_id: str, reason: str, dropped: int) -> None:
        """A file's windows all have results: done (or failed); one cut short by a stop
        stays claimed, so the next start classifies it again."""
        with self._lock:
            pending = self._pending.pop(stream_id, None)
        if pending is None:
            return
        row, names, delivered = pending
        try:
            if reason == "stopped" or (dropped and self.closed):
                return
            if reason == "failed":
                why = "the monitor failed its stream (its stream error line says why)"
            elif dropped:
                why = f"{dropped} of its windows were dropped unclassified (overload)"
            else:
                why = None
            self._problems.extend(self._finish(row, names, "failed" if why else "done", why))
        finally:
            delivered.set()

    # ------------------------------------------------------------------ moving it out

    def _finish(
        self, row: int, names: tuple[str, ...], state: str, reason: str | None
    ) -> Iterator[SourceProblem]:
        """Record the outcome, then move the files (``_move``)."""
        root = self.dir / (DONE if state == "done" else FAILED)
        dest, k = root, 1
        while any(os.path.lexists(dest / n) for n in (*names, f"{names[0]}.reason")):
            k += 1
            dest = root / f"{Path(names[0]).stem}-{k}"
        where = str(dest.relative_to(self.dir))
        self.ledger.finish(row, state, reason, where)
        seen = self.arrivals.seen
        sizes = tuple((n, seen[n].sig[0] if n in seen else -1) for n in names)
        yield from self._move(Entry(row, None, names[0], sizes, None, state, reason, where, False))

    def _move(self, row: Entry) -> Iterator[SourceProblem]:
        """Move the row's files still in the inbox (signal files first, the entry last) to
        its destination, the reason file written first. A file of another size is not the
        one the row took (replaced while the monitor was down): it stays, to be taken anew.
        A failure (a full or read-only disk) leaves them for a later try."""
        dest = self.dir / (row.dest or FAILED)
        names = [n for n, _ in row.files]
        try:
            dest.mkdir(parents=True, exist_ok=True)
            if row.state != "done":
                (dest / f"{row.name}.reason").write_text(f"{row.reason}\n")
            for name, size in [*row.files[1:], row.files[0]]:
                now = _size(self.dir / name)
                if now is not None and (size < 0 or now == size):
                    os.rename(self.dir / name, dest / name)
        except OSError as e:
            self.arrivals.retry_later(names, RETRY_S)
            yield self._problem(
                row.name,
                f"cannot move it to {dest.relative_to(self.dir)}/ ({e.strerror or e}); left "
                f"in the inbox, tried again in {RETRY_S:g} s",
            )
            return
        self.ledger.moved(row.id)
        self.arrivals.forget(names)
        if row.state != "done":
            yield self._problem(row.name, f"{row.reason} (moved to {dest.relative_to(self.dir)}/)")


def _size(path: Path) -> int | None:
    """The size of ``path`` (not followed if a link), None if it is not there."""
    try:
        return os.lstat(path).st_size
    except OSError:
        return None


def _stream_id(entry: str, sha256: str) -> str:
    """The entry's stem and the content hash's first 10 hex digits: unique, and the same
    file gets the same id run to run, so a receiver can tell a repeat."""
    return f"{Path(entry).stem}-{sha256[:10]}"


def _when(start_time: str | None) -> datetime | None:
    """A record's stated start (ISO 8601) as a datetime; None if absent or not ISO."""
    try:
        return datetime.fromisoformat(start_time) if start_time else None
    except ValueError:
        return None
