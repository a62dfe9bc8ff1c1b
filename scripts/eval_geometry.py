#!/usr/bin/env python3
# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""How the plate reader holds up when the held-out plates are seen closer, tilted or from the side.

    python scripts/eval_geometry.py [--detector M] [--ocr M] [--labels TSV] [--only close,roll,yaw]

Each held-out plate (``scripts/splits.py``, as ``eval_holdout.py``; the Turkish highway frames left out:
their plates are too small to move) is shown again, transformed about its own centre:

- ``close``: cut out of its photo so that the plate is 20-80% of a 4:3 picture's width (a close-up
  photo; skipped where the photo is too small to cut it);
- ``roll``: the photo turned by 0-30 deg (a tilted hand-held photo or camera);
- ``yaw``: the plate's plane turned by 0-60 deg about the vertical axis (a car in another lane).

The truth box is the box around the transformed plate. Per setting: plates, detector recall at IoU 0.5,
reader recall at IoU 0.3 (a tilted plate's box is loose) and at 0.5, and exact reads (O and 0 the same) of the
plates with a text, as a share of all. Nothing is chosen on these figures alone; they show where the
reader breaks.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np

SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import eval_holdout  # noqa: E402  (the held-out sources, one home)
from eval_alpr import fold  # noqa: E402  (the scorer's O = 0)

from edge_agent.core.boxes import box_iou  # noqa: E402
from edge_agent.pipeline.alpr.reader import PlateReader  # noqa: E402

Box = tuple[float, float, float, float]
SETTINGS = {"close": (0.2, 0.35, 0.5, 0.65, 0.8), "roll": (0.0, 10.0, 20.0, 30.0), "yaw": (0.0, 30.0, 45.0, 60.0)}


def _box_of(points: np.ndarray) -> Box:
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


def transform(kind: str, value: float, img: np.ndarray, box: Box) -> tuple[np.ndarray, Box] | None:
    """The picture and the plate's box in it, or None when the photo cannot give this view."""
    h_img, w_img = img.shape[:2]
    tx, ty, tw, th = box
    cx, cy = tx + tw / 2, ty + th / 2
    corners = np.array([[tx, ty], [tx + tw, ty], [tx + tw, ty + th], [tx, ty + th]], np.float32)
    if kind == "close":
        cw = tw / value
        ch = cw * 0.75
        x0, y0 = int(max(0, cx - cw / 2)), int(max(0, cy - ch / 2))
        x1, y1 = int(min(w_img, cx + cw / 2)), int(min(h_img, cy + ch / 2))
        if x1 - x0 < cw * 0.9:
            return None
        return img[y0:y1, x0:x1], (tx - x0, ty - y0, tw, th)
    if kind == "roll":
        m = cv2.getRotationMatrix2D((cx, cy), value, 1.0)
        out = cv2.warpAffine(img, m, (w_img, h_img), borderMode=cv2.BORDER_REFLECT)
        return np.asarray(out), _box_of(cv2.transform(corners[None], m)[0])
    a, f = math.radians(value), 2.5 * tw  # camera about 2.5 plate widths away: a mild taper
    dst = []
    for px, py in corners:
        x, z = (px - cx) * math.cos(a), (px - cx) * math.sin(a)
        k = f / (f + z)
        dst.append([cx + x * k, cy + (py - cy) * k])
    quad = np.array(dst, np.float32)
    out = cv2.warpPerspective(img, cv2.getPerspectiveTransform(corners, quad), (w_img, h_img),
                              borderMode=cv2.BORDER_REFLECT)
    return np.asarray(out), _box_of(quad)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", type=Path, default=None)
    ap.add_argument("--ocr", type=Path, default=None)
    ap.add_argument("--labels", type=Path, default=None, help="teacher texts for the box-only sources (TSV)")
    ap.add_argument("--datasets", type=Path, default=None)
    ap.add_argument("--only", default="close,roll,yaw", help="comma-separated: close, roll, yaw")
    args = ap.parse_args()
    kinds = [k for k in args.only.split(",") if k]
    unknown = [k for k in kinds if k not in SETTINGS]
    if unknown:
        ap.error(f"unknown --only {unknown}; known: {sorted(SETTINGS)}")
    root = args.datasets or eval_holdout.datasets_dir()
    sources = [s for s in eval_holdout.collect(root, False) if s.name != "tr:highway"]
    if args.labels:
        eval_holdout.add_teacher_texts(sources, args.labels)
    reader = PlateReader(args.detector, args.ocr)
    items = [(path, truths) for s in sources for path, truths in s.items]
    print(f"models {reader.model_versions}; {sum(len(t) for _, t in items)} held-out plates", flush=True)
    for kind in kinds:
        for value in SETTINGS[kind]:
            n = found = read = read5 = exact = 0
            for path, truths in items:
                img = eval_holdout.decode_image(path)
                for t in truths:
                    view = transform(kind, value, img, t.box)
                    if view is None:
                        continue
                    pic, box = view
                    n += 1
                    # One detector pass for both figures, as ``read`` would find the boxes.
                    dets = reader.detect(pic)
                    found += any(box_iou(d.box, box) >= 0.5 for d in dets)
                    reads = [r for d in dets if (r := reader.read_crop(pic, d)) is not None
                             and box_iou(r.box, box) >= 0.3]
                    read += bool(reads)
                    read5 += any(box_iou(r.box, box) >= 0.5 for r in reads)
                    exact += bool(t.text) and any(fold(r.text) == fold(t.text) for r in reads)
            if n:
                print(f"{kind:5s} {value:5.2f}: {n:4d} plates  det@.5 {found / n:6.1%}  read@.3 {read / n:6.1%}  "
                      f"read@.5 {read5 / n:6.1%}  "
                      f"exact {exact / n:6.1%}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
