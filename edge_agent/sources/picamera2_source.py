"""The Pi camera through picamera2, with its dual-stream pattern.

The ISP delivers a full-size ``main`` stream for the plate reader and a small
``lores`` YUV420 stream whose Y plane is the motion detector's greyscale input,
so motion costs no resize or colour conversion on the CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edge_agent.sources.base import Frame, FrameSource, SourceError


def _default_factory() -> Any:
    try:
        from picamera2 import Picamera2  # type: ignore[import-not-found]
    except ImportError as exc:
        raise SourceError(
            "camera picamera2: the picamera2 package is not installed "
            "(on the Pi: apt install python3-picamera2, and a venv with --system-site-packages)"
        ) from exc
    return Picamera2()


class Picamera2Source(FrameSource):
    name = "picamera2"

    def __init__(self, width: int, height: int, fps: float, lores_height: int,
                 factory: Callable[[], Any] = _default_factory) -> None:
        self._w, self._h, self._fps = width, height, fps
        # lores must keep the main stream's aspect; YUV420 wants even sizes.
        lh = max(2, lores_height // 2 * 2)
        self._lores = (max(2, round(width * lh / height) // 2 * 2), lh)
        self._factory = factory
        self._cam: Any = None
        self._index = 0

    def open(self) -> None:
        self.close()
        try:
            cam = self._factory()
            config = cam.create_video_configuration(
                main={"size": (self._w, self._h), "format": "RGB888"},  # RGB888 is BGR in memory: what OpenCV wants
                lores={"size": self._lores, "format": "YUV420"},
                controls={"FrameRate": self._fps},
                buffer_count=4,
            )
            cam.configure(config)
            cam.start()
        except SourceError:
            raise
        except Exception as exc:  # libcamera raises many types; the camera is down whatever they are
            raise SourceError(f"camera picamera2: cannot start: {exc}") from exc
        self._cam = cam

    def read(self) -> Frame:
        if self._cam is None:
            raise SourceError("camera picamera2: not open")
        try:
            (main, lores), _meta = self._cam.capture_arrays(["main", "lores"])
        except Exception as exc:
            raise SourceError(f"camera picamera2: capture failed: {exc}") from exc
        self._index += 1
        # The Y plane is the first `height` rows of the YUV420 buffer; a view, not a copy.
        return Frame(self._index, time.time(), time.monotonic(), main, lores[: self._lores[1], : self._lores[0]])

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            finally:
                self._cam = None
