"""The per-frame path: motion gate -> plate reader -> tracker -> formats -> de-dup -> events.

One object, owned by one thread, so the daemon and the offline measurement script
(scripts/measure_events.py) run exactly the same code on each frame.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Protocol

from edge_agent.alpr.types import PlateRead
from edge_agent.config import Config
from edge_agent.dedup import RecentPlates
from edge_agent.events import Event, EventBuilder
from edge_agent.formats import PlateFormats
from edge_agent.health import PipelineStats, ema
from edge_agent.hotlist import Hotlists
from edge_agent.motion import MotionDetector
from edge_agent.sources.base import Frame
from edge_agent.tracking import PlateTracker, TrackResult

log = logging.getLogger(__name__)


class Reader(Protocol):
    def read(self, image_bgr: Any) -> list[PlateRead]: ...

    @property
    def model_versions(self) -> dict[str, str]: ...


class FramePipeline:
    def __init__(self, cfg: Config, reader: Reader | None, stats: PipelineStats, hotlists: Hotlists) -> None:
        self._cfg = cfg
        self._reader = reader
        self._stats = stats
        self.hotlists = hotlists
        self._motion: MotionDetector | None = None
        self._last_scan = -1e18
        self.events = EventBuilder(cfg.events, cfg.motion.end_after_s, cfg.tracking.low_confidence)
        self.tracker = PlateTracker(cfg.tracking.max_gap_s, cfg.tracking.max_delay_s)
        self.formats = PlateFormats(cfg.formats.enabled)
        self.recent = RecentPlates(Path(cfg.data_dir) / "plates_seen.sqlite3", cfg.events.dedup_window_s,
                                   time.time())

    def process(self, frame: Frame) -> list[Event]:
        """The events this frame gives rise to (often none)."""
        out: list[Event] = []
        mcfg = self._cfg.motion
        active = True
        if mcfg.enabled:
            if self._motion is None:
                h, w = frame.image.shape[:2]
                self._motion = MotionDetector(mcfg, w, h)
            t0 = time.perf_counter()
            result = self._motion.detect(frame)
            self._stats.motion_ms = ema(self._stats.motion_ms, (time.perf_counter() - t0) * 1000)
            active = result.active
            if active:
                self._stats.motion_frames += 1
            ev = self.events.motion(result, frame.ts, frame.mono)
            if ev is not None:
                out.append(ev)
        # The periodic scan reads a parked car that no longer moves.
        scan_due = mcfg.scan_interval_s > 0 and frame.mono - self._last_scan >= mcfg.scan_interval_s
        reads: list[PlateRead] = []
        if self._reader is not None and (active or scan_due):
            self._last_scan = frame.mono
            t0 = time.perf_counter()
            min_conf = self._cfg.alpr.min_confidence
            try:
                reads = [r for r in self._reader.read(frame.image) if r.confidence >= min_conf]
            except Exception:
                # One bad frame must not stop the pole: count it, log the first few, go on.
                self._stats.alpr_errors += 1
                if self._stats.alpr_errors <= 3:
                    log.exception("alpr: reading frame %d failed", frame.index)
            self._stats.inference_ms = ema(self._stats.inference_ms, (time.perf_counter() - t0) * 1000)
            self._stats.alpr_runs += 1
            self._stats.plates_read += len(reads)
        # Every frame, reads or not: tracks end by time.
        for track in self.tracker.update(reads, frame.ts, frame.mono):
            out += self._plate_events(track)
        self._stats.frames_processed += 1
        return out

    def tick(self, mono: float, ts: float) -> list[Event]:
        """The events that time alone makes due (tracks ended, motion over), for when no frame comes:
        a camera that stalled, died or reached the end of its file must not hold back the last vehicle."""
        out: list[Event] = []
        ev = self.events.motion_quiet(ts, mono)
        if ev is not None:
            out.append(ev)
        for track in self.tracker.tick(mono):
            out += self._plate_events(track)
        return out

    def flush(self) -> list[Event]:
        """Events for tracks still open (at shutdown: a read is never lost to a stop)."""
        out: list[Event] = []
        for track in self.tracker.flush():
            out += self._plate_events(track)
        return out

    def _plate_events(self, track: TrackResult) -> list[Event]:
        check = self.formats.check(track.text, track.char_confidences)
        low = not check.valid or track.confidence < self._cfg.tracking.low_confidence
        if track.frames < 2 and low:
            # One doubtful read in one frame is mostly a badge, a sign or a half-seen plate; a real
            # vehicle is seen again, or read confidently (a parked car caught by the periodic scan).
            self._stats.plates_discarded += 1
            return []
        if self.recent.seen_recently(check.text, time.time()):
            self._stats.plates_repeated += 1
            return []
        event = self.events.plate(track, check)
        self._stats.plates_published += 1
        log.info("plate %s (confidence %.2f, %s, %d reads, %s)", check.text, track.confidence,
                 check.country or "no format fits", track.frames, track.direction)
        match = self.hotlists.match(check.text)
        if match is None:
            return [event]
        self._stats.hotlist_alerts += 1
        log.warning("hotlist: %s matches list %s (%s)", check.text, match.list_id, match.kind)
        return [event, self.events.alert(event, match)]

    def close(self) -> None:
        self.recent.close()
