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


def load_interpreter(path: Path, threads: int, what: str, input_side: int | None = None) -> tuple[Any, str]:
    """A ready TFLite interpreter for ``path`` and its version, or ModelError saying what is wrong.

    The version, ``name@sha256[:12]``, identifies the model in health reports and events; it is the hash
    of the very bytes the interpreter was built from (the file is read once), so it cannot name another
    file written in between. ``input_side``: run a fully convolutional model with a square input of that
    many pixels instead of its own (``at_input_side``); the version stays the file's."""
    if _Interpreter is None:
        raise ModelError("no TFLite runtime installed: pip install ai-edge-litert")
    if not path.is_file():
        raise ModelError(f"{what} model not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{what} model {path} is unreadable: {exc}") from None
    content = data
    if input_side is not None:
        try:
            content = at_input_side(data, input_side)
        except Exception as exc:  # a file the runtime takes can still hold any structure: say what failed
            raise ModelError(f"{what} model {path} cannot run at a {input_side} x {input_side} input: {exc}") from None
    try:
        with _without_runtime_banner():
            interp = _Interpreter(model_content=content, num_threads=max(1, int(threads)))
            if input_side is not None:
                inp = interp.get_input_details()[0]
                interp.resize_tensor_input(inp["index"], [1, input_side, input_side, int(inp["shape"][3])])
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{what} model {path} is not a valid TFLite model: {exc}") from None
    return interp, f"{path.stem}@{hashlib.sha256(data).hexdigest()[:12]}"


def at_input_side(data: bytes, side: int) -> bytes:
    """A fully convolutional model's bytes made to take a square input of ``side`` pixels: the same weights
    and quantization, with the fixed output sizes of its nearest-neighbour upsampling layers (constants the
    converter wrote for the trained input) scaled to the new input. ValueError when the model is not square,
    or a size does not scale to whole pixels."""
    from ai_edge_litert import schema_py_generated as schema

    buf = bytearray(data)
    model = schema.Model.GetRootAs(buf, 0)
    graph = model.Subgraphs(0)
    shape = [int(v) for v in graph.Tensors(graph.Inputs(0)).ShapeAsNumpy()]
    if len(shape) != 4 or shape[1] != shape[2] or side <= 0:
        raise ValueError(f"cannot run a model with input {shape} at {side} x {side}")
    trained = shape[1]
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) != schema.BuiltinOperator.RESIZE_NEAREST_NEIGHBOR:
            continue
        # A view into ``buf``: the sizes are changed in place.
        sizes = model.Buffers(graph.Tensors(op.Inputs(1)).Buffer()).DataAsNumpy()
        if not hasattr(sizes, "view") or sizes.size != 8:
            raise ValueError("an upsampling layer's output size is not a constant")
        hw = sizes.view("<i4")
        if any(int(v) * side % trained for v in hw):
            raise ValueError(f"upsampling to {hw.tolist()} does not scale to a {side} px input")
        hw[:] = hw * side // trained
    return bytes(buf)
