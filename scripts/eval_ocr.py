# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Evaluate the plate OCR alone on ground-truth plate crops of an annotated photo folder.

Each plate is cut from its photo with the annotated box, once exactly and ``--jitter``
more times with the box moved and resized by a few percent, the way a detector box
differs from a hand-drawn one. Scores fold O and 0 (the dev set's ground truth mixes them).

    python scripts/eval_ocr.py ../shared/datasets/eu-plates-dev [--model M] [--json] [-v]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edge_agent.pipeline.alpr.ocr import PlateOCR  # noqa: E402
from edge_agent.pipeline.alpr.types import ModelError  # noqa: E402
from edge_agent.pipeline.tracking import levenshtein  # noqa: E402  (the tracker's: eval and runtime count errors alike)


def fold(s: str) -> str:
    return s.upper().replace("O", "0")



def load_crops(
    folder: Path, jitter: int, seed: int = 0, margin: tuple[float, float] = (0.0, 0.0)
) -> list[tuple[str, str, np.ndarray]]:
    """(image name, truth, crop) for the exact box and ``jitter`` jittered boxes per photo.

    ``margin`` (x, y) widens every box on each side by that fraction of its size, as the
    reader does around detector boxes.
    """
    rng = np.random.default_rng(seed)
    out: list[tuple[str, str, np.ndarray]] = []
    for ann in sorted(folder.glob("*.txt")):
        fields = ann.read_text().strip().split("\t")
        if len(fields) < 6:
            continue
        img = cv2.imread(str(folder / fields[0]))
        if img is None:
            continue
        x, y, w, h = (int(float(v)) for v in fields[1:5])
        mx, my = round(margin[0] * w), round(margin[1] * h)
        x, y, w, h = x - mx, y - my, w + 2 * mx, h + 2 * my
        boxes = [(x, y, w, h)]
        for _ in range(jitter):
            dx0, dx1 = rng.uniform(-0.04, 0.06, 2) * w
            dy0, dy1 = rng.uniform(-0.08, 0.15, 2) * h
            boxes.append((int(x - dx0), int(y - dy0), int(w + dx0 + dx1), int(h + dy0 + dy1)))
        for bx, by, bw, bh in boxes:
            x0, y0 = max(0, bx), max(0, by)
            x1, y1 = min(img.shape[1], bx + bw), min(img.shape[0], by + bh)
            out.append((fields[0], fields[5].strip().upper(), img[y0:y1, x0:x1]))
    return out


def evaluate(ocr: PlateOCR, crops: list[tuple[str, str, np.ndarray]], verbose: bool = False) -> dict[str, float]:
    exact = exact_first = n_first = 0
    errors = chars = 0
    times: list[float] = []
    seen: set[str] = set()
    for name, truth, crop in crops:
        t0 = time.perf_counter()
        got = ocr.read(crop)
        text, conf = got.text, got.confidence
        times.append((time.perf_counter() - t0) * 1000.0)
        ok = fold(text) == fold(truth)
        exact += ok
        errors += levenshtein(fold(text), fold(truth))
        chars += len(truth)
        if name not in seen:
            seen.add(name)
            n_first += 1
            exact_first += ok
            if verbose and not ok:
                print(f"  {name}: truth {truth} read {text} ({conf:.2f})")
    n = max(1, len(crops))
    return {
        "crops": len(crops),
        "plates": n_first,
        "exact_box_accuracy": exact_first / max(1, n_first),
        "exact_accuracy_all": exact / n,
        "cer": errors / max(1, chars),
        "ms_median": float(np.median(times)) if times else 0.0,
        "ms_p95": float(np.percentile(times, 95)) if times else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--jitter", type=int, default=2, help="extra jittered crops per plate")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--margin",
        type=float,
        nargs=2,
        default=(0.0, 0.0),
        metavar=("X", "Y"),
        help="widen each box per side by these fractions (the reader uses 0.05 0.15)",
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true", help="list misread exact-box plates")
    args = ap.parse_args(argv)

    if not args.dataset.is_dir():
        print(f"error: not a folder: {args.dataset}", file=sys.stderr)
        return 2
    try:
        ocr = PlateOCR(args.model, threads=args.threads)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    crops = load_crops(args.dataset, args.jitter, margin=tuple(args.margin))
    if not crops:
        print(f"error: no annotated plates in {args.dataset}", file=sys.stderr)
        return 2
    ocr.read(crops[0][2])  # first invoke allocates; keep it out of the timing
    res = evaluate(ocr, crops, verbose=args.verbose and not args.json)
    res_out: dict[str, float | str] = {"model": ocr.version, **res}
    if args.json:
        print(json.dumps(res_out))
    else:
        print(
            f"model {ocr.version}: {res['plates']:.0f} plates, {res['crops']:.0f} crops\n"
            f"  exact (annotated box, O=0): {res['exact_box_accuracy']:.1%}\n"
            f"  exact (all crops incl. jitter): {res['exact_accuracy_all']:.1%}\n"
            f"  CER: {res['cer']:.3f}\n"
            f"  ms per crop: median {res['ms_median']:.2f}, p95 {res['ms_p95']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
