"""What every frame source delivers, and how it fails."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np


class SourceError(Exception):
    """The camera cannot be opened or stopped delivering frames."""


class SourceEnded(SourceError):
    """A finite source (a video file or folder without looping) has no more frames."""


@dataclass(slots=True)
class Frame:
    """One captured frame.

    ``image`` is the full-resolution BGR frame the plate reader works on.
    ``lores`` is a small greyscale frame for motion detection when the camera
    can deliver one for free (picamera2's lores stream); otherwise None and the
    motion stage makes its own.
    """

    index: int
    ts: float  # wall clock, seconds since the epoch
    mono: float  # monotonic clock, for intervals
    image: np.ndarray
    lores: np.ndarray | None = None


class FrameSource(abc.ABC):
    """A camera. ``read`` blocks until the next frame and paces itself to the source's rate."""

    name: str = "source"

    @abc.abstractmethod
    def open(self) -> None:
        """Opens the device; raises SourceError with a human-readable reason."""

    @abc.abstractmethod
    def read(self) -> Frame:
        """The next frame; raises SourceError when the camera died, SourceEnded at the end of a file."""

    @abc.abstractmethod
    def close(self) -> None:
        """Releases the device; safe to call twice."""
