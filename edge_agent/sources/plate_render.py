"""Renders Italian-format licence plates for the synthetic demo scene.

The demo needs plates that a person and our OCR can read without any asset
files, so the plate is drawn with OpenCV's built-in Hershey font.
"""

from __future__ import annotations

import random
import string

import cv2
import numpy as np

PLATE_W = 520
PLATE_H = 110
_BAND_W = 44
_EU_BLUE = (153, 51, 0)  # BGR
_LETTERS = "".join(c for c in string.ascii_uppercase if c not in "IOQU")


def random_italian_plate(rng: random.Random) -> str:
    """An Italian-format plate text: two letters, three digits, two letters (AB123CD)."""
    return (
        "".join(rng.choice(_LETTERS) for _ in range(2))
        + "".join(rng.choice(string.digits) for _ in range(3))
        + "".join(rng.choice(_LETTERS) for _ in range(2))
    )


def render_plate(text: str) -> np.ndarray:
    """A frontal BGR plate image, PLATE_W x PLATE_H, with EU band and text."""
    img = np.full((PLATE_H, PLATE_W, 3), 245, np.uint8)
    cv2.rectangle(img, (0, 0), (PLATE_W - 1, PLATE_H - 1), (20, 20, 20), 3)
    for x0 in (0, PLATE_W - _BAND_W):
        cv2.rectangle(img, (x0 + 2, 2), (x0 + _BAND_W - 2, PLATE_H - 3), _EU_BLUE, -1)
    cv2.putText(img, "I", (13, PLATE_H - 18), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.circle(img, (_BAND_W // 2, 30), 12, (0, 204, 255), 2, cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_DUPLEX
    scale, thick = 2.6, 6
    (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
    avail = PLATE_W - 2 * _BAND_W - 16
    if tw > avail:
        scale *= avail / tw
        (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
    x = (PLATE_W - tw) // 2
    y = (PLATE_H + th) // 2
    cv2.putText(img, text, (x, y), font, scale, (15, 15, 15), thick, cv2.LINE_AA)
    return img
