# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Which training images are held out for validation, by source: one home for the split.

The detector trainer, the OCR trainer and ``scripts/eval_holdout.py`` all ask this module, so a
photo held out of one model's training is held out of the other's too, and the figures in the model
cards are measured on images neither model saw. Thresholds and margins are chosen on these splits,
never on ``eu-plates-dev``.

Held out (decided before any result was seen, by what a pole meets that training should not):
- ``plates-ro-boxes``: the whole ``ro_dayride_type1_002`` video (the frames of one video are near
  duplicates, so a random slice would leak);
- ``plates-tr-boxes``: all ``tr_plate2`` highway frames (small plates, a pole-like view) and one in
  six of the other photos (stable hash of the name);
- ``plates-pl-boxes``: one in five photos; ``plates-us-train``, ``plates-br-train``: one in ten;
- ``eu-plate-crops``, ``eu-plate-crops-2``, ``br-plate-crops``: one in ten crops.
"""

from __future__ import annotations

import zlib

HELD_OUT_VIDEOS = {"plates-ro-boxes": ("ro_dayride_type1_002",)}
HELD_OUT_PREFIXES = {"plates-tr-boxes": ("tr_plate2-",)}
ONE_IN = {
    "plates-tr-boxes": 6,
    "plates-pl-boxes": 5,
    "plates-us-train": 10,
    "plates-br-train": 10,
    "eu-plate-crops": 10,
    "eu-plate-crops-2": 10,
    "br-plate-crops": 10,
}


def _bucket(name: str, n: int) -> bool:
    return zlib.crc32(name.encode()) % n == 0


def held_out(source: str, name: str) -> bool:
    """True when image ``name`` (file name, no folder) of dataset folder ``source`` is validation only."""
    if any(name.startswith(v + "_t") or name.startswith(v + "_") for v in HELD_OUT_VIDEOS.get(source, ())):
        return True
    if any(name.startswith(p) for p in HELD_OUT_PREFIXES.get(source, ())):
        return True
    n = ONE_IN.get(source)
    return n is not None and _bucket(name, n)
