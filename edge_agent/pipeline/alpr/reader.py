# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""The plate reader: detect plates, cut them out, read them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_agent.core.boxes import box_iou
from edge_agent.core.formats import DEFAULT_ORDER, FormatCheck, PlateFormats
from edge_agent.pipeline.alpr.band import band_sides
from edge_agent.pipeline.alpr.detector import Detection, PlateDetector
from edge_agent.pipeline.alpr.separators import french_dashes
from edge_agent.pipeline.alpr.two_row import cut_margin as two_row_cut_margin
from edge_agent.pipeline.alpr.two_row import is_two_row, side_by_side
from edge_agent.pipeline.alpr.types import ModelError, OcrRead, PlateRead

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
DEFAULT_DETECTOR = MODELS_DIR / "plate_detector.tflite"
DEFAULT_OCR = MODELS_DIR / "plate_ocr.tflite"

# No plate holds more characters (the longest in the labelled crops has 9).
MAX_PLATE_CHARS = 10
# Extra border around the detector box, as a fraction of the box: the OCR model was trained on
# crops with a few percent of slack in x and more in y, and a box that clips the first or last
# character costs a whole read.
_MARGIN_X = 0.05
_MARGIN_Y = 0.15
# A one-row read that fits no enabled format is often a box that ends a character short (small plates:
# the detector's box stops early on the right); the second cut gives one character of a 7-8 character
# plate more room on each side. From the plate's geometry, not tuned.
_WIDE_MARGIN_X = 0.125
# A two-row view's border: the two-row training crops' (two_row.TRAIN_BORDER), worked out once.
_TWO_ROW_MARGIN = two_row_cut_margin()

# The detector draws boxes up to about half its input wide (plates up to ~170 px of 320 in training).
# A plate much wider than that, a close-up photo, is seen as a weak candidate about half the frame
# wide, and missed: a candidate this wide (share of the frame's long side) and at least this sure
# earns a second, zoomed-out look (the frame shrunk twice as much), where the plate fits. A pole's
# frames never hold plates that big, so it costs them nothing. Set from the model's geometry, then
# checked on close-ups cut from the held-out photos (``plate_detector.md``).
_WIDE_CANDIDATE = 0.4
_WIDE_CANDIDATE_SCORE = 0.1
_ZOOM_OUT = 2.0
# Second looks per frame at most (one per group of regions far apart, e.g. cars in different lanes): each
# costs a detector pass, on the frames with motion only.
_MOST_LOOKS = 2
# A box kept is drawn again by a closer look: a window around it, the box's long side times this, through the
# same weights at a small input, where the plate is about 38 px wide (inside the 10-170 px the detector learnt)
# and its box is drawn to a few pixels of the frame, where the frame's own look, shrunk several times, draws it
# to cells of 8-24 frame pixels. Only where that look is closer than the frame's. The window from the model's
# geometry, the input for cost (a pass there costs ~1/10 of a full one); candidates from this score on can
# redraw a box (the zoomed-out look's floor). Change RSC2, the detector's card.
_REFINE_WINDOW = 2.5
_REFINE_INPUT = 96
_REFINE_FLOOR = 0.1
# A plate whose edges lean at least this much (degrees) is deskewed before it is read.
_MIN_TILT = 2.0
# The tilt measure's edges: at least this share of the crop's width, leaning at most this much (degrees). For
# the published box of a plate read as it is, shorter and steeper edges count too (a border cut by a tight box,
# or broken by bolts and dirt; a plate turned 20 deg or more): a lean seen there grows the box around the
# plate's outline, it does not turn the OCR's crop (a deskew by those edges reads worse: change S). Measured at
# the cut's own pixels: shrunk, a pixel of rise along the shortest edge is more than the 2 deg that counts.
_EDGE_MIN_LENGTH = 0.45
_EDGE_MAX_TILT = 20.0
_BOX_EDGE_MIN_LENGTH = 0.3
_BOX_EDGE_MAX_TILT = 30.0


# (confidence, read as two rows, the format check, per-character confidences of the checked text)
_Read = tuple[float, bool, FormatCheck, tuple[float, ...]]


class PlateReader:
    """Finds and reads licence plates in BGR frames with the packaged TFLite models.

    One TFLite interpreter per model, created here once. Not thread-safe: use one reader per
    thread. Raises :class:`ModelError` when a model is missing, corrupt or not the expected model.
    """

    def __init__(
        self,
        detector_path: Path | None = None,
        ocr_path: Path | None = None,
        threads: int = 1,
        *,
        score_threshold: float = 0.25,
        max_plates: int = 8,
        min_chars: int = 4,
        min_confidence: float = 0.5,
        rectify: bool = True,
        formats: Sequence[str] = DEFAULT_ORDER,
        wide_retry: bool = True,
        refine: bool = True,
    ) -> None:
        """``formats``: the enabled plate formats (``[formats] enabled``), in priority order; every read
        is checked against them, as the daemon publishes it. ``min_confidence``: reads below it are not
        returned (``alpr.min_confidence``, whose default this is; the daemon's frame pipeline sets it to
        the node's value). ``wide_retry``: a one-row read that fits no format is read again from a wider cut
        (``read_crop``); off only to measure what it changes. ``refine``: each box found is drawn again by a
        closer look (``refined``); off only to measure what it changes."""
        detector_file = Path(detector_path) if detector_path is not None else DEFAULT_DETECTOR
        self.detector = PlateDetector(
            detector_file,
            threads=threads,
            score_threshold=score_threshold,
            max_plates=max_plates,
        )
        self.refiner = (PlateDetector(detector_file, threads=threads, score_threshold=_REFINE_FLOOR,
                                      max_plates=max_plates, input_side=_REFINE_INPUT) if refine else None)
        self.ocr = _load_ocr(Path(ocr_path) if ocr_path is not None else DEFAULT_OCR, threads)
        self.min_chars = min_chars
        self.min_confidence = min_confidence
        self.rectify = rectify
        self.formats = PlateFormats(formats)
        self.wide_retry = wide_retry
        self.second_looks = 0  # frames that got one or more second, closer detector passes (see read)
        self.zoomed_out_looks = 0  # frames that got a second, zoomed-out pass (a plate too big for the model's boxes)

    @property
    def model_versions(self) -> dict[str, str]:
        return {"plate_detector": self.detector.version, "plate_ocr": str(self.ocr.version)}

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Plate boxes only (no OCR), as ``read`` finds them: for benchmarks and for callers that read later."""
        return self.detections(_check_image(image_bgr))

    def detections(self, image: np.ndarray, regions: Sequence[tuple[int, int, int, int]] = ()) -> list[Detection]:
        """The detector's boxes in the whole frame, from a zoomed-out look when a candidate is about as wide
        as the model's largest box, and from a second look around ``regions`` (see ``read``), each box drawn
        again by a closer look (``refined``)."""
        # Every look reads grey pixels: the frame is turned grey once, not once per look.
        image = image if image.ndim == 2 else np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        threshold = self.detector.score_threshold
        candidates = self.detector.detect(image, min_score=min(threshold, _WIDE_CANDIDATE_SCORE))
        found = [d for d in candidates if d.score >= threshold]
        if any(d.box[2] >= _WIDE_CANDIDATE * max(image.shape[:2]) for d in candidates):
            self.zoomed_out_looks += 1
            for det in self.detector.detect(image, zoom_out=_ZOOM_OUT):
                _merge(found, det)
        side = max(self.detector.input_w, self.detector.input_h)
        looks = second_looks(regions, image.shape[1], image.shape[0], side)
        self.second_looks += bool(looks)
        for lx, ly, lw, lh in looks:
            for det in self.detector.detect(image[ly:ly + lh, lx:lx + lw]):
                x, y, w, h = det.box
                _merge(found, Detection((x + lx, y + ly, w, h), det.score))
        found.sort(key=lambda d: -d.score)
        found = found[: self.detector.max_plates]
        if self.refiner is None:
            return found
        refined: list[Detection] = []
        for det in found:
            # Two boxes of one plate drawn apart by the first looks can meet here: surest first, so the surer stays.
            _merge(refined, self.refined(image, det))
        return refined

    def refined(self, image: np.ndarray, det: Detection) -> Detection:
        """``det`` with its box drawn again by the closer look (the surest candidate there that overlaps it at
        IoU >= 0.3), its score kept (which plates pass stays the first looks' call) and its first box kept as
        the OCR's cut: read from the tighter box, the OCR drops edge characters (its margins were set for the
        first look's boxes; change R, the detector's card)."""
        if self.refiner is None:
            return det
        x, y, w, h = det.box
        side = _REFINE_WINDOW * max(w, h)
        frame_h, frame_w = image.shape[:2]
        # A look no closer than the frame's own draws no better box.
        if side <= 0 or _REFINE_INPUT / side <= min(self.detector.input_w / frame_w, self.detector.input_h / frame_h):
            return det
        ww, wh = min(side, float(frame_w)), min(side, float(frame_h))
        left = int(min(max(x + w / 2 - ww / 2, 0.0), frame_w - ww))
        top = int(min(max(y + h / 2 - wh / 2, 0.0), frame_h - wh))
        for cand in self.refiner.detect(image[top:top + round(wh), left:left + round(ww)]):
            cx, cy, cw, ch = cand.box
            box = (cx + left, cy + top, cw, ch)
            if box_iou(box, det.box) >= 0.3:
                return Detection(box, det.score, det.box)
        return det

    def read_crop(self, image_bgr: np.ndarray, det: Detection) -> PlateRead | None:
        """Reads one detected plate, or None when no plausible plate text is found in it."""
        cut_box = det.box if det.cut_box is None else det.cut_box
        cut = _cut(image_bgr, cut_box, self.rectify)
        if cut is None:
            return None
        crop, tilt = cut
        x, y, w, h = cut_box
        # A squarish box is a two-row plate (motorcycle, moped, square EU) or a wide one seen at an
        # angle or a US-shaped one: read it both ways and keep the surer read.
        ways = [(False, crop)]
        if is_two_row(w, h):
            # Cut again at the two-row training crops' border: the one-row margin, split at the gap,
            # would give each row far more context above or below than the OCR ever saw.
            rows = _cut(image_bgr, cut_box, self.rectify, _TWO_ROW_MARGIN)
            if rows is not None:
                ways.insert(0, (True, side_by_side(rows[0])))
        # A plate cut by the frame's edge shows no band where it was cut: no cue from it. The cue is
        # known before the read is checked, so that an Italian or French plate is checked as one.
        at_edge = x < 2 or y < 2 or x + w > image_bgr.shape[1] - 2 or y + h > image_bgr.shape[0] - 2
        one_row_band = None if at_edge else band_sides(crop, (_MARGIN_X, _MARGIN_Y))[1]
        # Italian or French: the text cannot tell them apart, the dashes between the groups can.
        dashes = french_dashes(crop) if one_row_band else None
        best: _Read | None = None
        for two_row, view in ways:
            read = self._read_view(view, two_row, one_row_band, det.score, dashes)
            # Of a squarish box's two reads the surer wins, whether or not it fits a layout: a one-row
            # plate seen at an angle, read as two rows, can fit a short layout by chance (sure or not),
            # while its one-row read fits no enabled layout (a foreign plate).
            if read is not None and (best is None or read[0] > best[0]):
                best = read
        if self.wide_retry and best is not None and not best[1] and not best[2].valid:
            wide = _cut(image_bgr, cut_box, self.rectify, (_WIDE_MARGIN_X, _MARGIN_Y))
            read = None if wide is None else self._read_view(wide[0], False, one_row_band, det.score, dashes)
            # Only a read that now fits a layout replaces the first: a foreign plate fits none either way.
            if read is not None and read[2].valid and read[0] >= self.min_confidence:
                best = read
        if best is None or best[0] < self.min_confidence:
            return None
        confidence, two_row, check, chars = best
        # The published box holds the whole plate: the detector's box of a tilted plate is about as high
        # as the plate itself, not as the plate's tilted outline (plate_detector.md, "Tilted plates"). The
        # closer look's box hugs the plate's body even more: a plate the OCR reads as it is (its edges too short
        # or too steep for the deskew's measure) gets the box around its outline where the box's measure sees
        # a lean (change RSC2).
        lean = tilt
        if not tilt and self.refiner is not None:
            lean = _skew_angle(crop, _BOX_EDGE_MIN_LENGTH, _BOX_EDGE_MAX_TILT)
        x, y, w, h = tilted_box(det.box, lean, image_bgr.shape[0]) if abs(lean) >= _MIN_TILT else det.box
        box = (round(x), round(y), max(1, round(w)), max(1, round(h)))
        return PlateRead(check.text, box, confidence, chars, crop, country=check.country,
                         corrected_from=check.corrected_from, two_row=two_row,
                         right_band=None if two_row else one_row_band, dashes=None if two_row else dashes)

    def _read_view(self, view: np.ndarray, two_row: bool, one_row_band: bool | None, det_score: float,
                   dashes: bool | None = None) -> _Read | None:
        """One view of a box read and checked against the formats, or None when its text cannot be a plate."""
        ocr: OcrRead = self.ocr.read(view)
        # A box with no readable text is not reported: it is where most false plates come from. Nor
        # is one with more text than any plate holds (a sign read as two rows).
        if not self.min_chars <= len(ocr.text) <= MAX_PLATE_CHARS:
            return None
        check = self.formats.check(ocr.text, ocr.char_confidences, ocr.alternatives,
                                   right_band=None if two_row else one_row_band,
                                   dashes=None if two_row else dashes)
        chars = _checked_confidences(ocr, check)
        # Both stages must be sure for the read to be sure.
        return math.sqrt(max(0.0, min(chars, default=0.0)) * det_score), two_row, check, chars

    def read(self, image_bgr: np.ndarray, regions: Sequence[tuple[int, int, int, int]] = ()) -> list[PlateRead]:
        """All plates found and read in a BGR (or grey) frame, most confident detection first.

        ``regions`` (x, y, w, h), e.g. where motion is: the detector takes a second, closer look at the
        area around them when the whole frame, shrunk to the detector's input, would leave a plate
        there too few pixels (a 1280 px frame shrinks 4x: a 40 px plate becomes 10 px).
        """
        image = _check_image(image_bgr)
        reads = []
        for det in self.detections(image, regions):
            r = self.read_crop(image, det)
            if r is not None:
                reads.append(r)
        return reads


def _merge(found: list[Detection], det: Detection) -> None:
    """Adds another look's box to ``found``: a new plate, or the same plate seen surer (a closer look's box
    is tighter, a zoomed-out look's box fits a plate too big for the first), which replaces the first."""
    same = [i for i, f in enumerate(found) if box_iou(f.box, det.box) > 0.3]
    if not same:
        found.append(det)
    elif all(found[i].score < det.score for i in same):
        found[same[0]] = det


def second_looks(regions: Sequence[tuple[int, int, int, int]], frame_w: int, frame_h: int,
                 input_px: int) -> list[tuple[int, int, int, int]]:
    """The areas second detector passes look at: the regions grouped so that each group's look gains pixels
    (``second_look_region``), largest regions first, each joining the first group it still fits; at most
    ``_MOST_LOOKS``, the groups with the most region area first. Regions that fit one look get that one look;
    vehicles far apart (several lanes) get one each, where one look around all would be most of the frame."""
    # A group is kept as the box around its regions and their area: its look depends on that box alone, so
    # a frame full of small motion boxes (rain, snow, a shaking mast) costs one test per region and group.
    groups: list[tuple[tuple[int, int, int, int], int]] = []
    for r in sorted(regions, key=lambda r: -r[2] * r[3]):
        for i, (box, area) in enumerate(groups):
            both = _around(box, r)
            if second_look_region([both], frame_w, frame_h, input_px) is not None:
                groups[i] = (both, area + r[2] * r[3])
                break
        else:
            groups.append((r, r[2] * r[3]))
    looks = [(area, look) for box, area in groups
             if (look := second_look_region([box], frame_w, frame_h, input_px)) is not None]
    looks.sort(key=lambda a: -a[0])
    return [look for _, look in looks[:_MOST_LOOKS]]


def _around(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The box around two boxes (x, y, w, h)."""
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    return x0, y0, max(a[0] + a[2], b[0] + b[2]) - x0, max(a[1] + a[3], b[1] + b[3]) - y0


def second_look_region(regions: Sequence[tuple[int, int, int, int]], frame_w: int, frame_h: int,
                       input_px: int) -> tuple[int, int, int, int] | None:
    """The area a second detector pass looks at: around all ``regions``, at least ``input_px`` on its
    long side (never upscaled past the frame's own pixels), or None when it would gain little (the
    area is more than half the frame)."""
    if not regions:
        return None
    x0 = float(min(r[0] for r in regions))
    y0 = float(min(r[1] for r in regions))
    x1 = float(max(r[0] + r[2] for r in regions))
    y1 = float(max(r[1] + r[3] for r in regions))
    # A plate at the edge of the moving area (the car's front) is still inside the look.
    pad_x, pad_y = (x1 - x0) * 0.15 + 8, (y1 - y0) * 0.15 + 8
    x0, y0, x1, y1 = x0 - pad_x, y0 - pad_y, x1 + pad_x, y1 + pad_y
    side = max(x1 - x0, y1 - y0, float(input_px))
    if side * 2 > max(frame_w, frame_h):
        return None
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = min(max(x1 - x0, float(input_px)), frame_w), min(max(y1 - y0, float(input_px)), frame_h)
    left = int(min(max(cx - w / 2, 0), frame_w - w))
    top = int(min(max(cy - h / 2, 0), frame_h - h))
    return left, top, int(w), int(h)


def _checked_confidences(ocr: OcrRead, check: FormatCheck) -> tuple[float, ...]:
    """Per-character confidences of the checked text: a re-chosen glyph has the probability the model
    gave it, a dropped edge character takes its confidence with it."""
    if check.corrected_from is None:
        return ocr.char_confidences
    confs, alts = list(ocr.char_confidences), list(ocr.alternatives)
    if len(check.text) < len(ocr.text):
        cut = 0 if ocr.text[1:] == check.text else len(ocr.text) - 1
        del confs[cut], alts[cut]
        return tuple(confs)
    return tuple(_prob_of(ch, alts[i]) if ch != ocr.text[i] else confs[i] for i, ch in enumerate(check.text))


def _prob_of(ch: str, alts: tuple[tuple[str, float], ...]) -> float:
    return next((p for a, p in alts if a == ch), 0.0)


def _load_ocr(path: Path, threads: int) -> Any:
    try:
        from edge_agent.pipeline.alpr.ocr import PlateOCR
    except ImportError as exc:
        raise ModelError(f"plate OCR module unavailable: {exc}") from None
    try:
        return PlateOCR(path, threads=threads)
    except ModelError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"plate OCR model {path}: {exc}") from None


def _check_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError("expected a uint8 BGR (H, W, 3) or grey (H, W) image")
    if image.ndim == 3 and image.shape[2] == 4:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGRA2BGR))
    if image.ndim == 3 and image.shape[2] != 3:
        raise ValueError(f"expected 3 colour channels, got {image.shape[2]}")
    return image


def cut_bounds(box: tuple[float, float, float, float], frame_w: int, frame_h: int,
               margin: tuple[float, float] = (_MARGIN_X, _MARGIN_Y)) -> tuple[int, int, int, int]:
    """The pixels (x0, y0, x1, y1) the reader cuts for a detector box: the box with ``margin`` (shares of
    its width and height on each side; the one-row margin by default), inside the frame. The OCR's trainer
    measures its crops' borders with this too (``scripts/reader_borders.py``)."""
    x, y, w, h = box
    mx, my = margin
    x0, x1 = max(0, int(x - mx * w)), min(frame_w, math.ceil(x + w * (1 + mx)))
    y0, y1 = max(0, int(y - my * h)), min(frame_h, math.ceil(y + h * (1 + my)))
    return x0, y0, x1, y1


def _cut(image: np.ndarray, box: tuple[float, float, float, float], rectify: bool,
         margin: tuple[float, float] = (_MARGIN_X, _MARGIN_Y)) -> tuple[np.ndarray, float] | None:
    """The plate with a margin, deskewed when it is visibly rotated, and the tilt taken out (degrees; 0.0
    when the plate was cut as it is)."""
    x0, y0, x1, y1 = cut_bounds(box, image.shape[1], image.shape[0], margin)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    crop = image[y0:y1, x0:x1]
    if rectify:
        angle = _skew_angle(crop)
        if abs(angle) >= _MIN_TILT:
            c = ((x1 - x0) / 2, (y1 - y0) / 2)
            m = cv2.getRotationMatrix2D(c, angle, 1.0)
            return np.asarray(
                cv2.warpAffine(crop, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            ), angle
    # A copy: the crop outlives the frame (events keep it) and must not pin the whole frame.
    return crop.copy(), 0.0


def tilted_box(box: tuple[float, float, float, float], angle: float,
               frame_h: int) -> tuple[float, float, float, float]:
    """The upright box around a plate tilted by ``angle`` degrees whose own extent the detector's ``box``
    gives (its width, and about its height: what the detector draws for a tilted plate), same centre,
    inside the frame's height. Boxes are axis-aligned around the plate's outline, in the datasets and in
    the detector's training."""
    x, y, w, h = box
    a = math.radians(abs(angle))
    tall = max(h, w * math.sin(a) + h * math.cos(a))
    cy = y + h / 2
    top, bottom = max(0.0, cy - tall / 2), min(float(frame_h), cy + tall / 2)
    return x, top, w, bottom - top


def _skew_angle(crop: np.ndarray, min_length: float = _EDGE_MIN_LENGTH, max_tilt: float = _EDGE_MAX_TILT) -> float:
    """Rotation (degrees) of the plate's horizontal edges; 0 when unsure.

    Edges count from ``min_length`` of the crop's width and up to ``max_tilt`` degrees.

    A plate's top/bottom borders and character rows give long near-horizontal edges; their median
    angle is the plate's tilt. An axis-aligned detector box around a tilted plate is the common
    case on a pole camera looking down a lane at an angle.
    """
    grey = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    if w < 40 or h < 12:
        return 0.0
    edges = cv2.Canny(grey, 60, 160)
    lines = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=max(20, w // 4), minLineLength=w * min_length,
                            maxLineGap=max(3, w // 30))
    if lines is None:
        return 0.0
    angles = []
    for x0, y0, x1, y1 in np.asarray(lines).reshape(-1, 4):
        a = math.degrees(math.atan2(float(y1 - y0), float(x1 - x0)))
        if a > 90:
            a -= 180
        elif a < -90:
            a += 180
        if abs(a) < max_tilt:
            angles.append(a)
    if len(angles) < 2:
        return 0.0
    return float(np.median(angles))
