"""Messages produced by the plate reader."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class ModelError(Exception):
    """A model file is missing, unreadable or not the model we expect."""


Alternatives = tuple[tuple[tuple[str, float], ...], ...]  # per character: (other glyph, probability), best first


@dataclass(frozen=True, slots=True)
class OcrRead:
    """What the OCR model read in one crop, before any plate-format check."""

    text: str
    confidence: float  # the weakest character's
    char_confidences: tuple[float, ...]
    alternatives: Alternatives  # per character, the other glyphs the model found plausible


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
    # Set by the reader from the plate formats (edge_agent.core.formats): the text above is already checked.
    country: str | None = None
    corrected_from: str | None = None  # the model's own read, when the format check changed it
    two_row: bool = False
    right_band: bool | None = None  # a blue band at the plate's right end (IT, FR); None: colour cannot tell
    # With a right band: dashes between the groups (FR) seen, or seven characters and none (IT); None: no say.
    dashes: bool | None = None
