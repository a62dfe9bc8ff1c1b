# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""A visual country cue: does the plate have a blue band at its right end?

EU plates carry a blue band with the country letters at the left. Italian and French plates also
carry one at the right (year and province; department and region), most others do not. Text layouts
cannot tell ``AB123CD`` (IT, FR) from a Slovak ``BA123XY``; the right band can narrow it down.

Colour only: a grey or infrared frame gives no cue (None), nor does a crop too small to see a band, a
blue plate or a blue colour cast. The colour thresholds come from the EU blue's definition, the window
and the band's least width from the band's size (about 8% of a plate's width); measured on real Italian and
French plates of ``eu-plate-crops`` (``scripts/eval_country.py``) and rendered plates, never on
``eu-plates-dev``; figures in ``edge_agent/models/plate_ocr.md`` ("The band cue").
"""

from __future__ import annotations

import cv2
import numpy as np

# OpenCV hue is 0..179: EU blue (RGB 0, 51, 153) sits near 110.
_HUE = (95, 130)
_MIN_SAT = 90
_MIN_VAL = 40
# At each end the band is looked for from this share of the box's width inside the box out to the cut's
# end (the reader's margin): the detector's box may stop short of a band or hold more than the plate.
_WINDOW_IN = 0.15
# A column is band-blue when this share of the box's rows is: a French right band holds a large regional
# logo and the department's number, and shows 30-50% of blue in most columns (chosen on half of the real
# French and Italian crops, scripts/eval_country.py --half A; plate_ocr.md, "The band cue").
_COLUMN_BLUE = 0.3
_BAND_MIN = 0.04  # a band: band-blue columns at least this share of the box's width (a band is ~8%: half seen)
_MIDDLE_MAX = 0.08  # share of band-blue pixels in the plate's middle above which colour cannot tell
_MIN_W = 40  # px: a narrower box shows no band worth judging
_GREY_SAT = 25  # mean saturation under this: a grey/IR image, no colour cue


def blue_mask(hsv: np.ndarray, min_sat: int = _MIN_SAT) -> np.ndarray:
    """Pixels of EU-band blue in an OpenCV HSV image (bool, same height and width)."""
    return (
        (hsv[:, :, 0] >= _HUE[0]) & (hsv[:, :, 0] <= _HUE[1]) & (hsv[:, :, 1] >= min_sat) & (hsv[:, :, 2] >= _MIN_VAL)
    )


def band_sides(crop: np.ndarray, margin: tuple[float, float] = (0.0, 0.0)) -> tuple[bool | None, bool | None]:
    """(left band, right band) seen in a BGR plate crop; (None, None) when colour cannot tell.

    ``margin``: what the crop holds around the plate's box on each side, as shares of the box's width and
    height (the reader's cut). The cue judges the box's rows, and at each end the columns from 15% of the
    box's width inside it out to the crop's end: a share of blue over a fixed end strip, margin included,
    missed the band on 28 of 45 real Italian plates, and a strip inside the box alone missed it where the
    detector's box stops short of the band (edge_agent/models/plate_ocr.md, "The band cue").
    """
    if crop.ndim != 3 or crop.shape[2] != 3:
        return None, None
    mx, my = margin
    h, w = crop.shape[:2]
    box_w = w / (1 + 2 * mx)
    left_in = w * mx / (1 + 2 * mx)  # the box's left edge in the crop
    y0 = round(h * my / (1 + 2 * my))
    rows = crop[y0:h - y0]
    if box_w < _MIN_W or rows.shape[0] < 8:
        return None, None
    hsv = cv2.cvtColor(rows, cv2.COLOR_BGR2HSV)
    inner = round(_WINDOW_IN * box_w)
    left_end, right_start = round(left_in) + inner, round(left_in + box_w) - inner
    if float(hsv[:, :, 1].mean()) < _GREY_SAT and float(np.median(hsv[:, :, 1])) < _GREY_SAT:
        # Nearly no colour anywhere: but a band alone can hold most of the saturation, so look anyway
        # unless the ends are as grey as the rest.
        ends = np.concatenate([hsv[:, :left_end, 1].ravel(), hsv[:, right_start:, 1].ravel()])
        if float(ends.mean()) < _GREY_SAT:
            return None, None
    blue = blue_mask(hsv)
    if float(blue[:, round(left_in + 0.35 * box_w): round(left_in + 0.65 * box_w)].mean()) >= _MIDDLE_MAX:
        # A blue plate, or a blue colour cast: a band is blue beside a plate that is not.
        return None, None
    columns = blue.mean(axis=0) >= _COLUMN_BLUE
    need = max(1, round(_BAND_MIN * box_w))
    return int(columns[:left_end].sum()) >= need, int(columns[right_start:].sum()) >= need
