# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Contact sheets for checking plate labels by eye: each crop beside its label, numbered.

The teacher's labels (``scripts/label_crops.py``) were checked this way, 30 crops per sheet; what was
found wrong went into ``scripts/label_fixes.tsv``, crops it could not label into
``scripts/hand_labels.tsv``. Photo plates (a box in column 5) are cut from their photo.

    python scripts/label_sheets.py /work/ckpt/labels13/crop_labels.tsv --out /tmp/sheets \\
        [--only eu-plate-crops] [--per-sheet 30]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

TILE_W, TILE_H, TEXT_W = 240, 60, 200


def tile(line: str, number: int) -> np.ndarray | None:
    """One row of a sheet: the number and label, then the crop; None when the image cannot be read."""
    fields = line.rstrip("\n").split("\t")
    img = cv2.imread(fields[0])
    if img is None or len(fields) < 2:
        return None
    box = fields[4] if len(fields) > 4 else ""
    if box:
        x, y, w, h = (int(v) for v in box.split(","))
        m = int(0.05 * w)
        img = img[max(0, y - m) : y + h + m, max(0, x - m) : x + w + m]
    if img.size == 0:
        return None
    crop = cv2.resize(img, (TILE_W, TILE_H), interpolation=cv2.INTER_AREA)
    label = np.full((TILE_H, TEXT_W, 3), 255, np.uint8)
    cv2.putText(label, f"{number} {fields[1]}", (4, 36), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 200), 1, cv2.LINE_AA)
    return np.hstack([label, crop])


def sheet(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles in two columns, the first half on the left."""
    half = (len(tiles) + 1) // 2
    blank = np.full_like(tiles[0], 255)
    left, right = tiles[:half], tiles[half:] + [blank] * (half - len(tiles[half:]))
    return np.hstack([np.vstack(left), np.vstack(right)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("labels", type=Path, help="a label TSV (label_crops.py --out)")
    ap.add_argument("--out", type=Path, required=True, help="folder for sheet-NNN.png")
    ap.add_argument("--only", default="", help="only crops whose path contains this")
    ap.add_argument("--per-sheet", type=int, default=30)
    args = ap.parse_args(argv)
    if args.per_sheet < 1:
        ap.error("--per-sheet must be at least 1")
    try:
        lines = [ln for ln in args.labels.read_text(encoding="utf-8").splitlines() if args.only in ln.split("\t")[0]]
    except OSError as exc:
        print(f"label_sheets: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    sheets = 0
    unreadable = 0
    for start in range(0, len(lines), args.per_sheet):
        tiles = []
        for number, line in enumerate(lines[start : start + args.per_sheet], start):
            t = tile(line, number)
            if t is None:
                unreadable += 1
            else:
                tiles.append(t)
        if tiles:
            cv2.imwrite(str(args.out / f"sheet-{sheets:03d}.png"), sheet(tiles))
            sheets += 1
    note = f"; {unreadable} unreadable" if unreadable else ""
    print(f"{len(lines)} labels on {sheets} sheets in {args.out}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
