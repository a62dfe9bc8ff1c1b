#!/usr/bin/env python3
# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Per-stage timing of the plate reader on one thread.

    python scripts/bench_alpr.py [DATASET_DIR] [--repeat 5]

Decodes each photo of the folder (default ``../shared/datasets/eu-plates-dev``) from bytes held in
memory, then detects and reads its plates, ``--repeat`` times over the folder after a warm-up
pass, and prints median and p95 milliseconds per stage:

    decode   JPEG bytes -> BGR image (OpenCV)
    detect   letterbox + detector model + peak decoding
    ocr      crop + rectify + OCR model, for all plates of the photo
    total    detect + ocr: the issue-4 "detect + read one photo" budget

``--second-look`` also gives the detector a second, closer look around each annotated plate's vehicle
(``context_image.vehicle_region``, a stand-in for the moving area that the daemon passes), as ``alpr.second_look``
does (``eval_holdout.py --motion-regions`` scores that look).
``--baseline-detector/--baseline-ocr`` time a second reader (e.g. the previous models) on the same
photos in the same passes, interleaved, and print the ratio of the medians: machines differ and are
noisy, ratios within one run do not. ``--baseline-no-wide-retry`` makes the second reader one without the
wider second cut of reads that fit no format (``PlateReader(wide_retry=False)``); ``--baseline-no-refine`` one
without the closer look that draws each box again (``PlateReader(refine=False)``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edge_agent.pipeline.alpr.reader import PlateReader  # noqa: E402
from edge_agent.pipeline.alpr.types import ModelError  # noqa: E402
from edge_agent.pipeline.context_image import vehicle_region  # noqa: E402

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def default_dataset() -> Path:
    env = os.environ.get("EDGE_AGENT_DATASETS")
    root = Path(env) if env else REPO.parent / "shared" / "datasets"
    return root / "eu-plates-dev"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path, nargs="?", default=default_dataset())
    ap.add_argument("--repeat", type=int, default=5, help="passes over the folder")
    ap.add_argument("--detector", type=Path, default=None)
    ap.add_argument("--ocr", type=Path, default=None)
    ap.add_argument("--second-look", action="store_true", help="a second detector look around each plate")
    ap.add_argument("--baseline-detector", type=Path, default=None)
    ap.add_argument("--baseline-ocr", type=Path, default=None)
    ap.add_argument("--baseline-no-wide-retry", action="store_true",
                    help="the baseline reader without the wider second cut of reads that fit no format")
    ap.add_argument("--baseline-no-refine", action="store_true",
                    help="the baseline reader without the closer look that draws each box again")
    args = ap.parse_args()
    cv2.setNumThreads(1)  # one core, as on the pole where capture and MQTT share the CPU
    files = sorted(p for p in args.dataset.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        print(f"bench_alpr: no images in {args.dataset}", file=sys.stderr)
        return 2
    try:
        readers = {"reader": PlateReader(args.detector, args.ocr, threads=1)}
        if args.baseline_detector or args.baseline_ocr or args.baseline_no_wide_retry or args.baseline_no_refine:
            readers["baseline"] = PlateReader(args.baseline_detector, args.baseline_ocr, threads=1,
                                              wide_retry=not args.baseline_no_wide_retry,
                                              refine=not args.baseline_no_refine)
    except ModelError as exc:
        print(f"bench_alpr: {exc}", file=sys.stderr)
        return 2
    blobs = [np.fromfile(p, np.uint8) for p in files]
    regions = [_plate_regions(p, *_size(b)) if args.second_look else [] for p, b in zip(files, blobs, strict=True)]

    stages: dict[str, dict[str, list[float]]] = {
        n: {"decode": [], "detect": [], "ocr": [], "total": []} for n in readers}
    plates = dict.fromkeys(readers, 0)
    for rep in range(args.repeat + 1):
        for blob, near in zip(blobs, regions, strict=True):
            for name, reader in readers.items():
                t0 = time.perf_counter()
                img = np.asarray(cv2.imdecode(blob, cv2.IMREAD_COLOR))
                t1 = time.perf_counter()
                dets = reader.detections(img, near)
                t2 = time.perf_counter()
                reads = [reader.read_crop(img, d) for d in dets]
                t3 = time.perf_counter()
                if rep == 0:
                    continue  # warm-up: first-call allocations and cold caches
                plates[name] += sum(r is not None for r in reads)
                st = stages[name]
                st["decode"].append((t1 - t0) * 1000)
                st["detect"].append((t2 - t1) * 1000)
                st["ocr"].append((t3 - t2) * 1000)
                st["total"].append((t3 - t1) * 1000)
        print(f"bench_alpr: pass {rep}/{args.repeat} done", file=sys.stderr, flush=True)

    for name, reader in readers.items():
        st = stages[name]
        runs = len(st["total"])
        look = ", second look around each plate" if args.second_look else ""
        print(f"[{name}] {len(files)} photos x {args.repeat} passes = {runs} runs, threads=1{look}, "
              f"{plates[name] / runs:.2f} plates/photo")
        print(f"models: {reader.model_versions}")
        print(f"{'stage':<8} {'median ms':>10} {'p95 ms':>10} {'mean ms':>10}")
        for stage, vals in st.items():
            a = np.array(vals)
            print(f"{stage:<8} {np.median(a):>10.2f} {np.percentile(a, 95):>10.2f} {a.mean():>10.2f}")
    if "baseline" in readers:
        ratio = float(np.median(stages["reader"]["total"]) / np.median(stages["baseline"]["total"]))
        print(f"median total, reader / baseline: {ratio:.2f}x")
    return 0


def _size(blob: np.ndarray) -> tuple[int, int]:
    """(width, height) of an encoded photo."""
    h, w = np.asarray(cv2.imdecode(blob, cv2.IMREAD_GRAYSCALE)).shape[:2]
    return w, h


def _plate_regions(image: Path, frame_w: int, frame_h: int) -> list[tuple[int, int, int, int]]:
    """Around each annotated plate of ``image`` (NAME.txt beside it), its vehicle (``context_image.vehicle_region``)."""
    txt = image.with_suffix(".txt")
    out = []
    if txt.is_file():
        for line in txt.read_text(encoding="utf-8").splitlines():
            f = line.split("\t")
            if len(f) >= 5:
                x, y, w, h = (round(float(v)) for v in f[1:5])
                region = vehicle_region((x, y, w, h), frame_w, frame_h)
                if region is not None:
                    out.append(region)
    return out


if __name__ == "__main__":
    sys.exit(main())
