"""Messages produced by the plate reader."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class ModelError(Exception):
    """A model file is missing, unreadable or not the model we expect."""


@dataclass(frozen=True)
class PlateRead:
    """One plate found and read in one image.

    ``box`` is (x, y, w, h) in pixels of the image given to the reader.
    ``crop`` is the rectified plate image (BGR) that was read; the events stage
    encodes it as a small JPEG.
    """

    text: str
    box: tuple[int, int, int, int]
    confidence: float
    char_confidences: tuple[float, ...] = ()
    crop: np.ndarray | None = field(default=None, compare=False, repr=False)
