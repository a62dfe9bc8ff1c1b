# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Images as JPEG bytes in a NumPy ``.npz``: the packs the trainers write so their data travels to a
lent GPU in one file (``train_detector.Pools.save_pack``, ``train_ocr.save_pack``). Plain arrays, no
pickle: one byte buffer per set of images and the end offset of each image in it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np


def jpeg(img: np.ndarray, quality: int, scale: float = 1.0) -> bytes:
    """``img`` as JPEG, first shrunk by ``scale`` when that is under 1."""
    if scale < 1:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode an image of shape {img.shape}")
    return bytes(buf)


def put(arrays: dict[str, np.ndarray], key: str, blobs: Sequence[bytes]) -> None:
    """Adds ``key`` (the bytes) and ``key_ends`` (each image's end offset) to the arrays to save."""
    arrays[key] = np.frombuffer(b"".join(blobs), np.uint8)
    arrays[key + "_ends"] = np.cumsum([len(b) for b in blobs], dtype=np.int64)


def get(z: Mapping[str, Any], key: str, flags: int) -> list[np.ndarray]:
    """The images stored under ``key``, decoded with ``cv2.imdecode`` ``flags``."""
    buf, ends = z[key], z[key + "_ends"]
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    return [np.asarray(cv2.imdecode(buf[a:b], flags), np.uint8) for a, b in zip(starts, ends, strict=True)]
