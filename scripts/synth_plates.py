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

import importlib.util
import string
import sys
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

OCR_W = 128
OCR_H = 32
FONT_PATH = Path("/usr/share/fonts/truetype/opendin/OSP-DIN.ttf")

_L = string.ascii_uppercase
_D = string.digits

# (country code, weight, pattern). Pattern tokens: L letter, D digit, ' ' gap, '-' dash,
# * coat-of-arms emblem, # German seal pair. Weights lean towards the dev-set countries
# (Slovakia, Czechia, Germany, Croatia) and Italy (the demo scene).
FORMATS: list[tuple[str, float, str]] = [
    ("SK", 6.0, "LL*DDDLL"),
    ("SK", 1.5, "LL-DDDLL"),
    ("I", 3.0, "LL DDDLL"),
    ("CZ", 2.0, "DLD DDDD"),
    ("CZ", 1.0, "DLL DDDD"),
    ("D", 1.5, "LL#LL DDDD"),
    ("D", 1.0, "L#LL DDD"),
    ("D", 1.0, "LLL#L DDD"),
    ("D", 0.5, "LL#L DDDD"),
    ("HR", 1.5, "LL*DDDD-LL"),
    ("HR", 0.7, "LL*DDD-L"),
    ("PL", 1.0, "LL DDDDD"),
    ("PL", 0.7, "LLL DDLL"),
    ("A", 0.8, "L*DDDDL"),
    ("A", 0.5, "LL*DDDLL"),
    ("F", 0.8, "LL-DDD-LL"),
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
    out = []
    for tok in pattern:
        if tok == "L":
            out.append(_L[rng.integers(len(_L))])
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


def render_eu_plate(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A frontal BGR plate (about 520x110) and its text."""
    country, display, text = random_format(rng)
    h = int(rng.integers(100, 118))
    w = int(h * rng.uniform(4.3, 4.9))
    bg = (255, 255, 255) if rng.random() > 0.08 else (40, 200, 250)
    bg_v = int(rng.integers(200, 256))
    bgc = tuple(int(c * bg_v / 255) for c in bg)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = bgc
    cv2.rectangle(img, (1, 1), (w - 2, h - 2), (20, 20, 20), int(rng.integers(2, 5)))
    # Older plates (and the pre-EU Czech/Slovak ones above) have no blue band.
    if rng.random() < (0.6 if "#" in display and country != "D" else 0.1):
        band_w = int(h * 0.08)
    else:
        band_w = int(h * rng.uniform(0.36, 0.42))
        _draw_band(img, band_w, country, rng)

    # Draw each token into a text strip, then fit the strip to the free area: real plates
    # differ mostly in how condensed the glyphs are, which this stretch reproduces.
    size = 96
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
            if tok == "-":
                mask = mask.copy()
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

    th = int(h * rng.uniform(0.62, 0.76))
    avail = w - band_w - int(h * 0.2)
    tw = int(strip.shape[1] * th / strip.shape[0] * rng.uniform(0.8, 1.1))
    tw = min(tw, avail)
    strip = cv2.resize(strip, (tw, th), interpolation=cv2.INTER_AREA)
    ink = np.array([int(rng.integers(0, 50))] * 3, np.uint8)
    x0 = band_w + (w - band_w - tw) // 2 + int(rng.integers(-4, 5))
    y0 = (h - th) // 2 + int(rng.integers(-3, 4))
    roi = img[y0 : y0 + th, x0 : x0 + tw]
    # Paste by multiplying: white strip pixels keep the plate colour, black ones take the ink.
    a = strip.astype(np.float32) / 255.0
    roi[:] = (roi * a + ink * (1.0 - a)).astype(np.uint8)
    if rng.random() < 0.04:
        # A few plates (old Austrian, some special series) are light text on dark.
        img = 255 - img
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
) -> np.ndarray:
    """A grey OCR_H x OCR_W crop of the plate at ``quad`` (TL, TR, BR, BL) in ``img``.

    ``margin`` is (min, max) of the extra border as a fraction of plate width for x and of
    plate height for y, the way a detector box is sometimes tight, sometimes loose, and
    ``persp`` moves each corner to mimic an unrectified oblique view.
    """
    mx = rng.uniform(margin[0], margin[1], 2) * OCR_W
    my = rng.uniform(margin[2], margin[3], 2) * OCR_H
    # Destination of the plate corners inside the output: the plate shrinks by the margins.
    dst = np.array(
        [[mx[0], my[0]], [OCR_W - mx[1], my[0]], [OCR_W - mx[1], OCR_H - my[1]], [mx[0], OCR_H - my[1]]],
        np.float32,
    )
    dst += rng.normal(0, persp, (4, 2)).astype(np.float32) * np.array([OCR_W, OCR_H], np.float32) * 0.5
    rot = rng.normal(0, 2.0)
    c = dst.mean(axis=0)
    r = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), rot, 1.0)
    dst = (np.hstack([dst, np.ones((4, 1), np.float32)]) @ r.T).astype(np.float32)

    grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    # Low-resolution sources are the norm on the pole (dev plates are 16-33 px tall):
    # shrink the source first so the warp sees the same poverty of detail.
    if rng.random() < 0.5:
        plate_h = float(np.linalg.norm(quad[3] - quad[0]))
        target = rng.uniform(12, 40)
        if plate_h > target:
            s = target / plate_h
            grey = cv2.resize(grey, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            quad = quad * s
    m = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
    border = cv2.BORDER_REPLICATE if rng.random() < 0.7 else cv2.BORDER_REFLECT
    out = cv2.warpPerspective(grey, m, (OCR_W, OCR_H), flags=cv2.INTER_LINEAR, borderMode=border)
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
        g = np.linspace(rng.uniform(-50, 50), rng.uniform(-50, 50), OCR_W, dtype=np.float32)
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

    mod = _plate_render()
    text = mod.random_italian_plate(random.Random(int(rng.integers(1 << 31))))
    return mod.render_plate(text), text


@lru_cache(maxsize=1)
def _plate_render() -> ModuleType:
    # Loaded by path: importing the edge_agent package would pull the daemon's runtime
    # dependencies (pydantic, MQTT) into the training environment.
    path = Path(__file__).resolve().parents[1] / "edge_agent" / "sources" / "plate_render.py"
    spec = importlib.util.spec_from_file_location("_plate_render", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _preview(path: str) -> None:
    rng = np.random.default_rng(0)
    tiles = []
    makers: list[Callable[[np.random.Generator], tuple[np.ndarray, str]]] = [render_eu_plate] * 5 + [demo_plate]
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
