"""Teacher labelling: the plate's blue end bands are painted over before the teacher reads.

The teacher read the EU band's country letters as characters (``EDW00001`` for a Polish
``DW 00001``); 39 of the first labels began with such a letter and taught the OCR to do the same.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np

from edge_agent.pipeline.alpr.band import band_sides
from edge_agent.sources.plate_render import render_plate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import label_crops


def _label_crops() -> ModuleType:
    return label_crops


def _crop(plate: np.ndarray) -> np.ndarray:
    pad = cv2.copyMakeBorder(plate, 10, 10, 14, 14, cv2.BORDER_CONSTANT, value=(60, 60, 60))
    return np.asarray(cv2.resize(pad, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))


def test_both_bands_of_an_italian_plate_are_painted_over_and_the_characters_kept() -> None:
    lc = _label_crops()
    crop = _crop(render_plate("AB123CD"))
    assert band_sides(crop) == (True, True)
    out = lc.blank_blue_ends(crop)
    assert out is not crop and crop.shape == out.shape
    hsv = cv2.cvtColor(out, cv2.COLOR_BGR2HSV)
    assert float(hsv[:, :, 1].mean()) < 40, "no band-blue left"
    w = crop.shape[1]
    middle = slice(int(w * 0.2), int(w * 0.8))
    assert np.array_equal(out[:, middle], crop[:, middle]), "the characters are untouched"


def test_plates_without_bands_blue_plates_and_grey_crops_are_left_alone() -> None:
    lc = _label_crops()
    plain = np.full((40, 180, 3), 235, np.uint8)
    cv2.putText(plain, "BA123XY", (8, 30), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (20, 20, 20), 2)
    assert lc.blank_blue_ends(plain) is plain
    blue = np.full((40, 180, 3), (160, 60, 0), np.uint8)
    assert lc.blank_blue_ends(blue) is blue
    grey = cv2.cvtColor(_crop(render_plate("AB123CD")), cv2.COLOR_BGR2GRAY)
    assert lc.blank_blue_ends(grey) is grey
