#!/usr/bin/env python3
# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Finds where the shipped detector sees a plate that is not one, for teaching the OCR to read nothing there.

Every false plate the reader has published on the held-out photos was a detector box on text that is no
plate (a dealer's phone number, a sticker, a sign) that the OCR read at a confidence over the floor: the
OCR was never shown such a crop with "no text" as its answer. This runs the shipped detector, as the
reader does (``PlateReader.detections``), over the training part of the annotated photo sets
(``scripts/splits.py``: held-out photos are never read) and over ``backgrounds/`` (no plates), and
writes every box that does not touch an annotated plate, with the shipped OCR's read of it:

    python scripts/mine_negatives.py --out /tmp/neg/candidates.tsv [--datasets DIR]
    python scripts/label_sheets.py /tmp/neg/candidates.tsv --out /tmp/neg/sheets   # check by eye

Columns: path (under --datasets), the OCR's text or ``-``, its confidence, ``1``, box ``x,y,w,h``,
detector score. An annotated set can miss a plate (a second car), so the candidates are checked by eye
before use; those kept are ``scripts/ocr_negatives.tsv`` (path under the datasets folder and box), which
``scripts/train_ocr.py`` reads as crops whose text is empty.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import splits  # noqa: E402
from eval_alpr import load_annotations  # noqa: E402
from eval_holdout import SOURCES, add_datasets_argument  # noqa: E402

from edge_agent.pipeline.alpr.read_command import decode_image  # noqa: E402
from edge_agent.pipeline.alpr.reader import PlateReader  # noqa: E402

PHOTO_SETS = tuple(SOURCES)  # the annotated photo sets, as eval_holdout scores their held-out part
# A box sharing more than this share of its own area or of a plate's with an annotated plate is
# (part of) that plate, not a negative.
MAX_SHARED = 0.05

Box = tuple[float, float, float, float]


def touches(box: Box, plates: list[Box]) -> bool:
    """True when ``box`` shares more than ``MAX_SHARED`` of its area, or of a plate's, with any plate."""
    x, y, w, h = box
    for px, py, pw, ph in plates:
        iw = min(x + w, px + pw) - max(x, px)
        ih = min(y + h, py + ph) - max(y, py)
        if iw <= 0 or ih <= 0:
            continue
        inter = iw * ih
        if inter > MAX_SHARED * w * h or inter > MAX_SHARED * pw * ph:
            return True
    return False


def images(ds: Path) -> list[tuple[Path, list[Box]]]:
    """The training photos with their plate boxes, then the plate-free backgrounds."""
    out: list[tuple[Path, list[Box]]] = []
    for name in PHOTO_SETS:
        for path, truths in load_annotations(ds / name):
            if not splits.held_out(name, path.name):
                out.append((path, [t.box for t in truths]))
    out += [(p, []) for p in sorted((ds / "backgrounds").glob("*.jpg"))]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_datasets_argument(ap)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    ds = args.datasets.resolve()
    if not (ds / "backgrounds").is_dir():
        print(f"error: no backgrounds/ under {ds}", file=sys.stderr)
        return 2
    reader = PlateReader(min_confidence=0.0)
    todo = images(ds)
    lines: list[str] = []
    for k, (path, plates) in enumerate(todo, 1):
        img = decode_image(path)
        for det in reader.detections(img):
            if touches(det.box, plates):
                continue
            r = reader.read_crop(img, det)
            x, y, w, h = (round(v) for v in det.box)
            text, conf = (r.text, r.confidence) if r is not None else ("-", 0.0)
            lines.append(f"{path}\t{text}\t{conf:.4f}\t1\t{x},{y},{w},{h}\t{det.score:.3f}")
        if k % 200 == 0 or k == len(todo):
            print(f"{k}/{len(todo)} images, {len(lines)} boxes", file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    print(f"wrote {len(lines)} boxes to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
