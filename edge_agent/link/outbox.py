"""The durable outbox: every event is on disk before it is published, and leaves only when acknowledged.

SQLite in WAL mode with ``synchronous=FULL``: a commit returns after fsync, so an
event survives a power cut or SIGKILL once ``append`` has returned. ``seq`` is
assigned in the same transaction, from a counter stored beside the events, so it
is strictly increasing per node across restarts.

Bounds (docs/mqtt.md, "Outbox"): past ``max_events`` the oldest motion events are
dropped; plate events are dropped (oldest first) only when the outbox exceeds its
disk budget ``max_mb``. Events older than ``privacy.max_age_days`` are dropped too (:meth:`Outbox.expire`):
plate texts and crops may not outlive their retention on the pole, not even undelivered. Audit records are
never dropped. Every drop is counted per type and the counts persist.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.core.types import PRIORITY_ALERT, PRIORITY_AUDIT, Event

PRIORITY_URGENT = PRIORITY_ALERT

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    priority INTEGER NOT NULL,
    created REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_priority ON outbox (priority, seq);
"""


_DROPPABLE = PRIORITY_AUDIT - 1  # audit records are evidence: no bound ever drops one


class OutboxError(Exception):
    """The event could not be stored (disk full, I/O error); the caller counts it as lost."""


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    bytes: int
    oldest_age_s: float | None
    last_seq: int
    dropped: dict[str, int]


class Outbox:
    def __init__(self, path: Path, node_id: str, max_events: int, max_bytes: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._node_id = node_id
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # Deleted events hold plate texts and crops: zero them where that costs no extra I/O (the b-tree
            # pages being rewritten anyway). Freed overflow pages of large crops are reused, not zeroed.
            self._db.execute("PRAGMA secure_delete=FAST")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM outbox").fetchone()
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"outbox {path}: cannot open: {exc}") from exc
        self._count, self._bytes = int(row[0]), int(row[1])

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, key: str, by: int) -> int:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = value + ?",
            (key, by, by),
        )
        return self._meta(key)

    def append(self, event: Event) -> int:
        """Stores the event durably and returns its ``seq``."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                seq = self._bump("last_seq", 1)
                body = json.dumps(event.envelope(self._node_id, seq), separators=(",", ":")).encode()
                self._db.execute(
                    "INSERT INTO outbox (seq, type, priority, created, body) VALUES (?, ?, ?, ?, ?)",
                    (seq, event.type, event.priority, time.time(), body),
                )
                self._count += 1
                self._bytes += len(body)
                self._enforce_bounds()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"outbox: cannot store {event.type} event: {exc}") from exc
            return seq

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM outbox").fetchone()
        self._count, self._bytes = int(row[0]), int(row[1])

    def _drop_oldest(self, max_priority: int) -> bool:
        row = self._db.execute(
            "SELECT seq, type, LENGTH(body) FROM outbox WHERE priority <= ? ORDER BY priority, seq LIMIT 1",
            (max_priority,),
        ).fetchone()
        if row is None:
            return False
        self._db.execute("DELETE FROM outbox WHERE seq = ?", (row[0],))
        self._count -= 1
        self._bytes -= int(row[2])
        self._bump(f"dropped_{row[1]}", 1)
        return True

    def _enforce_bounds(self) -> None:
        # Count bound: only lower-priority (motion) events give way, never plates.
        while self._count > self._max_events and self._drop_oldest(0):
            pass
        # Disk budget: anything but audit records gives way, lowest priority and oldest first.
        while self._bytes > self._max_bytes and self._drop_oldest(_DROPPABLE):
            pass

    def expire(self, cutoff: float) -> dict[str, int]:
        """Drops every event stored before ``cutoff`` (wall clock) but audit records, counted per type both in
        the drops (``stats().dropped``, so a gap in seq is always accounted for) and in :meth:`aged`. An outage
        longer than the retention loses events: the law bounds how long plates may be kept, delivered or not."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                rows = self._db.execute(
                    "DELETE FROM outbox WHERE created < ? AND priority <= ? RETURNING type, LENGTH(body)",
                    (cutoff, _DROPPABLE)).fetchall()
                dropped: dict[str, int] = {}
                for kind, size in rows:
                    dropped[str(kind)] = dropped.get(str(kind), 0) + 1
                    self._count -= 1
                    self._bytes -= int(size)
                for kind, n in dropped.items():
                    self._bump(f"dropped_{kind}", n)
                    self._bump(f"aged_{kind}", n)
                self._db.execute("COMMIT")
            except sqlite3.Error:
                # Tried again at the next pass; nothing is lost by waiting a minute.
                self._rollback()
                return {}
            if dropped:
                # The WAL may still hold those events as written: empty it (rare: only after long outages).
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return dropped

    def aged(self) -> dict[str, int]:
        """Events dropped for age (privacy.max_age_days) per type, since the outbox was created."""
        with self._lock:
            return {str(k).removeprefix("aged_"): int(v)
                    for k, v in self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'aged!_%' ESCAPE '!'")}

    def oldest_personal_age_s(self, now: float) -> float | None:
        """Age of the oldest stored event that may hold personal data (anything but audit records)."""
        with self._lock:
            oldest = self._db.execute("SELECT MIN(created) FROM outbox WHERE priority <= ?",
                                      (_DROPPABLE,)).fetchone()[0]
        return None if oldest is None else max(0.0, now - float(oldest))

    def pending(self, after_seq: int, limit: int) -> list[Pending]:
        """Events after ``after_seq`` in seq order, urgent ones excluded (see pending_urgent)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, type, body FROM outbox WHERE seq > ? AND priority < ? ORDER BY seq LIMIT ?",
                (after_seq, PRIORITY_URGENT, limit),
            ).fetchall()
        return [Pending(int(s), str(t), bytes(b)) for s, t, b in rows]

    def pending_urgent(self, exclude: Iterable[int], limit: int) -> list[Pending]:
        """Urgent events (hotlist alerts) not yet handed out: they go ahead of any backlog."""
        skip = json.dumps(list(exclude))
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, type, body FROM outbox WHERE priority >= ? AND seq NOT IN (SELECT value FROM json_each(?))"
                " ORDER BY seq LIMIT ?",
                (PRIORITY_URGENT, skip, limit),
            ).fetchall()
        return [Pending(int(s), str(t), bytes(b)) for s, t, b in rows]

    def ack(self, seqs: Iterable[int]) -> None:
        """Deletes events the broker has acknowledged."""
        batch = [(s,) for s in seqs]
        if not batch:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for (s,) in batch:
                    row = self._db.execute("DELETE FROM outbox WHERE seq = ? RETURNING LENGTH(body)", (s,)).fetchone()
                    if row is not None:
                        self._count -= 1
                        self._bytes -= int(row[0])
                self._db.execute("COMMIT")
            except sqlite3.Error:
                # Not deleting only means a duplicate delivery later (consumers de-duplicate by event_id).
                self._rollback()

    @property
    def depth(self) -> int:
        """Events stored and not yet acknowledged by the broker."""
        with self._lock:
            return self._count

    def stats(self) -> OutboxStats:
        with self._lock:
            oldest = self._db.execute("SELECT MIN(created) FROM outbox").fetchone()[0]
            dropped = {
                str(k).removeprefix("dropped_"): int(v)
                for k, v in self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'dropped_%'")
            }
            last_seq = self._meta("last_seq")
        age = None if oldest is None else max(0.0, time.time() - float(oldest))
        return OutboxStats(self._count, self._bytes, age, last_seq, dropped)

    def close(self) -> None:
        with self._lock:
            self._db.close()
