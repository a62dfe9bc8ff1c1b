"""Cheap motion detection on a small greyscale frame: the gate in front of the plate reader.

Blur, difference against a running average, threshold, contours; areas covered by
the configured mask polygons are ignored. Everything that depends only on the
frame size (working size, mask image, kernel) is computed once, and again only
when the size changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.config import MotionConfig
from edge_agent.sources.base import Frame

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class MotionResult:
    active: bool
    boxes: tuple[Box, ...]  # (x, y, w, h) in full-frame pixels
    area: float  # moving share of the (unmasked) frame, 0..1


class MotionDetector:
    def __init__(self, cfg: MotionConfig, frame_w: int, frame_h: int) -> None:
        self._cfg = cfg
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._size_warned = False
        self._configure(frame_w, frame_h)

    def _configure(self, frame_w: int, frame_h: int) -> None:
        cfg = self._cfg
        self.frame_size = (frame_w, frame_h)
        self._sh = cfg.height
        # Even width, like picamera2's lores stream, so its Y plane is used without a resize.
        self._sw = max(8, round(frame_w * cfg.height / frame_h) // 2 * 2)
        self._sx = frame_w / self._sw
        self._sy = frame_h / self._sh
        self._min_px = cfg.min_area * self._sw * self._sh
        self._avg: np.ndarray | None = None
        self._small = np.empty((self._sh, self._sw, 3), np.uint8)
        self._grey = np.empty((self._sh, self._sw), np.uint8)
        self._keep: np.ndarray | None = None
        if cfg.masks:
            keep = np.full((self._sh, self._sw), 255, np.uint8)
            for poly in cfg.masks:
                pts = np.array([[x * (self._sw - 1), y * (self._sh - 1)] for x, y in poly], np.int32)
                cv2.fillPoly(keep, [pts], 0)
            self._keep = keep

    def _resized(self, frame_w: int, frame_h: int) -> None:
        if not self._size_warned:
            self._size_warned = True
            log.warning("motion: frame size changed from %dx%d to %dx%d; each change counts as motion and "
                        "restarts the background (a camera should deliver one size; photos of mixed sizes "
                        "are read as they are)", *self.frame_size, frame_w, frame_h)
        self._configure(frame_w, frame_h)

    @property
    def size(self) -> tuple[int, int]:
        return self._sw, self._sh

    def _to_grey(self, frame: Frame) -> np.ndarray:
        lores = frame.lores
        if lores is not None and lores.ndim == 2:
            if lores.shape == (self._sh, self._sw):
                return lores
            return cv2.resize(lores, (self._sw, self._sh), dst=self._grey, interpolation=cv2.INTER_LINEAR)
        # Resize first: the colour conversion then touches ~1% of the pixels.
        cv2.resize(frame.image, (self._sw, self._sh), dst=self._small, interpolation=cv2.INTER_LINEAR)
        return cv2.cvtColor(self._small, cv2.COLOR_BGR2GRAY, dst=self._grey)

    def reset(self) -> None:
        """Forgets the background, e.g. after the camera reconnected with a different view."""
        self._avg = None

    def detect(self, frame: Frame) -> MotionResult:
        h, w = frame.image.shape[:2]
        resized = (w, h) != self.frame_size
        if resized:
            self._resized(w, h)
        grey = self._to_grey(frame)
        k = self._cfg.blur
        blurred = cv2.GaussianBlur(grey, (k, k), 0) if k > 1 else grey
        if self._avg is None:
            self._avg = blurred.astype(np.float32)
            # A new size is a new view (the next photo of a folder, a camera back in another mode):
            # all of it is new, so the reader must look at it. The very first frame only starts the
            # background: the periodic scan reads it.
            return MotionResult(True, ((0, 0, w, h),), 1.0) if resized else MotionResult(False, (), 0.0)
        diff = cv2.absdiff(blurred, cv2.convertScaleAbs(self._avg))
        cv2.accumulateWeighted(blurred, self._avg, self._cfg.alpha)
        _, th = cv2.threshold(diff, self._cfg.threshold, 255, cv2.THRESH_BINARY)
        if self._keep is not None:
            cv2.bitwise_and(th, self._keep, dst=th)
        th = cv2.dilate(th, self._kernel, iterations=2)
        contours, _ = cv2.findContours(th, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes: list[Box] = []
        moving = 0.0
        for c in contours:
            a = cv2.contourArea(c)
            if a < self._min_px:
                continue
            moving += a
            x, y, w, h = cv2.boundingRect(c)
            boxes.append((int(x * self._sx), int(y * self._sy), int(w * self._sx), int(h * self._sy)))
        return MotionResult(bool(boxes), tuple(boxes), moving / (self._sw * self._sh))
