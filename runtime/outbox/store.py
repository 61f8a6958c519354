"""The durable outbox: every result message is written here (SQLite, WAL, synchronous FULL)
before a courier sends it, and deleted only after its receiver acknowledged it. Per channel
(one receiver) messages leave in the order they were written; one a receiver rejected is set
aside with the reason, never retried blindly (``mrm-edge outbox`` resends or discards it, and
the log keeps who did what). Bounded: a full outbox refuses a message loudly (the caller
raises a system notice) rather than growing without limit or stalling classification. The
guarantees: docs/outbox.md."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: Default bounds: ~a day of per-record reports for a 64-bed unit, and their bytes.
MAX_MESSAGES = 100_000
MAX_BYTES = 512 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS message (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    message_id TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    created REAL NOT NULL,
    body BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'pending',
    UNIQUE (channel, message_id)
);
CREATE INDEX IF NOT EXISTS message_order ON message (channel, state, seq);
-- The bound is checked on every put: a running count, kept by triggers, not a scan.
CREATE TABLE IF NOT EXISTS size (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER, bytes INTEGER);
INSERT OR IGNORE INTO size VALUES (1, 0, 0);
CREATE TRIGGER IF NOT EXISTS size_up AFTER INSERT ON message BEGIN
    UPDATE size SET n = n + 1, bytes = bytes + LENGTH(NEW.body);
END;
CREATE TRIGGER IF NOT EXISTS size_down AFTER DELETE ON message BEGIN
    UPDATE size SET n = n - 1, bytes = bytes - LENGTH(OLD.body);
END;
CREATE TABLE IF NOT EXISTS log (
    at REAL NOT NULL,
    seq INTEGER NOT NULL,
    channel TEXT NOT NULL,
    message_id TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
"""


class OutboxError(OSError):
    """The outbox file cannot be opened or written (the message says which file and why)."""


@dataclass(frozen=True)
class Message:
    seq: int
    channel: str
    message_id: str
    stream_id: str
    created: float
    body: bytes
    attempts: int
    last_error: str
    state: str  # "pending" or "rejected"


class Outbox:
    """One outbox file, shared by the couriers of several channels (one connection per
    thread: SQLite serialises the writers; WAL lets readers go on meanwhile)."""

    def __init__(
        self, path: Path, max_messages: int = MAX_MESSAGES, max_bytes: int = MAX_BYTES
    ) -> None:
        self.path = Path(path)
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db().executescript(_SCHEMA)  # its own transaction
        except (OSError, sqlite3.Error) as e:
            raise OutboxError(f"{self.path}: cannot open the outbox ({e})") from None

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a written message survives power loss
            self._local.db = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def put(self, channel: str, message_id: str, stream_id: str, body: bytes) -> bool:
        """Store a message for ``channel``; False when the outbox is full (nothing stored).
        A message id already stored for the channel is not stored twice (True)."""
        with self._write() as db:  # BEGIN IMMEDIATE: no other writer between check and insert
            count, size = db.execute("SELECT n, bytes FROM size").fetchone()
            if count >= self.max_messages or size + len(body) > self.max_bytes:
                return False
            db.execute(
                "INSERT OR IGNORE INTO message (channel, message_id, stream_id, created, body)"
                " VALUES (?, ?, ?, ?, ?)",
                (channel, message_id, stream_id, time.time(), body),
            )
        return True

    def next_pending(self, channel: str) -> Message | None:
        """The oldest pending message of ``channel``."""
        row = (
            self._db()
            .execute(
                "SELECT * FROM message WHERE channel = ? AND state = 'pending' "
                "ORDER BY seq LIMIT 1",
                (channel,),
            )
            .fetchone()
        )
        return Message(*row) if row else None

    def messages(self, channel: str | None = None) -> list[Message]:
        """Every message not yet delivered (pending and rejected), oldest first."""
        where, args = ("WHERE channel = ?", (channel,)) if channel else ("", ())
        rows = self._db().execute(f"SELECT * FROM message {where} ORDER BY seq", args)
        return [Message(*row) for row in rows]

    def delivered(self, msg: Message) -> None:
        self._remove(msg, "delivered", "")

    def discard(self, msg: Message, reason: str) -> None:
        """Drop ``msg`` undelivered, with the operator's reason kept in the log."""
        self._remove(msg, "discarded", reason)

    def _remove(self, msg: Message, action: str, reason: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM message WHERE seq = ?", (msg.seq,))
            self._log(db, msg, action, reason)

    def attempt_failed(self, msg: Message, error: str) -> None:
        """A send that did not reach an answer (the message stays first in line)."""
        with self._write() as db:
            db.execute(
                "UPDATE message SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                (error, msg.seq),
            )

    def rejected(self, msg: Message, reason: str) -> None:
        """The receiver refused ``msg``: set aside with ``reason`` (not retried)."""
        self._set_state(msg, "rejected", reason)

    def resend(self, msg: Message, reason: str) -> None:
        """Put a rejected message back in line (in its original place)."""
        self._set_state(msg, "pending", reason)

    def _set_state(self, msg: Message, state: str, reason: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE message SET state = ?, last_error = ?, attempts = attempts + ? "
                "WHERE seq = ?",
                (state, reason, int(state == "rejected"), msg.seq),
            )
            self._log(db, msg, "rejected" if state == "rejected" else "resend", reason)

    @staticmethod
    def _log(db: sqlite3.Connection, msg: Message, action: str, reason: str) -> None:
        db.execute(
            "INSERT INTO log (at, seq, channel, message_id, action, reason)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (time.time(), msg.seq, msg.channel, msg.message_id, action, reason),
        )

    def history(self, limit: int = 100) -> list[tuple[float, int, str, str, str, str]]:
        """The latest log lines, newest first: (at, seq, channel, message id, action, reason)."""
        rows = self._db().execute("SELECT * FROM log ORDER BY rowid DESC LIMIT ?", (limit,))
        return list(rows)

    def close(self) -> None:
        """Close this thread's connection (other threads close theirs when they end)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
