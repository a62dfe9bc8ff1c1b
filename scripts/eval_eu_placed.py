#!/usr/bin/env python3
# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""The whole reader (detector box, the reader's cut, OCR, format check) on held-out European plates.

    python scripts/eval_eu_placed.py --labels TSV [--detector M] [--ocr M] [--datasets DIR] [--verbose]

The held-out photos (``eval_holdout.py``) hold no Italian, French or two-row plate, and the held-out EU
crops are only scored as crops (``train_ocr.py --validate``), which skips the detector and the reader's
cut. Here each held-out crop of ``eu-plate-crops`` and ``eu-plate-crops-2`` (``scripts/splits.py``) with a
label in ``--labels`` is placed into a frame of the held-out Romanian dashcam video (1280x720, a street
as a camera sees it) at each width of ``WIDTHS`` (two-row plates at ``TWO_ROW_SCALE`` of it: a motorcycle
plate is smaller), away from the frame's own plates, with soft edges, and the frame is JPEG-encoded as
a camera would. The reader reads it as the daemon does, with a motion region around the plate
(``PlateReader.read(frame, regions)``). Placement is seeded: every model meets the same frames.

``--rendered N`` adds N two-row plates drawn by the OCR trainer's renderer (``synth_plates.render_two_row_plate``:
Italian motorcycle and moped plates, other EU two-row layouts; it needs the training requirements' Pillow
and the plate font, ``EDGE_AGENT_PLATE_FONT``), placed like the two-row crops: the held-out data hold few
two-row plates and no Italian one. The renderer is the trainer's own, so these figures flatter the OCR;
they show what the reader's two-row path (cut, split, choice) does with plates the OCR can read.
``--rendered-banded N`` adds N one-row Italian and French plates from the same renderer (blue bands at both
ends; ``synth_plates.render_layout_plate``), placed like the one-row crops: no held-out source holds such a
plate. ``--no-wide-retry`` reads without the reader's wider second cut (``PlateReader(wide_retry=False)``).

Per set and width: plates, detector recall at IoU 0.5, reads right / wrong (O and 0 the same), and false
plates (a read touching neither the placed plate nor a plate of the frame's own); the reader score is
right - wrong - false plates, as ``eval_holdout.py``'s (``--json``: the same as one JSON object). A pasted
crop is not a photographed plate (no car around it, its own lighting): these figures compare models on
European layouts; they are not a field accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import cv2
import numpy as np

SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
if str(SCRIPTS.parent) not in sys.path:
    sys.path.insert(0, str(SCRIPTS.parent))

import splits  # noqa: E402
from eval_alpr import fold, load_annotations, reader_score, unboxed_plates  # noqa: E402
from eval_holdout import add_datasets_argument  # noqa: E402

from edge_agent.core.boxes import box_iou  # noqa: E402
from edge_agent.pipeline.alpr.detector import Detection  # noqa: E402
from edge_agent.pipeline.alpr.reader import PlateReader  # noqa: E402
from edge_agent.pipeline.alpr.types import PlateRead  # noqa: E402

SETS = ("eu-plate-crops", "eu-plate-crops-2")
SCENE_FOLDER = "plates-ro-boxes"
# A plate 1.2-4 m wide of view at 1280 px: the widths a pole over one lane sees a 52 cm plate at.
WIDTHS = (80, 120, 180)
TWO_ROW_SCALE = 0.6
JPEG_QUALITY = 85
SEED = 20261126

Box = tuple[float, float, float, float]


@dataclass
class Tally:
    plates: int = 0
    found: int = 0
    right: int = 0
    wrong: int = 0
    false_plates: int = 0

    @property
    def score(self) -> int:
        return reader_score(self.right, self.wrong, self.false_plates)

    def add(self, other: Tally) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def held_out_crops(labels: Path, datasets: Path) -> list[tuple[str, Path, str, int]]:
    """(set, crop path, text, rows) of each held-out EU crop with a label, in file order."""
    out = []
    for line in labels.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) < 4 or (len(fields) > 4 and fields[4]):
            continue  # a plate in a full photo, not a crop
        path = Path(fields[0])
        if path.parent.name not in SETS or not splits.held_out(path.parent.name, path.name):
            continue
        text = fold(fields[1].upper())
        if text:
            out.append((path.parent.name, datasets / path.parent.name / path.name, text, 2 if fields[3] == "2" else 1))
    return out


def rendered_two_row(n: int, seed: int = SEED) -> list[tuple[str, np.ndarray, str, int]]:
    """(set, image, text, rows) of ``n`` two-row plates from the OCR trainer's renderer, seeded."""
    import synth_plates  # the training requirements' Pillow and the plate font: only with --rendered

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img, text = synth_plates.render_two_row_plate(rng)
        out.append(("rendered-2row", img, fold(text), 2))
    return out


def rendered_banded(n: int, seed: int = SEED) -> list[tuple[str, np.ndarray, str, int]]:
    """(set, image, text, rows) of ``n`` one-row Italian and French plates (blue bands at both ends) from the OCR
    trainer's renderer, alternating, seeded."""
    import synth_plates  # the training requirements' Pillow and the plate font: only with --rendered-banded

    rng = np.random.default_rng(seed + 1)
    out = []
    for i in range(n):
        img, text = synth_plates.render_layout_plate(*(("I", "LL DDD LL") if i % 2 == 0 else ("F", "LL-DDD-LL")), rng)
        out.append(("rendered-banded", img, fold(text), 1))
    return out


def scenes(datasets: Path) -> list[tuple[np.ndarray, list[Box]]]:
    """The held-out frames of the Romanian video, with their own plates' boxes: the annotated ones and those the
    dataset left without a box (``scripts/unboxed_plates.tsv``), which no placed plate covers and no read on is
    a false plate."""
    out = []
    unboxed = unboxed_plates()
    for path, truths in load_annotations(datasets / SCENE_FOLDER):
        if splits.held_out(SCENE_FOLDER, path.name):
            img = cv2.imread(str(path))
            if img is not None:
                out.append((img, [t.box for t in truths] + unboxed.get(path.name, [])))
    return out


def place(scene: np.ndarray, others: list[Box], crop: np.ndarray, width: int,
          rng: np.random.Generator) -> tuple[np.ndarray, Box] | None:
    """The scene with the crop pasted ``width`` px wide (soft edges, then JPEG), and the plate's box."""
    h_s, w_s = scene.shape[:2]
    w = int(width)
    h = max(4, round(w * crop.shape[0] / crop.shape[1]))
    if w >= 0.8 * w_s or h >= 0.4 * h_s:
        return None
    for _ in range(30):
        x = int(rng.integers(int(0.05 * w_s), int(0.95 * w_s) - w))
        y = int(rng.integers(int(0.4 * h_s), int(0.95 * h_s) - h))
        grown = (x - w, y - h, 3 * w, 3 * h)
        if all(box_iou(grown, o) == 0.0 for o in others):
            break
    else:
        return None
    plate = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA if w < crop.shape[1] else cv2.INTER_LINEAR)
    alpha = np.zeros((h + 8, w + 8), np.float32)
    alpha[4:-4, 4:-4] = 1.0
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.0)[4:-4, 4:-4, None]
    out = scene.copy()
    roi = out[y : y + h, x : x + w].astype(np.float32)
    out[y : y + h, x : x + w] = (alpha * plate.astype(np.float32) + (1 - alpha) * roi).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        return None
    return cv2.imdecode(jpg, cv2.IMREAD_COLOR), (float(x), float(y), float(w), float(h))


def placed_reads(reader: PlateReader, crops: list[tuple[np.ndarray | None, int]],
                 frames: list[tuple[np.ndarray, list[Box]]], rng: np.random.Generator
                 ) -> Iterator[tuple[int, int, Box, list[Box], list[Detection], list[PlateRead]]]:
    """Each (crop, rows) pasted at each of ``WIDTHS`` (two-row plates at ``TWO_ROW_SCALE`` of it) into the
    frames in turn, and read as the daemon reads, with a motion region around the plate: (crop index, width,
    the plate's box, the frame's own plates, the detector's boxes, the reads). A crop that cannot be placed
    (None, or too big for the frame) is skipped at that width."""
    for i, (crop, rows) in enumerate(crops):
        for k, width in enumerate(WIDTHS):
            scene, others = frames[(i * len(WIDTHS) + k) % len(frames)]
            placed = place(scene, others, crop, round(width * (TWO_ROW_SCALE if rows == 2 else 1.0)), rng) \
                if crop is not None else None
            if placed is None:
                continue
            frame, box = placed
            x, y, w, h = box
            dets = reader.detections(frame, [(int(x - w), int(y - h), int(3 * w), int(3 * h))])
            # What PlateReader.read does, on the boxes already found.
            reads = [r for r in (reader.read_crop(frame, d) for d in dets) if r is not None]
            yield i, width, box, others, dets, reads


def evaluate(reader: PlateReader, crops: list[tuple[str, Path | np.ndarray, str, int]],
             frames: list[tuple[np.ndarray, list[Box]]], verbose: bool = False) -> dict[tuple[str, int], Tally]:
    """``crops``: (set, crop file or image, text, rows)."""
    images = [(cv2.imread(str(source)) if isinstance(source, Path) else source, rows) for _, source, _, rows in crops]
    tallies: dict[tuple[str, int], Tally] = {}
    for i, width, box, others, dets, reads in placed_reads(reader, images, frames, np.random.default_rng(SEED)):
        name, source, text, _ = crops[i]
        label = source.name if isinstance(source, Path) else f"#{i}"
        t = tallies.setdefault((name, width), Tally())
        t.plates += 1
        t.found += any(box_iou(d.box, box) >= 0.5 for d in dets)
        got = "-"
        for r in reads:
            if box_iou(r.box, box) >= 0.5:
                got = r.text
            elif not any(box_iou(r.box, o) >= 0.3 for o in others) and box_iou(r.box, box) < 0.3:
                t.false_plates += 1
                if verbose:
                    print(f"{name} {label} @{width}: false plate {r.text} at {r.box}", file=sys.stderr)
        if got != "-":
            if fold(got) == text:
                t.right += 1
            else:
                t.wrong += 1
        if verbose and fold(got) != text:
            print(f"{name} {label} @{width}: truth {text} got {got}", file=sys.stderr)
    return tallies


def pooled(tallies: dict[tuple[str, int], Tally]) -> Tally:
    total = Tally()
    for t in tallies.values():
        total.add(t)
    return total


def as_json(tallies: dict[tuple[str, int], Tally]) -> str:
    """The tallies per set and width, and pooled (``total``), with each one's reader score."""
    rows = [{"set": name, "width": width, **asdict(t), "score": t.score}
            for (name, width), t in sorted(tallies.items())]
    total = pooled(tallies)
    return json.dumps({"rows": rows, "total": {**asdict(total), "score": total.score}})


def report(tallies: dict[tuple[str, int], Tally]) -> str:
    lines = [f"{'set':18s} {'width':>5s} {'plates':>6s} {'det@.5':>7s} {'right':>6s} {'wrong':>6s} {'false':>6s} "
             f"{'score':>6s}"]
    for (name, width), t in sorted(tallies.items()):
        lines.append(f"{name:18s} {width:5d} {t.plates:6d} {t.found / max(t.plates, 1):7.1%} {t.right:6d} "
                     f"{t.wrong:6d} {t.false_plates:6d} {t.score:6d}")
    total = pooled(tallies)
    lines.append(f"{'TOTAL':18s} {'':5s} {total.plates:6d} {total.found / max(total.plates, 1):7.1%} {total.right:6d} "
                 f"{total.wrong:6d} {total.false_plates:6d} {total.score:6d}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_datasets_argument(ap)
    ap.add_argument("--labels", type=Path, required=True, help="the crop labels (scripts/label_crops.py's TSV)")
    ap.add_argument("--detector", type=Path, default=None)
    ap.add_argument("--ocr", type=Path, default=None)
    ap.add_argument("--verbose", action="store_true", help="every plate not read right, and every false plate")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ap.add_argument("--rendered", type=int, default=0, metavar="N",
                    help="also N two-row plates from the OCR trainer's renderer (needs Pillow and the plate font)")
    ap.add_argument("--rendered-banded", type=int, default=0, metavar="N",
                    help="also N one-row Italian and French plates (blue bands at both ends) from the same renderer")
    ap.add_argument("--no-wide-retry", action="store_true",
                    help="read without the wider second cut (PlateReader(wide_retry=False)), to measure what it does")
    args = ap.parse_args(argv)
    if args.rendered < 0 or args.rendered_banded < 0:
        ap.error("--rendered and --rendered-banded must be 0 or more")
    ds = args.datasets.resolve()
    try:
        crops = held_out_crops(args.labels, ds)
    except OSError as exc:
        print(f"error: cannot read --labels: {exc.strerror or exc}", file=sys.stderr)
        return 2
    frames = scenes(ds)
    if not crops or not frames:
        print(f"error: no held-out EU crops with a label in {args.labels}, or no held-out {SCENE_FOLDER} frames "
              f"under {ds}", file=sys.stderr)
        return 2
    plates: list[tuple[str, Path | np.ndarray, str, int]] = list(crops)
    for flag, n, render in (("--rendered", args.rendered, rendered_two_row),
                            ("--rendered-banded", args.rendered_banded, rendered_banded)):
        try:
            plates += render(n) if n else []
        except (ImportError, OSError) as exc:
            print(f"error: {flag} needs the training requirements (scripts/requirements-train.txt) and the "
                  f"plate font (EDGE_AGENT_PLATE_FONT): {exc}", file=sys.stderr)
            return 2
    reader = PlateReader(args.detector, args.ocr, wide_retry=not args.no_wide_retry)
    if args.json:
        print(as_json(evaluate(reader, plates, frames, args.verbose)))
        return 0
    rendered = (f" + {args.rendered} rendered two-row plates" if args.rendered else "") + (
        f" + {args.rendered_banded} rendered Italian and French plates" if args.rendered_banded else "")
    print(f"{len(crops)} held-out EU crops{rendered} x widths {WIDTHS} px in {len(frames)} held-out {SCENE_FOLDER} "
          "frames")
    print(report(evaluate(reader, plates, frames, args.verbose)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
