"""OpenCV capture: RTSP/HTTP streams, /dev/videoN devices and video files."""

from __future__ import annotations

import re
import time
from pathlib import Path

import cv2

from edge_agent.core.redact import redact
from edge_agent.sources.base import Frame, FrameSource, SourceEnded, SourceError
from edge_agent.sources.pacing import Pacer

_DEVICE = re.compile(r"^/dev/video(\d+)$")


def is_stream_url(source: str) -> bool:
    return "://" in source


class OpenCVSource(FrameSource):
    """One cv2.VideoCapture. Files are paced to ``fps``; live sources deliver at their own rate."""

    name = "opencv"

    def __init__(self, source: str, width: int, height: int, fps: float, loop: bool, read_timeout_s: float) -> None:
        self._source = source
        self._shown = redact(source)
        self._w, self._h, self._fps = width, height, fps
        self._loop = loop
        self._timeout_ms = int(read_timeout_s * 1000)
        self._is_file = not is_stream_url(source) and not _DEVICE.match(source)
        self._cap: cv2.VideoCapture | None = None
        self._pacer = Pacer(fps)
        self._index = 0

    def open(self) -> None:
        self.close()
        if self._is_file and not Path(self._source).is_file():
            raise SourceError(f"camera {self._shown}: no such video file")
        dev = _DEVICE.match(self._source)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self._timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, self._timeout_ms]
        cap = cv2.VideoCapture(int(dev.group(1)), cv2.CAP_ANY, params) if dev else cv2.VideoCapture(
            self._source, cv2.CAP_ANY, params)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {self._shown}: cannot open (check the URL/device, credentials and network)")
        if not self._is_file:
            # Ask live devices for the configured mode; they may ignore it, the frames tell the truth.
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._w)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._h)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._cap = cap
        self._pacer = Pacer(self._fps)

    def read(self) -> Frame:
        if self._cap is None:
            raise SourceError(f"camera {self._shown}: not open")
        if self._is_file:
            self._pacer.wait()
        ok, image = self._cap.read()
        if not ok or image is None:
            if self._is_file:
                if not self._loop:
                    raise SourceEnded(f"camera {self._shown}: end of file")
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, image = self._cap.read()
            if not ok or image is None:
                raise SourceError(f"camera {self._shown}: stopped delivering frames")
        self._index += 1
        return Frame(self._index, time.time(), time.monotonic(), image)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
