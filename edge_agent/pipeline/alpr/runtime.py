# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""The TFLite runtime, one home for both plate models: loading an interpreter and naming a model file."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge_agent.pipeline.alpr.types import ModelError

try:  # ai-edge-litert is the runtime we ship with; tflite-runtime is the older name of the same thing.
    from ai_edge_litert.interpreter import Interpreter as _Interpreter
except ImportError:  # pragma: no cover - depends on the installed runtime
    try:
        from tflite_runtime.interpreter import Interpreter as _Interpreter
    except ImportError:
        _Interpreter = None


_BANNER = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@contextlib.contextmanager
def _without_runtime_banner() -> Iterator[None]:
    """TFLite's C++ logger prints an INFO banner on stderr at every model load (no setting turns it off in
    ai-edge-litert), in the middle of doctor's or read's output: hold fd 2 aside while the model loads and
    pass on everything else it wrote."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            rest = [line for line in held.read().splitlines(keepends=True) if not line.startswith(_BANNER)]
            if rest:
                os.write(2, b"".join(rest))


def load_interpreter(path: Path, threads: int, what: str) -> tuple[Any, str]:
    """A ready TFLite interpreter for ``path`` and its version, or ModelError saying what is wrong.

    The version, ``name@sha256[:12]``, identifies the model in health reports and events; it is the hash
    of the very bytes the interpreter was built from (the file is read once), so it cannot name another
    file written in between."""
    if _Interpreter is None:
        raise ModelError("no TFLite runtime installed: pip install ai-edge-litert")
    if not path.is_file():
        raise ModelError(f"{what} model not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{what} model {path} is unreadable: {exc}") from None
    try:
        with _without_runtime_banner():
            interp = _Interpreter(model_content=data, num_threads=max(1, int(threads)))
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{what} model {path} is not a valid TFLite model: {exc}") from None
    return interp, f"{path.stem}@{hashlib.sha256(data).hexdigest()[:12]}"
