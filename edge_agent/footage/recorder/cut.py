# SPDX-License-Identifier: Apache-2.0
"""Cuts a clip at exact wall-clock times out of recorded segments, re-encoding as little as possible.

The clip holds exactly the frames captured in [start, end]. Packets are copied unchanged (no
re-encoding) from the first keyframe at or after ``start``; only the frames between ``start`` and that
keyframe (less than one keyframe interval, 1 s by default) are decoded and re-encoded, because they
depend on a keyframe before ``start``. The tail needs no re-encoding: without B-frames a frame only
depends on earlier frames, so dropping everything after ``end`` is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from edge_agent.footage.recorder.index import Segment
from edge_agent.footage.recorder.writer import MS, EncoderSettings, configure_encoder


class ClipError(Exception):
    """The clip cannot be cut; the message says why."""


@dataclass(frozen=True, slots=True)
class ClipResult:
    path: Path
    first_ts: float
    last_ts: float
    frames: int
    reencoded_frames: int
    bytes: int


class _ClipMuxer:
    def __init__(self, path: Path, settings: EncoderSettings) -> None:
        self.path = path
        self.settings = settings
        self.out: Any = None
        self.stream: Any = None
        self.first_ts: float | None = None
        self.last_ts = 0.0
        self.frames = 0
        self.reencoded = 0
        self._last_pts = -1
        self._encoder: Any = None

    def _open(self, template: Any) -> None:
        if self.out is None:
            self.out = av.open(str(self.path), "w", format="mp4", options={"movflags": "+faststart"})
            self.stream = self.out.add_stream_from_template(template)
            self.stream.time_base = MS

    def _pts(self, ts: float) -> int:
        if self.first_ts is None:
            self.first_ts = ts
        pts = max(round((ts - self.first_ts) * 1000), self._last_pts + 1)
        self._last_pts, self.last_ts = pts, ts
        return pts

    def copy(self, packet: Any, ts: float, template: Any) -> None:
        self._open(template)
        self.flush_encoder()
        pts = self._pts(ts)
        packet.stream = self.stream
        packet.pts = packet.dts = pts
        packet.time_base = MS
        self.out.mux(packet)
        self.frames += 1

    def encode(self, frame: Any, ts: float, template: Any) -> None:
        self._open(template)
        if self._encoder is None:
            self._encoder = av.CodecContext.create(self.settings.codec, "w")
            configure_encoder(self._encoder, self.settings, frame.width, frame.height)
        frame.pts, frame.time_base = self._pts(ts), MS
        frame.pict_type = av.video.frame.PictureType.NONE
        self._mux_encoded(self._encoder.encode(frame))
        self.frames += 1
        self.reencoded += 1

    def _mux_encoded(self, packets: Any) -> None:
        for p in packets:
            p.stream = self.stream
            p.time_base = MS
            self.out.mux(p)

    def flush_encoder(self) -> None:
        if self._encoder is not None:
            self._mux_encoded(self._encoder.encode(None))
            self._encoder = None

    def close(self) -> None:
        if self.out is not None:
            self.flush_encoder()
            self.out.close()


def cut_clip(segments: list[Segment], start_ts: float, end_ts: float, out_path: Path,
             settings: EncoderSettings) -> ClipResult:
    """Writes the frames of ``segments`` captured in [start_ts, end_ts] to ``out_path`` (MP4)."""
    if end_ts < start_ts:
        raise ClipError("end is before start")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".part")
    mux = _ClipMuxer(tmp, settings)
    try:
        for seg in segments:
            if _cut_segment(seg, start_ts, end_ts, mux):
                break
        mux.close()
    except (av.FFmpegError, OSError) as exc:
        mux.close()
        tmp.unlink(missing_ok=True)
        raise ClipError(f"cannot cut clip from {seg.path.name}: {exc}") from None
    if mux.frames == 0 or mux.first_ts is None:
        tmp.unlink(missing_ok=True)
        raise ClipError("no recorded frames in the requested range")
    tmp.replace(out_path)
    return ClipResult(out_path, mux.first_ts, mux.last_ts, mux.frames, mux.reencoded, out_path.stat().st_size)


def _cut_segment(seg: Segment, start_ts: float, end_ts: float, mux: _ClipMuxer) -> bool:
    """Adds this segment's part of the range; True once past ``end_ts``."""
    with av.open(str(seg.path)) as inp:
        stream = inp.streams.video[0]
        tb = stream.time_base or MS
        decoder = stream.codec_context
        gop: list[Any] = []  # packets since the last keyframe before start: needed to decode the head
        reencoding = False

        def encode(frames: Any) -> None:
            for frame in frames:
                fts = seg.start_ts + float(frame.pts * tb) if frame.pts is not None else None
                if fts is not None and start_ts <= fts <= end_ts:
                    mux.encode(frame, fts, stream)

        def drain() -> None:
            # A decoder may hold frames back (frame threading): flush them before leaving the head.
            if reencoding:
                encode(decoder.decode(None))

        for packet in inp.demux(stream):
            if packet.pts is None or not packet.size:
                continue
            ts = seg.start_ts + float(packet.pts * tb)
            if ts > end_ts:
                drain()
                return True
            if ts < start_ts:
                gop = [packet] if packet.is_keyframe else [*gop, packet]
                continue
            if packet.is_keyframe:
                drain()
                reencoding = False
            elif mux.frames == 0 or reencoding:
                # Head of the clip: this frame depends on packets before start, so decode and re-encode.
                if not reencoding:
                    for p in gop:
                        encode(decoder.decode(p))  # frames before start are only references: filtered out
                    gop = []
                reencoding = True
                encode(decoder.decode(packet))
                continue
            mux.copy(packet, ts, stream)
        drain()
    return False
