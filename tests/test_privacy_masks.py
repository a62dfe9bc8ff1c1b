# SPDX-License-Identifier: Apache-2.0
"""Privacy masks (issue 15.5): the masked areas are black in recorded footage, event clips and context
images before anything reaches disk, and plates inside them are not read."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from conftest import Broker, Collector, wait_until

from edge_agent.agent import Agent
from edge_agent.commands.hotlist import Hotlists
from edge_agent.config import Config
from edge_agent.core.types import PipelineStats
from edge_agent.pipeline.alpr.reader import DEFAULT_DETECTOR, DEFAULT_OCR
from edge_agent.pipeline.alpr.types import PlateRead
from edge_agent.pipeline.context_image import vehicle_region
from edge_agent.pipeline.frame_pipeline import FramePipeline
from edge_agent.pipeline.privacy_mask import PrivacyMask
from edge_agent.sources.base import Frame, FrameSource
from edge_agent.sources.demo import _background
from edge_agent.sources.plate_render import PLATE_H, PLATE_W, render_plate

needs_models = pytest.mark.skipif(not (DEFAULT_DETECTOR.exists() and DEFAULT_OCR.exists()),
                                  reason="plate models not shipped in edge_agent/models")

W, H = 1280, 720
LEFT_40 = [(0.0, 0.0), (0.4, 0.0), (0.4, 1.0), (0.0, 1.0)]  # a private garden: x <= 511 at 1280 px
MASK_X = round(0.4 * (W - 1))
INSIDE, OUTSIDE = "AB123CD", "EF456GH"


def _scene() -> np.ndarray:
    """The demo street with two plates: one inside the left 40 % of the frame, one outside it, close
    enough to the mask that its context image takes in part of the masked area."""
    img = _background(W, H)
    pw, ph = 170, round(170 * PLATE_H / PLATE_W)
    for text, x in ((INSIDE, 150), (OUTSIDE, 640)):
        img[420 : 420 + ph, x : x + pw] = cv2.resize(render_plate(text), (pw, ph), interpolation=cv2.INTER_AREA)
    return img


# -- the mask itself ---------------------------------------------------------------------------------


def test_mask_blacks_out_in_place_with_one_bitmap_per_frame_size(monkeypatch: pytest.MonkeyPatch) -> None:
    mask = PrivacyMask([LEFT_40, [(0.6, 0.1), (0.9, 0.1), (0.75, 0.5)]])
    builds: list[tuple[int, int, int]] = []
    real_build = mask._build

    def counting(h: int, w: int, channels: int) -> Any:
        builds.append((h, w, channels))
        return real_build(h, w, channels)

    monkeypatch.setattr(mask, "_build", counting)
    for i in range(20):
        image = np.full((H, W, 3), 200, np.uint8)
        lores = np.full((120, 214), 200, np.uint8)
        frame = Frame(i, 0.0, 0.0, image, lores)
        assert mask.apply(frame) is frame and frame.image is image, "masked in place: no copy of the frame"
        assert frame.lores is lores
    assert image[:, : MASK_X + 1].max() == 0 and image[:, MASK_X + 2 :].min() in (0, 200)
    assert image[:, MASK_X + 2 : 700].min() == 200, "nothing outside the masks is touched"
    assert image[round(0.3 * (H - 1)), round(0.75 * (W - 1))].max() == 0, "the triangle is black"
    assert lores[:, :80].max() == 0 and lores[:, 90:120].min() == 200, "the motion stream is masked too"
    assert sorted(builds) == [(120, 214, 1), (H, W, 3)], "one bitmap per frame size and kind, not per frame"
    mask.apply(Frame(99, 0.0, 0.0, np.full((480, 640, 3), 200, np.uint8)))
    assert len(builds) == 3
    assert mask.covers(100, 100, W, H) and not mask.covers(700, 100, W, H)


def test_read_only_frame_is_masked_in_a_single_private_copy() -> None:
    lent = np.full((H, W, 3), 200, np.uint8)
    lent.flags.writeable = False  # a source lending its capture buffer
    frame = PrivacyMask([LEFT_40]).apply(Frame(1, 0.0, 0.0, lent))
    assert frame.image is not lent and frame.image[:, :MASK_X].max() == 0
    assert lent.min() == 200


def test_no_masks_costs_nothing() -> None:
    image = np.full((H, W, 3), 200, np.uint8)
    frame = Frame(1, 0.0, 0.0, image)
    mask = PrivacyMask([])
    assert not mask and mask.apply(frame) is frame and image.min() == 200


class _Reads:
    """A reader that 'reads' two fixed plates, wherever the pixels are (as a detector half-seeing one might)."""

    min_confidence = 0.0  # the pipeline sets it to alpr.min_confidence

    @property
    def model_versions(self) -> dict[str, str]:
        return {"fake": "1"}

    def read(self, image_bgr: Any, regions: Any = ()) -> list[PlateRead]:
        return [PlateRead(INSIDE, (150, 420, 170, 36), 0.9, (0.95,) * 7),
                PlateRead(OUTSIDE, (640, 420, 170, 36), 0.9, (0.95,) * 7)]


def test_plate_centred_in_a_mask_is_not_read(tmp_path: Path) -> None:
    cfg = Config.model_validate({"data_dir": str(tmp_path), "motion": {"enabled": False},
                                 "privacy": {"masks": [LEFT_40]}, "tracking": {"max_delay_s": 60}})
    pipe = FramePipeline(cfg, _Reads(), PipelineStats(), Hotlists(tmp_path / "h.json", True))
    image = np.full((H, W, 3), 90, np.uint8)
    for i in range(5):
        pipe.process(Frame(i, 1_700_000_000 + i / 10, 100 + i / 10, image))
    texts = [e.payload["text"] for e in pipe.flush() if e.type == "plate"]
    pipe.close()
    assert texts == [OUTSIDE]


# -- recorded footage, event clips, context images, published plates ---------------------------------


class _StillScene(FrameSource):
    """A camera looking at a still street: a fresh buffer per frame, as a real capture delivers."""

    name = "still"

    def __init__(self, image: np.ndarray, fps: float) -> None:
        self._image, self._period, self._n = image, 1.0 / fps, 0
        self._next = 0.0

    def open(self) -> None:
        self._next = time.monotonic()

    def read(self) -> Frame:
        self._next += self._period
        time.sleep(max(0.0, self._next - time.monotonic()))
        self._n += 1
        return Frame(self._n, time.time(), time.monotonic(), self._image.copy())

    def close(self) -> None:
        pass


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as inp:
        return [f.to_ndarray(format="bgr24") for f in inp.decode(video=0)]


def _assert_masked(image: np.ndarray, what: str) -> None:
    # H.264 and JPEG smear a few pixels across the edge: judge the area a little inside it.
    inside = image[:, : MASK_X - 8]
    outside = image[:, MASK_X + 8 :]
    assert float(inside.mean()) < 8, f"{what}: masked area not black (mean {inside.mean():.1f})"
    assert float(outside.mean()) > 40, f"{what}: the rest of the frame should be there (mean {outside.mean():.1f})"


@needs_models
def test_masked_area_is_black_on_disk_and_its_plate_is_never_read(tmp_path: Path, broker: Broker,
                                                                   collector: Collector) -> None:
    cfg = Config.model_validate({
        "node_id": "pole-test", "data_dir": str(tmp_path / "data"),
        "camera": {"source": "demo", "fps": 10},
        "motion": {"enabled": False},  # every frame goes to the reader: nothing but the mask keeps a plate unread
        "tracking": {"max_delay_s": 1.0},
        "events": {"motion_events": False},
        "mqtt": {"port": broker.port, "reconnect_min_s": 1, "reconnect_max_s": 1},
        "recorder": {"enabled": True, "segment_s": 2, "event_clips": True, "event_pre_roll_s": 0.5,
                     "event_post_roll_s": 0.0},
        "privacy": {"masks": [LEFT_40]},
    })
    agent = Agent(cfg, source=_StillScene(_scene(), fps=10))
    agent.start()
    try:
        wait_until(lambda: bool(collector.on("/events/plate")), 60, "a plate event")
        clips = tmp_path / "data" / "footage" / "event-clips"
        wait_until(lambda: any(clips.glob("*.mp4")), 30, "the event clip around it")
        time.sleep(1.0)  # a few more reads of both plates
    finally:
        agent.stop()

    plates = [m.json() for m in collector.on("/events/plate")]
    texts = [p["text"] for p in plates]
    assert OUTSIDE in texts, texts
    assert all(INSIDE[:4] not in (t or "") and INSIDE[-4:] not in (t or "") for t in texts), texts
    assert agent.stats.plates_read > 0

    segments = sorted(p for p in (tmp_path / "data" / "footage").glob("*/*.mp4"))
    assert segments, "no footage recorded"
    frames = _frames(segments[0])
    assert len(frames) >= 10
    for image in (frames[0], frames[len(frames) // 2], frames[-1]):
        _assert_masked(image, f"segment {segments[0].name}")
    clip_frames = _frames(next(clips.glob("*.mp4")))
    assert clip_frames
    _assert_masked(clip_frames[-1], "event clip")

    # The context image of the outside plate reaches into the masked area, which must be black there too.
    event = next(p for p in plates if p["text"] == OUTSIDE)
    jpeg = base64.b64decode(event["context_jpeg"])
    assert len(jpeg) <= cfg.events.context_max_kb * 1024
    ctx = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert ctx is not None
    region = vehicle_region(tuple(event["box"]), W, H)  # type: ignore[arg-type]
    assert region is not None and region[0] < MASK_X - 40, "the test wants a context that overlaps the mask"
    scale = ctx.shape[1] / region[2]
    edge = round((MASK_X - region[0]) * scale)
    assert float(ctx[:, : edge - 6].mean()) < 8, "context image: masked area not black"
    assert float(ctx[:, edge + 6 :].mean()) > 40
