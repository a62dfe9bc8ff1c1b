# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""One edge_agent module loaded by its file path, for the training scripts.

Importing the ``edge_agent`` package would pull the daemon's runtime dependencies (pydantic,
MQTT, ...) into the training environment, which has none of them. The modules loaded this way
(``plate_render``, ``two_row``, ``band``, ``formats``) import only the standard library, numpy
and OpenCV, so the scripts train and label with the very code the reader runs.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


@cache
def load(relpath: str) -> ModuleType:
    """``edge_agent/...`` module at ``relpath`` (from the repository root), loaded once."""
    path = REPO / relpath
    name = "_edge_agent_" + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there while the class is made
    spec.loader.exec_module(mod)
    return mod
