"""Replays a folder of images in name order at a set rate (tests, field replays)."""

from __future__ import annotations

import time
from pathlib import Path

import cv2

from edge_agent.sources.base import Frame, FrameSource, SourceEnded, SourceError
from edge_agent.sources.pacing import Pacer

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class FolderSource(FrameSource):
    name = "folder"

    def __init__(self, folder: Path, fps: float, loop: bool) -> None:
        self._folder = folder
        self._fps = fps
        self._loop = loop
        self._files: list[Path] = []
        self._pos = 0
        self._index = 0
        self._pacer = Pacer(fps)
        self.skipped = 0

    def open(self) -> None:
        if not self._folder.is_dir():
            raise SourceError(f"folder source {self._folder}: not a directory")
        self._files = sorted(p for p in self._folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise SourceError(f"folder source {self._folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self._pos = 0
        self._pacer = Pacer(self._fps)

    def read(self) -> Frame:
        # A bad file is skipped and counted, not fatal: one corrupt image must not stop a replay.
        for _ in range(len(self._files) + 1):
            if self._pos >= len(self._files):
                if not self._loop:
                    raise SourceEnded(f"folder source {self._folder}: end of images")
                self._pos = 0
            path = self._files[self._pos]
            self._pos += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                self.skipped += 1
                continue
            mono = self._pacer.wait()
            self._index += 1
            return Frame(self._index, time.time(), mono, image)
        raise SourceError(f"folder source {self._folder}: no readable image left")

    def close(self) -> None:
        self._files = []
