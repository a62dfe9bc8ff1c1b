# SPDX-License-Identifier: Apache-2.0
"""Encodes frames into one H.264 segment file (fragmented MP4) with PyAV.

Fragmented MP4 (a fragment per keyframe) keeps everything up to the last fragment readable if the
agent is killed mid-segment. Timestamps are milliseconds from the segment's first frame, taken from
each frame's wall clock, so a clip can be cut at exact wall-clock times even when the camera's rate
wanders. No B-frames: every frame depends only on earlier ones, so a clip's tail can be cut at any
frame without re-encoding (see cut.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

MS = Fraction(1, 1000)


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    codec: str = "libx264"
    crf: int = 28
    gop_frames: int = 10
    threads: int = 1
    preset: str = "ultrafast"

    def options(self) -> dict[str, str]:
        if self.codec == "libx264":
            return {"preset": self.preset, "tune": "zerolatency", "crf": str(self.crf), "bf": "0",
                    "g": str(self.gop_frames), "threads": str(self.threads)}
        return {"bf": "0", "g": str(self.gop_frames)}


def configure_encoder(ctx: Any, settings: EncoderSettings, width: int, height: int) -> None:
    ctx.width, ctx.height = width, height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = MS
    ctx.gop_size = settings.gop_frames
    ctx.max_b_frames = 0
    ctx.options = settings.options()


class SegmentWriter:
    def __init__(self, path: Path, width: int, height: int, start_ts: float, settings: EncoderSettings) -> None:
        self.path = path
        self.width, self.height = width, height
        self.start_ts = start_ts
        self.last_ts = start_ts
        self.frames = 0
        self._last_pts = -1
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out = av.open(str(path), "w", format="mp4",
                            options={"movflags": "frag_keyframe+empty_moov+default_base_moof",
                                     "flush_packets": "1"})
        self._stream: Any = self._out.add_stream(settings.codec, rate=max(1, settings.gop_frames))
        self._stream.time_base = MS
        configure_encoder(self._stream.codec_context, settings, width, height)

    def write(self, image: np.ndarray, ts: float) -> None:
        # A wall clock stepped backwards (NTP) must not produce non-increasing timestamps.
        pts = max(round((ts - self.start_ts) * 1000), self._last_pts + 1)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = pts, MS
        for packet in self._stream.encode(frame):
            self._out.mux(packet)
        self._last_pts = pts
        self.last_ts = self.start_ts + pts / 1000
        self.frames += 1

    def close(self) -> int:
        """Flushes and closes; returns the file size in bytes."""
        try:
            for packet in self._stream.encode(None):
                self._out.mux(packet)
        finally:
            self._out.close()
        return self.path.stat().st_size


def probe_end(path: Path, start_ts: float) -> tuple[float, int] | None:
    """(end ts, frames) of a segment left open by a crash, or None when nothing in it is readable."""
    last, frames = None, 0
    try:
        with av.open(str(path)) as inp:
            stream = inp.streams.video[0]
            tb = stream.time_base or MS
            for packet in inp.demux(stream):
                if packet.pts is not None and packet.size:
                    last = start_ts + float(packet.pts * tb)
                    frames += 1
    except (av.FFmpegError, IndexError, OSError):
        pass  # a torn last fragment: keep what was readable
    return None if last is None else (last, frames)
