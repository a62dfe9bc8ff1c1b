"""The dashes country cue: French plates print AB-123-CD, Italian ones AB 123 CD."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.pipeline.alpr.detector import Detection
from edge_agent.pipeline.alpr.read_command import plate_record
from edge_agent.pipeline.alpr.reader import PlateReader
from edge_agent.pipeline.alpr.separators import french_dashes
from edge_agent.pipeline.alpr.types import PlateRead
from edge_agent.pipeline.tracking import Observation, band_vote


def _drawn(groups: tuple[int, ...], dash: bool) -> np.ndarray:
    """A plate-like crop: characters as dark bars in groups, with a short dash between the groups or a gap."""
    ink, paper = 20, 235
    crop = np.full((40, 200, 3), paper, np.uint8)
    x = 12
    for g, n in enumerate(groups):
        if g:
            if dash:
                cv2.rectangle(crop, (x + 2, 19), (x + 10, 22), (ink,) * 3, -1)
            x += 14
        for _ in range(n):
            cv2.rectangle(crop, (x, 8), (x + 13, 32), (ink,) * 3, -1)
            cv2.rectangle(crop, (x + 4, 13), (x + 9, 27), (paper,) * 3, -1)  # a counter: not a solid block
            x += 19
    return crop


def test_dashes_after_the_second_and_fifth_character_are_french() -> None:
    assert french_dashes(_drawn((2, 3, 2), dash=True)) is True
    assert french_dashes(_drawn((2, 3, 2), dash=False)) is False
    # Not seven characters, or a dash at one place only (a Slovak BA-123XY): no say.
    assert french_dashes(_drawn((2, 4), dash=True)) is None
    assert french_dashes(_drawn((2, 5), dash=True)) is None
    assert french_dashes(np.zeros((8, 30, 3), np.uint8)) is None, "too small to judge"


def test_the_tracks_dashes_are_the_reads_majority() -> None:
    def obs(d: bool | None) -> Observation:
        return Observation(PlateRead("AB123CD", (0, 0, 100, 22), 0.9, right_band=True, dashes=d), 0.0, 0.0)

    assert band_vote([obs(True), obs(None), obs(True), obs(False)], "dashes") is True
    assert band_vote([obs(False), obs(None)], "dashes") is False
    assert band_vote([obs(None)], "dashes") is None


def _datasets() -> Path:
    env = os.environ.get("EDGE_AGENT_DATASETS")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


# Real plates of eu-plate-crops (openalpr/train-detector, AGPL-3.0), judged by eye (scripts/itfr_crops.tsv).
_REAL = {"eu-1103.png": ("AE604JW", "FR"), "eu-306.png": ("AB344CA", "FR"), "eu-1071.png": ("EM429TY", "IT"),
         "eu-182.png": ("BC092ZF", "IT")}


@pytest.mark.skipif(not (_datasets() / "eu-plate-crops").is_dir(), reason="needs ../shared/datasets")
def test_real_french_and_italian_plates_are_published_with_their_country() -> None:
    reader = PlateReader()
    for name, (text, country) in _REAL.items():
        crop = cv2.imread(str(_datasets() / "eu-plate-crops" / name))
        assert crop is not None
        h, w = crop.shape[:2]
        frame = np.full((h + 40, w + 80, 3), 110, np.uint8)
        frame[20:20 + h, 40:40 + w] = crop
        read = reader.read_crop(frame, Detection((40.0, 20.0, float(w), float(h)), 1.0))
        assert read is not None and read.right_band is True, name
        record = plate_record(read, reader.formats, 0.5)
        assert (record["text"], record["country"], record["country_confidence"]) == (text, country, 1.0), name
