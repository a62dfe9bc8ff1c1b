# SPDX-License-Identifier: Apache-2.0
"""Privacy masks: areas the pole has no business seeing (private gardens, windows) blacked out of every
frame before anything looks at it or stores it.

The agent applies the mask once per frame, in place, in the capture thread, before the frame is handed
to both the plate reader and the recorder: they share that one masked image, so footage, event clips,
clip requests and context images never contain the masked pixels and no unmasked copy is left behind.
Everything that depends only on the frame size (the polygons in pixels, the bitmap, the rectangles it
touches) is built once per size; per frame only the rectangles around the masked areas are touched.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.config import Point
from edge_agent.sources.base import Frame

log = logging.getLogger(__name__)

_MAX_SIZES = 8  # a folder replay of photos of mixed sizes must not grow the cache without bound


@dataclass(frozen=True, slots=True)
class _Patch:
    """One rectangle around a connected masked area: ``keep`` is 255 where the image stays, 0 where it
    goes black (None: the whole rectangle goes)."""

    y0: int
    y1: int
    x0: int
    x1: int
    keep: np.ndarray | None


class PrivacyMask:
    def __init__(self, polygons: Sequence[Sequence[Point]]) -> None:
        self._polygons = [list(p) for p in polygons]
        self._plans: OrderedDict[tuple[int, int, int], tuple[_Patch, ...]] = OrderedDict()
        # The capture thread masks, the processing thread asks covers(): both may add a size.
        self._lock = threading.Lock()
        self.copies = 0  # frames a source handed over read-only, copied once to be masked

    def __bool__(self) -> bool:
        return bool(self._polygons)

    def _plan(self, h: int, w: int, channels: int) -> tuple[_Patch, ...]:
        key = (h, w, channels)
        with self._lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
                return plan
            plan = self._build(h, w, channels)
            self._plans[key] = plan
            if len(self._plans) > _MAX_SIZES:
                self._plans.popitem(last=False)
            return plan

    def _build(self, h: int, w: int, channels: int) -> tuple[_Patch, ...]:
        masked = np.zeros((h, w), np.uint8)
        # Same convention as motion masks: a point at 1.0 is the last pixel column or row.
        pts = [np.round(np.array(poly, np.float64) * (w - 1, h - 1)).astype(np.int32) for poly in self._polygons]
        cv2.fillPoly(masked, pts, 255)
        n, _labels, stats, _ = cv2.connectedComponentsWithStats(masked, connectivity=8)
        patches: list[_Patch] = []
        for i in range(1, n):
            x0, y0, bw, bh = (int(v) for v in stats[i, :4])
            region = masked[y0 : y0 + bh, x0 : x0 + bw]
            if bool(region.all()):
                patches.append(_Patch(y0, y0 + bh, x0, x0 + bw, None))  # a plain fill: no bitmap to read
                continue
            keep = cv2.bitwise_not(region)
            if channels > 1:
                keep = np.ascontiguousarray(np.repeat(keep[:, :, None], channels, axis=2))
            patches.append(_Patch(y0, y0 + bh, x0, x0 + bw, keep))
        log.debug("privacy: %d masked area(s) for %dx%d frames", len(patches), w, h)
        return tuple(patches)

    def _black_out(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        for p in self._plan(h, w, 1 if image.ndim == 2 else image.shape[2]):
            roi = image[p.y0 : p.y1, p.x0 : p.x1]
            if p.keep is None:
                roi.fill(0)
            else:
                cv2.bitwise_and(roi, p.keep, dst=roi)  # in place: roi is a view into the frame

    def apply(self, frame: Frame) -> Frame:
        """Blacks out the masked areas of the frame's image (and of its lores stream) in place."""
        if not self._polygons:
            return frame
        if not frame.image.flags.writeable:
            # A source that lends its own buffer: mask a private copy, the only one anything downstream sees.
            frame.image = frame.image.copy()
            self.copies += 1
        self._black_out(frame.image)
        if frame.lores is not None:
            if not frame.lores.flags.writeable:
                frame.lores = frame.lores.copy()
            self._black_out(frame.lores)
        return frame

    def covers(self, x: float, y: float, frame_w: int, frame_h: int) -> bool:
        """Whether pixel (x, y) of a frame of this size lies in a masked area."""
        if not self._polygons:
            return False
        xi, yi = int(x), int(y)
        for p in self._plan(frame_h, frame_w, 1):
            if p.y0 <= yi < p.y1 and p.x0 <= xi < p.x1:
                return p.keep is None or p.keep[yi - p.y0, xi - p.x0] == 0
        return False
