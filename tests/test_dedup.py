"""Recently published plates: fuzzy repeats suppressed, a parked car refreshed, memory survives restart."""

from __future__ import annotations

from pathlib import Path

from edge_agent.pipeline.dedup import RecentPlates


def test_repeat_within_window_is_suppressed_fuzzily(tmp_path: Path) -> None:
    r = RecentPlates(tmp_path / "seen.sqlite3", window_s=30, now=1000)
    assert r.seen_recently("AB123CD", 1000) is False
    assert r.seen_recently("AB123CD", 1010) is True
    assert r.seen_recently("AB128CD", 1015) is True, "edit distance 1 is the same vehicle"
    assert r.seen_recently("XY987ZW", 1015) is False
    assert r.repeats == 2


def test_window_expires_but_parked_car_keeps_refreshing(tmp_path: Path) -> None:
    r = RecentPlates(tmp_path / "seen.sqlite3", window_s=30, now=0)
    assert r.seen_recently("AB123CD", 0) is False
    assert r.seen_recently("AB123CD", 100) is False, "gone for longer than the window: a new pass"
    for t in range(105, 1000, 20):  # parked, re-read by the periodic scan every 20 s
        assert r.seen_recently("AB123CD", t) is True


def test_memory_survives_restart(tmp_path: Path) -> None:
    db = tmp_path / "seen.sqlite3"
    r = RecentPlates(db, window_s=60, now=0)
    r.seen_recently("AB123CD", 0)
    r.seen_recently("AB123CD", 20)
    r.close()
    r2 = RecentPlates(db, window_s=60, now=50)
    assert r2.seen_recently("AB123CD", 50) is True
    r2.close()
    r3 = RecentPlates(db, window_s=60, now=500)
    assert r3.seen_recently("AB123CD", 500) is False
