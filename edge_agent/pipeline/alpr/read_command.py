# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""``edge-agent read [--config FILE] [--json] PATH...``: read the plates in image files or folders of images.

Each plate is printed as a pole would publish it in its transit record (``events/plate``): the
text after the plate-format check, ``read_status``, ``confidence``, ``country``,
``country_confidence`` and ``corrected_from``, with the formats, models and low-confidence limit of
the config given (the defaults without one); reads below `alpr.min_confidence` are left out, as a pole
drops them. One image is one frame: a pole also votes over the
frames of a pass, which only a video shows.

Exit status: 0 all images read; 1 some images could not be decoded (each is reported, the rest
are read); 2 nothing could be read at all (missing path, folder without images, only bad files,
unusable model).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from edge_agent.config import Config
from edge_agent.core.formats import PlateFormats
from edge_agent.pipeline.alpr.types import ModelError, PlateRead
from edge_agent.pipeline.events import published_check, read_fields

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pnm"})


def collect_images(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Image files named or found (non-recursively) in the named folders, and the problems found."""
    files: list[Path] = []
    problems: list[str] = []
    for p in paths:
        if p.is_dir():
            found = sorted(c for c in p.iterdir() if c.is_file() and c.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append(f"{p}: folder contains no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        elif p.exists():
            problems.append(f"{p}: not a file or folder")
        else:
            problems.append(f"{p}: no such file or folder")
    return files, problems


def decode_image(path: Path) -> np.ndarray:
    """The image as BGR, or ValueError saying why not."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise ValueError(f"cannot open: {exc.strerror or exc}") from None
    if data.size == 0:
        raise ValueError("empty file")
    # imdecode rather than imread: no path-encoding surprises and no OpenCV warnings on stderr.
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise ValueError("not an image or corrupt (cannot decode)")
    return np.asarray(img)


def plate_record(r: PlateRead, formats: PlateFormats, low_confidence: float) -> dict[str, Any]:
    """The read as the pole publishes it (the read fields of ``events/plate``), plus its box."""
    # As the pipeline checks a track of one read: the same function, so `read` shows what a pole publishes.
    check = published_check(formats, r.text, r, r.right_band, r.dashes)
    return {**read_fields(check, r.confidence, formats.country_of(check, r.right_band, r.dashes), low_confidence),
            "box": list(r.box), "two_row": r.two_row}


def _plate_text(p: dict[str, Any]) -> str:
    x, y, w, h = p["box"]
    country = f"{p['country']} {p['country_confidence']:.2f}" if p["country"] else "no format fits"
    fixed = f", corrected from {p['corrected_from']}" if p["corrected_from"] else ""
    return f"{p['text']} ({p['read_status']}, {p['confidence']:.2f}, {country}{fixed}) at x={x} y={y} w={w} h={h}"


def run_read(
    paths: list[Path],
    as_json: bool,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    *,
    cfg: Config | None = None,
) -> int:
    """Reads plates in ``paths`` (files or folders) and prints one line per image; returns the exit code.

    ``ms`` is the time to find and read the plates in the decoded image (decoding not included).
    """
    files, problems = collect_images([Path(p) for p in paths])
    if problems:
        for msg in problems:
            print(f"edge-agent read: {msg}", file=err)
        return EXIT_USAGE
    if not files:
        print("edge-agent read: no images given", file=err)
        return EXIT_USAGE

    from edge_agent.pipeline.alpr.reader import PlateReader

    try:
        cfg = cfg if cfg is not None else Config()
        reader = PlateReader(detector_path=cfg.alpr.detector_model, ocr_path=cfg.alpr.ocr_model, threads=1,
                             min_confidence=cfg.alpr.min_confidence,
                             formats=cfg.formats.enabled)
    except ModelError as exc:
        print(f"edge-agent read: cannot load the plate models: {exc}", file=err)
        return EXIT_USAGE

    failed = 0
    plates = 0
    times: list[float] = []
    for f in files:
        try:
            img = decode_image(f)
            t0 = time.perf_counter()
            reads = reader.read(img)
            ms = (time.perf_counter() - t0) * 1000
        except ValueError as exc:
            print(f"edge-agent read: {f}: {exc}", file=err)
            failed += 1
            continue
        except Exception as exc:  # one bad image must not stop a batch, nor print a traceback
            print(f"edge-agent read: {f}: failed: {type(exc).__name__}: {exc}", file=err)
            failed += 1
            continue
        plates += len(reads)
        records = [plate_record(r, reader.formats, cfg.tracking.low_confidence) for r in reads]
        times.append(ms)
        # The path as given (not the base name): errors name it so too, and two folders may share names.
        if as_json:
            line = json.dumps({"image": str(f), "plates": records, "ms": round(ms, 1)})
        else:
            found = "; ".join(_plate_text(p) for p in records) if records else "no plate found"
            line = f"{f}: {found} [{ms:.1f} ms]"
        print(line, file=out, flush=True)
    median = f"{sorted(times)[len(times) // 2]:.1f} ms" if times else "-"
    print(f"edge-agent read: {len(files)} image(s), {plates} plate(s) read, {failed} failed, median {median} "
          "per image", file=err)
    if failed == len(files):
        return EXIT_USAGE
    return EXIT_SOME_FAILED if failed else EXIT_OK
