# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Plate OCR: a small CTC recogniser run with ai-edge-litert.

The model (see ``edge_agent/models/plate_ocr.md``) takes a 32x128 grey crop and emits,
for each of 32 horizontal steps, a distribution over ``ALPHABET`` plus a CTC blank.
Greedy CTC decoding is exact enough here: plates have no dictionary to search.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge_agent.pipeline.alpr.runtime import load_interpreter
from edge_agent.pipeline.alpr.types import ModelError, OcrRead

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
BLANK = len(ALPHABET)
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "plate_ocr.tflite"


class PlateOCR:
    """Reads the text of one plate crop as the model sees it. Not thread-safe: use one instance per thread.

    The read is raw: plate layouts are applied afterwards by ``edge_agent.core.formats.PlateFormats``
    (the one plate-format mechanism), which may re-choose a glyph among the read's alternatives.
    """

    def __init__(self, model_path: Path | None = None, threads: int = 1) -> None:
        path = Path(model_path) if model_path is not None else DEFAULT_MODEL
        it, self._version = load_interpreter(path, threads, "plate OCR")
        self._it = it
        ins, outs = it.get_input_details(), it.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(
                f"{path} is not the plate OCR model: expected 1 input and 1 output, got {len(ins)} and {len(outs)}"
            )
        shape_in, shape_out = tuple(ins[0]["shape"]), tuple(outs[0]["shape"])
        if len(shape_in) != 4 or shape_in[0] != 1 or shape_in[3] != 1:
            raise ModelError(f"{path} is not the plate OCR model: input shape {shape_in} is not (1, H, W, 1) grey")
        if len(shape_out) != 3 or shape_out[2] != len(ALPHABET) + 1:
            raise ModelError(
                f"{path} is not the plate OCR model: output shape {shape_out} is not (1, T, {len(ALPHABET) + 1})"
            )
        self._h, self._w = int(shape_in[1]), int(shape_in[2])
        self._in_index = int(ins[0]["index"])
        self._out_index = int(outs[0]["index"])
        self._in_dtype = ins[0]["dtype"]
        q_in = ins[0].get("quantization", (0.0, 0))
        self._in_quant = (float(q_in[0]), int(q_in[1])) if self._in_dtype == np.int8 and q_in[0] else None
        q_out = outs[0].get("quantization", (0.0, 0))
        self._out_quant = (float(q_out[0]), int(q_out[1])) if outs[0]["dtype"] != np.float32 and q_out[0] else None
        self._grey = np.empty((self._h, self._w), np.uint8)

    @property
    def version(self) -> str:
        """Model file stem and content hash, e.g. ``plate_ocr@3f2a9c0d1e4b`` (``runtime.load_interpreter``)."""
        return self._version

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) the crop is resized to."""
        return self._w, self._h

    def read(self, crop: np.ndarray) -> OcrRead:
        """Text, overall confidence (the weakest character's), per-character confidences and alternatives.

        ``crop`` is a BGR, BGRA or grey image of the plate, any size. An empty crop reads
        as ``OcrRead("", 0.0, (), ())``.
        """
        if crop.size == 0 or crop.ndim not in (2, 3):
            return OcrRead("", 0.0, (), ())
        if crop.dtype != np.uint8:
            crop = np.clip(crop, 0, 255).astype(np.uint8)
        if crop.ndim == 3:
            code = {3: cv2.COLOR_BGR2GRAY, 4: cv2.COLOR_BGRA2GRAY}.get(crop.shape[2])
            crop = crop[:, :, 0] if code is None else cv2.cvtColor(crop, code)
        # INTER_AREA when shrinking: linear would alias the thin strokes of big crops.
        shrink = crop.shape[0] > self._h or crop.shape[1] > self._w
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        view = self._it.tensor(self._in_index)()
        if self._in_dtype == np.uint8:
            # Resize straight into the interpreter's input buffer: no intermediate copy.
            cv2.resize(crop, (self._w, self._h), dst=view[0, :, :, 0], interpolation=interp)
        else:
            cv2.resize(crop, (self._w, self._h), dst=self._grey, interpolation=interp)
            if self._in_quant is not None:
                scale, zero = self._in_quant
                view[0, :, :, 0] = np.clip(np.rint(self._grey / scale + zero), -128, 127)
            else:
                view[0, :, :, 0] = self._grey
        # The interpreter refuses to run while a view into its buffers is alive.
        del view
        self._it.invoke()
        probs = self._it.get_tensor(self._out_index)[0]
        if self._out_quant is not None:
            scale, zero = self._out_quant
            probs = (probs.astype(np.float32) - zero) * scale
        return decode(probs)


# A glyph the model gave less than this at a character's step is not offered to the format check as
# another reading: a layout that needs a glyph the model did not see is a different plate, not a misread.
MIN_ALT_PROB = 0.01
MAX_ALTERNATIVES = 3


def decode(probs: np.ndarray) -> OcrRead:
    """Greedy CTC decode of (T, classes) probabilities.

    A character's confidence is its best step within its run of identical steps; the overall
    confidence is the weakest character's. Each character also carries the other glyphs the model
    gave at least ``MIN_ALT_PROB`` at that step, for the plate-format check (``edge_agent.core.formats``).
    """
    ids = probs.argmax(axis=1)
    best = probs.max(axis=1)
    chars: list[str] = []
    confs: list[float] = []
    steps: list[int] = []
    prev = BLANK
    for t, i in enumerate(ids):
        if i != BLANK:
            if i != prev:
                chars.append(ALPHABET[i])
                confs.append(float(best[t]))
                steps.append(t)
            elif best[t] > confs[-1]:
                confs[-1] = float(best[t])
                steps[-1] = t
        prev = i
    if not chars:
        return OcrRead("", 0.0, (), ())
    alternatives = []
    for c, t in zip(chars, steps, strict=True):
        row = probs[t, :BLANK]
        order = np.argsort(row)[::-1][: MAX_ALTERNATIVES + 1]
        alternatives.append(tuple((ALPHABET[j], float(row[j])) for j in order
                                  if ALPHABET[j] != c and row[j] >= MIN_ALT_PROB)[:MAX_ALTERNATIVES])
    return OcrRead("".join(chars), min(confs), tuple(confs), tuple(alternatives))
