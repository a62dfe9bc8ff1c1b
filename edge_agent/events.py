"""Turns motion results and plate reads into events: the messages the operations room receives.

The envelope (``event_id``, ``node_id``, ``seq``, ``ts``, ``type``) is completed by
the outbox, which assigns ``seq`` in the same transaction that stores the event.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import cv2

from edge_agent.alpr.types import PlateRead
from edge_agent.config import EventsConfig
from edge_agent.formats import FormatCheck
from edge_agent.motion import MotionResult
from edge_agent.tracking import TrackResult

if TYPE_CHECKING:
    from edge_agent.hotlist import HotlistMatch

# Lower priorities are dropped first when the outbox is full (docs/mqtt.md, "Outbox").
PRIORITY_MOTION = 0
PRIORITY_PLATE = 1
PRIORITY_ALERT = 2  # published ahead of the backlog (Outbox.pending_urgent)
PRIORITY_AUDIT = 3  # ahead of the backlog too, and never dropped by the outbox's bounds: it is evidence


def utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    payload: dict[str, Any]
    priority: int = PRIORITY_MOTION
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    ts: str = field(default_factory=lambda: utc_iso(time.time()))

    def envelope(self, node_id: str, seq: int) -> dict[str, Any]:
        return {"event_id": self.event_id, "node_id": node_id, "seq": seq, "ts": self.ts, "type": self.type,
                **self.payload}


def _round_box(box: tuple[int, int, int, int]) -> list[int]:
    return [int(v) for v in box]


class EventBuilder:
    """Builds event payloads; holds the little state motion start/end needs."""

    def __init__(self, cfg: EventsConfig, motion_end_after_s: float, low_confidence: float) -> None:
        self._cfg = cfg
        self._end_after = motion_end_after_s
        self._low_confidence = low_confidence
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

    def plate(self, result: TrackResult, check: FormatCheck) -> Event:
        """One vehicle pass: the voted text, format-checked, with the best crop."""
        best = result.best
        payload: dict[str, Any] = {
            "text": check.text,
            "confidence": round(float(result.confidence), 4),
            "low_confidence": not check.valid or result.confidence < self._low_confidence,
            "country": check.country,
            "corrected_from": check.corrected_from,
            "box": _round_box(best.read.box),
            "frame_ts": utc_iso(best.frame_ts),
            "first_seen": utc_iso(result.first_ts),
            "last_seen": utc_iso(result.last_ts),
            "frames": result.frames,
            "direction": result.direction,
            "alternatives": [{"text": t, "score": sc} for t, sc in result.alternatives],
            "track_id": result.track_id,
            "crop_jpeg_b64": self._encode_crop(best.read),
        }
        return Event("plate", payload, PRIORITY_PLATE)

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
