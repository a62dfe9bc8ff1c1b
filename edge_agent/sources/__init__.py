"""Frame sources: picamera2, OpenCV (RTSP/HTTP/USB/files), image folders and the synthetic demo."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.sources.base import Frame, FrameSource, SourceEnded, SourceError

if TYPE_CHECKING:
    from edge_agent.config import Config

__all__ = ["Frame", "FrameSource", "SourceEnded", "SourceError", "make_source"]



def make_source(cfg: Config) -> FrameSource:
    """The source named by ``camera.source``; opening it is the caller's job (and may fail)."""
    cam = cfg.camera
    src = cam.source
    if src == "demo":
        from edge_agent.sources.demo import DemoSource

        return DemoSource(cam.width, cam.height, cam.fps, cfg.demo.car_interval_s, cfg.demo.car_speed_px_s,
                          cfg.demo.seed)
    if src == "picamera2":
        from edge_agent.sources.picamera2_source import Picamera2Source

        return Picamera2Source(cam.width, cam.height, cam.fps, cfg.motion.height)
    if Path(src).is_dir():
        from edge_agent.sources.folder import FolderSource

        return FolderSource(Path(src), cam.fps, cam.loop)
    from edge_agent.sources.opencv_source import OpenCVSource

    return OpenCVSource(src, cam.width, cam.height, cam.fps, cam.loop, cam.read_timeout_s)
