# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""On-device licence plate reading: TFLite detector + OCR shipped in ``edge_agent/models``."""

from edge_agent.pipeline.alpr.reader import PlateReader
from edge_agent.pipeline.alpr.types import ModelError, PlateRead

__all__ = ["ModelError", "PlateRead", "PlateReader"]
