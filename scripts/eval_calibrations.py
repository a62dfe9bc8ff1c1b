#!/usr/bin/env python3
# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Judges trained weights over several int8 calibrations, since one file's figures carry its rounding's luck.

    python scripts/eval_calibrations.py detector --ckpt DIR --labels TSV --out DIR \\
        [--seeds 1,2,3,4] [--calib samples,photos] [--ocr FILE] [--train-python PY]
    python scripts/eval_calibrations.py ocr --ckpt DIR --ocr-pack PACK --labels TSV --out DIR \\
        [--seeds 1,2,3,4] [--detector FILE] [--train-python PY]

Re-exporting the same weights with another int8 calibration moves the held-out reader score by up to ten
plates (the detector card's "Going on from the shipped file"), so candidates are compared as weights, over
calibrations, and then as the one file that would ship. For each calibration this exports the weights in
``--ckpt`` (the trainer's ``--export-only`` with ``--calib-seed``, run by ``--train-python``, which has
TensorFlow; an export already in ``--out`` is reused) and scores the file with the other model as shipped (or
the one given): the held-out photos (``eval_holdout.py``: reader score pooled, over the European-style plates
and over the American ones, detector recall at IoU 0.5, false plates per photo) and the held-out EU crops
placed into held-out frames (``eval_eu_placed.py``'s score); an OCR export's own count of held-out crops read
right is kept too. One line per calibration, as each finishes, then the means; everything also goes to
``--out/results.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import eval_eu_placed  # noqa: E402
import eval_holdout  # noqa: E402

COLUMNS = ("score", "europe", "americas", "false_per_photo", "det50", "placed", "crops")
_CROPS_RE = re.compile(r"val int8 tflite: ALL (\d+)/\d+")


def calibrations(kind: str, seeds: list[int], calib: list[str]) -> list[tuple[str, int, str]]:
    """(name, seed, calibration inputs) of each export: the OCR calibrates on samples only."""
    kinds = calib if kind == "detector" else ["samples"]
    return [(f"{kind}-{c}{s}", s, c) for c in kinds for s in seeds]


def export_command(args: argparse.Namespace, out: Path, seed: int, calib: str) -> list[str]:
    if args.kind == "detector":
        return [args.train_python, str(SCRIPTS / "train_detector.py"), "--export-only", "--ckpt", str(args.ckpt),
                "--out", str(out), "--calib-seed", str(seed), "--calib", calib]
    return [args.train_python, str(SCRIPTS / "train_ocr.py"), "--export-only", "--ckpt", str(args.ckpt),
            "--data", str(args.ocr_pack), "--out", str(out), "--calib-seed", str(seed)]


def crops_right(log: str) -> int | None:
    """The OCR export's count of held-out crops read right by the int8 file (its last report)."""
    found = _CROPS_RE.findall(log)
    return int(found[-1]) if found else None


def _json_of(main: Any, argv: list[str]) -> dict[str, Any]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    if rc != 0:
        raise RuntimeError(f"{main.__module__} {' '.join(argv)} failed ({rc})")
    out: dict[str, Any] = json.loads(buf.getvalue())
    return out


def score_file(detector: Path | None, ocr: Path | None, labels: Path, datasets: Path) -> dict[str, Any]:
    """The held-out figures of one detector and OCR pair (None: the packaged model)."""
    models = [*(["--detector", str(detector)] if detector else []), *(["--ocr", str(ocr)] if ocr else [])]
    common = ["--labels", str(labels), "--datasets", str(datasets), *models]
    held = _json_of(eval_holdout.main, ["--json", *common])
    rows = {r["source"]: r for r in held["sources"] if r["part"] == "validation"}
    placed = _json_of(eval_eu_placed.main, ["--json", *common])
    total, europe, americas = rows["TOTAL"], rows.get("TOTAL europe"), rows.get("TOTAL americas")
    return {
        "score": total["reader_score"],
        "europe": europe["reader_score"] if europe else None,
        "americas": americas["reader_score"] if americas else None,
        "false_per_photo": total["false_plates_per_image"],
        "det50": total["detector_recall_iou0.5"],
        "placed": placed["total"]["score"],
    }


def means(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """The mean of each column over the calibrations that have it."""
    out: dict[str, float | None] = {}
    for col in COLUMNS:
        values = [r[col] for r in rows if r.get(col) is not None]
        out[col] = round(statistics.fmean(values), 4) if values else None
    return out


# Column, width, format: one layout for the header and every line.
LAYOUT = (("score", 7, ".1f"), ("europe", 8, ".1f"), ("americas", 9, ".1f"), ("false_per_photo", 8, ".3f"),
          ("det50", 8, ".1%"), ("placed", 8, ".1f"), ("crops", 7, ".1f"))
TITLES = {"false_per_photo": "false", "det50": "det@.5"}
HEADER = f"{'calibration':<18}" + "".join(f"{TITLES.get(col, col):>{width}}" for col, width, _ in LAYOUT)


def line(name: str, row: dict[str, Any]) -> str:
    return f"{name:<18}" + "".join(
        f"{row[col]:>{width}{fmt}}" if row.get(col) is not None else f"{'-':>{width}}" for col, width, fmt in LAYOUT)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=("detector", "ocr"))
    ap.add_argument("--ckpt", type=Path, required=True, help="the trainer's folder holding last.weights.h5")
    ap.add_argument("--labels", type=Path, required=True, help="crop labels (scripts/label_crops.py's TSV)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the exports, their logs and results.json")
    ap.add_argument("--ocr-pack", type=Path, help="the OCR's training pack (train_ocr_fit.py --pack): its calibration "
                    "and held-out crops; needed for ocr")
    ap.add_argument("--seeds", default="1,2,3,4", help="calibration seeds, comma separated (default 1,2,3,4)")
    ap.add_argument("--calib", default="samples,photos",
                    help="the detector's calibration inputs, comma separated (default samples,photos)")
    ap.add_argument("--detector", type=Path, help="the detector an OCR is scored with (default: packaged)")
    ap.add_argument("--ocr", type=Path, help="the OCR a detector is scored with (default: packaged)")
    ap.add_argument("--train-python", default=sys.executable,
                    help="the Python with the training requirements, which runs the exports (default: this one)")
    eval_holdout.add_datasets_argument(ap)
    args = ap.parse_args(argv)
    try:
        seeds = [int(v) for v in args.seeds.split(",")]
    except ValueError:
        ap.error(f"--seeds: want whole numbers separated by commas, not {args.seeds!r}")
    calib = args.calib.split(",")
    if not seeds or not set(calib) <= {"samples", "photos"}:
        ap.error("--calib: want samples and/or photos, separated by commas")
    if args.kind == "ocr" and args.ocr_pack is None:
        ap.error("ocr needs --ocr-pack (the pack its trainer used: the calibration crops come from it)")
    if not (args.ckpt / "last.weights.h5").is_file():
        print(f"eval_calibrations: no {args.ckpt / 'last.weights.h5'}", file=sys.stderr)
        return 2
    if not args.labels.is_file():
        print(f"eval_calibrations: no labels file {args.labels}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    print(HEADER, flush=True)
    for name, seed, how in calibrations(args.kind, seeds, calib):
        model = args.out / f"{name}.tflite"
        log = model.with_suffix(".log")
        if not model.is_file():
            with log.open("w", encoding="utf-8") as fh:
                rc = subprocess.run(export_command(args, model, seed, how), stdout=fh, stderr=subprocess.STDOUT,
                                    check=False).returncode
            if rc != 0 or not model.is_file():
                print(f"eval_calibrations: export {name} failed ({rc}); see {log}", file=sys.stderr)
                return 1
        pair = (model, args.ocr) if args.kind == "detector" else (args.detector, model)
        row: dict[str, Any] = {"calibration": name, "file": str(model),
                               "sha256": hashlib.sha256(model.read_bytes()).hexdigest()[:12],
                               **score_file(*pair, args.labels, args.datasets)}
        row["crops"] = crops_right(log.read_text(encoding="utf-8")) if args.kind == "ocr" and log.is_file() else None
        results.append(row)
        print(line(name, row), flush=True)
    summary = means(results)
    print(line("mean", summary))
    (args.out / "results.json").write_text(json.dumps({"kind": args.kind, "ckpt": str(args.ckpt),
                                                       "labels": str(args.labels), "calibrations": results,
                                                       "mean": summary}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
