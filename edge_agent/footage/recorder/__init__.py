# SPDX-License-Identifier: Apache-2.0
"""Footage ring buffer: segment writer (writer.py), segment index (index.py), exact clip cutting
(cut.py), and the recorder thread with retention (recorder.py)."""

from edge_agent.footage.recorder.cut import ClipError, ClipResult, cut_clip
from edge_agent.footage.recorder.index import Segment, SegmentIndex
from edge_agent.footage.recorder.recorder import Recorder, RetentionPolicy
from edge_agent.footage.recorder.writer import EncoderSettings, SegmentWriter

__all__ = ["ClipError", "ClipResult", "EncoderSettings", "Recorder", "RetentionPolicy", "Segment", "SegmentIndex",
           "SegmentWriter", "cut_clip"]
