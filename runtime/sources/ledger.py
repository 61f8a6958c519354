"""The watched inbox's ledger: one durable row per file it took, keyed by the sha256 of the
record's content, so that a restart classifies no file twice and skips none
(docs/monitor.md#watched-inbox). SQLite, one connection per operation (any thread may
finish a file) and one transaction per write, so a crash leaves each row whole."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    sha256 TEXT,            -- of the record's files; NULL when not read (too big, not a file)
    name TEXT NOT NULL,     -- the record's entry in the inbox (a WFDB record: its .hea)
    files TEXT NOT NULL,    -- JSON [[name, size], ...]: the entry, then its companions
    stream TEXT,            -- the stream id its windows carry
    state TEXT NOT NULL,    -- claimed, done, failed, duplicate
    reason TEXT,            -- why it failed (one line)
    dest TEXT,              -- the folder its files go to, relative to the inbox
    moved INTEGER NOT NULL DEFAULT 0,
    claimed_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS files_sha256 ON files (sha256);
"""


@dataclass(frozen=True)
class Entry:
    """One ledger row."""

    id: int
    sha256: str | None
    name: str
    files: tuple[tuple[str, int], ...]
    stream: str | None
    state: str
    reason: str | None
    dest: str | None
    moved: bool


class Ledger:
    """The rows of one inbox, at ``path`` (created with its folder if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(_SCHEMA)

    def _db(self) -> closing[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")
        return closing(db)

    def _rows(self, where: str, args: tuple) -> list[Entry]:
        with self._lock, self._db() as db:
            rows = db.execute(
                "SELECT id, sha256, name, files, stream, state, reason, dest, moved FROM files "
                f"WHERE {where} ORDER BY id",
                args,
            ).fetchall()
        return [
            Entry(r[0], r[1], r[2], tuple(map(tuple, json.loads(r[3]))), *r[4:8], bool(r[8]))
            for r in rows
        ]

    def by_hash(self, sha256: str) -> list[Entry]:
        """The rows of this content, oldest first (the first is the one classified)."""
        return self._rows("sha256 = ?", (sha256,))

    def unmoved(self) -> list[Entry]:
        """Rows whose files were not all moved yet (a crash or a failed move)."""
        return self._rows("moved = 0", ())

    def all(self) -> list[Entry]:
        return self._rows("1", ())

    def add(
        self,
        sha256: str | None,
        name: str,
        files: list[tuple[str, int]],
        state: str,
        stream: str | None = None,
        reason: str | None = None,
    ) -> int:
        with self._lock, self._db() as db:
            cur = db.execute(
                "INSERT INTO files (sha256, name, files, stream, state, reason, claimed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sha256, name, json.dumps(files), stream, state, reason, time.time()),
            )
            return int(cur.lastrowid or 0)

    def finish(self, row: int, state: str, reason: str | None, dest: str) -> None:
        """The row's outcome and destination, written before its files move."""
        with self._lock, self._db() as db:
            db.execute(
                "UPDATE files SET state = ?, reason = ?, dest = ?, finished_at = ? WHERE id = ?",
                (state, reason, dest, time.time(), row),
            )

    def moved(self, row: int) -> None:
        with self._lock, self._db() as db:
            db.execute("UPDATE files SET moved = 1 WHERE id = ?", (row,))

    def forget(self, row: int) -> None:
        """Drop a claim (the file changed while it was read: it is taken again once settled)."""
        with self._lock, self._db() as db:
            db.execute("DELETE FROM files WHERE id = ? AND state = 'claimed'", (row,))
