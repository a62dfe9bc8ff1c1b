# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""A visual country cue: the dashes between a plate's groups of characters.

Italian and French plates look alike: white, a blue band at both ends, seven characters AA123AA, and the
same letters left out but one. French plates (SIV, since 2009) print a dash between the groups,
AB-123-CD; Italian plates print none. Where the right band is seen, finding those two dashes tells the
two apart, which the text cannot. Classical image analysis on the small crop (no model): the text's
character-sized blobs, then short flat blobs on its middle line between two of them. The sizes come from
the plates' drawings, not from any evaluation; figures in ``edge_agent/models/plate_ocr.md`` ("Italian or
French").
"""

from __future__ import annotations

import cv2
import numpy as np

# A character is a blob this tall (share of the crop's height: the crop holds the plate with 15% of its
# height above and below, EU characters fill about 70% of the plate's height) ...
_CHAR_H = (0.3, 0.9)
# ... at most this wide (share of the crop's width), not much wider than tall, and inked this much.
_CHAR_W_MAX = 0.2
_CHAR_ASPECT_MAX = 1.0
_CHAR_FILL_MIN = 0.15
_SAME_HEIGHT = (0.6, 1.4)  # of the median blob: the band's letter and stars are not characters
# A dash: as wide as 0.25-1.2 characters, at most 0.35 of one high, centred on the text's middle line.
_DASH_W = (0.25, 1.2)
_DASH_H_MAX = 0.35
_DASH_OFF_MID = 0.25
_FRENCH_GAPS = (2, 5)  # AB-123-CD: after the 2nd and the 5th character
_FRENCH_CHARS = 7


def _blobs(grey: np.ndarray, flag: int) -> np.ndarray:
    """(x, y, w, h, area) of every ink blob, one polarity (Otsu)."""
    _, ink = cv2.threshold(grey, 0, 255, flag | cv2.THRESH_OTSU)
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    return np.asarray(stats[1:], np.int64)


def _characters(blobs: np.ndarray, w: int, h: int) -> np.ndarray:
    by, bw, bh, area = (blobs[:, i] for i in range(1, 5))
    keep = ((bh >= _CHAR_H[0] * h) & (bh <= _CHAR_H[1] * h) & (bw <= _CHAR_W_MAX * w)
            & (bw <= _CHAR_ASPECT_MAX * bh) & (area >= _CHAR_FILL_MIN * bw * bh) & (by > 0) & (by + bh < h))
    chars = blobs[keep]
    if len(chars):
        med = float(np.median(chars[:, 3]))
        chars = chars[(chars[:, 3] >= _SAME_HEIGHT[0] * med) & (chars[:, 3] <= _SAME_HEIGHT[1] * med)]
    return np.asarray(chars[np.argsort(chars[:, 0])]) if len(chars) else chars


def french_dashes(crop: np.ndarray) -> bool | None:
    """True when a one-row plate crop shows seven characters with a dash after the 2nd and the 5th (a
    French plate), False when it shows seven characters and no dash at either place (not French), None
    when it cannot tell (fewer or more characters found, or one dash of the two)."""
    grey = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    if w < 40 or h < 12:
        return None
    for flag in (cv2.THRESH_BINARY_INV, cv2.THRESH_BINARY):  # dark ink first, then light ink
        blobs = _blobs(grey, flag)
        chars = _characters(blobs, w, h) if len(blobs) else blobs
        if len(chars) != _FRENCH_CHARS:
            continue
        cw, ch = float(np.median(chars[:, 2])), float(np.median(chars[:, 3]))
        mid = float(np.median(chars[:, 1] + chars[:, 3] / 2.0))
        bx, by, bw, bh = (blobs[:, i].astype(np.float64) for i in range(4))
        dash = ((bw >= _DASH_W[0] * cw) & (bw <= _DASH_W[1] * cw) & (bh <= _DASH_H_MAX * ch)
                & (np.abs(by + bh / 2.0 - mid) <= _DASH_OFF_MID * ch))
        centres = bx[dash] + bw[dash] / 2.0
        right_ends = chars[:, 0] + chars[:, 2]
        found = [bool(np.any((centres > right_ends[g - 1]) & (centres < chars[g, 0]))) for g in _FRENCH_GAPS]
        if all(found):
            return True
        return False if not any(found) else None
    return None
