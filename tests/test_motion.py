"""Motion gate: still scenes are quiet, moving objects are found where they are, masks hide areas."""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np
import pytest

from edge_agent.config import MotionConfig
from edge_agent.pipeline.motion import MotionDetector
from edge_agent.sources.base import Frame


def _frame(i: int, x: int | None, w: int = 1280, h: int = 720) -> Frame:
    img = np.full((h, w, 3), 80, np.uint8)
    cv2.putText(img, "static text", (100, 100), cv2.FONT_HERSHEY_SIMPLEX, 2, (200, 200, 200), 3)
    if x is not None:
        cv2.rectangle(img, (x, 400), (x + 200, 550), (240, 240, 240), -1)
    return Frame(i, time.time(), time.monotonic(), img)


def test_still_scene_has_no_motion() -> None:
    det = MotionDetector(MotionConfig(), 1280, 720)
    results = [det.detect(_frame(i, None)) for i in range(10)]
    assert not any(r.active for r in results)


def test_moving_object_is_found_at_its_place() -> None:
    det = MotionDetector(MotionConfig(), 1280, 720)
    for i in range(5):
        det.detect(_frame(i, None))
    r = det.detect(_frame(5, 600))
    assert r.active
    x, y, w, h = max(r.boxes, key=lambda b: b[2] * b[3])
    assert x < 620 and x + w > 780 and y < 420 and y + h > 530


def test_masked_area_is_ignored() -> None:
    cfg = MotionConfig(masks=[[(0.4, 0.5), (0.7, 0.5), (0.7, 0.85), (0.4, 0.85)]])
    det = MotionDetector(cfg, 1280, 720)
    for i in range(5):
        det.detect(_frame(i, None))
    assert not det.detect(_frame(5, 600)).active
    assert det.detect(_frame(6, 100)).active


def test_small_changes_below_min_area_are_ignored() -> None:
    det = MotionDetector(MotionConfig(min_area=0.05), 1280, 720)
    for i in range(5):
        det.detect(_frame(i, None))
    assert not det.detect(_frame(5, 600)).active  # 200x150 px is 3% of the frame


def test_lores_plane_is_used_as_is() -> None:
    cfg = MotionConfig()
    det = MotionDetector(cfg, 1280, 720)
    sw, sh = det.size
    for i in range(4):
        f = _frame(i, None)
        f.lores = np.full((sh, sw), 80, np.uint8)
        assert not det.detect(f).active
    f = _frame(5, None)
    lores = np.full((sh, sw), 80, np.uint8)
    lores[60:90, 100:140] = 250
    f.lores = lores
    r = det.detect(f)
    assert r.active
    x, _, _, _ = r.boxes[0]
    assert 100 * 1280 / sw - 40 < x < 100 * 1280 / sw + 20


def test_a_size_change_counts_as_motion_and_is_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    # A folder of photos of mixed sizes: each change is a new view the reader must see, not a restart.
    det = MotionDetector(MotionConfig(), 1280, 720)
    assert not det.detect(_frame(0, None)).active, "the first frame only starts the background"
    with caplog.at_level(logging.WARNING, logger="edge_agent.pipeline.motion"):
        changed = det.detect(_frame(1, None, 640, 480))
        assert changed.active and changed.boxes == ((0, 0, 640, 480),) and changed.area == 1.0
        assert not det.detect(_frame(2, None, 640, 480)).active, "the background restarted from the new view"
        assert det.detect(_frame(3, None, 1280, 720)).active
        moving = det.detect(_frame(4, 400, 1280, 720))
        assert moving.active and abs(moving.boxes[0][0] - 400) < 40, "then motion as usual"
    warnings = [r for r in caplog.records if "frame size changed" in r.getMessage()]
    assert len(warnings) == 1 and "1280x720 to 640x480" in warnings[0].getMessage()
