"""The per-frame path: motion gate -> plate reader -> tracker -> formats -> de-dup -> events.

One object, owned by one thread, so the daemon and the offline measurement script
(scripts/measure_events.py) run exactly the same code on each frame.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edge_agent.config import Config
from edge_agent.core.clock import CaptureClock
from edge_agent.core.formats import PlateFormats
from edge_agent.core.types import Event, HotlistMatch, PipelineStats, ema
from edge_agent.pipeline import context_image
from edge_agent.pipeline.alpr.types import PlateRead
from edge_agent.pipeline.dedup import RecentPlates
from edge_agent.pipeline.events import EventBuilder, Lanes, UnreadPass, UnreadPasses, published_check
from edge_agent.pipeline.motion import MotionDetector, MotionResult
from edge_agent.pipeline.privacy_mask import PrivacyMask
from edge_agent.pipeline.tracking import PlateTracker, TrackResult
from edge_agent.sources.base import Frame

if TYPE_CHECKING:
    from edge_agent.core.clock import ClockState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _ReadContext:
    """Kept by the tracker for a track's most confident read: its frame's size (lanes are in frame
    fractions) and, when context images are on, the vehicle cut from that frame."""

    frame_w: int
    frame_h: int
    image: np.ndarray | None


class Reader(Protocol):
    # Reads under it are not returned. The pipeline sets it to the node's ``alpr.min_confidence``: the
    # reader must know the floor while it reads, to prefer a read that passes it over one that does not.
    min_confidence: float

    def read(self, image_bgr: Any, regions: Sequence[tuple[int, int, int, int]] = ()) -> list[PlateRead]: ...

    @property
    def model_versions(self) -> dict[str, str]: ...


class HotlistLookup(Protocol):
    """The lists a published plate is matched against (edge_agent.commands.hotlist.Hotlists, kept up to date
    by ``cmd/hotlist``): the pipeline only asks."""

    def match(self, text: str) -> HotlistMatch | None: ...


class FramePipeline:
    def __init__(self, cfg: Config, reader: Reader | None, stats: PipelineStats, hotlists: HotlistLookup,
                 privacy: PrivacyMask | None = None, clock: Callable[[], ClockState] | None = None) -> None:
        """``privacy``: the masks the frames were blacked out with (the agent masks in its capture thread);
        plates centred in them are not read. ``clock``: the last known sync state, for the transit record."""
        self._cfg = cfg
        self._reader = reader
        if reader is not None:
            reader.min_confidence = cfg.alpr.min_confidence  # the config is fixed for the pipeline's life
        self._stats = stats
        self.hotlists = hotlists
        self.privacy = privacy if privacy is not None else PrivacyMask(cfg.privacy.masks)
        self._motion: MotionDetector | None = None
        self._last_scan = -1e18
        self._frame_size = (cfg.camera.width, cfg.camera.height)
        self.events = EventBuilder(cfg.events, cfg.motion.end_after_s, cfg.tracking.low_confidence,
                                   CaptureClock(clock))
        self.tracker = PlateTracker(cfg.tracking.max_gap_s, cfg.tracking.max_delay_s)
        self.formats = PlateFormats(cfg.formats.enabled)
        self.lanes = Lanes(cfg.events.lanes)
        self._context_px = cfg.events.context_max_px if cfg.events.context_max_kb > 0 else 0
        self.unread: UnreadPasses | None = None
        if reader is not None and cfg.events.unread_events and cfg.motion.enabled:
            # Without a reader nothing is "unread", and without motion there is no pass to record.
            self.unread = UnreadPasses(cfg.events, self.lanes, cfg.tracking.max_gap_s)
        self.recent = RecentPlates(Path(cfg.data_dir) / "plates_seen.sqlite3", cfg.events.dedup_window_s,
                                   time.time())

    def process(self, frame: Frame) -> list[Event]:
        """The events this frame gives rise to (often none)."""
        out: list[Event] = []
        mcfg = self._cfg.motion
        active = True
        h, w = frame.image.shape[:2]
        self._frame_size = (w, h)
        result: MotionResult | None = None
        if mcfg.enabled:
            if self._motion is None:
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
            try:
                # Where it moves, a closer second look finds the plates too small for the whole frame.
                regions = result.boxes if result is not None and active and self._cfg.alpr.second_look else ()
                reads = self._reader.read(frame.image, regions)
            except Exception:
                # One bad frame must not stop the pole: count it, log the first few, go on.
                self._stats.alpr_errors += 1
                if self._stats.alpr_errors <= 3:
                    log.exception("alpr: reading frame %d failed", frame.index)
            self._stats.inference_ms = ema(self._stats.inference_ms, (time.perf_counter() - t0) * 1000)
            self._stats.alpr_runs += 1
            if self.privacy:
                # The masked area is black, but a plate half in it could still be half read: not there.
                reads = [r for r in reads if not self.privacy.covers(r.box[0] + r.box[2] / 2,
                                                                     r.box[1] + r.box[3] / 2, w, h)]
            self._stats.plates_read += len(reads)

        def context(read: PlateRead) -> _ReadContext:
            region = context_image.vehicle_region(read.box, w, h) if self._context_px else None
            return _ReadContext(w, h, None if region is None else context_image.cut(frame.image, region,
                                                                                     self._context_px))

        # Every frame, reads or not: tracks end by time.
        for track in self.tracker.update(reads, frame.ts, frame.mono, context):
            out += self._plate_events(track)
        if self.unread is not None:
            if result is not None:
                self.unread.observe(result, frame.image, frame.ts, frame.mono, self.tracker.last_assignment)
            out += self._unread_events(self.unread.due(frame.mono))
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
        if self.unread is not None:
            out += self._unread_events(self.unread.due(mono))
        return out

    def flush(self) -> list[Event]:
        """Events for tracks and passes still open (at shutdown: a read is never lost to a stop)."""
        out: list[Event] = []
        for track in self.tracker.flush():
            out += self._plate_events(track)
        if self.unread is not None:
            out += self._unread_events(self.unread.flush())
        return out

    def _unread_events(self, passes: list[UnreadPass]) -> list[Event]:
        out = []
        for p in passes:
            log.info("unread pass in lane %s (%.1f s, %d frames with motion, %s)", p.lane or "-",
                     p.last_ts - p.first_ts, p.frames, p.direction)
            out.append(self.events.unread(p))
        return out

    def _plate_events(self, track: TrackResult) -> list[Event]:
        check = published_check(self.formats, track.text, track.best.read, track.right_band, track.dashes)
        low = not check.valid or track.confidence < self._cfg.tracking.low_confidence
        if track.frames < 2 and low:
            # One doubtful read in one frame is mostly a badge, a sign or a half-seen plate; a real
            # vehicle is seen again, or read confidently (a parked car caught by the periodic scan).
            self._stats.plates_discarded += 1
            self._track_ended(track, published=False)
            return []
        if self.recent.seen_recently(check.text, time.time()):
            self._stats.plates_repeated += 1
            self._track_ended(track, published=True)
            return []
        self._track_ended(track, published=True)
        ctx = track.context if isinstance(track.context, _ReadContext) else None
        fw, fh = (ctx.frame_w, ctx.frame_h) if ctx is not None else self._frame_size
        event = self.events.plate(track, check, self.formats.country_of(check, track.right_band, track.dashes),
                                  self.lanes.of_box(track.best.read.box, fw, fh),
                                  None if ctx is None else ctx.image)
        self._stats.plates_published += 1
        log.debug("plate %s (confidence %.2f, %s, %d reads, %s)", check.text, track.confidence,
                 check.country or "no format fits", track.frames, track.direction)
        match = self.hotlists.match(check.text)
        if match is None:
            return [event]
        self._stats.hotlist_alerts += 1
        log.debug("hotlist: %s matches list %s (%s)", check.text, match.list_id, match.kind)
        return [event, self.events.alert(event, match)]

    def _track_ended(self, track: TrackResult, published: bool) -> None:
        if self.unread is not None:
            self.unread.track_ended(track.track_id, published)

    def close(self) -> None:
        self.recent.close()
