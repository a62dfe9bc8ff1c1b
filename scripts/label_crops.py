# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Label the unlabelled European plate crops with a teacher OCR.

The teacher is the PP-OCRv4 text recogniser shipped inside the rapidocr-onnxruntime
wheel (Apache-2.0). A teacher read is kept only when it is confident and its cleaned
text matches at least one European plate format, so that garbage reads (stickers,
dealer frames, the German registration seal read as "8" or "&") do not become labels.

Labels go to a TSV cache outside the repository: ``path<TAB>text<TAB>score<TAB>rows<TAB>box``
(box ``x,y,w,h`` only for plates in full photos).
The images themselves are never copied. Teacher reads checked by eye and found wrong are
corrected from ``scripts/label_fixes.tsv`` as the labels are written, and crops (or photo plates, by
their box) the teacher could not label but a person could read are added from
``scripts/hand_labels.tsv``; ``--fix-only`` applies both files to an existing label TSV without running
the teacher again.

    /work/train-venv/bin/python scripts/label_crops.py \
        --datasets ../shared/datasets --out ../ckpt/ocr/crop_labels.tsv
    python scripts/label_crops.py --fix-only ../ckpt/ocr/crop_labels.tsv --out ../ckpt/ocr/crop_labels.tsv
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import agent_module
import cv2
import numpy as np

_BAND = agent_module.load("edge_agent/pipeline/alpr/band.py")  # the reader's band-blue mask
_FORMATS = agent_module.load("edge_agent/core/formats.py")  # the reader's plate layouts

# Plate formats after removing spaces, dashes and emblems. They are deliberately
# country-specific rather than "any 4-8 alphanumerics": a read that fits no real
# format is far more often a teacher error than an exotic plate. Broader than the pole's layouts
# (``core/formats.py``) on purpose: a sanity filter for teacher reads of plates from all over Europe
# (Belgian, Dutch, Irish, British private plates), not a country check: the pole's layouts reject 151
# of the EU-crop labels, most of them right (``plate_ocr.md``, Limitations).
PLATE_FORMATS: dict[str, str] = {
    "SK_IT_FR": r"[A-Z]{2}\d{3}[A-Z]{2}",
    "DE": r"[A-Z]{1,3}[A-Z]{1,2}\d{1,4}[EH]?",
    "CZ": r"\d[A-Z][A-Z0-9]\d{4}",
    "HR": r"[A-Z]{2}\d{3,4}[A-Z]{1,2}",
    "PL": r"[A-Z]{2,3}\d[A-Z0-9]{2,4}",
    "AT": r"[A-Z]{1,2}\d{1,6}[A-Z]{0,3}",
    "BG_RO": r"[A-Z]{1,2}\d{2,4}[A-Z]{2,3}",
    "TR": r"\d{2}[A-Z]{1,3}\d{2,5}",
    "ES": r"\d{4}[A-Z]{3}",
    "BE": r"\d[A-Z]{3}\d{3}",
    "GB": r"[A-Z]{2}\d{2}[A-Z]{3}",
    "HU_LT": r"[A-Z]{3}\d{3}",
    "NL": (
        r"[A-Z]{2}\d{2}[A-Z]{2}|\d{2}[A-Z]{2}\d{2}|\d{2}[A-Z]{3}\d|\d[A-Z]{3}\d{2}"
        r"|[A-Z]{2}\d{3}[A-Z]|[A-Z]\d{3}[A-Z]{2}|[A-Z]{3}\d{2}[A-Z]|\d{3}[A-Z]{2}\d"
    ),
    "FR_OLD": r"\d{1,4}[A-Z]{2,3}\d{2}",
    "CH": r"[A-Z]{2}\d{1,6}",
}
_FORMAT_RE = re.compile("|".join(f"(?:{p})" for p in PLATE_FORMATS.values()))

# Sources whose country is known get only that country's layouts: a Romanian read that
# fits, say, the Dutch layout is a teacher error, not a Dutch car.
RO_FORMAT = "|".join(_FORMATS.FORMATS["RO"])  # LL DD LLL, Bucharest B DD(D) LLL
TR_FORMAT = r"\d{2}[A-Z]{1,3}\d{2,4}"  # DD L{1,3} D{2,4}
SOURCE_FORMATS: dict[str, re.Pattern[str]] = {
    "plates-ro-boxes": re.compile(RO_FORMAT),
    "plates-tr-boxes": re.compile(TR_FORMAT),
}

# German plates carry round seals between the district letters and the rest; the
# teacher reads them as one of these glyphs (or a CJK character). The seal is only
# removed where a letter group follows it, which no non-German format has.
_SEAL = r"(?:[8&0o°%*@Q·•]|[^\x00-\x7f])"
_DE_SEAL_RE = re.compile(rf"^([A-Z]{{1,3}})[\s\-.]*{_SEAL}[\s\-.]*([A-Z]{{1,2}})[\s\-.]*(\d{{1,4}}[EH]?)$")


FIXES = Path(__file__).with_name("label_fixes.tsv")


def load_fixes(path: Path = FIXES) -> dict[str, tuple[str, str | None]]:
    """``folder/file`` -> (the teacher's text, the plate's text or None to drop the crop)."""
    fixes: dict[str, tuple[str, str | None]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3 or fields[0] in fixes:
            raise ValueError(f"{path}:{n}: want one 'folder/file<TAB>teacher text<TAB>text' line per crop")
        fixes[fields[0]] = (fields[1], None if fields[2] == "-" else fields[2])
    return fixes


HAND_LABELS = Path(__file__).with_name("hand_labels.tsv")


def load_hand_labels(path: Path = HAND_LABELS) -> dict[str, tuple[str, int]]:
    """Key -> (the plate's text, top row first; its rows, 1 or 2). The key is ``folder/file`` for a
    ready-cut crop and ``folder/file@x,y,w,h`` for a plate boxed in a photo (the box as the photo's
    annotation gives it, in whole pixels, as ``label_crops`` cuts it)."""
    labels: dict[str, tuple[str, int]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        box = fields[3].split(",") if len(fields) == 4 else []
        key = f"{fields[0]}@{fields[3]}" if box else fields[0]
        if (len(fields) not in (3, 4) or key in labels or fields[2] not in ("1", "2")
                or (len(fields) == 4 and (len(box) != 4 or not all(v.isdigit() for v in box)
                                          or int(box[2]) < 1 or int(box[3]) < 1))
                or not (fields[1].isascii() and fields[1].isalnum() and fields[1] == fields[1].upper())):
            raise ValueError(f"{path}:{n}: want one 'folder/file<TAB>TEXT<TAB>rows (1 or 2)[<TAB>x,y,w,h]' "
                             f"line per crop or boxed plate")
        labels[key] = (fields[1], int(fields[2]))
    return labels


NEGATIVES = Path(__file__).with_name("ocr_negatives.tsv")


def load_negatives(path: Path = NEGATIVES) -> list[tuple[str, tuple[int, int, int, int]]]:
    """(``folder/file``, plate-like box x, y, w, h) of each crop checked by eye to be no plate
    (``scripts/mine_negatives.py``), in file order; the third column is a note."""
    out: list[tuple[str, tuple[int, int, int, int]]] = []
    seen: set[tuple[str, str]] = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        box = tuple(int(v) for v in fields[1].split(",") if v.isdigit()) if len(fields) == 3 else ()
        folder, _, name = fields[0].partition("/")
        if (len(box) != 4 or box[2] < 1 or box[3] < 1 or not folder or not name or "/" in name
                or folder.startswith(".") or (fields[0], fields[1]) in seen):
            raise ValueError(f"{path}:{n}: want one 'folder/file<TAB>x,y,w,h<TAB>note' line per box")
        seen.add((fields[0], fields[1]))
        x, y, w, h = box
        out.append((fields[0], (x, y, w, h)))
    return out


READER_BORDERS = Path(__file__).with_name("reader_borders.tsv")


def load_reader_borders(path: Path = READER_BORDERS) -> dict[str, list[tuple[float, float, float, float]]]:
    """Per dataset folder, the (left, right, top, bottom) borders of the reader's cuts of its training
    plates, one per plate, as shares of the cut (``scripts/reader_borders.py`` writes the file)."""
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("\t")
        try:
            values = [float(v) for v in fields[1:]]
        except ValueError:
            values = []
        # NaN fails the range test too.
        if len(fields) != 5 or not fields[0] or len(values) != 4 or not all(-1.0 < v < 1.0 for v in values):
            raise ValueError(f"{path}:{n}: want one 'folder<TAB>left<TAB>right<TAB>top<TAB>bottom' line per "
                             f"plate, each border between -1 and 1")
        rows.setdefault(fields[0], []).append((values[0], values[1], values[2], values[3]))
    if not rows:
        raise ValueError(f"{path}: no borders")
    return rows


def hand_label_lines(datasets: Path, hand: dict[str, tuple[str, int]], have: set[str]) -> list[str]:
    """Label lines (score 1.0; a box for a photo's plate) for the hand-read plates whose key is not in
    ``have``."""
    lines = []
    for key, (text, rows) in hand.items():
        if key not in have:
            image, _, box = key.partition("@")
            lines.append(f"{(datasets / image).resolve()}\t{text}\t1.0000\t{rows}\t{box}")
    return lines


def _key(path: str, box: str = "") -> str:
    """The hand-label key of a crop, or of the plate at ``box`` in a photo."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" + (f"@{box}" if box else "")


def _label_key(line: str) -> str:
    """The hand-label key of a label TSV line."""
    fields = line.split("\t")
    return _key(fields[0], fields[4] if len(fields) > 4 else "")


def fixed_label(fixes: dict[str, tuple[str, str | None]], image: Path, text: str) -> str | None:
    """The label for ``image`` after the checked fixes: as read, corrected, or None (dropped).

    A fix applies only to the teacher text it was checked against: a different read of the same
    crop (a new teacher, a new crop cut) is kept as read rather than overwritten blindly."""
    fix = fixes.get(_key(str(image)))
    if fix is None or fix[0] != text:
        return text
    return fix[1]


def apply_fixes(lines: list[str], fixes: dict[str, tuple[str, str | None]]) -> tuple[list[str], int]:
    """Label TSV lines with the fixes applied, and how many lines changed or went."""
    out, changed = [], 0
    for line in lines:
        fields = line.split("\t")
        text = fixed_label(fixes, Path(fields[0]), fields[1]) if len(fields) > 1 else None
        if len(fields) < 2 or text == fields[1]:
            out.append(line)  # not a label line, or no fix for it
            continue
        changed += 1
        if text is not None:
            out.append("\t".join([fields[0], text, *fields[2:]]))
    return out, changed


def clean_read(raw: str, fmt: re.Pattern[str] | None = None) -> str | None:
    """Plate text from a raw teacher read, or None when it is not a believable plate.

    ``fmt`` restricts the accepted layouts (a source of known country)."""
    raw = raw.strip()
    m = _DE_SEAL_RE.match(raw)
    if m:
        raw = "".join(m.groups())
    text = re.sub(r"[\s\-.·•:_,'\"]", "", raw)
    if not text.isascii() or not text.isalnum():
        return None
    text = text.upper()
    if not 4 <= len(text) <= 8:
        return None
    if not (any(c.isdigit() for c in text) and any(c.isalpha() for c in text)):
        return None
    return text if (fmt or _FORMAT_RE).fullmatch(text) else None


class Teacher:
    """PP-OCRv4 recogniser only: the crops are already plates, detection would only hurt."""

    def __init__(self) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self._engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)

    def read(self, img: np.ndarray) -> tuple[str, float]:
        res, _ = self._engine(img, use_det=False, use_cls=False, use_rec=True)
        if not res:
            return "", 0.0
        text, score = res[0][0], float(res[0][1])
        return str(text), score


def blank_blue_ends(img: np.ndarray) -> np.ndarray:
    """The crop with the blue bands at its ends painted over with the plate's white.

    The teacher reads the EU band's country letters (``D``, ``SK``, ``I``, ``TR``) and the
    Italian/French right band as characters often enough to spoil labels (``EDW00001``
    for a Polish ``DW 00001``). A band is a run of mostly-blue columns starting within the
    outer 18% of the width at either end, with a plate that is not blue in its middle."""
    if img.ndim != 3 or img.shape[1] < 20:
        return img
    # Lower saturation than the reader's country cue: here a missed band costs a label, a
    # false one only a white strip at the plate's outer end.
    blue = _BAND.blue_mask(cv2.cvtColor(img, cv2.COLOR_BGR2HSV), min_sat=70)
    h, w = blue.shape
    frac = blue[int(h * 0.2) : int(h * 0.8) + 1].mean(axis=0)
    if frac[int(w * 0.3) : int(w * 0.7)].mean() > 0.15:
        return img  # a blue plate, or a blue cast: nothing to blank
    lim = max(2, int(w * 0.18))
    min_run = max(2, int(w * 0.025))
    out = img
    white = np.percentile(img.reshape(-1, 3), 90, axis=0).astype(np.uint8)
    for cols in (np.arange(lim), np.arange(w - 1, w - 1 - lim, -1)):
        hit = frac[cols] >= 0.35
        if int(hit.sum()) < min_run:
            continue
        last = int(np.nonzero(hit)[0].max())  # innermost blue column within the outer band
        span = cols[: last + 1]
        if out is img:
            out = img.copy()
        out[:, span.min() : span.max() + 1] = white
    return out


def label_one(
    teacher: Teacher, img: np.ndarray, two_rows: bool, min_score: float, fmt: re.Pattern[str] | None = None
) -> tuple[str, float] | None:
    img = blank_blue_ends(img)
    if two_rows:
        # The recogniser reads one line; two-row plates are read per half and joined.
        h = img.shape[0]
        top_raw, s1 = teacher.read(img[: h // 2 + 2])
        bot_raw, s2 = teacher.read(img[h // 2 - 2 :])
        raw, score = top_raw + " " + bot_raw, min(s1, s2)
    else:
        raw, score = teacher.read(img)
    if score < min_score:
        return None
    text = clean_read(raw, fmt)
    return (text, score) if text else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=Path(os.environ.get("EDGE_AGENT_DATASETS", "../shared/datasets")))
    # Beside the repository, where train_ocr.py --labels looks by default.
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "ckpt/ocr/crop_labels.tsv")
    ap.add_argument("--min-score", type=float, default=0.9)
    ap.add_argument("--limit", type=int, default=0, help="label at most this many crops per folder (debug)")
    ap.add_argument("--fix-only", type=Path, metavar="TSV",
                    help="apply scripts/label_fixes.tsv and scripts/hand_labels.tsv to this label TSV and write "
                    "it to --out; no teacher")
    args = ap.parse_args(argv)
    try:
        fixes = load_fixes()
        hand = load_hand_labels()
        given = args.fix_only.read_text(encoding="utf-8").splitlines() if args.fix_only is not None else []
    except (OSError, ValueError) as exc:
        print(f"label_crops: {exc}", file=sys.stderr)
        return 1
    if args.fix_only is not None:
        lines, changed = apply_fixes(given, fixes)
        added = hand_label_lines(args.datasets, hand, {_label_key(line) for line in given})
        tmp_out = args.out.with_suffix(".tmp")
        tmp_out.write_text("".join(line + "\n" for line in lines + added), encoding="utf-8")
        tmp_out.replace(args.out)
        print(f"{changed} of {len(given)} labels fixed or dropped, {len(added)} read by hand added; wrote {args.out}")
        return 0

    from tqdm import tqdm

    teacher = Teacher()
    # (image, two rows, box in the image or None for a ready-cut crop)
    jobs: list[tuple[Path, bool, tuple[int, int, int, int] | None]] = []
    for folder, two_rows in (("eu-plate-crops", False), ("eu-plate-crops-2", True)):
        files = sorted(p for p in (args.datasets / folder).iterdir() if p.suffix.lower() in (".png", ".jpg"))
        if args.limit:
            files = files[: args.limit]
        jobs += [(p, two_rows, None) for p in files]
    # The Polish, Romanian and Turkish photos have plate boxes but no text: the same
    # teacher can label them.
    for box_folder in ("plates-pl-boxes", "plates-ro-boxes", "plates-tr-boxes"):
        pl = args.datasets / box_folder
        anns = sorted(pl.glob("*.txt")) if pl.is_dir() else []
        for ann in anns[: args.limit or None]:
            for line in ann.read_text().splitlines():
                f = line.split("\t")
                if len(f) >= 5:
                    x, y, w, h = (int(float(v)) for v in f[1:5])
                    jobs.append((pl / f[0], False, (x, y, w, h)))
    if not jobs:
        print(f"no crops found under {args.datasets}", file=sys.stderr)
        return 1

    args.out.parent.mkdir(parents=True, exist_ok=True)
    kept: dict[str, int] = {}
    seen: dict[str, int] = {}
    written: set[str] = set()
    t0 = time.monotonic()
    tmp = args.out.with_suffix(".tmp")
    with tmp.open("w") as fh:
        for path, two_rows, box in tqdm(jobs, desc="teacher", unit="crop", mininterval=2.0):
            folder = path.parent.name
            seen[folder] = seen.get(folder, 0) + 1
            img = cv2.imread(str(path))
            if img is None:
                continue
            crop = img
            if box is not None:
                x, y, w, h = box
                if w < 8 or h < 4 or w > 0.8 * img.shape[1]:
                    continue
                # These 640x640 exports are stretched: restore a plate-like aspect for the teacher.
                crop = img[max(0, y) : y + h, max(0, x) : x + w]
                crop = cv2.resize(crop, (max(8, int(crop.shape[0] * 4.6)), crop.shape[0]))
            res = label_one(teacher, crop, two_rows, args.min_score, SOURCE_FORMATS.get(folder))
            text = None if res is None else fixed_label(fixes, path, res[0])
            if res is None or text is None:
                continue
            kept[folder] = kept.get(folder, 0) + 1
            box_s = ",".join(map(str, box)) if box else ""
            fh.write(f"{path.resolve()}\t{text}\t{res[1]:.4f}\t{2 if two_rows else 1}\t{box_s}\n")
            written.add(_key(str(path), box_s))
        # A crop or photo plate the teacher could not label but a person could read.
        added = hand_label_lines(args.datasets, hand, written)
        fh.writelines(line + "\n" for line in added)
    tmp.replace(args.out)
    for folder, n in seen.items():
        print(f"{folder}: kept {kept.get(folder, 0)}/{n}")
    print(f"{len(added)} crops read by hand added; wrote {args.out} in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
