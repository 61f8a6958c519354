"""What has arrived in the watched inbox (watch.py) and settled: the records ready to take,
in arrival order. The rules (settling, temp names, WFDB companions, orphans):
docs/monitor.md#watched-inbox."""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

TEMP_SUFFIXES = (".tmp", ".part", ".partial")  # "write, then rename": never read
_HEADER_BYTES = 1 << 16  # read of a .hea for the names of its signal files

Signature = tuple[int, int, int, int]  # size, mtime_ns, inode, mode


def is_temp_name(name: str) -> bool:
    """A name the writer has not finished with: dot-files and ``*.tmp/.part/.partial``."""
    return name.startswith(".") or name.lower().endswith(TEMP_SUFFIXES)


def signature(st: os.stat_result) -> Signature:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode)


@dataclass
class Seen:
    sig: Signature
    since: float  # monotonic time this signature was first seen
    settled_at: float | None = None  # first seen settled: the arrival order


@dataclass(frozen=True)
class Record:
    entry: str  # the file read_recording is given (a WFDB record: its .hea)
    companions: tuple[str, ...] = ()  # the signal files its header names
    refusal: str | None = None  # why it is refused unread


class Arrivals:
    """The top level of ``folder``, polled by ``scan()``; ``skip``: names never taken (the
    inbox's own folders). ``seen`` holds each present name's last signature."""

    def __init__(
        self, folder: Path, settle_s: float, orphan_s: float, skip: tuple[str, ...]
    ) -> None:
        self.dir, self.settle_s, self.orphan_s, self.skip = folder, settle_s, orphan_s, skip
        self.seen: dict[str, Seen] = {}
        self._headers: dict[str, tuple[Signature, tuple[str, ...] | str]] = {}
        self._retry_at: dict[str, float] = {}

    def forget(self, names: tuple[str, ...] | list[str]) -> None:
        """These files settle again before they are taken (changed, or moved away)."""
        for name in names:
            self.seen.pop(name, None)

    def retry_later(self, names: list[str], delay_s: float) -> None:
        for name in names:
            self._retry_at[name] = time.monotonic() + delay_s

    def scan(self) -> list[Record]:
        """The records ready to take, in arrival order."""
        now = time.monotonic()
        present: dict[str, os.stat_result] = {}
        with os.scandir(self.dir) as entries:
            for e in entries:
                if e.name in self.skip or is_temp_name(e.name):
                    continue
                try:
                    present[e.name] = e.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
        # What has gone (moved, deleted) is forgotten: a long-running inbox keeps no history.
        self.seen = {n: s for n, s in self.seen.items() if n in present}
        self._headers = {n: h for n, h in self._headers.items() if n in present}
        self._retry_at = {n: t for n, t in self._retry_at.items() if n in present}
        for name, st in present.items():
            sig, seen = signature(st), self.seen.get(name)
            if seen is None or seen.sig != sig:
                self.seen[name] = Seen(sig, now)
            elif seen.settled_at is None and now - seen.since >= self.settle_s:
                seen.settled_at = now
        settled = {
            n: s
            for n, s in self.seen.items()
            if s.settled_at is not None and self._retry_at.get(n, 0.0) <= now
        }
        order = sorted(settled, key=lambda n: (settled[n].settled_at, n))
        companions: set[str] = set()
        for name in order:  # headers first: their signal files are not records
            if stat.S_ISREG(settled[name].sig[3]) and name.lower().endswith(".hea"):
                names = self._signal_files(name)
                if isinstance(names, tuple):
                    companions.update(names)
        records = (self._record(n, settled, now) for n in order if n not in companions)
        return [r for r in records if r is not None]

    def _record(self, name: str, settled: dict[str, Seen], now: float) -> Record | None:
        """``name`` as a record to take, or None while it waits for its other files."""
        mode, waited = settled[name].sig[3], now - (settled[name].settled_at or now)
        if stat.S_ISLNK(mode):
            return Record(name, refusal="a symbolic link: the inbox reads only regular files")
        if not stat.S_ISREG(mode):
            return Record(name, refusal="not a regular file (a directory, a pipe or a device)")
        if name.lower().endswith(".dat"):
            if waited < self.orphan_s:
                return None
            why = "a WFDB signal file that no header (.hea) in the inbox named within"
            return Record(name, refusal=f"{why} {self.orphan_s:g} s")
        if not name.lower().endswith(".hea"):
            return Record(name)
        names = self._signal_files(name)
        if isinstance(names, str):
            return Record(name, refusal=names)
        missing = [n for n in names if n not in settled]
        odd = [n for n in names if n in settled and not stat.S_ISREG(settled[n].sig[3])]
        if odd:
            return Record(name, names, f"its signal file {odd[0]} is not a regular file")
        if missing and waited < self.orphan_s:
            return None
        if missing:
            why = f"its signal file {missing[0]} did not arrive within {self.orphan_s:g} s"
            return Record(name, tuple(n for n in names if n in settled), why)
        return Record(name, names)

    def _signal_files(self, header: str) -> tuple[str, ...] | str:
        """The files ``header`` names (a plain name in the inbox each), or why it is refused.
        A header that does not parse names none: reading it reports what is wrong."""
        sig = self.seen[header].sig
        cached = self._headers.get(header)
        if cached is not None and cached[0] == sig:
            return cached[1]
        names: tuple[str, ...] | str = ()
        try:
            fd = os.open(self.dir / header, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as f:
                text = f.read(_HEADER_BYTES).decode("ascii", "replace")
        except OSError:
            text = ""
        lines = [ln.split("#", 1)[0].split() for ln in text.splitlines()]
        lines = [ln for ln in lines if ln]
        if lines and "/" in lines[0][0]:
            names = "a multi-segment WFDB record: the inbox takes single-segment records"
        elif lines:
            files = dict.fromkeys(ln[0] for ln in lines[1:] if ln[0] != header)
            bad = [n for n in files if "/" in n or n in (".", "..") or is_temp_name(n)]
            names = tuple(files)
            if bad:
                names = f"its signal file {bad[0]!r} is not a file of the inbox"
        self._headers[header] = (sig, names)
        return names
