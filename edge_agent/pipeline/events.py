"""Turns motion results and plate reads into events: the messages the operations room receives.

The envelope (``event_id``, ``node_id``, ``seq``, ``ts``, ``type``) is completed by
the outbox, which assigns ``seq`` in the same transaction that stores the event.

A plate event is a transit record (docs/mqtt.md, ``events/plate``): the read, its country, lane,
clock state and context image; a vehicle pass with motion but no readable plate becomes one too,
with ``read_status: "unread"`` (:class:`UnreadPasses`).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edge_agent.config import EventsConfig, LaneConfig
from edge_agent.core.clock import CaptureClock
from edge_agent.core.formats import FormatCheck, PlateFormats
from edge_agent.core.types import PRIORITY_ALERT, PRIORITY_PLATE, Event, HotlistMatch, utc_iso
from edge_agent.pipeline import context_image
from edge_agent.pipeline.alpr.types import PlateRead
from edge_agent.pipeline.motion import MotionResult
from edge_agent.pipeline.tracking import TrackResult, box_direction


def published_check(formats: PlateFormats, text: str, best: PlateRead, right_band: bool | None,
                    dashes: bool | None = None) -> FormatCheck:
    """The format check of the text a pole publishes (a track's voted text; a photo's one read): which
    enabled format it fits, with the same right-band and dashes cues as the reader's, and when it is the reader's
    own text, the reader's correction of the model's read stays on record. No glyph is re-chosen here
    (``PlateFormats.fit``: only O and 0, one glyph on many plates, are read as the layout needs): every
    read was checked with the model's own second choices when it was read (``PlateReader``), and the vote
    is over those checked texts, character by character."""
    check = formats.fit(text, right_band=right_band, dashes=dashes)
    if check.corrected_from is None and best.text == check.text and best.corrected_from is not None:
        return FormatCheck(check.text, check.country, best.corrected_from)
    return check


def read_fields(check: FormatCheck, confidence: float, country: tuple[str | None, float | None],
                low_confidence: float) -> dict[str, Any]:
    """The read's part of a transit record: one home, so ``edge-agent read`` prints what a pole publishes."""
    low = not check.valid or confidence < low_confidence
    return {
        "read_status": "partial" if low else "read",
        "text": check.text,
        "confidence": round(float(confidence), 4),
        "low_confidence": low,
        "country": country[0],
        "country_confidence": None if country[1] is None else round(country[1], 3),
        "corrected_from": check.corrected_from,
    }


Box = tuple[int, int, int, int]


def _round_box(box: Box) -> list[int]:
    return [int(v) for v in box]


# -- lanes -------------------------------------------------------------------------------------------


class Lanes:
    """The configured lane polygons, in pixels once per frame size; the lane is the first one holding a point."""

    def __init__(self, lanes: Sequence[LaneConfig]) -> None:
        self._lanes = [(lane.name, list(lane.polygon)) for lane in lanes]
        self._size: tuple[int, int] = (0, 0)
        self._px: list[tuple[str, np.ndarray]] = []

    def __bool__(self) -> bool:
        return bool(self._lanes)

    def at(self, x: float, y: float, frame_w: int, frame_h: int) -> str | None:
        if not self._lanes:
            return None
        if (frame_w, frame_h) != self._size:
            # Same convention as masks: a point at 1.0 is the last pixel column or row.
            scale = np.array((frame_w - 1, frame_h - 1), np.float32)
            self._px = [(name, (np.array(poly, np.float32) * scale).reshape(-1, 1, 2)) for name, poly in self._lanes]
            self._size = (frame_w, frame_h)
        for name, poly in self._px:
            if cv2.pointPolygonTest(poly, (float(x), float(y)), False) >= 0:
                return name
        return None

    def of_box(self, box: Box, frame_w: int, frame_h: int) -> str | None:
        x, y, w, h = box
        return self.at(x + w / 2, y + h / 2, frame_w, frame_h)


# -- passes without a readable plate -----------------------------------------------------------------


@dataclass
class UnreadPass:
    """Motion in one lane (or anywhere, with no lanes) with no gap longer than ``tracking.max_gap_s``."""

    lane: str | None
    first_ts: float
    last_ts: float
    last_mono: float
    first_box: Box
    last_box: Box
    box: Box  # the largest moving box seen: the vehicle at its nearest or fullest in view
    box_ts: float
    peak_area: float  # that box's share of the frame
    frames: int = 1
    context: np.ndarray | None = None
    tracks: set[int] = field(default_factory=set)  # plate tracks read during the pass

    @property
    def direction(self) -> str:
        return box_direction(self.first_box, self.last_box) if self.frames > 1 else "unknown"


class UnreadPasses:
    """Vehicle passes that moved through a lane and gave no plate: a gate records those too.

    A pass is motion in a configured lane (the lane holding the moving box's centre; with no lanes, motion
    anywhere), ended once the lane has been still for ``gap_s``. It becomes an unread record when it lasted
    ``events.unread_min_s``, its largest moving box covered ``events.unread_min_area`` of the frame (a leaf,
    a bird, a pedestrian's arm are smaller), and no plate read during it belongs to a vehicle that was
    published or was a repeat of one published (de-duplication). A plate read in the lane, or inside one of
    the pass's moving boxes, joins its track to the pass; a track still open when the pass ends is a
    vehicle still being read, so the pass is not unread either. The context image is the area around the
    pass's largest moving box, cut when that box was seen.
    """

    def __init__(self, cfg: EventsConfig, lanes: Lanes, gap_s: float) -> None:
        self._min_s = cfg.unread_min_s
        self._min_area = cfg.unread_min_area
        self._context_px = cfg.context_max_px if cfg.context_max_kb > 0 else 0
        self._lanes = lanes
        self._gap = gap_s
        self._open: dict[str | None, UnreadPass] = {}
        self._outcomes: dict[int, bool] = {}  # track id -> whether it stands for a published vehicle

    def observe(self, result: MotionResult, image: np.ndarray, frame_ts: float, mono: float,
                reads: Iterable[tuple[PlateRead, int]]) -> None:
        h, w = image.shape[:2]
        frame_area = float(w * h)
        by_lane: dict[str | None, list[Box]] = {}
        for box in result.boxes:
            lane = self._lanes.of_box(box, w, h) if self._lanes else None
            if lane is not None or not self._lanes:
                by_lane.setdefault(lane, []).append(box)
        for lane, boxes in by_lane.items():
            big = max(boxes, key=lambda b: b[2] * b[3])
            area = big[2] * big[3] / frame_area
            p = self._open.get(lane)
            if p is None:
                p = self._open[lane] = UnreadPass(lane, frame_ts, frame_ts, mono, big, big, big, frame_ts, -1.0, 0)
            p.last_ts, p.last_mono, p.last_box = frame_ts, mono, big
            p.frames += 1
            if area > p.peak_area:
                p.box, p.box_ts, p.peak_area = big, frame_ts, area
                if self._context_px:
                    region = context_image.moving_region(big, w, h)
                    p.context = None if region is None else context_image.cut(image, region, self._context_px)
        for read, track_id in reads:
            lane = self._lanes.of_box(read.box, w, h) if self._lanes else None
            cx, cy = read.box[0] + read.box[2] / 2, read.box[1] + read.box[3] / 2
            for key, p in self._open.items():
                inside = any(bx <= cx <= bx + bw and by <= cy <= by + bh for bx, by, bw, bh in by_lane.get(key, ()))
                if key == lane or inside:
                    p.tracks.add(track_id)

    def track_ended(self, track_id: int, published: bool) -> None:
        """How a plate track ended: published (or a repeat of a vehicle published), or discarded."""
        self._outcomes[track_id] = published
        if len(self._outcomes) > 4096:  # track ids grow; a pass only asks about recent ones
            for old in sorted(self._outcomes)[:2048]:
                del self._outcomes[old]

    def due(self, mono: float) -> list[UnreadPass]:
        """Passes that ended by ``mono`` and had no readable plate."""
        ended = [k for k, p in self._open.items() if mono - p.last_mono > self._gap]
        return [p for p in (self._open.pop(k) for k in ended) if self._unread(p)]

    def flush(self) -> list[UnreadPass]:
        passes, self._open = list(self._open.values()), {}
        return [p for p in passes if self._unread(p)]

    def _unread(self, p: UnreadPass) -> bool:
        if p.last_ts - p.first_ts < self._min_s or p.peak_area < self._min_area:
            return False
        # A track with no outcome yet is still open: a vehicle still being read is not an unread one.
        return not any(self._outcomes.get(t, True) for t in p.tracks)


# -- events ------------------------------------------------------------------------------------------


class EventBuilder:
    """Builds event payloads; holds the little state motion start/end needs."""

    def __init__(self, cfg: EventsConfig, motion_end_after_s: float, low_confidence: float,
                 clock: CaptureClock | None = None) -> None:
        self._cfg = cfg
        self._end_after = motion_end_after_s
        self._low_confidence = low_confidence
        self._clock = clock or CaptureClock()
        self._context_bytes = int(cfg.context_max_kb * 1024)
        self._motion_since: float | None = None
        self._motion_last: float = 0.0
        self._motion_peak = 0.0

    def motion(self, result: MotionResult, frame_ts: float, mono: float) -> Event | None:
        if not self._cfg.motion_events:
            return None
        if result.active:
            self._motion_last = mono
            self._motion_peak = max(self._motion_peak, result.area)
            if self._motion_since is None:
                self._motion_since = mono
                return Event("motion", {"state": "start", "frame_ts": utc_iso(frame_ts),
                                        "boxes": [_round_box(b) for b in result.boxes],
                                        "area": round(result.area, 4)})
            return None
        return self.motion_quiet(frame_ts, mono)

    def motion_quiet(self, ts: float, mono: float) -> Event | None:
        """The motion ``end`` once nothing has moved for ``end_after_s``: after a still frame, or at
        ``ts``/``mono`` when no frame comes at all (the camera stalled, died or its file ended)."""
        if self._motion_since is None or mono - self._motion_last < self._end_after:
            return None
        duration = self._motion_last - self._motion_since
        peak = self._motion_peak
        self._motion_since, self._motion_peak = None, 0.0
        return Event("motion", {"state": "end", "frame_ts": utc_iso(ts),
                                "duration_s": round(duration, 2), "peak_area": round(peak, 4)})

    def plate(self, result: TrackResult, check: FormatCheck, country: tuple[str | None, float | None] = (None, None),
              lane: str | None = None, context: np.ndarray | None = None) -> Event:
        """One vehicle pass: the voted text, format-checked, with the best crop and the vehicle in its frame."""
        best = result.best
        payload: dict[str, Any] = {
            **read_fields(check, result.confidence, country, self._low_confidence),
            "box": _round_box(best.read.box),
            "frame_ts": utc_iso(best.frame_ts),
            "first_seen": utc_iso(result.first_ts),
            "last_seen": utc_iso(result.last_ts),
            "frames": result.frames,
            "direction": result.direction,
            "alternatives": [{"text": t, "score": sc} for t, sc in result.alternatives],
            "track_id": result.track_id,
            "lane": lane,
            "clock": self._clock.describe(),
            "crop_jpeg_b64": self._encode_crop(best.read),
            "context_jpeg": self._encode_context(context),
        }
        return Event("plate", payload, PRIORITY_PLATE)

    def unread(self, p: UnreadPass) -> Event:
        """A vehicle pass with motion and no readable plate: the same record, with no text."""
        payload: dict[str, Any] = {
            "read_status": "unread",
            "text": None,
            "confidence": None,
            "low_confidence": True,
            "country": None,
            "country_confidence": None,
            "corrected_from": None,
            "box": _round_box(p.box),
            "frame_ts": utc_iso(p.box_ts),
            "first_seen": utc_iso(p.first_ts),
            "last_seen": utc_iso(p.last_ts),
            "frames": p.frames,
            "direction": p.direction,
            "alternatives": [],
            "track_id": None,
            "lane": p.lane,
            "clock": self._clock.describe(),
            "crop_jpeg_b64": None,
            "context_jpeg": self._encode_context(p.context),
        }
        return Event("plate", payload, PRIORITY_PLATE)

    def _encode_context(self, image: np.ndarray | None) -> str | None:
        if image is None or self._context_bytes <= 0:
            return None
        jpeg = context_image.encode_capped(image, self._context_bytes)
        return None if jpeg is None else base64.b64encode(jpeg).decode("ascii")

    def alert(self, plate: Event, match: HotlistMatch) -> Event:
        """A hotlist hit: its own event type, published ahead of any backlog."""
        p = plate.payload
        payload: dict[str, Any] = {
            "text": p["text"],
            "list_id": match.list_id,
            "listed_text": match.listed_text,
            "match": match.kind,
            "reason": match.reason,
            "plate_event_id": plate.event_id,
            "confidence": p["confidence"],
            "frame_ts": p["frame_ts"],
            "box": p["box"],
            "crop_jpeg_b64": p["crop_jpeg_b64"],
        }
        return Event("alert", payload, PRIORITY_ALERT)

    def _encode_crop(self, read: PlateRead) -> str | None:
        crop = read.crop
        if crop is None or crop.size == 0:
            return None
        h = crop.shape[0]
        if h > self._cfg.crop_max_height:
            scale = self._cfg.crop_max_height / h
            crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), self._cfg.crop_max_height),
                              interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, self._cfg.crop_jpeg_quality])
        return base64.b64encode(buf.tobytes()).decode("ascii") if ok else None
