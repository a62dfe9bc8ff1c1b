# SPDX-License-Identifier: Apache-2.0
"""The tracker never joins reads whose texts disagree more than one plate's noisy reads do: different
plates back to back at one place are one event each, noisy reads of one plate stay one track."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.commands.hotlist import Hotlists
from edge_agent.config import Config
from edge_agent.core.types import Event, PipelineStats
from edge_agent.pipeline.alpr.reader import DEFAULT_DETECTOR, DEFAULT_OCR
from edge_agent.pipeline.alpr.types import PlateRead
from edge_agent.pipeline.frame_pipeline import FramePipeline
from edge_agent.pipeline.tracking import PlateTracker, TrackResult, confident_distance, same_plate
from edge_agent.sources.base import SourceEnded
from edge_agent.sources.demo import _background
from edge_agent.sources.folder import FolderSource
from edge_agent.sources.plate_render import PLATE_H, PLATE_W, random_italian_plate, render_plate


def _read(text: str, x: int = 500, y: int = 400, conf: float = 0.9,
          chars: tuple[float, ...] | None = None) -> PlateRead:
    return PlateRead(text, (x, y, 150, 32), conf, chars if chars is not None else (0.97,) * len(text))


def _drive(frames: list[list[PlateRead]], fps: float, max_gap_s: float = 1.5) -> list[list[TrackResult]]:
    """What each update returns, frame by frame, then 5 s of empty frames."""
    tracker = PlateTracker(max_gap_s, max_delay_s=30.0)
    out: list[list[TrackResult]] = []
    for n, reads in enumerate(frames + [[] for _ in range(int(5 * fps))]):
        out.append(tracker.update(reads, 1_700_000_000 + n / fps, n / fps))
    return out


def _results(frames: list[list[PlateRead]], fps: float) -> list[TrackResult]:
    return [r for step in _drive(frames, fps) for r in step]


def _slideshow(texts: list[str], per_plate: int) -> list[list[PlateRead]]:
    # Photos of different cars at one place: the plate sits a few pixels apart in each.
    return [[_read(t, x=500 + 7 * (i % 3), y=400 - 5 * (i % 2))] for i, t in enumerate(texts) for _ in range(per_plate)]


# AB123CD and AB128CF: one series, two characters apart, read well (2 plain edits would merge them).
SHOW = ["BB751BH", "LM633BD", "AB123CD", "AB128CF", "XY987ZW", "DE450GH"]


@pytest.mark.parametrize("per_plate", [1, 3])
def test_different_plates_back_to_back_at_one_place_at_2_fps(per_plate: int) -> None:
    results = _results(_slideshow(SHOW, per_plate), fps=2.0)
    assert [r.text for r in results] == SHOW, "one track per plate, none made up"
    assert [r.frames for r in results] == [per_plate] * len(SHOW)


def test_slideshow_at_10_fps_does_not_make_up_a_plate() -> None:
    # The report: BB751BH then LM633BD, 10 reads each, became one track "BM751BH" of 20 reads.
    results = _results(_slideshow(["BB751BH", "LM633BD"], 10), fps=10.0)
    assert [(r.text, r.frames) for r in results] == [("BB751BH", 10), ("LM633BD", 10)]


def test_a_plate_is_closed_as_soon_as_another_takes_its_place() -> None:
    steps = _drive(_slideshow(["BB751BH", "LM633BD"], 3), fps=2.0)
    # Frame 3 brings LM633BD where BB751BH was: BB751BH is out at once, not max_gap_s later.
    assert [r.text for r in steps[3]] == ["BB751BH"]
    assert not any(steps[:3]) and not any(steps[4:6])


def test_a_look_alike_after_another_plate_does_not_join_the_first() -> None:
    # Plates of one series, two characters apart, with another car between them.
    texts = ["AB906CJ", "AB875CE", "AB026CJ"]
    assert [r.text for r in _results(_slideshow(texts, 1), fps=2.0)] == texts


def test_plate_and_badge_in_one_frame_do_not_close_each_other() -> None:
    frames = [[_read("AB123CD", x=300 + 40 * i), _read("CITROEN", x=310 + 40 * i, y=340, conf=0.95)]
              for i in range(8)]
    results = sorted(_results(frames, fps=10.0), key=lambda r: r.text)
    assert [(r.text, r.frames) for r in results] == [("AB123CD", 8), ("CITROEN", 8)]


def test_a_plate_missed_in_one_frame_keeps_its_track_beside_another() -> None:
    # Two cars side by side, plates 1.3 plate widths apart; in frame 4 only the second plate is read.
    frames = [[_read("AB123CD", x=300 + 10 * i), _read("XY987ZW", x=500 + 10 * i)] for i in range(9)]
    frames[4] = frames[4][1:]
    results = sorted(_results(frames, fps=10.0), key=lambda r: r.text)
    assert [(r.text, r.frames) for r in results] == [("AB123CD", 8), ("XY987ZW", 9)]


def test_noisy_reads_of_one_plate_stay_one_track() -> None:
    sure = (0.99,) * 7
    reads = [
        _read("W141SR", chars=(0.9,) * 6),  # entering the view: cut short
        _read("EW1414SR", chars=(0.99, 0.99, 0.99, 0.99, 0.55, 0.64, 0.99, 0.99)),  # a doubtful extra character
        _read("EW141SR", chars=sure),
        _read("EW141S8", chars=(*sure[:6], 0.6)),  # a confusable slip, unsure
        _read("FW141SK", chars=(0.5, *sure[:5], 0.55)),  # two slips, both unsure
        _read("EW141SR", chars=sure),
        _read("EWI41SR", chars=(0.99, 0.99, 0.45, 0.99, 0.99, 0.99, 0.99)),
        _read("EW141SR", chars=sure),
        _read("EW144", chars=(1.0, 1.0, 0.97, 1.0, 0.88)),  # leaving the view: cut, last character misread
    ]
    frames = [[PlateRead(r.text, (100 + 60 * i, 400, 150, 32), 0.9, r.char_confidences)] for i, r in enumerate(reads)]
    results = _results(frames, fps=10.0)
    assert [(r.text, r.frames) for r in results] == [("EW141SR", len(reads))]


def test_confident_distance() -> None:
    sure = (1.0,) * 7
    assert confident_distance(_read("AB123CD", chars=sure), _read("AB123CD", chars=sure)) == 0
    unsure_slip = _read("AB128CD", chars=(1.0, 1.0, 1.0, 1.0, 0.4, 1.0, 1.0))
    assert confident_distance(unsure_slip, _read("AB123CD", chars=sure)) == pytest.approx(0.4)
    assert confident_distance(_read("AB123CD", chars=sure), _read("AB128CF", chars=sure)) == pytest.approx(2.0)
    assert confident_distance(_read("B123C", chars=sure[:5]), _read("AB123CD", chars=sure)) == 0, "cut short"
    assert confident_distance(_read("AB123CD", chars=sure), _read("XY987ZW", chars=sure)) == pytest.approx(7.0)
    assert same_plate(unsure_slip, _read("AB123CD", chars=sure))
    assert not same_plate(_read("AB123CD", chars=sure), _read("AB128CF", chars=sure))
    # Reads without per-character confidences count each character at the read's confidence.
    assert confident_distance(PlateRead("AB123CD", (0, 0, 1, 1), 0.5), PlateRead("AB128CD", (0, 0, 1, 1), 0.9)) == 0.5


# -- through the daemon's frame pipeline --------------------------------------------------------------

needs_models = pytest.mark.skipif(not (DEFAULT_DETECTOR.exists() and DEFAULT_OCR.exists()),
                                  reason="plate models not shipped in edge_agent/models")


def plate_photo(text: str, size: tuple[int, int], rng: random.Random) -> np.ndarray:
    """A rendered Italian plate on a car-coloured patch of street, near the middle of the picture."""
    w, h = size
    img = cv2.resize(_background(1280, 720), (w, h), interpolation=cv2.INTER_AREA)
    pw = max(140, w // 6)
    ph = pw * PLATE_H // PLATE_W
    x, y = w // 2 - pw // 2 + rng.randint(-8, 8), h * 3 // 5 + rng.randint(-8, 8)
    cv2.rectangle(img, (x - pw, y - ph * 3), (x + 2 * pw, y + 2 * ph), rng.choice([(40, 40, 160), (200, 200, 200)]), -1)
    img[y : y + ph, x : x + pw] = cv2.resize(render_plate(text), (pw, ph), interpolation=cv2.INTER_AREA)
    return img


def replay(folder: Path, data_dir: Path, fps: float, **cfg: object) -> tuple[list[Event], PipelineStats]:
    """A folder replayed through FramePipeline at `fps` of scene time, however fast this machine is."""
    from edge_agent.pipeline.alpr import PlateReader

    stats = PipelineStats()
    pipe = FramePipeline(Config.model_validate({"data_dir": str(data_dir), **cfg}), PlateReader(threads=1), stats,
                         Hotlists(data_dir / "hotlists.json", True))
    src = FolderSource(folder, fps=1000, loop=False)
    src.open()
    events: list[Event] = []
    mono = 0.0
    while True:
        try:
            frame = src.read()
        except SourceEnded:
            break
        mono = frame.index / fps
        frame.mono, frame.ts = mono, 1_700_000_000 + mono
        events += pipe.process(frame)
    events += pipe.tick(mono + 10, 1_700_000_000 + mono + 10)
    assert pipe.flush() == [], "the clock ended every track"
    pipe.close()
    return [e for e in events if e.type == "plate"], stats


@needs_models
def test_folder_replay_of_different_plates_at_one_place(tmp_path: Path) -> None:
    rng = random.Random(4)
    plates = [random_italian_plate(rng) for _ in range(6)]
    base = plates[2]  # and a plate of its series, two characters apart, right after it
    plates.insert(3, base[:3] + ("1" if base[3] != "1" else "2") + base[4:6] + ("Z" if base[6] != "Z" else "Y"))
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, text in enumerate(plates):
        img = plate_photo(text, (1280, 720), rng)
        for k in range(3):  # each car stands 1.5 s at 2 fps
            cv2.imwrite(str(folder / f"p{i:02d}_{k}.png"), img)
    # Motion off, as in the report (54 plates gave 37 events): every frame is read.
    events, stats = replay(folder, tmp_path / "data", 2.0, motion={"enabled": False})
    assert stats.plates_read >= 3 * len(plates) - 2
    assert [e.payload["text"] for e in events] == plates
    assert all(e.payload["frames"] >= 2 for e in events)
