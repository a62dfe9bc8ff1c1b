# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Two-row plates: the aspect test and the row split that lays the rows side by side."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_agent.pipeline.alpr.two_row import TRAIN_BORDER, cut_margin, is_two_row, row_gap, side_by_side


def _two_row_plate(
    top: str = "AB", bottom: str = "12345", w: int = 180, h: int = 160, invert: bool = False
) -> tuple[np.ndarray, int, int]:
    """A white plate with two rows of black text; returns it and the y range of the gap."""
    img = np.full((h, w), 235, np.uint8)
    cv2.rectangle(img, (1, 1), (w - 2, h - 2), 20, 2)
    font, scale, th = cv2.FONT_HERSHEY_SIMPLEX, 1.6, 4
    (tw, _th), _ = cv2.getTextSize(top, font, scale, th)
    y_top = int(h * 0.42)
    cv2.putText(img, top, ((w - tw) // 2, y_top), font, scale, 0, th, cv2.LINE_AA)
    (bw, bth), _ = cv2.getTextSize(bottom, font, scale * 0.9, th)
    y_bot = int(h * 0.88)
    cv2.putText(img, bottom, ((w - bw) // 2, y_bot), font, scale * 0.9, 0, th, cv2.LINE_AA)
    # Bottom of the top row's ink (+ stroke) .. top of the bottom row's ink.
    gap_lo, gap_hi = y_top + th, y_bot - bth - th
    if invert:
        img = 255 - img
    return img, gap_lo, gap_hi


def test_is_two_row_by_aspect() -> None:
    assert is_two_row(180, 160)  # Italian motorcycle, square-ish
    assert is_two_row(280, 200)  # square EU plate
    assert not is_two_row(520, 110)  # single-row EU plate 4.7:1
    assert not is_two_row(300, 90)  # detector box with margins ~3.3:1
    assert not is_two_row(0, 10) and not is_two_row(10, 0)


@pytest.mark.parametrize("invert", [False, True])
def test_split_lands_between_rows(invert: bool) -> None:
    img, lo, hi = _two_row_plate(invert=invert)
    assert lo < hi
    y = row_gap(img)
    assert lo <= y <= hi, (lo, y, hi)


def test_split_with_tall_top_row() -> None:
    # A moped-like plate whose rows are not centred: the gap is off the middle.
    img = np.full((150, 170), 240, np.uint8)
    cv2.putText(img, "X4B", (20, 55), cv2.FONT_HERSHEY_SIMPLEX, 1.7, 0, 4)
    cv2.putText(img, "8TK", (20, 135), cv2.FONT_HERSHEY_SIMPLEX, 1.7, 0, 4)
    y = row_gap(img)
    assert 60 <= y <= 95, y


def test_side_by_side_layout_grey_and_bgr() -> None:
    img, _, _ = _two_row_plate()
    out = side_by_side(img)
    assert out.ndim == 2 and out.dtype == np.uint8
    assert out.shape[1] > 2 * out.shape[0]  # wider than tall: one long row
    # The top row ("AB") is on the left: its ink sits in the left part of the result.
    ink_cols = np.where((out < 100).sum(axis=0) > 0)[0]
    assert ink_cols.min() < out.shape[1] // 4 and ink_cols.max() > out.shape[1] // 2
    colour = side_by_side(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    assert colour.ndim == 3 and colour.shape[2] == 3 and colour.shape[:2] == out.shape


def test_side_by_side_rows_in_order() -> None:
    # Top row all ink on the left half of the plate, bottom row on the right half: after
    # laying side by side, the left output half holds the top row's ink.
    img = np.full((120, 120), 230, np.uint8)
    cv2.rectangle(img, (10, 10), (50, 45), 0, -1)  # top row ink
    cv2.rectangle(img, (70, 75), (110, 110), 0, -1)  # bottom row ink
    out = side_by_side(img)
    half = out.shape[1] // 2
    left, right = out[:, :half], out[:, half:]
    # Top row: ink at its left; bottom row: ink at its right.
    assert (left[:, : half // 2] < 100).any() and (right[:, half // 2 :] < 100).any()
    assert not (left[:, half // 2 + 2 :] < 100).any()


def test_blank_crop_falls_back_to_middle() -> None:
    blank = np.full((40, 50), 200, np.uint8)
    assert row_gap(blank) == 20
    out = side_by_side(blank)
    assert out.shape[0] == 20


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        side_by_side(np.zeros((1, 10), np.uint8))


def test_float_crop_splits_as_its_8_bit_twin() -> None:
    img, _, _ = _two_row_plate()
    assert row_gap(img.astype(np.float32)) == row_gap(img)


def test_the_readers_two_row_cut_is_the_middle_of_the_training_border() -> None:
    mx, my = cut_margin()
    # A margin m of the box on each side is m / (1 + 2m) of the cut.
    assert mx / (1 + 2 * mx) == pytest.approx((TRAIN_BORDER[0] + TRAIN_BORDER[1]) / 2)
    assert my / (1 + 2 * my) == pytest.approx((TRAIN_BORDER[2] + TRAIN_BORDER[3]) / 2)
    assert 0 < mx < 0.15 and 0 < my < 0.15


@pytest.mark.parametrize("scene, plate, ink", [(40, 150, 60), (90, 140, 70), (200, 120, 40)])
def test_split_lands_between_rows_of_a_cut_with_scene_above_and_below(scene: int, plate: int, ink: int) -> None:
    # Found on the EU crops placed in video frames: a reader's cut keeps dark scene above and below a
    # dim plate; a threshold at a distance from the crop's median took the plate itself for ink and split
    # inside the bottom row. Ink is now the minority side of Otsu's threshold on the inner rows.
    h, w, margin = 110, 90, 20
    img = np.full((h, w), scene, np.uint8)
    img[margin:h - margin, 3:w - 3] = plate
    font, scale, th = cv2.FONT_HERSHEY_SIMPLEX, 0.9, 3
    top_base, bot_base = margin + 22, h - margin - 5
    cv2.putText(img, "AB", (20, top_base), font, scale, ink, th, cv2.LINE_AA)
    cv2.putText(img, "123", (12, bot_base), font, scale, ink, th, cv2.LINE_AA)
    (_, bot_h), _ = cv2.getTextSize("123", font, scale, th)
    assert top_base + th <= row_gap(img) <= bot_base - bot_h - th
