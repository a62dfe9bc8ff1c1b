#!/usr/bin/env python3
# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Scores the plate reader on a folder in the dev-set annotation format.

    python scripts/eval_alpr.py ../shared/datasets/eu-plates-dev [--json] [--verbose]

Each ``NAME.txt`` beside ``NAME.jpg`` holds tab-separated lines ``NAME.jpg x y w h TEXT``.
Reported: plate recall at IoU 0.3 and 0.5 (of the reader's output, and of the detector alone),
exact reads (letter O and digit 0 counted as the same character, as some ground truths use O
for 0), character error rate, false plates per image (reads overlapping no annotated plate at
IoU 0.3) and the median / p95 milliseconds to detect and read one decoded photo.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edge_agent.core.boxes import box_iou  # noqa: E402
from edge_agent.pipeline.alpr.detector import Detection  # noqa: E402
from edge_agent.pipeline.alpr.read_command import decode_image  # noqa: E402
from edge_agent.pipeline.alpr.reader import PlateReader  # noqa: E402
from edge_agent.pipeline.alpr.types import ModelError, PlateRead  # noqa: E402
from edge_agent.pipeline.tracking import levenshtein  # noqa: E402  (the tracker's: eval and runtime count errors alike)

Box = tuple[float, float, float, float]
UNBOXED_PLATES = REPO / "scripts" / "unboxed_plates.tsv"


@dataclass
class Truth:
    box: Box
    text: str


def load_annotations(folder: Path) -> list[tuple[Path, list[Truth]]]:
    items: list[tuple[Path, list[Truth]]] = []
    for txt in sorted(folder.glob("*.txt")):
        truths: list[Truth] = []
        image = None
        for line in txt.read_text(encoding="utf-8").splitlines():
            f = line.rstrip("\n").split("\t")
            if len(f) < 5 or not f[0].strip():
                continue
            image = folder / f[0].strip()
            box = (float(f[1]), float(f[2]), float(f[3]), float(f[4]))
            truths.append(Truth(box, f[5].strip().upper() if len(f) > 5 else ""))
        if image is not None and image.is_file():
            items.append((image, truths))
    return items


@functools.cache
def unboxed_plates(path: Path = UNBOXED_PLATES) -> dict[str, list[Box]]:
    """Real plates the datasets leave without a box, by image file name (``scripts/unboxed_plates.tsv``): a read
    on one is neither right nor a false plate, since no label says what it reads. Read once per file; callers
    only look it up."""
    out: dict[str, list[Box]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        f = line.split("\t")
        if line.startswith("#") or len(f) < 5:
            continue
        out.setdefault(f[0], []).append((float(f[1]), float(f[2]), float(f[3]), float(f[4])))
    return out


def fold(text: str) -> str:
    return text.upper().replace("O", "0")



def best_match(truth: Truth, boxes: list[Box]) -> tuple[int, float]:
    best, best_iou = -1, 0.0
    for i, b in enumerate(boxes):
        v = box_iou(truth.box, b)
        if v > best_iou:
            best, best_iou = i, v
    return best, best_iou


@dataclass
class Tally:
    """The counts behind the metrics: ``score_image`` adds one image, ``add`` pools two tallies."""

    images: int = 0
    plates: int = 0
    hit3: int = 0  # plates the reader reported at IoU >= 0.3 / 0.5
    hit5: int = 0
    det3: int = 0  # plates the detector found at IoU >= 0.3 / 0.5
    det5: int = 0
    exact: int = 0  # folded read == folded truth, every plate (an unread plate with no text counts)
    edits: int = 0
    chars: int = 0
    false_plates: int = 0
    texted: int = 0  # the same three over the plates whose annotation has a text
    texted_exact: int = 0
    texted_edits: int = 0
    texted_wrong: int = 0  # texted plates the reader reported (IoU >= 0.3) with another text

    def add(self, other: Tally) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def reader_score(right: int, wrong: int, false_plates: int) -> int:
    """What candidates are judged by (the model cards' "reader score"): a wrong plate published costs as
    much as a right one gains, and a false plate as much as a wrong one."""
    return right - wrong - false_plates


def score_image(
    name: str,
    truths: list[Truth],
    det_boxes: list[Box],
    reads: list[PlateRead],
    tally: Tally,
    failures: list[str],
    list_box_only: bool = True,
    unboxed: list[Box] | None = None,
) -> None:
    """Adds one image to ``tally``: ``det_boxes`` all the detector's boxes, ``reads`` the plates the reader
    reported; misreads and false plates are appended to ``failures`` (a well found plate annotated with no
    text too, unless ``list_box_only`` is false). A read on one of ``unboxed`` (IoU >= 0.3; ``unboxed_plates``)
    is not a false plate."""
    tally.images += 1
    read_boxes: list[Box] = [tuple(float(v) for v in r.box) for r in reads]  # type: ignore[misc]
    matched: set[int] = set()
    for t in truths:
        tally.plates += 1
        _, dv = best_match(t, det_boxes)
        tally.det3 += dv >= 0.3
        tally.det5 += dv >= 0.5
        i, v = best_match(t, read_boxes)
        tally.hit3 += v >= 0.3
        tally.hit5 += v >= 0.5
        got = reads[i].text if i >= 0 and v >= 0.3 else ""
        if i >= 0 and v >= 0.3:
            matched.add(i)
        ok = fold(got) == fold(t.text)
        dist = levenshtein(fold(got), fold(t.text))
        tally.exact += ok
        tally.edits += dist
        tally.chars += len(t.text)
        if t.text:
            tally.texted += 1
            tally.texted_exact += ok
            tally.texted_edits += dist
            tally.texted_wrong += bool(got) and not ok
        if (not ok and (t.text or list_box_only)) or v < 0.5:
            failures.append(f"{name}: truth {t.text} got {got or '-'} (IoU {v:.2f}, detector IoU {dv:.2f})")
    extra = [r for j, r in enumerate(reads) if j not in matched
             and not any(box_iou(read_boxes[j], u) >= 0.3 for u in unboxed or ())]
    tally.false_plates += len(extra)
    for r in extra:
        failures.append(f"{name}: false plate {r.text} at {r.box} ({r.confidence:.2f})")


def run_reader(
    items: list[tuple[Path, list[Truth]]], reader: PlateReader, label: str = "eval_alpr",
    regions_of: Callable[[list[Truth], int, int], list[tuple[int, int, int, int]]] | None = None,
) -> Iterator[tuple[Path, list[Truth], list[Detection], list[PlateRead | None], float]]:
    """Detects and reads each image, with progress on stderr: (image, truths, detections, the read of each
    detection or None where no plate text was found, milliseconds to detect and read). ``regions_of``: the
    regions the reader is given for an image's annotations and size (where a pole's motion would be), or none."""
    tty = sys.stderr.isatty()
    for k, (path, truths) in enumerate(items, 1):
        img = decode_image(path)
        t0 = time.perf_counter()
        regions = regions_of(truths, img.shape[1], img.shape[0]) if regions_of is not None else None
        dets = reader.detections(img, regions) if regions is not None else reader.detect(img)
        reads = [reader.read_crop(img, d) for d in dets]
        ms = (time.perf_counter() - t0) * 1000
        yield path, truths, dets, reads, ms
        if tty:
            print(f"\r{label}: {k}/{len(items)} images", end="", file=sys.stderr, flush=True)
        elif k % 10 == 0 or k == len(items):
            print(f"{label}: {k}/{len(items)} images", file=sys.stderr, flush=True)
    if tty and items:
        print(file=sys.stderr)


def evaluate(folder: Path, reader: PlateReader, verbose: bool) -> dict[str, object]:
    items = load_annotations(folder)
    if not items:
        raise SystemExit(f"eval_alpr: no annotated images in {folder}")
    tally = Tally()
    times: list[float] = []
    failures: list[str] = []
    unboxed = unboxed_plates()
    for path, truths, dets, reads, ms in run_reader(items, reader):
        times.append(ms)
        score_image(path.name, truths, [d.box for d in dets], [r for r in reads if r is not None], tally, failures,
                    unboxed=unboxed.get(path.name))
    if verbose:
        for line in failures:
            print(line, file=sys.stderr)
    n_img, n_truth = tally.images, tally.plates
    return {
        "dataset": str(folder),
        "images": n_img,
        "plates": n_truth,
        "recall_iou0.3": round(tally.hit3 / n_truth, 4),
        "recall_iou0.5": round(tally.hit5 / n_truth, 4),
        "detector_recall_iou0.3": round(tally.det3 / n_truth, 4),
        "detector_recall_iou0.5": round(tally.det5 / n_truth, 4),
        "exact_accuracy": round(tally.exact / n_truth, 4),
        "char_error_rate": round(tally.edits / max(tally.chars, 1), 4),
        "false_plates_per_image": round(tally.false_plates / n_img, 4),
        "ms_median": round(float(np.median(times)), 2),
        "ms_p95": round(float(np.percentile(times, 95)), 2),
        "models": reader.model_versions,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path, help="folder of NAME.jpg + NAME.txt")
    ap.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    ap.add_argument("--verbose", "-v", action="store_true", help="list misreads and false plates on stderr")
    ap.add_argument("--detector", type=Path, default=None, help="detector model (default: packaged)")
    ap.add_argument("--ocr", type=Path, default=None, help="OCR model (default: packaged)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if not args.dataset.is_dir():
        print(f"eval_alpr: not a folder: {args.dataset}", file=sys.stderr)
        return 2
    try:
        reader = PlateReader(args.detector, args.ocr, threads=args.threads)
    except ModelError as exc:
        print(f"eval_alpr: {exc}", file=sys.stderr)
        return 2
    m = evaluate(args.dataset, reader, args.verbose)
    if args.json:
        print(json.dumps(m))
    else:
        print(f"dataset                  {m['dataset']} ({m['images']} images, {m['plates']} plates)")
        for key in ("recall_iou0.3", "recall_iou0.5", "detector_recall_iou0.3", "detector_recall_iou0.5",
                    "exact_accuracy", "char_error_rate"):
            print(f"{key:<24} {100 * float(m[key]):.1f}%")  # type: ignore[arg-type]
        print(f"{'false_plates_per_image':<24} {m['false_plates_per_image']}")
        print(f"{'ms per photo':<24} median {m['ms_median']}  p95 {m['ms_p95']}  (detect + read, 1 thread)")
        print(f"{'models':<24} {m['models']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
