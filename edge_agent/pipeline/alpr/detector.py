# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Plate detector: a small CenterNet-style TFLite model (see ``models/plate_detector.md``).

The image is letterboxed (long side scaled to the model input, rest padded with 0, the padding the
model was trained with), the model returns a stride-S grid with a plate-centre heatmap logit and,
per cell, the centre offset and the log plate size in cells. Peaks of the heatmap are plates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_agent.core.boxes import box_iou
from edge_agent.pipeline.alpr.runtime import load_interpreter
from edge_agent.pipeline.alpr.types import ModelError


@dataclass(frozen=True)
class Detection:
    """A plate box in pixels of the input image (x, y, w, h floats) and its heatmap score (0-1).

    ``cut_box``, when set, is the box the plate is cut out from for the OCR, where ``box`` was drawn again
    by a closer look (``PlateReader.refined``): the OCR learnt the framing of the first look's boxes."""

    box: tuple[float, float, float, float]
    score: float
    cut_box: tuple[float, float, float, float] | None = None


class PlateDetector:
    """Finds plate boxes in a BGR or grey image. Not thread-safe: one instance per thread."""

    def __init__(
        self,
        model_path: Path,
        threads: int = 1,
        score_threshold: float = 0.35,
        max_plates: int = 8,
        input_side: int | None = None,
    ) -> None:
        """``input_side``: run the model at a square input of that many pixels instead of its own (the
        network is fully convolutional), e.g. a cheap pass over a small window."""
        self._interp, self.version = load_interpreter(model_path, threads, "plate detector", input_side)
        self.score_threshold = score_threshold
        self.max_plates = max_plates

        inp = self._interp.get_input_details()
        outs = self._interp.get_output_details()
        shape = tuple(int(v) for v in inp[0]["shape"]) if len(inp) == 1 else ()
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 1 or len(outs) != 2:
            raise ModelError(
                f"{model_path} is not a plate detector model: expected one grey input [1,H,W,1] and two "
                f"outputs (heatmap, box regression), got input {shape or len(inp)} and {len(outs)} outputs"
            )
        self.input_h, self.input_w = shape[1], shape[2]
        self._in_index = int(inp[0]["index"])
        self._in_dtype = np.dtype(inp[0]["dtype"])
        self._in_quant = inp[0].get("quantization", (0.0, 0))
        by_ch = {int(o["shape"][-1]): o for o in outs}
        if set(by_ch) != {1, 4} or tuple(by_ch[1]["shape"][1:3]) != tuple(by_ch[4]["shape"][1:3]):
            raise ModelError(
                f"{model_path} is not a plate detector model: outputs must be [1,h,w,1] and [1,h,w,4], "
                f"got {[list(o['shape']) for o in outs]}"
            )
        self._heat, self._reg = by_ch[1], by_ch[4]
        self.grid_h, self.grid_w = int(self._heat["shape"][1]), int(self._heat["shape"][2])
        self.stride = self.input_w / self.grid_w
        # The letterbox canvas: reused, only the padding is re-zeroed when the image size changes.
        self._canvas = np.zeros((self.input_h, self.input_w), np.uint8)
        self._last_hw = (0, 0)
        self._kernel = np.ones((3, 3), np.uint8)
        # One run now: XNNPACK packs weights on the first invoke, which would otherwise land on
        # the first frame (several ms).
        self._feed()
        self._interp.invoke()

    def _letterbox(self, image: np.ndarray, zoom_out: float) -> float:
        h, w = image.shape[:2]
        scale = float(min(self.input_w / w, self.input_h / h)) / zoom_out
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        # Grey first: INTER_AREA (the anti-aliased shrink the model was trained with) costs per
        # channel, and measured ~1.7x slower on BGR than cvtColor + grey resize.
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        small = cv2.resize(grey, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        if (nh, nw) != self._last_hw:
            self._canvas.fill(0)
            self._last_hw = (nh, nw)
        self._canvas[:nh, :nw] = small
        return scale

    def _feed(self) -> None:
        view = self._interp.tensor(self._in_index)()
        if self._in_dtype == np.uint8 or self._in_dtype == np.float32:
            view[0, :, :, 0] = self._canvas  # the float fallback model takes 0-255 too
        else:  # int8 input: quantize with the model's own parameters
            s, zp = self._in_quant
            q = np.rint(self._canvas.astype(np.float32) / (s or 1.0) + zp)
            view[0, :, :, 0] = np.clip(q, -128, 127)
        del view  # the interpreter refuses to run while we hold a view of its buffers

    def _output(self, detail: dict[str, Any]) -> np.ndarray:
        out = self._interp.get_tensor(detail["index"])[0]
        if out.dtype != np.float32:
            s, zp = detail.get("quantization", (1.0, 0))
            out = (out.astype(np.float32) - zp) * s
        return np.asarray(out, np.float32)

    def detect(self, image: np.ndarray, *, zoom_out: float = 1.0, min_score: float | None = None) -> list[Detection]:
        """Plates in ``image`` (BGR or grey), best first.

        ``zoom_out`` > 1 shrinks the image that much more than the input needs, the rest padded: a plate
        wider than the largest box the model draws (about half the input) fits again. ``min_score``
        (default ``score_threshold``) also returns weaker candidates, after every stronger one.
        """
        if image.ndim not in (2, 3) or image.shape[0] < 8 or image.shape[1] < 8:
            return []
        scale = self._letterbox(image, max(1.0, zoom_out))
        self._feed()
        self._interp.invoke()
        heat = self._output(self._heat)[:, :, 0]
        reg = self._output(self._reg)

        floor = self.score_threshold if min_score is None else min(max(min_score, 1e-4), 1 - 1e-4)
        logit_thr = math.log(floor / (1 - floor))
        peaks = (heat >= cv2.dilate(heat, self._kernel)) & (heat > logit_thr)
        # Peaks in the padding are not in the picture.
        nh, nw = self._last_hw
        peaks[math.ceil(nh / self.stride) :, :] = False
        peaks[:, math.ceil(nw / self.stride) :] = False
        ys, xs = np.nonzero(peaks)
        # Stable: equal scores keep raster order, so the boxes at one threshold are those at a lower one, filtered.
        order = np.argsort(-heat[ys, xs], kind="stable")[: self.max_plates * 4]
        img_h, img_w = image.shape[:2]
        found: list[Detection] = []
        for i in order:
            y, x = int(ys[i]), int(xs[i])
            ox, oy, lw, lh = (float(v) for v in reg[y, x])
            cx, cy = (x + ox) * self.stride / scale, (y + oy) * self.stride / scale
            bw = math.exp(min(lw, 8.0)) * self.stride / scale
            bh = math.exp(min(lh, 8.0)) * self.stride / scale
            x0, y0 = max(0.0, cx - bw / 2), max(0.0, cy - bh / 2)
            x1, y1 = min(float(img_w), cx + bw / 2), min(float(img_h), cy + bh / 2)
            if x1 - x0 < 4 or y1 - y0 < 2:
                continue
            box = (x0, y0, x1 - x0, y1 - y0)
            if any(box_iou(box, d.box) > 0.3 for d in found):
                continue
            found.append(Detection(box, 1.0 / (1.0 + math.exp(-float(heat[y, x])))))
            if len(found) >= self.max_plates:
                break
        return found
