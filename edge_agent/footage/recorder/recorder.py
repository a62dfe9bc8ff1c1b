# SPDX-License-Identifier: Apache-2.0
"""Continuous recording into fixed-length segments, plus retention, beside the plate pipeline.

The capture thread hands every frame to :meth:`Recorder.offer`, which never blocks: a bounded queue
drops the oldest frame when the encoder falls behind and counts it. The ``recorder`` thread encodes
and rotates segments; retention runs on the same thread between frames (every
``recorder.retention_interval_s``), so it needs no lock against the writer.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import av

from edge_agent.footage.recorder.cut import ClipError, ClipResult, cut_clip
from edge_agent.footage.recorder.index import Segment, SegmentIndex
from edge_agent.footage.recorder.writer import EncoderSettings, SegmentWriter, probe_end
from edge_agent.sources.base import Frame

log = logging.getLogger(__name__)


@dataclass
class RecorderStats:
    frames_recorded: int = 0
    frames_dropped: int = 0
    segments_written: int = 0
    segments_deleted: int = 0
    encode_errors: int = 0
    event_clips: int = 0
    event_clips_deleted: int = 0
    event_clips_bytes: int = 0  # on disk, as of the last retention pass or clip cut
    event_clips_oldest_ts: float | None = None  # mtime of the oldest on disk, as of the same
    segments_expired: int = 0  # of segments_deleted: for age (the rest for the disk budget)
    event_clips_expired: int = 0  # of event_clips_deleted: for age


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    max_age_s: float
    max_bytes: int
    # Event clips show plates: privacy.max_age_days bounds them too when it is shorter (None: max_age_s).
    event_clip_max_age_s: float | None = None

    @property
    def event_clip_age_s(self) -> float:
        cap = self.event_clip_max_age_s
        return self.max_age_s if cap is None else min(self.max_age_s, cap)


@dataclass(frozen=True, slots=True)
class _EventClip:
    name: str
    start_ts: float
    end_ts: float
    give_up_at: float  # monotonic: when footage up to end_ts never arrived (camera down)


class Recorder:
    def __init__(self, footage_dir: Path, settings: EncoderSettings, segment_s: float, policy: RetentionPolicy,
                 retention_interval_s: float = 60.0, queue_frames: int = 30) -> None:
        self.dir = footage_dir
        self.settings = settings
        self.segment_s = segment_s
        self.policy = policy
        self.retention_interval_s = retention_interval_s
        self.stats = RecorderStats()
        self.index = SegmentIndex(footage_dir / "index.sqlite3")
        self.event_clip_dir = footage_dir / "event-clips"
        self._queue: deque[Frame] = deque()
        self._max = queue_frames
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._writer: SegmentWriter | None = None
        self._seg_id = 0
        self._open_retry_at = 0.0  # after a failed segment open (disk full): not again for a while
        self._event_clips: list[_EventClip] = []
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._recover()

    # -- capture side ----------------------------------------------------------------------------

    def offer(self, frame: Frame) -> None:
        """Called by the capture thread for every frame; never blocks, never copies the image."""
        with self._cond:
            if len(self._queue) >= self._max:
                self._queue.popleft()
                self.stats.frames_dropped += 1
            self._queue.append(frame)
            self._cond.notify()

    def schedule_event_clip(self, name: str, first_ts: float, last_ts: float, pre_s: float, post_s: float) -> None:
        """Cuts ``event-clips/{name}.mp4`` (first_ts - pre_s .. last_ts + post_s) once that footage is in
        closed segments."""
        with self._cond:
            wait = max(0.0, last_ts - time.time()) + post_s + 3 * self.segment_s + 30
            self._event_clips.append(_EventClip(name, first_ts - pre_s, last_ts + post_s, time.monotonic() + wait))

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify()
        self._thread.join(10.0)
        self.index.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _recover(self) -> None:
        """Completes segments a crash left open, keeping whatever frames in them are readable."""
        for seg in self.index.open_segments():
            probed = probe_end(seg.path, seg.start_ts) if seg.path.exists() else None
            if probed is None:
                seg.path.unlink(missing_ok=True)
                self.index.remove(seg.id)
                continue
            end, frames = probed
            self.index.finish(seg.id, end, seg.path.stat().st_size, frames)
            log.info("recorder: recovered %s (%d frames) after an unclean stop", seg.path.name, frames)

    # -- recorder thread -------------------------------------------------------------------------

    def _run(self) -> None:
        next_retention = 0.0
        while not self._stop.is_set():
            try:
                next_retention = self._step(next_retention)
            except Exception:
                # Recording is evidence: a surprise in one step (a full disk, a bad frame) must not end it.
                self.stats.encode_errors += 1
                log.exception("recorder: unexpected error; recording continues")
                self._stop.wait(1.0)
        with self._cond:
            rest, self._queue = list(self._queue), deque()
        for frame in rest:  # at most queue_frames: cheap, and those seconds are footage too
            self._write(frame)
        self._close_segment()
        self._cut_due_event_clips()

    def _step(self, next_retention: float) -> float:
        with self._cond:
            if not self._queue:
                self._cond.wait(0.5)
            frame = self._queue.popleft() if self._queue else None
        if frame is not None:
            self._write(frame)
        elif self._writer is not None and time.time() - self._writer.last_ts > self.segment_s:
            self._close_segment()  # the camera stopped: make what we have cuttable
        now = time.monotonic()
        if now >= next_retention:
            next_retention = now + self.retention_interval_s
            self.enforce_retention(time.time())
        self._cut_due_event_clips()
        return next_retention

    def _write(self, frame: Frame) -> None:
        h, w = frame.image.shape[:2]
        wr = self._writer
        if wr is not None and (frame.ts - wr.start_ts >= self.segment_s or (w, h) != (wr.width, wr.height)):
            self._close_segment()
            wr = None
        if wr is None:
            if time.monotonic() < self._open_retry_at:
                self.stats.frames_dropped += 1
                return
            wr = self._open_segment(frame.ts, w, h)
            if wr is None:
                self._open_retry_at = time.monotonic() + 5.0
                return
        try:
            wr.write(frame.image, frame.ts)
            self.stats.frames_recorded += 1
        except (av.FFmpegError, ValueError) as exc:
            self.stats.encode_errors += 1
            log.error("recorder: cannot encode a frame into %s: %s", wr.path.name, exc)
            self._close_segment()

    def _open_segment(self, ts: float, w: int, h: int) -> SegmentWriter | None:
        day = datetime.fromtimestamp(ts, UTC)
        path = self.dir / day.strftime("%Y%m%d") / f"{day.strftime('%H%M%S')}_{int(ts * 1000)}.mp4"
        # Indexed before the file exists: a crash in between leaves a row to clean up, never an unknown file.
        seg_id = self.index.add_open(path, ts)
        try:
            wr = SegmentWriter(path, w, h, ts, self.settings)
        except (av.FFmpegError, OSError, ValueError) as exc:
            self.stats.encode_errors += 1
            log.error("recorder: cannot open segment %s: %s", path, exc)
            path.unlink(missing_ok=True)
            self.index.remove(seg_id)
            return None
        self._seg_id = seg_id
        self._writer = wr
        return wr

    def _close_segment(self) -> None:
        wr, self._writer = self._writer, None
        if wr is None:
            return
        try:
            size = wr.close()
        except (av.FFmpegError, OSError) as exc:
            self.stats.encode_errors += 1
            log.error("recorder: cannot finish segment %s: %s", wr.path.name, exc)
            size = wr.path.stat().st_size if wr.path.exists() else 0
        if wr.frames == 0:
            wr.path.unlink(missing_ok=True)
            self.index.remove(self._seg_id)
            return
        self.index.finish(self._seg_id, wr.last_ts, size, wr.frames)
        self.stats.segments_written += 1

    # -- event clips -----------------------------------------------------------------------------

    def _cut_due_event_clips(self) -> None:
        if not self._event_clips:
            return
        span = self.index.span()
        now = time.monotonic()
        with self._cond:
            # Due once closed footage reaches the clip's end, or given up when it does not come.
            due = [c for c in self._event_clips if (span and span[1] >= c.end_ts) or now > c.give_up_at]
            self._event_clips = [c for c in self._event_clips if c not in due]
        for c in due:
            try:
                out = self.event_clip_dir / f"{c.name}.mp4"
                self.cut(c.start_ts, c.end_ts, out)
                self.stats.event_clips += 1
            except ClipError as exc:
                log.warning("recorder: event clip %s not cut: %s", c.name, exc)
                continue
            with contextlib.suppress(OSError):
                st = out.stat()
                self.stats.event_clips_bytes += st.st_size
                if self.stats.event_clips_oldest_ts is None:
                    self.stats.event_clips_oldest_ts = st.st_mtime

    # -- clips and retention ---------------------------------------------------------------------

    def cut(self, start_ts: float, end_ts: float, out_path: Path) -> ClipResult:
        return cut_clip(self.index.covering(start_ts, end_ts), start_ts, end_ts, out_path, self.settings)

    def enforce_retention(self, now: float) -> list[Path]:
        """Deletes footage past the maximum age or the disk budget, oldest first, skipping held segments.

        Event clips count against the same budget but go last: they are the footage around plates,
        worth more than the continuous recording they were cut from. Their age bound is the shorter of
        the policy's two (footage, privacy)."""
        policy = self.policy  # one read: the agent's retention timer may swap in a tighter one
        clips = self._clips_on_disk()
        clip_bytes = sum(size for _, _, size in clips)
        holds = self.index.holds()
        total = self.index.total_bytes() + clip_bytes
        deleted: list[Path] = []
        after = float("-inf")
        while batch := self.index.closed(after, 256):  # in batches: a week is ~60 000 segments
            after = batch[-1].start_ts
            for seg in batch:
                too_old = seg.end_ts < now - policy.max_age_s
                if not too_old and total <= policy.max_bytes:
                    # Oldest first: the rest are younger, and within budget.
                    return self._prune_event_clips(now, policy, clips, clip_bytes, total, deleted)
                if any(_overlaps(seg, s, e) for _, s, e in holds):
                    continue
                try:
                    seg.path.unlink(missing_ok=True)
                except OSError as exc:
                    log.error("recorder: cannot delete %s: %s", seg.path, exc)
                    continue
                self.index.remove(seg.id)
                total -= seg.bytes
                deleted.append(seg.path)
                self.stats.segments_deleted += 1
                self.stats.segments_expired += int(too_old)
        return self._prune_event_clips(now, policy, clips, clip_bytes, total, deleted)

    def _clips_on_disk(self) -> list[tuple[float, Path, int]]:
        """(mtime, path, bytes) of every event clip, oldest first."""
        out = []
        for clip in self.event_clip_dir.glob("*.mp4") if self.event_clip_dir.exists() else []:
            try:
                st = clip.stat()
            except OSError:
                continue
            out.append((st.st_mtime, clip, st.st_size))
        return sorted(out)

    def _prune_event_clips(self, now: float, policy: RetentionPolicy, clips: list[tuple[float, Path, int]],
                           clip_bytes: int, total: int, deleted: list[Path]) -> list[Path]:
        oldest: float | None = None
        for mtime, clip, size in clips:
            too_old = mtime < now - policy.event_clip_age_s
            if not too_old and total <= policy.max_bytes:
                oldest = mtime
                break
            try:
                clip.unlink(missing_ok=True)
            except OSError as exc:
                log.error("recorder: cannot delete %s: %s", clip, exc)
                oldest = mtime if oldest is None else oldest
                continue
            total -= size
            clip_bytes -= size
            deleted.append(clip)
            self.stats.event_clips_deleted += 1
            self.stats.event_clips_expired += int(too_old)
        self.stats.event_clips_bytes = clip_bytes
        self.stats.event_clips_oldest_ts = oldest
        return deleted

    def footage(self, now: float) -> dict[str, float | int | None]:
        """For health: age of the oldest footage, bytes on disk, segments written and deleted."""
        span = self.index.span()
        return {"oldest_age_s": None if span is None else round(now - span[0], 1),
                "newest_age_s": None if span is None else round(now - span[1], 1),
                "disk_mb": round(self.index.total_bytes() / 2**20, 2),
                "event_clips_mb": round(self.stats.event_clips_bytes / 2**20, 2),
                "frames_recorded": self.stats.frames_recorded, "frames_dropped": self.stats.frames_dropped,
                "segments_written": self.stats.segments_written, "segments_deleted": self.stats.segments_deleted,
                "encode_errors": self.stats.encode_errors, "event_clips": self.stats.event_clips,
                "event_clips_deleted": self.stats.event_clips_deleted}


def _overlaps(seg: Segment, start: float, end: float) -> bool:
    return seg.end_ts >= start and seg.start_ts <= end
