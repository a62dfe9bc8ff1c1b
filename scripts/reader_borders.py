#!/usr/bin/env python3
# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Measures the borders of the crops the reader really cuts, for training the OCR on that geometry.

The OCR is trained on plates cut from their annotated boxes with random borders; inside the reader it
reads the shipped detector's box plus a margin (``reader.cut_bounds``), which is sometimes looser and
sometimes clips the first or last character. This runs the shipped detector as the reader does
(``PlateReader.detections``) over the training part of the annotated photo sets (``scripts/splits.py``:
held-out photos are never read), pairs each annotated plate with the detector box that overlaps it most
(IoU >= 0.3), and writes how far the reader's cut reaches beyond the plate on each side, as a share of
the cut's width (left, right) and height (top, bottom); negative: the cut clips the plate there (cuts
clipping more than ``MAX_CLIP`` are left out: no read can be taught on them).

    python scripts/reader_borders.py --out scripts/reader_borders.tsv [--datasets DIR]

Columns: dataset folder, left, right, top, bottom. ``scripts/train_ocr_fit.py --reader-borders`` draws
half of each photo plate's crops with a border from its own folder's rows (``train_ocr.Mixer``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))
sys.path.insert(0, str(SCRIPTS.parent))

import splits  # noqa: E402
from eval_alpr import load_annotations  # noqa: E402
from eval_holdout import SOURCES, add_datasets_argument  # noqa: E402

from edge_agent.core.boxes import box_iou  # noqa: E402
from edge_agent.pipeline.alpr.read_command import decode_image  # noqa: E402
from edge_agent.pipeline.alpr.reader import PlateReader, cut_bounds  # noqa: E402

# A detector box overlapping the plate less than this is another object, not this plate's box.
MIN_IOU = 0.3
# A cut that clips more than this share of its width or height off the plate on a side is left out: it
# can lose more than half a glyph (a 7-glyph plate's glyph is ~13% of it), and teaching the whole text on
# a crop that no longer shows it teaches guessing.
MAX_CLIP = 0.07

Box = tuple[float, float, float, float]


def borders(plate: Box, cut: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """How far ``cut`` (x0, y0, x1, y1) reaches beyond ``plate`` (x, y, w, h) on each side, as a share of
    the cut's width (left, right) and height (top, bottom)."""
    x, y, w, h = plate
    x0, y0, x1, y1 = cut
    cw, ch = x1 - x0, y1 - y0
    return (x - x0) / cw, (x1 - (x + w)) / cw, (y - y0) / ch, (y1 - (y + h)) / ch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_datasets_argument(ap)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    ds = args.datasets.resolve()
    reader = PlateReader()
    lines: list[str] = []
    clipped = 0
    missing = [name for name in SOURCES if not (ds / name).is_dir()]
    if missing:
        print(f"error: no {', '.join(missing)} under {ds}", file=sys.stderr)
        return 2
    for name in SOURCES:
        photos = [(p, t) for p, t in load_annotations(ds / name) if not splits.held_out(name, p.name)]
        for k, (path, truths) in enumerate(photos, 1):
            img = decode_image(path)
            dets = reader.detections(img)
            for truth in truths:
                best = max(dets, key=lambda d: box_iou(d.box, truth.box), default=None)
                if best is None or box_iou(best.box, truth.box) < MIN_IOU:
                    continue
                cut = cut_bounds(best.box, img.shape[1], img.shape[0])
                sides = borders(truth.box, cut)
                if min(sides) < -MAX_CLIP:
                    clipped += 1
                    continue
                lines.append(name + "".join(f"\t{v:.4f}" for v in sides))
            if k % 200 == 0 or k == len(photos):
                print(f"{name}: {k}/{len(photos)} photos, {len(lines)} plates", file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    print(f"wrote {len(lines)} plates' borders to {args.out} ({clipped} cuts clipping a plate by more than "
          f"{MAX_CLIP:.0%} of a side left out)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
