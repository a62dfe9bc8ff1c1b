"""Plates published recently: a plate seen again within the window is not a new event.

Matching is fuzzy (edit distance 1), so a re-read that differs by one character is
still the same vehicle. Every re-sighting refreshes the entry, so a car parked in
view and re-read by the periodic scan is published once, however long it stays.
The memory lives in SQLite, so a restart does not publish the parked car again.

It holds plate texts, so it is personal data: rows older than the window are purged at start and on the
agent's retention timer (:meth:`RecentPlates.purge`), never kept past ``privacy.max_age_days`` even with a
longer window, and deleted rows are zeroed on disk (``secure_delete``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from edge_agent.core.formats import edit_distance_at_most_1

log = logging.getLogger(__name__)

_REFRESH_WRITE_S = 5.0  # persist refreshes at most this often per plate: flash storage wears


class RecentPlates:
    def __init__(self, path: Path, window_s: float, now: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._window = window_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Rows are a few bytes: zeroing what is deleted costs nothing, and no plate text lingers in free pages.
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (text TEXT PRIMARY KEY, last_seen REAL NOT NULL)")
        self._db.execute("DELETE FROM seen WHERE last_seen < ?", (now - window_s,))
        self._seen: dict[str, float] = dict(self._db.execute("SELECT text, last_seen FROM seen").fetchall())
        self._written: dict[str, float] = dict(self._seen)
        self.repeats = 0

    def _match(self, text: str, now: float) -> str | None:
        if self._seen.get(text, -1e18) >= now - self._window:
            return text
        for seen, t in self._seen.items():
            if t >= now - self._window and edit_distance_at_most_1(seen, text):
                return seen
        return None

    def seen_recently(self, text: str, now: float) -> bool:
        """True (and the entry refreshed) when text matches a plate seen within the window; else
        the plate is remembered as new and False is returned."""
        with self._lock:
            hit = self._match(text, now)
            key = hit or text
            self._seen[key] = now
            if hit is None or now - self._written.get(key, 0.0) >= _REFRESH_WRITE_S:
                try:
                    self._db.execute("INSERT INTO seen (text, last_seen) VALUES (?, ?) "
                                     "ON CONFLICT(text) DO UPDATE SET last_seen = excluded.last_seen", (key, now))
                    self._written[key] = now
                except sqlite3.Error as exc:
                    # Disk full or failing: the in-memory window still works; only restart memory suffers.
                    # No plate text at WARNING: logs are kept longer than plates may be (privacy.max_age_days).
                    log.warning("dedup: cannot persist a sighting: %s", exc)
            if len(self._seen) > 4096:
                self._expire(now)
            if hit is not None:
                self.repeats += 1
            return hit is not None

    def _expire(self, now: float) -> None:
        horizon = now - self._window
        self._seen = {t: s for t, s in self._seen.items() if s >= horizon}
        self._written = {t: s for t, s in self._written.items() if t in self._seen}
        try:
            self._db.execute("DELETE FROM seen WHERE last_seen < ?", (horizon,))
        except sqlite3.Error as exc:
            log.warning("dedup: cannot expire old entries: %s", exc)

    def purge(self, now: float, max_age_s: float) -> int:
        """Forgets every plate not seen within the window, or within ``max_age_s`` when that is shorter;
        returns how many stored rows went. Run on a timer: between plates nothing else would purge them."""
        horizon = now - min(self._window, max_age_s)
        with self._lock:
            self._seen = {t: s for t, s in self._seen.items() if s >= horizon}
            self._written = {t: s for t, s in self._written.items() if t in self._seen}
            try:
                purged = int(self._db.execute("DELETE FROM seen WHERE last_seen < ?", (horizon,)).rowcount)
                if purged:
                    # The WAL still holds the rows as they were written: empty it, so the texts are gone.
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                return purged
            except sqlite3.Error as exc:
                log.warning("dedup: cannot purge old entries: %s", exc)
                return 0

    def oldest_age_s(self, now: float) -> float | None:
        """Age of the oldest stored sighting, None when nothing is stored."""
        with self._lock:
            try:
                row = self._db.execute("SELECT MIN(last_seen) FROM seen").fetchone()
            except sqlite3.Error:
                return None
        return None if row is None or row[0] is None else max(0.0, now - float(row[0]))

    def close(self) -> None:
        with self._lock:
            self._db.close()
