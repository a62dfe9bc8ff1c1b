#!/usr/bin/env python3
# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Italian or French: the country a pole publishes for real Italian and French plates.

    python scripts/eval_country.py --labels TSV [--crops scripts/itfr_crops.tsv] [--datasets DIR] [--verbose]

Italian and French plates share their look (blue bands at both ends) and their text layout (AA123AA), so the
text alone cannot tell them apart. ``scripts/itfr_crops.tsv`` lists the real ones in ``eu-plate-crops`` and
``eu-plate-crops-2`` (judged by eye: the band's letter, the right band's content, the separators). Each
one-row crop is read by ``PlateReader.read_crop`` with the crop's own bounds as the box (a grey border around
it), and its country is the one ``edge-agent read`` prints and a pole publishes for a one-read track
(``plate_record``). Reported per true country: crops, published as IT / FR / other / nothing read, and exact
texts (against ``--labels``, the crop labels of ``scripts/label_crops.py``; O and 0 folded), and how many
reads saw a blue band at the plate's right end (``edge_agent.pipeline.alpr.band``). Two-row crops and other
countries are left out (the country cues read one-row plates).

``--half A`` / ``--half B`` scores only the plates whose label's CRC-32 is even / odd (the crops of one plate
stay together): a choice made on one half is checked on the other.

Placed: each one-row crop is also pasted into the held-out frames of the Romanian video as
``eval_eu_placed.py`` places plates (widths 80, 120 and 180 px, soft edges, JPEG) and read as the daemon reads
(the detector's boxes, a motion region around the plate): the country of the read that matches the plate
(IoU >= 0.5), or nothing. The detector's box is not the crop's: it may cut a band off or hold more.

False bands: the same count for every other one-row labelled crop of ``eu-plate-crops`` and
``eu-plate-crops-2`` (mostly German; no right band), read the same way, and for the reads on the held-out
photos of ``eval_holdout.py`` (Romanian, Turkish, Polish, US, Brazilian: none of them has a right band).
"""

from __future__ import annotations

import argparse
import csv
import sys
import zlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent
for p in (str(REPO), str(SCRIPTS)):
    if p not in sys.path:
        sys.path.insert(0, p)

import eval_eu_placed  # noqa: E402
import eval_holdout  # noqa: E402
from eval_alpr import fold  # noqa: E402

from edge_agent.core.boxes import box_iou  # noqa: E402
from edge_agent.pipeline.alpr import PlateReader  # noqa: E402
from edge_agent.pipeline.alpr.detector import Detection  # noqa: E402
from edge_agent.pipeline.alpr.read_command import plate_record  # noqa: E402
from edge_agent.pipeline.alpr.two_row import is_two_row  # noqa: E402
from edge_agent.pipeline.alpr.types import PlateRead  # noqa: E402

BORDER = 0.3  # grey around the crop, a share of its height and width on each side


def load_crops(path: Path) -> list[tuple[str, str, int]]:
    """(crop path under the datasets folder, country, rows) per line; comment lines skipped."""
    out = []
    for row in csv.reader((line for line in path.open(encoding="utf-8") if not line.startswith("#")), delimiter="\t"):
        if len(row) != 3 or not row[2].isdigit():
            raise SystemExit(f"eval_country: bad line in {path}: {row}")
        out.append((row[0], row[1], int(row[2])))
    return out


def in_half(text: str, half: str) -> bool:
    """Whether a plate (by its label) is in half A (CRC-32 even) or B (odd)."""
    return (zlib.crc32(text.encode()) % 2 == 0) == (half == "A")


def load_texts(path: Path) -> dict[str, str]:
    texts = {}
    for row in csv.reader(path.open(encoding="utf-8"), delimiter="\t"):
        if len(row) >= 2:
            texts[Path(row[0]).name] = row[1]
    return texts


def _read_alone(reader: PlateReader, crop: np.ndarray) -> PlateRead | None:
    """The crop read with its own bounds as the detector's box, a grey border around it."""
    h, w = crop.shape[:2]
    by, bx = round(h * BORDER), round(w * BORDER)
    frame = np.full((h + 2 * by, w + 2 * bx, 3), 110, np.uint8)
    frame[by:by + h, bx:bx + w] = crop
    return reader.read_crop(frame, Detection((float(bx), float(by), float(w), float(h)), 1.0))


def false_bands(reader: PlateReader, root: Path, labels: Path, listed: set[str]) -> tuple[int, int, int, int, int]:
    """(other EU crops read, of them with a right band seen, of those with French dashes, held-out photo reads,
    of them with a right band)."""
    crops = banded = dashed = 0
    for row in csv.reader(labels.open(encoding="utf-8"), delimiter="\t"):
        if len(row) < 2 or "/eu-plate-crops" not in row[0] or Path(row[0]).name in listed:
            continue
        crop = cv2.imread(row[0] if Path(row[0]).is_absolute() else str(root / row[0]))
        if crop is None or is_two_row(crop.shape[1], crop.shape[0]):
            continue
        read = _read_alone(reader, crop)
        if read is not None:
            crops += 1
            banded += read.right_band is True
            dashed += read.right_band is True and read.dashes is True
    reads = photo_banded = 0
    for source in eval_holdout.collect(root, False):
        for path, _ in source.items:
            for r in reader.read(eval_holdout.decode_image(path)):
                reads += 1
                photo_banded += r.right_band is True
    return crops, banded, dashed, reads, photo_banded


def placed_countries(reader: PlateReader, root: Path,
                     crops: list[tuple[str, str, np.ndarray]]) -> tuple[dict[str, Counter[str]], Counter[str]]:
    """Per true country, the countries published for the crops placed into held-out frames (``eval_eu_placed``),
    and how many of those reads saw a right band."""
    out: dict[str, Counter[str]] = {}
    banded: Counter[str] = Counter()
    rng = np.random.default_rng(eval_eu_placed.SEED)
    images = [(crop, 1) for _, _, crop in crops]
    for i, _, box, _, _, reads in eval_eu_placed.placed_reads(reader, images, eval_eu_placed.scenes(root), rng):
        country = crops[i][1]
        read = next((r for r in reversed(reads) if box_iou(r.box, box) >= 0.5), None)
        out.setdefault(country, Counter())[_published(reader, read)] += 1
        banded[country] += read is not None and read.right_band is True
    return out, banded


def _published(reader: PlateReader, read: PlateRead | None) -> str:
    """IT, FR, other (another country or none fits) or nothing (no read), as a pole publishes the read."""
    if read is None:
        return "nothing"
    got = plate_record(read, reader.formats, 0.0)["country"]
    return got if got in ("IT", "FR") else "other"


def _table(published: dict[str, Counter[str]], extra: dict[str, Counter[str]] | None = None) -> None:
    """Per true country: plates, published IT / FR / other / nothing, then ``extra``'s columns; and the total."""
    names = list(extra or {})
    print(f"{'country':8s} {'plates':>6s} {'IT':>4s} {'FR':>4s} {'other':>5s} {'none':>5s}"
          + "".join(f" {n:>5s}" for n in names))
    right = total = 0
    for country in ("IT", "FR"):
        c = published.get(country, Counter())
        n = sum(c.values())
        right += c[country]
        total += n
        print(f"{country:8s} {n:6d} {c['IT']:4d} {c['FR']:4d} {c['other']:5d} {c['nothing']:5d}"
              + "".join(f" {(extra or {})[k][country]:5d}" for k in names))
    print(f"country right: {right} of {total} ({right / max(total, 1):.1%})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=Path, required=True, help="crop labels (scripts/label_crops.py)")
    ap.add_argument("--crops", type=Path, default=SCRIPTS / "itfr_crops.tsv")
    eval_holdout.add_datasets_argument(ap)
    ap.add_argument("--verbose", action="store_true", help="list every crop whose country or text is wrong")
    ap.add_argument("--half", choices=("A", "B"), default=None,
                    help="only the plates whose label's CRC-32 is even (A) or odd (B)")
    args = ap.parse_args()
    root = args.datasets or eval_holdout.datasets_dir()
    texts = load_texts(args.labels)
    reader = PlateReader()
    published: dict[str, Counter[str]] = {}
    exact: Counter[str] = Counter()
    banded: Counter[str] = Counter()
    crops = load_crops(args.crops)
    one_row: list[tuple[str, str, np.ndarray]] = []
    for rel, country, rows in crops:
        if rows != 1 or country not in ("IT", "FR"):
            continue
        if args.half is not None and not in_half(texts.get(Path(rel).name, ""), args.half):
            continue
        crop = cv2.imread(str(root / rel))
        if crop is None:
            raise SystemExit(f"eval_country: cannot read {root / rel}")
        one_row.append((rel, country, crop))
        read = _read_alone(reader, crop)
        banded[country] += read is not None and read.right_band is True
        got = _published(reader, read)
        published.setdefault(country, Counter())[got] += 1
        truth = texts.get(Path(rel).name, "")
        ok = read is not None and fold(read.text) == fold(truth)
        exact[country] += ok
        if args.verbose and (got != country or not ok):
            print(f"{rel}: {country} {truth} -> {got} {'-' if read is None else read.text}")
    print(f"models {reader.model_versions}")
    print("each crop read with its own bounds as the box:")
    _table(published, {"exact": exact, "band": banded})
    print("placed into held-out frames, read as the daemon reads:")
    placed, placed_banded = placed_countries(reader, root, one_row)
    _table(placed, {"band": placed_banded})
    listed = {Path(r).name for r, _, _ in crops}
    n_crops, n_banded, n_dashed, n_reads, n_photo = false_bands(reader, root, args.labels, listed)
    print(f"false bands: {n_banded} of {n_crops} other EU crops read ({n_banded / max(n_crops, 1):.1%}; "
          f"{n_dashed} of them with French dashes); {n_photo} of {n_reads} reads on the held-out photos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
