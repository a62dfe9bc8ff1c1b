# SPDX-License-Identifier: Apache-2.0
"""The footage ring buffer: real H.264 segments, exact clip cuts, retention by age and disk budget with
holds, and recovery of a segment left open by a killed process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import REPO

from edge_agent.footage.recorder import EncoderSettings, Recorder, RetentionPolicy
from edge_agent.sources.base import Frame

FPS = 10
SETTINGS = EncoderSettings(gop_frames=FPS)  # a keyframe every second


def _image(k: int) -> np.ndarray:
    # Frame k is a flat grey of level 4k (mod 256): its content says which frame it is after a cut.
    return np.full((120, 160, 3), (k * 4) % 256, np.uint8)


def _record(rec: Recorder, t0: float, n: int) -> None:
    rec.start()
    for k in range(n):
        rec.offer(Frame(k, t0 + k / FPS, float(k), _image(k)))
    rec.stop()


def _recorder(d: Path, max_age_s: float = 86400.0, max_bytes: int = 1 << 30) -> Recorder:
    return Recorder(d, SETTINGS, segment_s=2.0, policy=RetentionPolicy(max_age_s, max_bytes),
                    retention_interval_s=3600, queue_frames=1000)


def _levels(path: Path) -> list[int]:
    with av.open(str(path)) as inp:
        return [round(float(f.to_ndarray(format="gray").mean()) / 4) for f in inp.decode(video=0)]


def test_segments_and_exact_cut_across_segments(tmp_path: Path) -> None:
    t0 = time.time() - 60
    rec = _recorder(tmp_path)
    _record(rec, t0, 50)  # 5 s: segments of 2 s
    rec = _recorder(tmp_path)
    segs = rec.index.closed()
    assert [s.frames for s in segs] == [20, 20, 10]
    span = rec.index.span()
    assert span is not None and span[0] == pytest.approx(t0) and span[1] == pytest.approx(t0 + 4.9)
    # From mid-GOP (frame 13) in the first segment to mid-GOP (frame 36) in the second: exactly those frames.
    result = rec.cut(t0 + 1.25, t0 + 3.65, tmp_path / "clip.mp4")
    assert result.frames == 24 and result.first_ts == pytest.approx(t0 + 1.3)
    assert result.last_ts == pytest.approx(t0 + 3.6)
    assert 0 < result.reencoded_frames < FPS  # only the head up to the next keyframe was re-encoded
    levels = _levels(tmp_path / "clip.mp4")
    assert len(levels) == 24 and abs(levels[0] - 13) <= 1 and abs(levels[-1] - 36) <= 1
    # Cut starting on a keyframe: nothing re-encoded.
    assert rec.cut(t0 + 2.0, t0 + 2.5, tmp_path / "k.mp4").reencoded_frames == 0
    rec.index.close()


def test_retention_by_age_and_budget_keeps_held_footage(tmp_path: Path) -> None:
    now = time.time()
    old_t0 = now - 8 * 86400  # older than the default 7 days
    rec = _recorder(tmp_path / "a", max_age_s=7 * 86400)
    _record(rec, old_t0, 40)  # two old segments
    rec = _recorder(tmp_path / "a", max_age_s=7 * 86400)
    first, second = rec.index.closed()
    rec.index.hold("req-1", first.start_ts + 0.5, first.start_ts + 1.0)
    deleted = rec.enforce_retention(now)
    assert deleted == [second.path] and not second.path.exists() and first.path.exists()
    rec.index.release("req-1")
    assert rec.enforce_retention(now) == [first.path] and rec.index.span() is None
    rec.index.close()

    rec = _recorder(tmp_path / "b")
    _record(rec, now - 60, 60)  # three recent segments
    rec = _recorder(tmp_path / "b")
    segs = rec.index.closed()
    assert len(segs) == 3
    rec.index.hold("req-2", segs[0].start_ts, segs[0].end_ts)
    rec.policy = RetentionPolicy(86400, segs[0].bytes + segs[2].bytes + 1)  # room for two segments
    deleted = rec.enforce_retention(now)
    assert deleted == [segs[1].path]  # the oldest is held, so the next oldest goes
    assert segs[0].path.exists() and segs[2].path.exists()
    health = rec.footage(now)
    assert health["oldest_age_s"] == pytest.approx(60, abs=1) and health["segments_deleted"] == 1
    rec.index.close()


def test_segment_left_open_by_a_kill_is_recovered(tmp_path: Path) -> None:
    t0 = time.time() - 30
    script = (
        "import os, sys, numpy as np\n"
        "from pathlib import Path\n"
        "from edge_agent.footage.recorder import EncoderSettings, SegmentIndex, SegmentWriter\n"
        f"d = Path({str(tmp_path)!r}); t0 = {t0!r}\n"
        "idx = SegmentIndex(d / 'index.sqlite3'); p = d / 'seg.mp4'\n"
        "idx.add_open(p, t0)\n"
        "w = SegmentWriter(p, 160, 120, t0, EncoderSettings(gop_frames=10))\n"
        "for k in range(25): w.write(np.full((120, 160, 3), k * 4, np.uint8), t0 + k / 10)\n"
        "os._exit(0)  # killed: never closed\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO, timeout=60)
    rec = _recorder(tmp_path)
    (seg,) = rec.index.closed()
    assert not seg.open and 10 <= seg.frames <= 25  # whole fragments up to the kill are kept
    assert rec.cut(t0, t0 + 0.95, tmp_path / "c.mp4").frames == 10
    rec.index.close()


def test_event_clip_around_a_plate(tmp_path: Path) -> None:
    t0 = time.time() - 30
    rec = _recorder(tmp_path)
    rec.schedule_event_clip("ev1", t0 + 2.0, t0 + 2.3, pre_s=0.5, post_s=0.5)
    _record(rec, t0, 50)
    clip = tmp_path / "event-clips" / "ev1.mp4"
    assert clip.is_file()
    assert len(_levels(clip)) == 14  # 1.5 .. 2.8 s


def test_offer_never_blocks_and_counts_drops(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, SETTINGS, segment_s=2.0, policy=RetentionPolicy(86400, 1 << 30), queue_frames=3)
    image = _image(1)
    t0 = time.perf_counter()
    for k in range(10):  # the recorder thread is not running: the queue fills at once
        rec.offer(Frame(k, time.time(), float(k), image))
    assert time.perf_counter() - t0 < 0.05
    assert rec.stats.frames_dropped == 7
    rec.index.close()


def test_event_clips_count_against_the_disk_budget_and_go_after_the_segments(tmp_path: Path) -> None:
    now = time.time()
    rec = _recorder(tmp_path)
    rec.schedule_event_clip("ev-old", now - 58.0, now - 57.5, pre_s=0.2, post_s=0.2)
    rec.schedule_event_clip("ev-new", now - 55.0, now - 54.5, pre_s=0.2, post_s=0.2)
    _record(rec, now - 60, 60)  # three segments of 2 s, two event clips cut from them
    rec = _recorder(tmp_path)
    segs = rec.index.closed()
    clips = [tmp_path / "event-clips" / f"{n}.mp4" for n in ("ev-old", "ev-new")]
    assert len(segs) == 3 and all(c.is_file() for c in clips)
    os.utime(clips[0], (now - 30, now - 30))  # the older clip really is older on disk
    seg_bytes = sum(s.bytes for s in segs)
    clip_bytes = [c.stat().st_size for c in clips]
    # Room for all segments but not the clips: the segments go first, oldest first, until it fits.
    rec.policy = RetentionPolicy(86400, seg_bytes + sum(clip_bytes) - 1)
    assert rec.enforce_retention(now) == [segs[0].path]
    assert all(c.is_file() for c in clips)
    # Room for the newer clip only: every segment, then the older clip go; the newer clip stays.
    rec.policy = RetentionPolicy(86400, clip_bytes[1])
    assert rec.enforce_retention(now) == [segs[1].path, segs[2].path, clips[0]]
    assert clips[1].is_file()
    health = rec.footage(now)
    assert health["event_clips_deleted"] == 1
    assert health["event_clips_mb"] == round(clip_bytes[1] / 2**20, 2)
    rec.index.close()
