"""edge-agent: the plate-reading camera node daemon."""

import os as _os

__version__ = "0.1.0"

# FFmpeg (inside OpenCV) and OpenCV print their own lines on stderr at every camera retry, spliced into the
# agent's log lines; the agent reports a camera problem itself, once per change. Set before cv2 is first
# imported; a value set in the environment wins (OPENCV_FFMPEG_LOGLEVEL=32 brings FFmpeg's lines back).
_os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
_os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
