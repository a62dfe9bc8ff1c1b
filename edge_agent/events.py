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
from typing import Any

import cv2

from edge_agent.alpr.types import PlateRead
from edge_agent.config import EventsConfig
from edge_agent.motion import MotionResult

# Lower priorities are dropped first when the outbox is full (docs/mqtt.md, "Outbox").
PRIORITY_MOTION = 0
PRIORITY_PLATE = 1


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
    """Holds the little state events need: motion start/end and recently seen plates."""

    def __init__(self, cfg: EventsConfig, motion_end_after_s: float) -> None:
        self._cfg = cfg
        self._end_after = motion_end_after_s
        self._motion_since: float | None = None
        self._motion_last: float = 0.0
        self._motion_peak = 0.0
        self._recent: dict[str, float] = {}
        self.suppressed_repeats = 0

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
        if self._motion_since is not None and mono - self._motion_last >= self._end_after:
            duration = self._motion_last - self._motion_since
            peak = self._motion_peak
            self._motion_since, self._motion_peak = None, 0.0
            return Event("motion", {"state": "end", "frame_ts": utc_iso(frame_ts),
                                    "duration_s": round(duration, 2), "peak_area": round(peak, 4)})
        return None

    def plate(self, read: PlateRead, frame_ts: float, mono: float) -> Event | None:
        last = self._recent.get(read.text)
        self._recent[read.text] = mono
        if last is not None and mono - last < self._cfg.dedup_window_s:
            self.suppressed_repeats += 1
            return None
        if len(self._recent) > 1024:
            horizon = mono - self._cfg.dedup_window_s
            self._recent = {t: m for t, m in self._recent.items() if m >= horizon}
        payload: dict[str, Any] = {
            "text": read.text,
            "confidence": round(float(read.confidence), 4),
            "box": _round_box(read.box),
            "frame_ts": utc_iso(frame_ts),
            "crop_jpeg_b64": self._encode_crop(read),
        }
        return Event("plate", payload, PRIORITY_PLATE)

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
