# SPDX-License-Identifier: Apache-2.0
"""The segment index: which footage file covers which wall-clock interval, and what is held.

SQLite in WAL mode, one connection shared under a lock (the recorder thread writes segments, the
clip worker reads ranges and places holds, retention deletes). A segment is inserted when its file
is opened (``open = 1``) and completed when it is closed, so after a crash the open one is found and
recovered. Holds are persisted too: footage held for an agency's request stays held across restarts.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,
    start_ts REAL NOT NULL,
    end_ts REAL NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0,
    frames INTEGER NOT NULL DEFAULT 0,
    open INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS segments_start ON segments (start_ts);
CREATE INDEX IF NOT EXISTS segments_end ON segments (end_ts);
CREATE TABLE IF NOT EXISTS holds (
    holder TEXT PRIMARY KEY,
    start_ts REAL NOT NULL,
    end_ts REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Segment:
    id: int
    path: Path
    start_ts: float
    end_ts: float
    bytes: int
    frames: int
    open: bool


class SegmentIndex:
    def __init__(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[Segment]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, path, start_ts, end_ts, bytes, frames, open FROM segments {sql}", args).fetchall()
        return [Segment(int(r[0]), Path(r[1]), float(r[2]), float(r[3]), int(r[4]), int(r[5]), bool(r[6]))
                for r in rows]

    # -- segments --------------------------------------------------------------------------------

    def add_open(self, path: Path, start_ts: float) -> int:
        with self._lock:
            cur = self._db.execute("INSERT INTO segments (path, start_ts, end_ts) VALUES (?, ?, ?)",
                                   (str(path), start_ts, start_ts))
            return int(cur.lastrowid or 0)

    def finish(self, seg_id: int, end_ts: float, size: int, frames: int) -> None:
        with self._lock:
            self._db.execute("UPDATE segments SET end_ts = ?, bytes = ?, frames = ?, open = 0 WHERE id = ?",
                             (end_ts, size, frames, seg_id))

    def remove(self, seg_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM segments WHERE id = ?", (seg_id,))

    def open_segments(self) -> list[Segment]:
        return self._rows("WHERE open = 1 ORDER BY start_ts")

    def closed(self, after_ts: float = float("-inf"), limit: int = -1) -> list[Segment]:
        """Completed segments starting after ``after_ts``, oldest first."""
        return self._rows("WHERE open = 0 AND start_ts > ? ORDER BY start_ts LIMIT ?", (after_ts, limit))

    def covering(self, start_ts: float, end_ts: float) -> list[Segment]:
        """Completed segments overlapping [start_ts, end_ts], in time order."""
        return self._rows("WHERE open = 0 AND end_ts >= ? AND start_ts <= ? ORDER BY start_ts", (start_ts, end_ts))

    def span(self) -> tuple[float, float] | None:
        """(oldest start, newest end) of completed footage, or None when there is none."""
        # ORDER BY .. LIMIT 1 walks an index from one end: a week of segments costs nothing per call.
        with self._lock:
            first = self._db.execute("SELECT start_ts FROM segments WHERE open = 0 ORDER BY start_ts LIMIT 1")
            row_first = first.fetchone()
            row_last = self._db.execute(
                "SELECT end_ts FROM segments WHERE open = 0 ORDER BY end_ts DESC LIMIT 1").fetchone()
        return None if row_first is None else (float(row_first[0]), float(row_last[0]))

    def total_bytes(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM segments").fetchone()
        return int(row[0])

    # -- holds -----------------------------------------------------------------------------------

    def hold(self, holder: str, start_ts: float, end_ts: float) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO holds (holder, start_ts, end_ts) VALUES (?, ?, ?)",
                             (holder, start_ts, end_ts))

    def release(self, holder: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM holds WHERE holder = ?", (holder,))

    def holds(self) -> list[tuple[str, float, float]]:
        with self._lock:
            rows = self._db.execute("SELECT holder, start_ts, end_ts FROM holds").fetchall()
        return [(str(h), float(s), float(e)) for h, s, e in rows]
