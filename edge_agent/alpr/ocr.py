# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Plate OCR: a small CTC recogniser run with ai-edge-litert.

The model (see ``edge_agent/models/plate_ocr.md``) takes a 32x128 grey crop and emits,
for each of 32 horizontal steps, a distribution over ``ALPHABET`` plus a CTC blank.
Greedy CTC decoding is exact enough here: plates have no dictionary to search.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_agent.alpr.types import ModelError

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
BLANK = len(ALPHABET)
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "plate_ocr.tflite"


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise ModelError(
                "no TFLite runtime: install ai-edge-litert (or tflite-runtime) to run the plate OCR"
            ) from exc
    return Interpreter


class PlateOCR:
    """Reads the text of one plate crop. Not thread-safe: use one instance per thread.

    ``formats=False`` turns off the plate-layout prior (``TEMPLATES``) and returns the raw
    greedy CTC read.
    """

    def __init__(self, model_path: Path | None = None, threads: int = 1, formats: bool = True) -> None:
        path = Path(model_path) if model_path is not None else DEFAULT_MODEL
        if not path.is_file():
            raise ModelError(f"plate OCR model not found: {path}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"plate OCR model unreadable: {path}: {exc}") from exc
        self._version = f"{path.stem}-{hashlib.sha256(data).hexdigest()[:12]}"
        try:
            it = _interpreter_class()(model_content=data, num_threads=max(1, threads))
            it.allocate_tensors()
        except ModelError:
            raise
        except Exception as exc:  # the runtime raises ValueError/RuntimeError for a bad flatbuffer
            raise ModelError(f"plate OCR model is not a valid TFLite file: {path}: {exc}") from exc
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
        self._formats = formats

    @property
    def version(self) -> str:
        """Model file stem and content hash, e.g. ``plate_ocr-3f2a9c0d1e4b``."""
        return self._version

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) the crop is resized to."""
        return self._w, self._h

    def read(self, crop: np.ndarray) -> tuple[str, float, tuple[float, ...]]:
        """Text, overall confidence (the weakest character's) and per-character confidences.

        ``crop`` is a BGR, BGRA or grey image of the plate, any size. An empty crop reads
        as ``("", 0.0, ())``.
        """
        if crop.size == 0 or crop.ndim not in (2, 3):
            return "", 0.0, ()
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
        return decode(probs, TEMPLATES if self._formats else ())


# Plate layouts of the countries this node is deployed among (L letter, D digit, X either):
# Slovakia/Italy/Croatia/France "RK755AJ", Czechia "1B80338", Croatia "ZG1234AB". A read that
# is one or two ambiguous glyphs away from one of them (I/1, O/0, G/6, B/8...) is most
# likely that plate; the glyph is then re-chosen from the right class at the same step.
TEMPLATES = ("LLDDDLL", "DLXDDDD", "LLDDDDLL")
MIN_ALT_PROB = 0.01
_CONFUSABLE = set("0ODQCUG61IJLT2Z5S8B")
_DIGITS = np.array([ALPHABET.index(c) for c in ALPHABET if c.isdigit()])
_LETTERS = np.array([ALPHABET.index(c) for c in ALPHABET if c.isalpha()])


def decode(probs: np.ndarray, templates: tuple[str, ...] = TEMPLATES) -> tuple[str, float, tuple[float, ...]]:
    """Greedy CTC decode of (T, classes) probabilities, then the plate-layout prior.

    A character's confidence is its best step within its run of identical steps; the
    overall confidence is the weakest character's.
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
        return "", 0.0, ()
    if templates:
        _apply_template(chars, confs, steps, probs, templates)
    return "".join(chars), min(confs), tuple(confs)


def _apply_template(
    chars: list[str], confs: list[float], steps: list[int], probs: np.ndarray, templates: tuple[str, ...]
) -> None:
    best: list[tuple[int, int]] | None = None
    for tpl in templates:
        if len(tpl) != len(chars):
            continue
        wrong = [
            k
            for k, (c, want) in enumerate(zip(chars, tpl, strict=True))
            if (want == "L" and not c.isalpha()) or (want == "D" and not c.isdigit())
        ]
        if not wrong or len(wrong) > 2 or any(chars[k] not in _CONFUSABLE for k in wrong):
            continue
        fix = []
        for k in wrong:
            pool = _LETTERS if tpl[k] == "L" else _DIGITS
            row = probs[steps[k]]
            fix.append((k, int(pool[row[pool].argmax()])))
        # The model must itself have seen the other reading as plausible: a layout that
        # needs a glyph the model gave no weight is a different country, not a misread.
        if any(probs[steps[k], j] < MIN_ALT_PROB for k, j in fix):
            continue
        if best is None or len(fix) < len(best):
            best = fix
    for k, j in best or ():
        chars[k] = ALPHABET[j]
        confs[k] = float(probs[steps[k], j])
