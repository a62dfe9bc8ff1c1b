# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Synthetic European licence plates and the shared crop augmentation for OCR training.

Plates are drawn with OSP-DIN (Debian ``fonts-opendin``, OFL), a DIN 1451-like face close
to the real plate fonts, with the EU blue band, country code, emblems/seals where the
country has them and the spacing of each format. ``augment`` turns any plate image with a
known plate quadrilateral (synthetic or real) into a detector-like grey OCR crop, so the
real and the synthetic data go through exactly the same distortions.

Run directly to write a preview grid: ``python scripts/synth_plates.py /tmp/synth.png``.
"""

from __future__ import annotations

import os
import string
import sys
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import agent_module
import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

OCR_W = 128
OCR_H = 32
# EDGE_AGENT_PLATE_FONT: the same font carried elsewhere (a lent GPU machine has no fonts-opendin).
FONT_PATH = Path(os.environ.get("EDGE_AGENT_PLATE_FONT", "/usr/share/fonts/truetype/opendin/OSP-DIN.ttf"))

_L = string.ascii_uppercase
_D = string.digits

# (country code, weight, pattern). Pattern tokens: L letter, D digit, ' ' gap, '-' dash,
# * coat-of-arms emblem, # German seal pair. Weights lean towards the dev-set countries
# (Slovakia, Czechia, Germany, Croatia) and Italy (the demo scene).
FORMATS: list[tuple[str, float, str]] = [
    ("SK", 6.0, "LL*DDDLL"),
    ("SK", 1.5, "LL-DDDLL"),
    ("I", 6.0, "LL DDD LL"),
    ("CZ", 2.0, "DLD DDDD"),
    ("CZ", 1.0, "DLL DDDD"),
    ("D", 1.5, "LL#LL DDDD"),
    ("D", 1.0, "L#LL DDD"),
    ("D", 1.0, "LLL#L DDD"),
    ("D", 0.5, "LL#L DDDD"),
    ("D", 0.8, "L#LQ DDDD"),  # Q is rare in German plates but must be learnt apart from O/0
    ("PL", 0.5, "LLQ DDDD"),
    ("HR", 1.5, "LL*DDDD-LL"),
    ("HR", 0.7, "LL*DDD-L"),
    ("PL", 1.0, "LL DDDDD"),
    ("PL", 0.7, "LLL DDLL"),
    ("A", 0.8, "L*DDDDL"),
    ("A", 0.5, "LL*DDDLL"),
    ("F", 4.0, "LL-DDD-LL"),
    ("H", 0.5, "LLL-DDD"),
    ("BG", 0.5, "L DDDD LL"),
    ("NL", 0.4, "LL-DD-LL"),
    ("RO", 0.4, "LL DD LLL"),
    ("E", 0.4, "DDDD LLL"),
    ("SLO", 0.3, "LL* L-DDD"),
    # Pre-EU Czech and Slovak plates, still common: stacked seals between the groups.
    ("CZ", 1.2, "DLD#DDDD"),
    ("SK", 0.8, "LL#DDD-DD"),
    ("SK", 0.8, "LLL#DD-DD"),
]
# Letters per country: Italy has no I, O, Q, U on its plates; France no I, O, U (Q is
# used). Elsewhere Q and O are drawn three times as often as other letters so that the
# model sees enough Q next to O and 0 to keep them apart, and I and W twice as often
# (held-out validation reads I as 1 and the French kept-back set W as H).
_L_IT = "".join(c for c in _L if c not in "IOQU")
_L_FR = "".join(c for c in _L if c not in "IOU")
_L_W = np.array([3.0 if c in "QO" else 2.0 if c in "IW" else 1.0 for c in _L])
_L_W /= _L_W.sum()
_IT_PROVINCES = ["RM", "MI", "TO", "NA", "PA", "BA", "GE", "BO", "FI", "VE", "VR", "BS", "BG"]


def _letter(rng: np.random.Generator, country: str) -> str:
    if country == "I":
        return _L_IT[int(rng.integers(len(_L_IT)))]
    if country == "F":
        return _L_FR[int(rng.integers(len(_L_FR)))]
    return _L[int(rng.choice(len(_L), p=_L_W))]


_FMT_W = np.array([w for _, w, _ in FORMATS])
_FMT_W /= _FMT_W.sum()

_EU_BLUE = (153, 51, 0)
_STAR_YELLOW = (0, 204, 255)


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_PATH), size)


def random_format(rng: np.random.Generator) -> tuple[str, str, str]:
    """(country, display pattern filled with characters, plate text)."""
    country, _, pattern = FORMATS[int(rng.choice(len(FORMATS), p=_FMT_W))]
    return _fill(country, pattern, rng)


def _fill(country: str, pattern: str, rng: np.random.Generator) -> tuple[str, str, str]:
    out = []
    for tok in pattern:
        if tok == "L":
            out.append(_letter(rng, country))
        elif tok == "D":
            out.append(_D[rng.integers(10)])
        else:
            out.append(tok)
    display = "".join(out)
    text = "".join(c for c in display if c.isalnum())
    return country, display, text


def _draw_band(img: np.ndarray, band_w: int, country: str, rng: np.random.Generator) -> None:
    h = img.shape[0]
    cv2.rectangle(img, (3, 3), (band_w, h - 4), _EU_BLUE, -1)
    cx, cy, r = band_w // 2 + 1, int(h * 0.3), int(band_w * 0.3)
    for k in range(12):
        a = 2 * np.pi * k / 12
        cv2.circle(img, (int(cx + r * np.cos(a)), int(cy + r * np.sin(a))), 2, _STAR_YELLOW, -1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = 0.9 if len(country) == 1 else (0.7 if len(country) == 2 else 0.5)
    (tw, _), _ = cv2.getTextSize(country, font, scale, 2)
    cv2.putText(img, country, (cx - tw // 2, int(h * 0.85)), font, scale, (255, 255, 255), 2, cv2.LINE_AA)


def _emblem(h: int, rng: np.random.Generator) -> np.ndarray:
    """A small coloured shield, the way SK/HR/A/SLO plates carry their arms."""
    w = int(h * 0.32)
    e = np.full((int(h * 0.42), w, 3), 255, np.uint8)
    colour = [(40, 40, 200), (160, 60, 20), (30, 30, 30)][rng.integers(3)]
    pts = np.array([[0, 0], [w - 1, 0], [w - 1, e.shape[0] * 0.6], [w // 2, e.shape[0] - 1], [0, e.shape[0] * 0.6]])
    cv2.fillPoly(e, [pts.astype(np.int32)], colour)
    cv2.line(e, (w // 2, 2), (w // 2, e.shape[0] - 6), (255, 255, 255), max(1, w // 8))
    return e


def _seals(h: int, rng: np.random.Generator) -> np.ndarray:
    """Registration/inspection seals stacked between letter groups (DE, pre-EU CZ/SK).

    Filled colour discs (German) or small grey rings (older Czech and Slovak plates), which
    an OCR must learn to skip rather than read as 8 or 0.
    """
    d = int(h * rng.uniform(0.2, 0.3))
    e = np.full((2 * d + 4, d + 2, 3), 255, np.uint8)
    c1, c2 = (d // 2 + 1, d // 2 + 1), (d // 2 + 1, d + 3 + d // 2)
    if rng.random() < 0.5:
        top = [(60, 160, 230), (90, 90, 200), (200, 120, 60), (60, 200, 60)][rng.integers(4)]
        cv2.circle(e, c1, d // 2, top, -1, cv2.LINE_AA)
        cv2.circle(e, c2, d // 2, (150, 150, 150), -1, cv2.LINE_AA)
    else:
        grey = int(rng.integers(60, 170))
        t = max(1, int(d * rng.uniform(0.08, 0.18)))
        cv2.circle(e, c1, d // 2 - t // 2, (grey, grey, grey), t, cv2.LINE_AA)
        cv2.circle(e, c2, d // 2 - t // 2, (grey, grey, grey), t, cv2.LINE_AA)
    return e


def _text_strip(display: str, rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """The plate text drawn token by token (glyphs, gaps, emblems, seals) on white, cut to its ink."""
    font = _font(size)
    pieces: list[np.ndarray] = []
    gap = int(size * rng.uniform(0.05, 0.12))
    for tok in display:
        if tok == "*":
            pieces.append(_emblem(size, rng))
        elif tok == "#":
            pieces.append(_seals(size, rng))
        elif tok == " ":
            pieces.append(np.full((4, int(size * rng.uniform(0.2, 0.45)), 3), 255, np.uint8))
        else:
            bbox = font.getbbox(tok)
            cw, ch = bbox[2] - bbox[0] + 2, size
            canvas = Image.new("L", (cw, int(size * 1.05)), 0)
            ImageDraw.Draw(canvas).text((-bbox[0] + 1, 0), tok, font=font, fill=255)
            mask = np.asarray(canvas)
            glyph = np.full((*mask.shape, 3), 255, np.uint8)
            glyph[mask > 127] = 0
            pieces.append(glyph[: ch + 4] if tok != "-" else glyph)
        pieces.append(np.full((4, gap, 3), 255, np.uint8))
    strip_h = max(p.shape[0] for p in pieces)
    strip = np.full((strip_h, sum(p.shape[1] for p in pieces), 3), 255, np.uint8)
    x = 0
    for p in pieces:
        y = (strip_h - p.shape[0]) // 2
        strip[y : y + p.shape[0], x : x + p.shape[1]] = p
        x += p.shape[1]
    ys = np.where(strip.min(axis=(1, 2)) < 128)[0]
    if len(ys):
        strip = strip[max(0, ys[0] - 2) : ys[-1] + 3]
    return strip


def _paste_strip(
    img: np.ndarray, strip: np.ndarray, box: tuple[int, int, int, int], th: int, rng: np.random.Generator
) -> None:
    """Fit the text strip (height ``th``, condensed as needed) centred into box x0, y0, x1, y1."""
    x0, y0, x1, y1 = box
    avail = max(8, x1 - x0)
    tw = int(strip.shape[1] * th / strip.shape[0] * rng.uniform(0.8, 1.1))
    tw = max(4, min(tw, avail))
    th = max(4, min(th, y1 - y0))
    strip = cv2.resize(strip, (tw, th), interpolation=cv2.INTER_AREA)
    ink = np.array([int(rng.integers(0, 50))] * 3, np.uint8)
    x = x0 + (avail - tw) // 2 + int(rng.integers(-3, 4))
    y = y0 + (y1 - y0 - th) // 2 + int(rng.integers(-2, 3))
    x = min(max(0, x), img.shape[1] - tw)
    y = min(max(0, y), img.shape[0] - th)
    roi = img[y : y + th, x : x + tw]
    # Paste by multiplying: white strip pixels keep the plate colour, black ones take the ink.
    a = strip.astype(np.float32) / 255.0
    roi[:] = (roi * a + ink * (1.0 - a)).astype(np.uint8)


def _small_text(img: np.ndarray, text: str, cx: int, cy: int, height: int, colour: tuple[int, int, int]) -> None:
    """Small Hershey glyphs (year, province, department) centred at cx, cy, ``height`` px tall."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (_, th0), _ = cv2.getTextSize(text, font, 1.0, 1)
    scale = max(0.2, height / max(1, th0))
    thick = max(1, round(height / 9))
    (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
    cv2.putText(img, text, (cx - tw // 2, cy + th // 2), font, scale, colour, thick, cv2.LINE_AA)


def _right_band(img: np.ndarray, x0: int, x1: int, y0: int, y1: int, country: str, rng: np.random.Generator) -> None:
    """The blue band at the RIGHT end of Italian (year + province) and French (region logo +
    department number) plates. Its small glyphs are not plate text: the model must skip them."""
    cv2.rectangle(img, (x0, y0), (x1, y1), _EU_BLUE, -1)
    bw, bh = x1 - x0, y1 - y0
    cx = (x0 + x1) // 2
    white = (255, 255, 255)
    if country == "I":
        if rng.random() < 0.85:
            year = f"{int(rng.integers(0, 100)):02d}"
            if rng.random() < 0.5:
                cv2.circle(img, (cx, y0 + int(bh * 0.28)), int(bw * 0.33), (0, 200, 240), 1, cv2.LINE_AA)
            _small_text(img, year, cx, y0 + int(bh * 0.28), int(bh * rng.uniform(0.14, 0.22)), white)
        if rng.random() < 0.7:
            prov = _IT_PROVINCES[int(rng.integers(len(_IT_PROVINCES)))]
            _small_text(img, prov, cx, y0 + int(bh * 0.74), int(bh * rng.uniform(0.16, 0.24)), white)
    else:
        # Region logo: a coloured blob (the real ones are small multicolour drawings).
        r = int(bw * rng.uniform(0.25, 0.36))
        cy = y0 + int(bh * 0.32)
        col = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            cv2.circle(img, (cx, cy), r, col, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), col, -1)
        col2 = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.ellipse(img, (cx, cy), (r // 2 + 1, r // 3 + 1), float(rng.uniform(0, 180)), 0, 360, col2, -1)
        dep = rng.choice(["2A", "2B", f"{int(rng.integers(1, 96)):02d}", f"{int(rng.integers(971, 977))}"])
        _small_text(img, str(dep), cx, y0 + int(bh * 0.76), int(bh * rng.uniform(0.16, 0.24)), white)


def render_eu_plate(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A frontal BGR plate (about 520x110) and its text."""
    country, display, text = random_format(rng)
    return render_row_plate(country, display, text, rng)


def render_layout_plate(country: str, pattern: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A one-row plate of ``country`` in ``pattern`` (``FORMATS``' tokens), filled with the country's letters."""
    _, display, text = _fill(country, pattern, rng)
    return render_row_plate(country, display, text, rng)


def render_row_plate(country: str, display: str, text: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A one-row plate of ``country`` showing ``display``; Italian and French plates get the
    blue band at both ends."""
    h = int(rng.integers(100, 118))
    w = int(h * rng.uniform(4.3, 4.9))
    both_bands = country in ("I", "F")
    bg = (255, 255, 255) if (both_bands or rng.random() > 0.08) else (40, 200, 250)
    bg_v = int(rng.integers(200, 256))
    bgc = tuple(int(c * bg_v / 255) for c in bg)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = bgc
    cv2.rectangle(img, (1, 1), (w - 2, h - 2), (20, 20, 20), int(rng.integers(2, 5)))
    # Older plates (and the pre-EU Czech/Slovak ones above) have no blue band.
    if not both_bands and rng.random() < (0.6 if "#" in display and country != "D" else 0.1):
        band_w = int(h * 0.08)
    else:
        band_w = int(h * rng.uniform(0.36, 0.42))
        _draw_band(img, band_w, country, rng)
    right_w = int(h * 0.08)
    if both_bands:
        rb = int(h * rng.uniform(0.36, 0.42))
        _right_band(img, w - rb, w - 4, 3, h - 4, country, rng)
        right_w = rb
    strip = _text_strip(display, rng)
    th = int(h * rng.uniform(0.62, 0.76))
    _paste_strip(img, strip, (band_w + int(h * 0.1), 0, w - right_w - int(h * 0.1), h), th, rng)
    if not both_bands and rng.random() < 0.04:
        # A few plates (old Austrian, some special series) are light text on dark.
        img = 255 - img
    return img, text


# Two-row plates: (country, weight, top pattern, bottom pattern, width/height, band)
# band: "full" EU band over both rows, "top" small EU band on the top row only (with the
# Italian year band at the top right), "none".
TWO_ROW_FORMATS: list[tuple[str, float, str, str, float, str]] = [
    ("I", 4.0, "LL", "DDDDD", 1.05, "top"),  # Italian motorcycle
    ("I-MOPED", 2.5, "XXX", "XXX", 1.2, "none"),  # Italian moped: 6 alphanumerics
    ("D", 1.0, "LL#L", "DDDD", 1.45, "full"),
    ("D", 0.5, "L#LQ", "DDD", 1.45, "full"),
    ("F", 1.0, "LL-DDD", "LL", 1.25, "full"),
    ("PL", 0.8, "LL", "DDDLL", 1.3, "full"),
    ("PL", 0.5, "LLL", "DDQD", 1.3, "full"),
    ("CZ", 0.6, "DL", "DDDD", 1.4, "full"),
    ("SK", 0.6, "LL", "DDDLL", 1.4, "full"),
    ("A", 0.4, "L", "DDDL", 1.4, "full"),
    ("HR", 0.4, "LL", "DDDLL", 1.4, "full"),
    ("RO", 0.3, "LL", "DDLLL", 1.4, "full"),
]
_TWO_W = np.array([f[1] for f in TWO_ROW_FORMATS])
_TWO_W /= _TWO_W.sum()


def _moped_text(rng: np.random.Generator) -> str:
    while True:
        t = "".join(
            _L_IT[int(rng.integers(len(_L_IT)))] if rng.random() < 0.55 else _D[int(rng.integers(10))] for _ in range(6)
        )
        if any(c.isalpha() for c in t) and any(c.isdigit() for c in t):
            return t


def render_two_row_plate(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A frontal square-ish two-row plate (about 180 px tall) and its text, top row first."""
    country, _, top_p, bot_p, aspect, band = TWO_ROW_FORMATS[int(rng.choice(len(TWO_ROW_FORMATS), p=_TWO_W))]
    if country == "I-MOPED":
        t = _moped_text(rng)
        top_d, bot_d, text = t[:3], t[3:], t
        country = "I"
    else:
        _, top_d, top_t = _fill(country, top_p, rng)
        _, bot_d, bot_t = _fill(country, bot_p, rng)
        text = top_t + bot_t
    h = int(rng.integers(160, 200))
    w = int(h * aspect * rng.uniform(0.93, 1.07))
    img = np.empty((h, w, 3), np.uint8)
    img[:] = int(rng.integers(200, 256))
    cv2.rectangle(img, (1, 1), (w - 2, h - 2), (20, 20, 20), int(rng.integers(2, 5)))
    split = int(h * rng.uniform(0.46, 0.52))
    left, right = int(h * 0.06), w - int(h * 0.06)
    if band == "full":
        bw = int(h * rng.uniform(0.2, 0.26))
        _draw_band(img, bw, country, rng)
        left = bw + int(h * 0.04)
    elif band == "top":
        bw = int(h * rng.uniform(0.2, 0.25))
        cv2.rectangle(img, (3, 3), (bw, split - 4), _EU_BLUE, -1)
        _small_text(img, "I", bw // 2 + 2, int(split * 0.7), int(split * 0.22), (255, 255, 255))
        for k in range(12):
            a = 2 * np.pi * k / 12
            c = (int(bw / 2 + 2 + bw * 0.28 * np.cos(a)), int(split * 0.3 + bw * 0.28 * np.sin(a)))
            cv2.circle(img, c, 1, _STAR_YELLOW, -1)
        _right_band(img, w - bw, w - 4, 3, split - 4, "I", rng)
    top_l, top_r = (bw + int(h * 0.05), w - bw - int(h * 0.05)) if band == "top" else (left, right)
    th_top = int(split * rng.uniform(0.66, 0.8))
    th_bot = int((h - split) * rng.uniform(0.66, 0.8))
    _paste_strip(img, _text_strip(top_d, rng), (top_l, 0, top_r, split), th_top, rng)
    _paste_strip(img, _text_strip(bot_d, rng), (left, split, right, h), th_bot, rng)
    return img, text


def full_quad(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)


def augment(
    img: np.ndarray,
    quad: np.ndarray,
    rng: np.random.Generator,
    *,
    margin: tuple[float, float, float, float] = (-0.04, 0.12, -0.08, 0.3),
    persp: float = 0.04,
    size: tuple[int, int] = (OCR_W, OCR_H),
    plate_h: tuple[float, float] = (12.0, 40.0),
    border: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """A grey crop (``size`` = w, h; OCR_H x OCR_W by default) of the plate at ``quad``
    (TL, TR, BR, BL) in ``img``.

    ``margin`` is (min, max) of the extra border as a fraction of plate width for x and of
    plate height for y, the way a detector box is sometimes tight, sometimes loose, and
    ``persp`` moves each corner to mimic an unrectified oblique view. Half the time the
    source is first shrunk to a plate height drawn from ``plate_h`` pixels. ``border`` (left, right,
    top, bottom, shares of the output's width and height) replaces the random margins with given ones:
    the borders of a crop the reader cut (``scripts/reader_borders.py``).
    """
    out_w, out_h = size
    if border is None:
        mx = rng.uniform(margin[0], margin[1], 2) * out_w
        my = rng.uniform(margin[2], margin[3], 2) * out_h
    else:
        mx = np.array(border[:2]) * out_w
        my = np.array(border[2:]) * out_h
    # Destination of the plate corners inside the output: the plate shrinks by the margins.
    dst = np.array(
        [[mx[0], my[0]], [out_w - mx[1], my[0]], [out_w - mx[1], out_h - my[1]], [mx[0], out_h - my[1]]],
        np.float32,
    )
    dst += rng.normal(0, persp, (4, 2)).astype(np.float32) * np.array([out_w, out_h], np.float32) * 0.5
    rot = rng.normal(0, 2.0)
    c = dst.mean(axis=0)
    r = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), rot, 1.0)
    dst = (np.hstack([dst, np.ones((4, 1), np.float32)]) @ r.T).astype(np.float32)

    grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    # Low-resolution sources are the norm on the pole (dev plates are 16-33 px tall):
    # shrink the source first so the warp sees the same poverty of detail.
    if rng.random() < 0.5:
        src_h = float(np.linalg.norm(quad[3] - quad[0]))
        target = rng.uniform(*plate_h)
        if src_h > target:
            s = target / src_h
            grey = cv2.resize(grey, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            quad = quad * s
    m = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
    border = cv2.BORDER_REPLICATE if rng.random() < 0.7 else cv2.BORDER_REFLECT
    out = cv2.warpPerspective(grey, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=border)
    return photometric(out, rng)


def photometric(out: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, lighting, noise and JPEG on a grey crop."""
    if rng.random() < 0.4:
        k = float(rng.uniform(0.3, 1.2))
        out = cv2.GaussianBlur(out, (0, 0), k)
    if rng.random() < 0.15:
        n = int(rng.integers(3, 6))
        kern = np.zeros((n, n), np.float32)
        kern[n // 2, :] = 1.0 / n
        out = cv2.filter2D(out, -1, kern)
    f = out.astype(np.float32)
    lo, hi = float(f.min()), float(f.max())
    if hi - lo > 10:
        f = (f - lo) / (hi - lo) * 255.0
    contrast = rng.uniform(0.35, 1.0)
    bright = rng.uniform(-60, 60)
    f = (f - 128.0) * contrast + 128.0 + bright
    if rng.random() < 0.3:
        # A shadow or glare gradient across the plate.
        g = np.linspace(rng.uniform(-50, 50), rng.uniform(-50, 50), f.shape[1], dtype=np.float32)
        f += g[None, :]
    if rng.random() < 0.5:
        f += rng.normal(0, rng.uniform(2, 12), f.shape).astype(np.float32)
    f = np.clip(f, 0, 255)
    if rng.random() < 0.3:
        gamma = rng.uniform(0.6, 1.6)
        f = 255.0 * (f / 255.0) ** gamma
    out = f.astype(np.uint8)
    if rng.random() < 0.5:
        q = int(rng.integers(20, 90))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
        dec = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else None
        if dec is not None:
            out = dec
    return out


def place_on_background(
    plate: np.ndarray, rng: np.random.Generator, backgrounds: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Put a frontal plate into a larger scene so loose crops show a bumper, not a smear."""
    h, w = plate.shape[:2]
    pad_y, pad_x = h // 2, w // 6
    ch, cw = h + 2 * pad_y, w + 2 * pad_x
    if backgrounds:
        bg = backgrounds[int(rng.integers(len(backgrounds)))]
        y = int(rng.integers(0, max(1, bg.shape[0] - ch)))
        x = int(rng.integers(0, max(1, bg.shape[1] - cw)))
        canvas = cv2.resize(bg[y : y + ch, x : x + cw], (cw, ch))
    else:
        canvas = np.full((ch, cw, 3), int(rng.integers(0, 256)), np.uint8)
    canvas[pad_y : pad_y + h, pad_x : pad_x + w] = plate
    quad = np.array([[pad_x, pad_y], [pad_x + w, pad_y], [pad_x + w, pad_y + h], [pad_x, pad_y + h]], np.float32)
    return canvas, quad


def demo_plate(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A plate drawn exactly as the synthetic demo scene draws it."""
    import random

    mod = agent_module.load("edge_agent/sources/plate_render.py")
    text = mod.random_italian_plate(random.Random(int(rng.integers(1 << 31))))
    return mod.render_plate(text), text


def _preview(path: str) -> None:
    rng = np.random.default_rng(0)
    tiles = []
    makers: list[Callable[[np.random.Generator], tuple[np.ndarray, str]]] = [render_eu_plate] * 5 + [demo_plate]
    two = np.vstack([cv2.resize(render_two_row_plate(rng)[0], (200, 180)) for _ in range(4)])
    cv2.imwrite(path.replace(".png", "_two_row.png"), two)
    for i in range(48):
        plate, text = makers[i % len(makers)](rng)
        canvas, quad = place_on_background(plate, rng, [])
        crop = augment(canvas, quad, rng)
        tiles.append(cv2.resize(crop, (OCR_W * 2, OCR_H * 2)))
        if i < 6:
            print(text)
    rows = [np.hstack(tiles[i : i + 4]) for i in range(0, len(tiles), 4)]
    cv2.imwrite(path, np.vstack(rows))
    clean = np.vstack([cv2.resize(render_eu_plate(rng)[0], (520, 110)) for _ in range(6)])
    cv2.imwrite(path.replace(".png", "_clean.png"), clean)


if __name__ == "__main__":
    _preview(sys.argv[1] if len(sys.argv) > 1 else "/tmp/synth.png")
