#!/usr/bin/env python3
# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Trains the plate detector shipped as ``edge_agent/models/plate_detector.tflite``.

A small CenterNet-style network: one grey 320x320 letterboxed image in, a stride-4 grid out with a
plate-centre heatmap (logit) and, per cell, the centre offset and log plate size. The network is
fully convolutional, so it trains on 256x256 crops (faster) and runs at 320x320.

Training data is synthesised on the fly from ``../shared/datasets`` (never ``eu-plates-dev``):
- real US/BR/PL photos with boxes, re-scaled so plates cover the sizes seen at inference, with the
  plate sometimes swapped for a real European plate crop (EU look, real car context);
- European plate crops and rendered demo plates pasted with perspective onto road backgrounds;
- demo-like frames (rendered Italian plates on plain/flat "cars") so the daemon's demo works;
- plain backgrounds with no plate as hard negatives.

An int8 TFLite model (and its float twin) is exported after every epoch, so stopping early always
leaves a working model. ``--resume`` continues from the last epoch checkpoint.

    python scripts/train_detector.py --epochs 16 --out edge_agent/models/plate_detector.tflite
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import random
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]


sys.path.insert(0, str(REPO / "scripts"))
import agent_module  # noqa: E402  (edge_agent modules by file path: no daemon deps in the training venv)
import image_pack  # noqa: E402  (the packs that travel to a lent GPU)
from splits import held_out  # noqa: E402  (scripts/splits.py: one home for the validation split)

_pr = agent_module.load("edge_agent/sources/plate_render.py")
box_iou = agent_module.load("edge_agent/core/boxes.py").box_iou

random_italian_plate = _pr.random_italian_plate
render_plate = _pr.render_plate

INPUT = 320  # inference size (letterbox of the long side)
TRAIN = 256  # training crop size; the net is fully convolutional
STRIDE = 4
TEXT_SHARE = 0.2  # samples that also get non-plate text (``text_overlay``); added after v3, which had none
# Pack sizes (``Pools.save_pack``): what keeps the pack small enough to travel with a GPU call.
PACK_SIDE, PACK_PLATE, PACK_BG, PACK_CROP = 960, 100, 384, 200
Box = tuple[float, float, float, float]  # x, y, w, h


def datasets_dir() -> Path:
    env = os.environ.get("EDGE_AGENT_DATASETS")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


# ----------------------------------------------------------------------------- data loading


def load_annotated(folder: Path, validation: bool = False) -> list[tuple[np.ndarray, list[Box]]]:
    """Grey images with their plate boxes (one or more lines per NAME.txt): the training part of the
    folder, or with ``validation`` its held-out part (``scripts/splits.py``)."""
    out: list[tuple[np.ndarray, list[Box]]] = []
    for txt in sorted(folder.glob("*.txt")):
        if held_out(folder.name, txt.with_suffix(".jpg").name) != validation:
            continue
        boxes: list[Box] = []
        name = ""
        for line in txt.read_text().splitlines():
            f = line.split("\t")
            if len(f) < 5:
                continue
            name = f[0]
            boxes.append((float(f[1]), float(f[2]), float(f[3]), float(f[4])))
        img = cv2.imread(str(folder / name), cv2.IMREAD_GRAYSCALE) if name else None
        if img is not None and boxes:
            out.append((img, boxes))
    return out


def letterbox(grey: np.ndarray) -> np.ndarray:
    """The detector's input for a grey frame, as the reader makes it: the long side scaled to ``INPUT``,
    placed top-left on a black square."""
    s = INPUT / max(grey.shape[:2])
    small = cv2.resize(grey, (max(1, round(grey.shape[1] * s)), max(1, round(grey.shape[0] * s))),
                       interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.zeros((INPUT, INPUT), np.uint8)
    out[: small.shape[0], : small.shape[1]] = small
    return out


def load_images(folder: Path, pattern: str, max_side: int = 0, keep: Any = None) -> list[np.ndarray]:
    out = []
    for p in sorted(folder.glob(pattern)):
        if keep is not None and not keep(p.name):
            continue
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if img is None:
            continue
        if max_side and max(img.shape) > max_side:
            s = max_side / max(img.shape)
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        out.append(img)
    return out


class Pools:
    """The training images in memory: photos with boxes, backgrounds, plate crops. ``root`` is the
    datasets folder, or a pack written by ``save_pack`` (one file that travels to a lent GPU)."""

    def __init__(self, root: Path) -> None:
        if root.is_file():
            self._load_pack(root)
            return
        # eu-plates-dev sits beside these folders and is deliberately never read here.
        self.photos = (
            load_annotated(root / "plates-us-train")
            + load_annotated(root / "plates-br-train")
            + load_annotated(root / "plates-pl-boxes")
            + load_annotated(root / "plates-ro-boxes")
            + load_annotated(root / "plates-tr-boxes")
        )
        self.backgrounds = load_images(root / "backgrounds", "*.jpg", 640)
        crops = [c for folder in ("eu-plate-crops", "eu-plate-crops-2")
                 for c in load_images(root / folder, "*", keep=lambda n, f=folder: not held_out(f, n))]
        # Real plates cut from the training photos add US/BR looks to the paste pool.
        for img, boxes in self.photos:
            for x, y, w, h in boxes:
                c = img[int(y) : int(y + h), int(x) : int(x + w)]
                if c.size and w >= 40:
                    crops.append(c.copy())
        self.crops = crops
        self._report()

    def _report(self) -> None:
        print(
            f"data: {len(self.photos)} photos, {len(self.backgrounds)} backgrounds, {len(self.crops)} crops",
            flush=True,
        )

    def save_pack(self, path: Path) -> None:
        """All pools as grey JPEGs in one ``.npz`` (``image_pack``). Photos are shrunk so their widest
        plate is at most ``PACK_PLATE`` px (training draws plates 10-170 px wide, so at most a mild
        upscale) and their long side at most ``PACK_SIDE``; backgrounds to ``PACK_BG``; crops to
        ``PACK_CROP`` wide. JPEG qualities 72/65/85 (training adds JPEG q30-80 itself to some samples)."""
        photos: list[bytes] = []
        boxes: list[tuple[int, float, float, float, float]] = []
        for i, (img, bs) in enumerate(self.photos):
            s = min(1.0, PACK_SIDE / max(img.shape), PACK_PLATE / max(b[2] for b in bs))
            photos.append(image_pack.jpeg(img, 72, s))
            boxes.extend((i, x * s, y * s, w * s, h * s) for x, y, w, h in bs)
        arrays: dict[str, np.ndarray] = {"boxes": np.array(boxes, np.float32)}
        image_pack.put(arrays, "photo", photos)
        image_pack.put(arrays, "bg", [image_pack.jpeg(b, 65, PACK_BG / max(b.shape)) for b in self.backgrounds])
        image_pack.put(arrays, "crop", [image_pack.jpeg(c, 85, PACK_CROP / c.shape[1]) for c in self.crops])
        np.savez(path, **arrays)

    def _load_pack(self, path: Path) -> None:
        z = np.load(path)
        photos = image_pack.get(z, "photo", cv2.IMREAD_GRAYSCALE)
        per: list[list[Box]] = [[] for _ in photos]
        for i, x, y, w, h in z["boxes"]:
            per[int(i)].append((float(x), float(y), float(w), float(h)))
        self.photos = list(zip(photos, per, strict=True))
        self.backgrounds = image_pack.get(z, "bg", cv2.IMREAD_GRAYSCALE)
        self.crops = image_pack.get(z, "crop", cv2.IMREAD_GRAYSCALE)
        self._report()


# ----------------------------------------------------------------------------- synthesis


def log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def target_plate_width(rng: random.Random) -> float:
    # At inference (long side -> 320) dev plates are ~40-130 px wide and demo plates ~25-50 px; a
    # pole's 25 px plates in a 1280 px frame and photos of distant cars give 8-15 px. Train wider
    # than that on both ends.
    return log_uniform(rng, 10, 170)


def photometric(img: np.ndarray, rng: random.Random) -> np.ndarray:
    f = img.astype(np.float32)
    gamma = log_uniform(rng, 0.6, 1.6)
    f = 255.0 * (f / 255.0) ** gamma
    f = f * rng.uniform(0.6, 1.3) + rng.uniform(-30, 30)
    if rng.random() < 0.3:
        k = rng.choice([3, 5])
        f = np.asarray(cv2.GaussianBlur(f, (k, k), 0), np.float32)
    if rng.random() < 0.4:
        f += np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(2, 10), f.shape).astype(
            np.float32
        )
    if rng.random() < 0.15:
        # Motion blur along the lane: a moving car at a pole's shutter speed.
        k = rng.choice([3, 5, 7, 9])
        ker = np.zeros((k, k), np.float32)
        ker[k // 2, :] = 1.0 / k
        m = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(-30, 30), 1.0)
        ker = cv2.warpAffine(ker, m, (k, k))
        f = np.asarray(cv2.filter2D(f, -1, ker / max(float(ker.sum()), 1e-6)), np.float32)
    if rng.random() < 0.15:
        # Night/IR: dark scene, bright retro-reflective plates bloom, a headlight's glare.
        f = f * rng.uniform(0.25, 0.6)
        bright = np.where(f > np.percentile(f, 97), f, 0).astype(np.float32)
        f = f + 1.5 * np.asarray(cv2.GaussianBlur(bright, (0, 0), rng.uniform(1.5, 4)), np.float32)
        if rng.random() < 0.5:
            gx, gy = rng.uniform(0, f.shape[1]), rng.uniform(0, f.shape[0])
            yy, xx = np.mgrid[0 : f.shape[0], 0 : f.shape[1]].astype(np.float32)
            r2 = ((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * rng.uniform(5, 30) ** 2)
            f = f + rng.uniform(100, 255) * np.exp(-r2)
    out = np.clip(f, 0, 255).astype(np.uint8)
    if rng.random() < 0.15:
        ok, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(30, 80)])
        if ok:
            out = np.asarray(cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE), np.uint8)
    return out


def warp_boxes(m: np.ndarray, boxes: list[Box], size: int) -> list[Box]:
    """Boxes through an affine (2x3) or perspective (3x3) map, as the axis-aligned box of the corners."""
    out: list[Box] = []
    for x, y, w, h in boxes:
        pts = np.array([[x, y, 1], [x + w, y, 1], [x, y + h, 1], [x + w, y + h, 1]], np.float32)
        q = pts @ m.T
        if m.shape[0] == 3:
            q = q[:, :2] / q[:, 2:3]
        x0, y0 = q[:, 0].min(), q[:, 1].min()
        x1, y1 = q[:, 0].max(), q[:, 1].max()
        # Keep plates that are mostly inside the crop; clip their box to it.
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        if (cx1 - cx0) * (cy1 - cy0) < 0.6 * (x1 - x0) * (y1 - y0):
            out.append((cx0, cy0, -(cx1 - cx0), cy1 - cy0))  # negative width: "ignore" region
            continue
        out.append((float(cx0), float(cy0), float(cx1 - cx0), float(cy1 - cy0)))
    return out


ROLL_DEG = 25.0  # added after v3: a tilted hand-held photo or camera; v3 saw +-5 deg on 30% of the photos


def roll_deg(rng: random.Random) -> float:
    """In-plane rotation of a sample: mostly level (a pole's camera), a fifth tilted up to ``ROLL_DEG``.
    v3 read a third of the held-out plates turned by 20 deg (``plate_detector.md``)."""
    u = rng.random()
    return rng.uniform(-5, 5) if u < 0.3 else rng.uniform(-ROLL_DEG, ROLL_DEG) if u < 0.5 else 0.0


def affine_for(rng: random.Random, scale: float, anchor: tuple[float, float], dst: tuple[float, float]) -> np.ndarray:
    """Scale+rotate about ``anchor`` (source px) and move it to ``dst`` (crop px)."""
    ang = roll_deg(rng)
    m = cv2.getRotationMatrix2D(anchor, ang, scale)
    if rng.random() < 0.3:
        m[0, 1] += rng.uniform(-0.08, 0.08) * scale  # mild shear: plates seen from the side
    # Aspect jitter: dev photos are not all square-pixel after re-encoding.
    m[1] *= rng.uniform(0.9, 1.1)
    m[0, 2] += dst[0] - (m[0, 0] * anchor[0] + m[0, 1] * anchor[1] + m[0, 2])
    m[1, 2] += dst[1] - (m[1, 0] * anchor[0] + m[1, 1] * anchor[1] + m[1, 2])
    return m


def plane_view(rng: random.Random, centre: tuple[float, float]) -> np.ndarray:
    """A homography that shows the plane around ``centre`` as a pole camera sees it: turned about the
    vertical axis (the car in another lane, yaw up to +-45 deg) and seen from above (pitch), with a
    perspective taper. Identity-like for a third of the samples (frontal dev-like photos)."""
    if rng.random() < 0.33:
        return np.eye(3, dtype=np.float32)
    yaw = math.radians(rng.uniform(-45, 45) if rng.random() < 0.6 else rng.uniform(-15, 15))
    pitch = math.radians(rng.uniform(0, 30) if rng.random() < 0.5 else rng.uniform(-5, 10))
    ry = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    rx = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
    r = ry @ rx
    half = TRAIN / 4
    f = half * rng.uniform(1.5, 5.0)  # camera distance: short gives a strong taper
    cx, cy = centre
    src = np.array([[-half, -half], [half, -half], [half, half], [-half, half]], np.float32)
    dst = []
    for dx, dy in src:
        x, y, z = r @ np.array([dx, dy, 0.0]) + np.array([0.0, 0.0, f])
        dst.append((cx + f * x / z, cy + f * y / z))
    return np.asarray(
        cv2.getPerspectiveTransform(src + np.array([cx, cy], np.float32), np.array(dst, np.float32)), np.float32
    )


def fill_value(rng: random.Random) -> int:
    # Inference pads the letterbox with 0; sometimes train with other fills too.
    return 0 if rng.random() < 0.7 else rng.randint(0, 255)


def sample_photo(p: Pools, rng: random.Random) -> tuple[np.ndarray, list[Box]]:
    img, boxes = rng.choice(p.photos)
    img = img.copy()
    if rng.random() < 0.4:
        img, boxes = swap_plates(img, boxes, p, rng)
    bx, by, bw, bh = rng.choice(boxes)
    s = target_plate_width(rng) / bw
    if rng.random() < 0.25:
        # Whole photo letterboxed as at inference.
        s = TRAIN / max(img.shape)
        m = np.array([[s, 0, 0], [0, s, 0]], np.float32)
        m[0, 2] = rng.uniform(0, TRAIN - img.shape[1] * s)
        m[1, 2] = rng.uniform(0, TRAIN - img.shape[0] * s)
    else:
        dst = (rng.uniform(0.1, 0.9) * TRAIN, rng.uniform(0.1, 0.9) * TRAIN)
        m = affine_for(rng, s, (bx + bw / 2, by + bh / 2), dst)
        # The photo's plane turned as a pole sees it, about the chosen plate.
        m = plane_view(rng, dst) @ np.vstack([m, [0, 0, 1]]).astype(np.float32)
        out = cv2.warpPerspective(img, m, (TRAIN, TRAIN), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=fill_value(rng))
        return out, warp_boxes(m, boxes, TRAIN)
    out = cv2.warpAffine(img, m, (TRAIN, TRAIN), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=fill_value(rng))
    return out, warp_boxes(m, boxes, TRAIN)


def swap_plates(img: np.ndarray, boxes: list[Box], p: Pools, rng: random.Random) -> tuple[np.ndarray, list[Box]]:
    """Cover each plate with a European crop of the same width (real car context, EU look)."""
    new: list[Box] = []
    for x, y, w, h in boxes:
        crop = rng.choice(p.crops)
        ch = w * crop.shape[0] / crop.shape[1]
        if ch < h * 0.9:
            # The EU plate is flatter: blank the old plate with the car colour around it first.
            y0, y1 = int(max(y - 2, 0)), int(min(y + h + 2, img.shape[0]))
            x0, x1 = int(max(x - 2, 0)), int(min(x + w + 2, img.shape[1]))
            ring = np.concatenate([img[max(y0 - 3, 0) : y0, x0:x1].ravel(), img[y1 : y1 + 3, x0:x1].ravel()])
            img[y0:y1, x0:x1] = int(np.median(ring)) if ring.size else 90
        cy = y + h / 2
        nb = (x, cy - ch / 2, w, ch)
        paste(img, crop, nb, rng, jitter=0.02)
        new.append(nb)
    return img, new


def paste(dst: np.ndarray, plate: np.ndarray, box: Box, rng: random.Random, jitter: float = 0.06,
          view: bool = False) -> Box:
    """Warp ``plate`` onto the quad around ``box`` with some perspective; returns its bounding box."""
    x, y, w, h = box
    quad = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)
    # Corner jitter relative to each side: jitter in y relative to the width made boxes ~30% taller
    # than tight annotations of level plates (the dev set's kind).
    quad += np.array([[rng.uniform(-jitter, jitter) * w, rng.uniform(-jitter, jitter) * 1.5 * h] for _ in range(4)],
                     np.float32)
    if rng.random() < 0.5:
        # Camera above/aside: one side taller than the other.
        d = rng.uniform(-0.08, 0.08) * h
        quad[1, 1] -= d
        quad[2, 1] += d
    ang = math.radians(roll_deg(rng))
    if ang:
        c = quad.mean(axis=0)
        rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]], np.float32)
        quad = np.asarray((quad - c) @ rot.T + c, np.float32)
    if view:
        v = plane_view(rng, (x + w / 2, y + h / 2))
        q = np.hstack([quad, np.ones((4, 1), np.float32)]) @ v.T
        quad = np.asarray(q[:, :2] / q[:, 2:3], np.float32)
    ph, pw = plate.shape[:2]
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    m = cv2.getPerspectiveTransform(src, quad)
    g = plate if plate.ndim == 2 else cv2.cvtColor(plate, cv2.COLOR_BGR2GRAY)
    g = cv2.convertScaleAbs(g, alpha=rng.uniform(0.6, 1.2), beta=rng.uniform(-40, 20))
    H, W = dst.shape
    warped = cv2.warpPerspective(g, m, (W, H), flags=cv2.INTER_AREA if w < pw else cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), m, (W, H))
    np.copyto(dst, warped, where=mask > 127)
    x0, y0 = quad.min(axis=0)
    x1, y1 = quad.max(axis=0)
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def random_scene(p: Pools, rng: random.Random) -> np.ndarray:
    bg = rng.choice(p.backgrounds)
    s = rng.uniform(TRAIN / min(bg.shape), 2.0 * TRAIN / min(bg.shape))
    m = np.array([[s, 0, 0], [0, s, 0]], np.float32)
    m[0, 2] = -rng.uniform(0, max(bg.shape[1] * s - TRAIN, 0))
    m[1, 2] = -rng.uniform(0, max(bg.shape[0] * s - TRAIN, 0))
    if rng.random() < 0.5:
        m[0, 0] = -s  # mirror
        m[0, 2] = TRAIN - m[0, 2]
    return cv2.warpAffine(bg, m, (TRAIN, TRAIN), borderMode=cv2.BORDER_REFLECT)


def sample_pasted(p: Pools, rng: random.Random, demo: bool) -> tuple[np.ndarray, list[Box]]:
    if demo:
        # The daemon's demo scene: plain frame, car-like blocks, rendered Italian plates.
        img = np.full((TRAIN, TRAIN), rng.randint(40, 220), np.uint8)
        if rng.random() < 0.5:
            img = random_scene(p, rng) // 2 + np.uint8(rng.randint(0, 100))
    else:
        img = random_scene(p, rng)
    boxes: list[Box] = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        use_demo = demo or rng.random() < 0.12
        r = rng.random()
        if use_demo:
            plate = render_plate(random_italian_plate(rng))
        elif r < 0.15:
            plate = two_row_plate(rng)
        elif r < 0.3:
            plate = render_plate(band_plate_text(rng))  # IT/FR look: blue bands at both ends
        else:
            plate = rng.choice(p.crops)
        w = target_plate_width(rng)
        h = w * plate.shape[0] / plate.shape[1] * rng.uniform(0.85, 1.15)
        x, y = rng.uniform(-0.05 * w, TRAIN - 0.95 * w), rng.uniform(0, TRAIN - h)
        if any(box_iou((x, y, w, h), b) > 0 or _near((x, y, w, h), b) for b in boxes):
            continue
        if demo and rng.random() < 0.8:
            # A car body around the plate.
            cw, chh = w * rng.uniform(2.5, 4), w * rng.uniform(1.2, 2.5)
            cx0, cy0 = int(x + w / 2 - cw / 2), int(y + h / 2 - chh * rng.uniform(0.5, 0.8))
            cv2.rectangle(img, (cx0, cy0), (int(cx0 + cw), int(cy0 + chh)), rng.randint(20, 230), -1)
        boxes.append(paste(img, plate, (x, y, w, h), rng, view=not demo))
    return img, warp_boxes(np.array([[1, 0, 0], [0, 1, 0]], np.float32), boxes, TRAIN)


def band_plate_text(rng: random.Random) -> str:
    """AA123AA with every letter (French plates use Q, W...; Italian ones not I O Q U)."""
    L = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "".join(rng.choice(L) for _ in range(2)) + str(rng.randint(0, 999)).zfill(3) + "".join(
        rng.choice(L) for _ in range(2))


def two_row_plate(rng: random.Random) -> np.ndarray:
    """A square-ish two-row plate (Italian motorcycle AB / 12345, moped, EU square plates)."""
    w = rng.randint(150, 220)
    h = int(w * rng.uniform(0.65, 1.2))
    img = np.full((h, w, 3), rng.randint(200, 250), np.uint8)
    cv2.rectangle(img, (1, 1), (w - 2, h - 2), (20, 20, 20), 3)
    band = rng.random() < 0.6
    x0 = int(w * 0.16) if band else 10
    if band:
        cv2.rectangle(img, (3, 3), (x0, h // 2 if rng.random() < 0.5 else h - 4), (153, 51, 0), -1)
    L, D = "ABCDEFGHJKLMNPRSTVWXYZ", "0123456789"
    top = "".join(rng.choice(L) for _ in range(rng.choice([2, 2, 3])))
    bottom = "".join(rng.choice(D) for _ in range(rng.choice([3, 4, 5])))
    for row, text in ((0, top), (1, bottom)):
        font = cv2.FONT_HERSHEY_DUPLEX
        (tw, th), _ = cv2.getTextSize(text, font, 1.0, 2)
        scale = min((w - x0 - 12) / tw, (h * 0.36) / th)
        (tw, th), _ = cv2.getTextSize(text, font, scale, max(2, int(scale * 2.5)))
        y = int(h * (0.44 if row == 0 else 0.88))
        cv2.putText(img, text, (x0 + (w - x0 - tw) // 2, y), font, scale, (15, 15, 15), max(2, int(scale * 2.5)),
                    cv2.LINE_AA)
    return img


def _near(a: Box, b: Box) -> bool:
    return abs((a[0] + a[2] / 2) - (b[0] + b[2] / 2)) < (a[2] + b[2]) / 2 + 4 and abs(
        (a[1] + a[3] / 2) - (b[1] + b[3] / 2)
    ) < (a[3] + b[3]) / 2 + 4


_WORDS = ("otomoto", "Sprzedajemy", "Jeep", "Fiat", "Panda", "Via Roma", "Autoscuola", "Farmacia", "Noleggio",
          "Volkswagen", "diesel", "Sport", "Polizia Locale", "Comune di", "Taxi", "Hybrid", "ingresso", "uscita")
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
          cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX)


def text_overlay(img: np.ndarray, boxes: list[Box], rng: random.Random) -> None:
    """Text that is not a plate, drawn away from the plates: a camera's date/time overlay (a pole's own
    frames carry one), mixed-case words, badges and listing watermarks in other typefaces. The detector
    found such text as plates (watermarks, a Jeep badge, a timestamp on the held-out photos)."""
    for _ in range(rng.choice([1, 1, 2, 3])):
        kind = rng.random()
        if kind < 0.4:
            fmt = rng.choice(["{y}-{m:02d}-{d:02d} {H:02d}:{M:02d}:{S:02d}", "{H:02d}:{M:02d}:{S:02d}",
                              "{d:02d}/{m:02d}/{y} {H:02d}:{M:02d}:{S:02d}", "{d:02d}-{m:02d}-{y}"])
            text = fmt.format(y=rng.randint(2015, 2030), m=rng.randint(1, 12), d=rng.randint(1, 28),
                              H=rng.randint(0, 23), M=rng.randint(0, 59), S=rng.randint(0, 59))
            font = rng.choice(_FONTS[:2])
        else:
            text = rng.choice(_WORDS)
            text = text.lower() if rng.random() < 0.3 else text
            font = rng.choice(_FONTS) | (cv2.FONT_ITALIC if rng.random() < 0.3 else 0)
        h = log_uniform(rng, 6, 36)
        scale = h / max(cv2.getTextSize(text, font, 1.0, 1)[0][1], 1)
        thick = max(1, round(scale * rng.uniform(1.0, 2.5)))
        outline = rng.random() < 0.5  # an on-screen display: light text with a dark outline
        # Measured as drawn: some Hershey faces are wider at a thicker stroke.
        (tw, th), base = cv2.getTextSize(text, font, scale, thick + 2 if outline else thick)
        if tw >= TRAIN - 4:
            continue
        x = rng.uniform(0, TRAIN - tw)
        y = rng.uniform(th + 2, TRAIN - 2) if rng.random() < 0.6 else rng.choice([th + 4, TRAIN - 4.0])
        pad = thick + 3  # the stroke and anti-aliasing around the glyphs' box
        region = (x - pad, y - th - pad, tw + 2 * pad, th + base + 2 * pad)
        if any(box_iou(region, b) > 0 or _near(region, b) for b in boxes if b[2] > 0):
            continue
        org = (int(x), int(y))
        if outline:
            cv2.putText(img, text, org, font, scale, 0, thick + 2, cv2.LINE_AA)
        cv2.putText(img, text, org, font, scale, rng.choice([rng.randint(0, 60), rng.randint(170, 255)]), thick,
                    cv2.LINE_AA)


def sample(p: Pools, rng: random.Random) -> tuple[np.ndarray, list[Box]]:
    r = rng.random()
    if r < 0.5:
        img, boxes = sample_photo(p, rng)
    elif r < 0.8:
        img, boxes = sample_pasted(p, rng, demo=False)
    elif r < 0.9:
        img, boxes = sample_pasted(p, rng, demo=True)
    else:
        img, boxes = random_scene(p, rng), []
    if rng.random() < TEXT_SHARE:
        text_overlay(img, boxes, rng)
    return photometric(img, rng), boxes


def encode_targets(boxes: list[Box], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heatmap (g, g), regression target (g, g, 4) and its mask (g, g); g = size / STRIDE.

    A negative box width marks a plate cut by the crop edge: its area is ignored (heatmap weight 0)
    rather than taught as background.
    """
    g = size // STRIDE
    hm = np.zeros((g, g), np.float32)
    reg = np.zeros((g, g, 4), np.float32)
    mask = np.zeros((g, g), np.float32)
    ignore = np.zeros((g, g), bool)
    ys, xs = np.mgrid[0:g, 0:g].astype(np.float32)
    for x, y, w, h in boxes:
        if w < 0:
            w = -w
            ignore[int(y / STRIDE) : int((y + h) / STRIDE) + 1, int(x / STRIDE) : int((x + w) / STRIDE) + 1] = True
            continue
        if w < 6 or h < 3:
            # Too small to teach a box, but it is a plate: not background either.
            ignore[int(y / STRIDE) : int((y + h) / STRIDE) + 1, int(x / STRIDE) : int((x + w) / STRIDE) + 1] = True
            continue
        cx, cy = (x + w / 2) / STRIDE, (y + h / 2) / STRIDE
        ix, iy = min(int(cx), g - 1), min(int(cy), g - 1)
        sx, sy = max(w / STRIDE / 6, 0.7), max(h / STRIDE / 6, 0.5)
        gauss = np.exp(-((xs - ix) ** 2) / (2 * sx * sx) - ((ys - iy) ** 2) / (2 * sy * sy))
        np.maximum(hm, gauss, out=hm)
        hm[iy, ix] = 1.0
        # Size/offset are taught at the peak and its 3x3 neighbours (more signal, same answer).
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                jx, jy = ix + dx, iy + dy
                if 0 <= jx < g and 0 <= jy < g and ((dx == 0 and dy == 0) or mask[jy, jx] == 0):
                    reg[jy, jx] = (cx - jx, cy - jy, math.log(w / STRIDE), math.log(h / STRIDE))
                    mask[jy, jx] = 1.0 if dx == 0 and dy == 0 else 0.5
    hm[ignore & (hm < 1)] = -1.0  # marker: excluded from the loss
    return hm, reg, mask


def batches(p: Pools, batch: int, seed: int) -> Iterator[tuple[np.ndarray, ...]]:
    rng = random.Random(seed)
    while True:
        x = np.empty((batch, TRAIN, TRAIN, 1), np.float32)
        hm = np.empty((batch, TRAIN // STRIDE, TRAIN // STRIDE), np.float32)
        reg = np.empty((batch, TRAIN // STRIDE, TRAIN // STRIDE, 4), np.float32)
        mask = np.empty((batch, TRAIN // STRIDE, TRAIN // STRIDE), np.float32)
        for i in range(batch):
            img, boxes = sample(p, rng)
            x[i, :, :, 0] = img
            hm[i], reg[i], mask[i] = encode_targets(boxes, TRAIN)
        yield x, hm, reg, mask


def background_batches(p: Pools, batch: int, seed: int, workers: int) -> queue.Queue[tuple[np.ndarray, ...]]:
    # OpenCV releases the GIL, so a couple of threads keep the single TF thread fed.
    q: queue.Queue[tuple[np.ndarray, ...]] = queue.Queue(maxsize=6)

    def run(s: int) -> None:
        for b in batches(p, batch, s):
            q.put(b)

    for w in range(workers):
        threading.Thread(target=run, args=(seed * 100 + w,), daemon=True).start()
    return q


# ----------------------------------------------------------------------------- model


def build_model(size: int | None = None) -> Any:
    """The detector. With a fixed ``size`` (export), 2x upsampling is a nearest-neighbour resize:
    the same values as Keras' repeat-based UpSampling2D, but one RESIZE_NEAREST_NEIGHBOR op in
    TFLite (XNNPACK-delegated, int8) instead of RESHAPE/TILE chains that fall back to the CPU.
    """
    import keras
    from keras import layers

    def up(x: Any) -> Any:
        if size is None:
            return layers.UpSampling2D(2)(x)
        return layers.Resizing(int(x.shape[1]) * 2, int(x.shape[2]) * 2, interpolation="nearest")(x)

    def cbr(x: Any, c: int, k: int = 3, s: int = 1) -> Any:
        x = layers.Conv2D(c, k, s, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU(6.0)(x)

    def dw(x: Any, c: int, s: int = 1, d: int = 1) -> Any:
        inp = x
        x = layers.DepthwiseConv2D(3, s, padding="same", dilation_rate=d, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU(6.0)(x)
        x = layers.Conv2D(c, 1, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        if s == 1 and inp.shape[-1] == c:
            return layers.Add()([inp, x])
        return layers.ReLU(6.0)(x)

    inp = keras.Input((size, size, 1), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    x = cbr(x, 16, 3, 2)  # /2
    x = dw(x, 24, 2)  # /4
    c2 = dw(x, 24)
    x = dw(c2, 48, 2)  # /8
    x = dw(x, 48)
    c3 = dw(x, 48)
    x = dw(c3, 80, 2)  # /16
    x = dw(x, 80)
    c4 = dw(x, 80, d=2)
    x = dw(c4, 128, 2)  # /32: receptive field for the largest plates
    x = dw(x, 128)
    c5 = dw(x, 128, d=2)
    # Light FPN back down to stride 4.
    p = cbr(c5, 64, 1)
    p = layers.Add()([up(p), cbr(c4, 64, 1)])
    p = dw(p, 64)
    p = cbr(p, 48, 1)
    p = layers.Add()([up(p), cbr(c3, 48, 1)])
    p = dw(p, 48)
    p = cbr(p, 32, 1)
    p = layers.Add()([up(p), cbr(c2, 32, 1)])
    p = dw(p, 32)
    h = dw(p, 32)
    heat = layers.Conv2D(
        1, 1, name="heatmap", bias_initializer=keras.initializers.Constant(-2.19)
    )(h)
    r = dw(p, 32)
    reg = layers.Conv2D(4, 1, name="boxreg")(r)
    return keras.Model(inp, [heat, reg], name="plate_detector")


# ----------------------------------------------------------------------------- training


def loss_parts(hm: Any, reg: Any, mask: Any, logit: Any, pr: Any) -> tuple[Any, Any, Any]:
    """CenterNet's penalty-reduced focal loss on the heatmap (per positive) and L1 on offset and log
    size at the taught cells; in ``keras.ops``, so the TF loop here and ``train_detector_fit.py``
    (any Keras backend) train the same thing. The full loss is ``focal + off + 2 * size``."""
    from keras import ops

    valid = ops.cast(hm >= 0, "float32")
    t = ops.maximum(hm, 0.0)
    pos = ops.cast(t >= 1.0, "float32")
    p = ops.sigmoid(logit)
    pos_l = -ops.log_sigmoid(logit) * ops.square(1 - p) * pos
    neg_l = -ops.log_sigmoid(-logit) * ops.square(p) * ops.power(1 - t, 4) * (1 - pos) * valid
    npos = ops.maximum(ops.sum(pos), 1.0)
    focal = (ops.sum(pos_l) + ops.sum(neg_l)) / npos
    m = mask[..., None]
    msum = ops.maximum(ops.sum(mask), 1.0)
    off = ops.sum(ops.abs(pr[..., :2] - reg[..., :2]) * m) / msum
    siz = ops.sum(ops.abs(pr[..., 2:] - reg[..., 2:]) * m) / msum
    return focal, off, siz


def export_tflite(trained: Any, p: Pools, out: Path, float_out: Path, calib_seed: int = 123,
                  calib: str = "samples") -> None:
    """The float, fp16 and int8 models. ``calib_seed`` draws the int8 calibration samples: another seed
    gives another rounding of the same weights, which moves the held-out figures by several plates
    (``plate_detector.md``), so candidates are compared over several seeds."""
    import tensorflow as tf

    model = build_model(INPUT)
    model.set_weights(trained.get_weights())

    @tf.function(input_signature=[tf.TensorSpec([1, INPUT, INPUT, 1], tf.float32)])  # type: ignore[untyped-decorator]
    def serve(x: Any) -> Any:
        heat, reg = model(x, training=False)
        return {"heatmap": heat, "boxreg": reg}

    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    # Frozen, so the int8 calibrator sees constants rather than resource variables.
    conc = convert_variables_to_constants_v2(serve.get_concrete_function())
    conv = tf.lite.TFLiteConverter.from_concrete_functions([conc])
    float_out.write_bytes(conv.convert())
    # float16 weights: half the size of float32, run as float32 by XNNPACK.
    conv = tf.lite.TFLiteConverter.from_concrete_functions([conc])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    float_out.with_name(float_out.stem.replace("_float", "") + "_fp16.tflite").write_bytes(conv.convert())

    rng = random.Random(calib_seed)

    def rep() -> Iterator[list[np.ndarray]]:
        for _ in range(120):
            if calib == "photos":
                big = letterbox(p.photos[rng.randrange(len(p.photos))][0])
            else:
                # Training samples (photos and scenes) in the letterbox canvas.
                img, _b = sample(p, rng)
                big = np.zeros((INPUT, INPUT), np.uint8)
                big[:TRAIN, :TRAIN] = img
            yield [big[None, :, :, None].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_concrete_functions([conc])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8  # the reader feeds the letterboxed uint8 image as is
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(conv.convert())
    os.replace(tmp, out)  # atomic: a reader never sees a half-written model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--steps", type=int, default=400, help="steps per epoch")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--ckpt", type=Path, default=REPO.parent / "ckpt" / "detector")
    ap.add_argument("--out", type=Path, default=REPO / "edge_agent" / "models" / "plate_detector.tflite")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="TF intra/inter-op threads")
    ap.add_argument("--workers", type=int, default=2, help="data synthesis threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export-only", action="store_true", help="export the last checkpoint and exit")
    ap.add_argument("--calib-seed", type=int, default=123, help="seed of the int8 calibration samples")
    ap.add_argument("--calib", choices=("samples", "photos"), default="samples",
                    help="int8 calibration inputs: training samples, or training photos letterboxed as the reader does")
    args = ap.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    cv2.setNumThreads(1)
    from tqdm import tqdm

    args.ckpt.mkdir(parents=True, exist_ok=True)
    pools = Pools(datasets_dir())
    model = build_model(None)
    print(f"model: {model.count_params()} parameters", flush=True)
    import keras

    float_out = args.ckpt / "plate_detector_float.tflite"
    if args.export_only:
        model.load_weights(args.ckpt / "last.weights.h5")
        export_tflite(model, pools, args.out, float_out, args.calib_seed, args.calib)
        print(f"exported {args.out} ({args.out.stat().st_size} B) and {float_out}", flush=True)
        return 0
    total = args.epochs * args.steps
    sched = keras.optimizers.schedules.CosineDecay(
        args.lr * 0.1, total, alpha=0.02, warmup_target=args.lr, warmup_steps=min(300, total // 10)
    )
    opt = keras.optimizers.AdamW(sched, weight_decay=1e-4, clipnorm=5.0)
    opt.build(model.trainable_variables)
    state_path = args.ckpt / "state.json"
    start_epoch = 0
    if args.resume and state_path.exists():
        state = json.loads(state_path.read_text())
        model.load_weights(args.ckpt / "last.weights.h5")
        opt_vals = np.load(args.ckpt / "last.optimizer.npz")
        for v, k in zip(opt.variables, sorted(opt_vals.files, key=lambda s: int(s[1:])), strict=True):
            v.assign(opt_vals[k])
        start_epoch = int(state["epoch"])
        print(f"resumed after epoch {start_epoch}", flush=True)

    @tf.function(jit_compile=False)  # type: ignore[untyped-decorator]
    def step(x: Any, hm: Any, reg: Any, mask: Any) -> Any:
        with tf.GradientTape() as tape:
            logit, pr = model(x, training=True)
            focal, off, siz = loss_parts(hm, reg, mask, logit[..., 0], pr)
            loss = focal + off + 2.0 * siz
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return focal, off, siz

    q = background_batches(pools, args.batch, args.seed + start_epoch, args.workers)
    t_start = time.time()
    for epoch in range(start_epoch, args.epochs):
        bar = tqdm(range(args.steps), desc=f"epoch {epoch + 1}/{args.epochs}", mininterval=30, file=sys.stdout)
        acc = np.zeros(3)
        t_epoch = time.time()
        for i in bar:
            b = q.get()
            vals = step(*(tf.constant(a) for a in b))
            acc += np.array([float(v) for v in vals])
            if (i + 1) % 50 == 0:
                f, o, s = acc / 50
                bar.set_postfix_str(f"focal {f:.3f} off {o:.3f} size {s:.3f}")
                acc[:] = 0
        bar.close()
        print(f"epoch {epoch + 1}: {args.steps * args.batch / (time.time() - t_epoch):.1f} images/s", flush=True)
        model.save_weights(args.ckpt / "last.weights.h5")
        np.savez(args.ckpt / "last.optimizer.npz", **{f"v{i}": v.numpy() for i, v in enumerate(opt.variables)})
        state_path.write_text(json.dumps({"epoch": epoch + 1, "epochs": args.epochs, "time": time.time()}))
        t0 = time.time()
        export_tflite(model, pools, args.out, float_out)
        print(
            f"epoch {epoch + 1}: saved checkpoint, exported {args.out} ({args.out.stat().st_size} B) "
            f"in {time.time() - t0:.1f}s; {(time.time() - t_start) / 60:.1f} min so far",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
