# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Two-row plates (motorcycles, mopeds, square EU plates) for a one-row OCR.

The plate OCR reads one row of text from a 32x128 crop. A two-row plate is cut at the gap
between its rows and the two rows are laid side by side (top row left, bottom row right),
so the recogniser reads the text top row first. The training script uses this very module
(loaded by file path), so the model learns exactly what the reader shows it.

Only numpy and OpenCV: no import of the rest of the daemon.
"""

from __future__ import annotations

import cv2
import numpy as np

# Single-row EU plates are ~4.7:1 and detector boxes with margins ~3-4:1; two-row plates
# (Italian motorcycle ~1.1:1, moped ~1.2:1, square EU ~1.6:1) stay well below this.
TWO_ROW_MAX_ASPECT = 2.0
# The gap between the rows is searched in this band of the crop height.
_GAP_BAND = (0.30, 0.70)
# The Otsu threshold that tells ink from plate is taken on these rows (shares of the crop height).
_INNER_ROWS = (0.15, 0.85)
# The border around the plate in the OCR's two-row training crops: (min, max) share of the crop's
# width on each side, then of its height (the trainer draws from it). Tighter in y than a one-row
# crop: after the split each row keeps its crop's top or bottom border at twice its share of the row.
TRAIN_BORDER = (-0.02, 0.10, -0.03, 0.12)


def cut_margin() -> tuple[float, float]:
    """The margin (share of the plate box's width, of its height, on each side) at which the reader cuts
    a two-row view: the one whose share of the cut is the middle of ``TRAIN_BORDER``."""
    sx = (TRAIN_BORDER[0] + TRAIN_BORDER[1]) / 2
    sy = (TRAIN_BORDER[2] + TRAIN_BORDER[3]) / 2
    # A margin m of the box on each side is m / (1 + 2m) of the cut.
    return sx / (1 - 2 * sx), sy / (1 - 2 * sy)


def is_two_row(w: float, h: float) -> bool:
    """True when a plate crop of ``w`` x ``h`` pixels is shaped like a two-row plate."""
    return h > 0 and w > 0 and w / h < TWO_ROW_MAX_ASPECT


def row_gap(grey: np.ndarray) -> int:
    """The row index (in ``grey``) of the gap between the two text rows.

    Ink is the minority side of an Otsu threshold taken on the crop's inner rows (the plate, not the
    scene a reader's cut keeps above and below it); the horizontal projection profile of the ink is
    searched in the middle band of the crop for its minimum; a crop with no ink falls back to the middle.
    A threshold at a fixed distance from the crop's median took the plate itself for ink whenever the
    median was no plate colour (a dim plate, red letters, dark scene around it) and split inside a row.
    """
    h = int(grey.shape[0])
    lo, hi = int(h * _GAP_BAND[0]), max(int(h * _GAP_BAND[0]) + 1, int(np.ceil(h * _GAP_BAND[1])))
    if h < 4 or grey.shape[1] < 2:
        return h // 2
    # Otsu's threshold takes 8-bit pixels.
    g = cv2.GaussianBlur(grey if grey.dtype == np.uint8 else np.clip(grey, 0, 255).astype(np.uint8), (3, 3), 0)
    # Only the central part of the width: bands, screws and frames sit at the ends.
    w = g.shape[1]
    core = np.ascontiguousarray(g[:, int(w * 0.15) : max(int(w * 0.15) + 1, int(w * 0.85))])
    r0, r1 = int(h * _INNER_ROWS[0]), max(int(h * _INNER_ROWS[0]) + 1, int(h * _INNER_ROWS[1]))
    threshold, _ = cv2.threshold(np.ascontiguousarray(core[r0:r1]), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = core <= threshold
    ink = dark if float(dark[r0:r1].mean()) < 0.5 else ~dark
    profile = ink.mean(axis=1).astype(np.float32)
    if float(profile.max()) <= 1e-6:
        return h // 2
    k = max(1, h // 24)
    smooth = np.convolve(profile, np.ones(2 * k + 1, np.float32) / (2 * k + 1), mode="same")
    band = smooth[lo:hi]
    best = float(band.min())
    # Of the rows tied for the least ink (a gap several px tall), take their middle.
    idx = np.where(band <= best + 1e-3 * max(1.0, float(smooth.max())))[0]
    return lo + int(idx[len(idx) // 2])


def side_by_side(crop: np.ndarray, gap_px: int | None = None) -> np.ndarray:
    """Cut a two-row plate crop at the gap between its rows; lay the rows side by side.

    ``crop`` is grey (HxW) or BGR (HxWx3); the result has the same number of channels, the
    top row on the left, a small blank gap, the bottom row on the right, both rows at the
    same height. The OCR then reads the whole text top row first.
    """
    if crop.ndim not in (2, 3) or crop.shape[0] < 2 or crop.shape[1] < 1:
        raise ValueError(f"not an image crop: shape {crop.shape}")
    grey = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    y = row_gap(grey)
    y = min(max(1, y), crop.shape[0] - 1)
    top, bot = crop[:y], crop[y:]
    rh = max(top.shape[0], bot.shape[0])
    rows = []
    for r in (top, bot):
        w = max(1, round(r.shape[1] * rh / r.shape[0]))
        rows.append(cv2.resize(r, (w, rh), interpolation=cv2.INTER_LINEAR))
    gap_w = gap_px if gap_px is not None else max(1, rh // 6)
    # The gap takes the plate's own background: the median of the crop's border pixels.
    edge = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    fill = float(np.median(edge))
    gap_shape = (rh, gap_w) if crop.ndim == 2 else (rh, gap_w, crop.shape[2])
    gap = np.full(gap_shape, fill, dtype=crop.dtype)
    if crop.ndim == 3:
        gap[:] = np.median(np.concatenate([crop[0], crop[-1]]), axis=0).astype(crop.dtype)
    return np.ascontiguousarray(np.hstack([rows[0], gap, rows[1]]))
