# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""A visual country cue: does the plate have a blue band at its right end?

EU plates carry a blue band with the country letters at the left. Italian and French plates also
carry one at the right (year and province; department and region), most others do not. Text layouts
cannot tell ``AB123CD`` (IT, FR) from a Slovak ``BA123XY``; the right band can narrow it down.

Colour only: a grey or infrared frame gives no cue (None), nor does a crop too small to see a band, a
blue plate or a blue colour cast. The thresholds were set from the EU blue's definition and checked
on ``eu-plate-crops`` and rendered plates (never on ``eu-plates-dev``); figures in
``edge_agent/models/plate_ocr.md``.
"""

from __future__ import annotations

import cv2
import numpy as np

# OpenCV hue is 0..179: EU blue (RGB 0, 51, 153) sits near 110.
_HUE = (95, 130)
_MIN_SAT = 90
_MIN_VAL = 40
_STRIP = 0.12  # share of the crop's width searched at each end
_PRESENT = 0.25  # share of the strip's pixels that must be band-blue
_MIDDLE_MAX = 0.08  # share of band-blue pixels in the plate's middle above which colour cannot tell
_MIN_W = 40  # px: a narrower crop shows no band worth judging
_GREY_SAT = 25  # mean saturation under this: a grey/IR image, no colour cue


def blue_mask(hsv: np.ndarray, min_sat: int = _MIN_SAT) -> np.ndarray:
    """Pixels of EU-band blue in an OpenCV HSV image (bool, same height and width)."""
    return (
        (hsv[:, :, 0] >= _HUE[0]) & (hsv[:, :, 0] <= _HUE[1]) & (hsv[:, :, 1] >= min_sat) & (hsv[:, :, 2] >= _MIN_VAL)
    )


def band_sides(crop: np.ndarray, margin: tuple[float, float] = (0.0, 0.0)) -> tuple[bool | None, bool | None]:
    """(left band, right band) seen in a BGR plate crop; (None, None) when colour cannot tell.

    ``margin``: what the crop holds around the plate's box on each side, as shares of the box's width and
    height (the reader's cut): the cue looks at the box alone. Measured over the margin too, the band at
    the plate's end filled too little of the end strip: the reader saw the right band on 17 of 45 real
    Italian plates (edge_agent/models/plate_ocr.md, "The band cue inside the box").
    """
    if crop.ndim != 3 or crop.shape[2] != 3:
        return None, None
    mx, my = margin
    x0, y0 = round(crop.shape[1] * mx / (1 + 2 * mx)), round(crop.shape[0] * my / (1 + 2 * my))
    crop = crop[y0:crop.shape[0] - y0, x0:crop.shape[1] - x0]
    if crop.shape[1] < _MIN_W or crop.shape[0] < 8:
        return None, None
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    if float(hsv[:, :, 1].mean()) < _GREY_SAT and float(np.median(hsv[:, :, 1])) < _GREY_SAT:
        # Nearly no colour anywhere: but a band alone can hold most of the saturation, so look anyway
        # unless the ends are as grey as the rest.
        ends = np.concatenate([hsv[:, : max(1, int(crop.shape[1] * _STRIP)), 1].ravel(),
                               hsv[:, -max(1, int(crop.shape[1] * _STRIP)):, 1].ravel()])
        if float(ends.mean()) < _GREY_SAT:
            return None, None
    blue = blue_mask(hsv)
    w = crop.shape[1]
    if float(blue[:, int(w * 0.35): int(w * 0.65)].mean()) >= _MIDDLE_MAX:
        # A blue plate, or a blue colour cast: a band is blue beside a plate that is not.
        return None, None
    k = max(2, int(w * _STRIP))
    # The box is not always tight: the band is in the strip, not necessarily at its edge.
    left = float(blue[:, :k].mean()) >= _PRESENT
    right = float(blue[:, w - k:].mean()) >= _PRESENT
    return left, right
