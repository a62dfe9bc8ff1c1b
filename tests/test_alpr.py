# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Real TFLite inference with the packaged plate models (no mocks): regression floors on the dev
set, the `edge-agent read` error paths, and the demo scene's rendered plates."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.config import Config
from edge_agent.core.boxes import box_iou
from edge_agent.pipeline.alpr import ModelError, PlateRead, PlateReader
from edge_agent.pipeline.alpr.detector import Detection, PlateDetector
from edge_agent.pipeline.alpr.read_command import plate_record, run_read
from edge_agent.pipeline.alpr.reader import (
    DEFAULT_DETECTOR,
    DEFAULT_OCR,
    _skew_angle,
    second_look_region,
    second_looks,
    tilted_box,
)
from edge_agent.pipeline.alpr.types import OcrRead
from edge_agent.sources.demo import DemoSource
from edge_agent.sources.plate_render import render_plate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import eval_alpr  # noqa: E402


def _datasets() -> Path:
    env = os.environ.get("EDGE_AGENT_DATASETS")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


DEV = _datasets() / "eu-plates-dev"


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return PlateReader()


def demo_frame(text: str, plate_w: int = 160, at: tuple[int, int] = (560, 420)) -> np.ndarray:
    """A 1280x720 grey frame with one rendered demo plate pasted at ``at``, as the demo scene does."""
    frame = np.full((720, 1280, 3), 128, np.uint8)
    plate = render_plate(text)
    h = round(plate_w * plate.shape[0] / plate.shape[1])
    x, y = at
    frame[y : y + h, x : x + plate_w] = cv2.resize(plate, (plate_w, h), interpolation=cv2.INTER_AREA)
    return frame


# ----------------------------------------------------------------------------- the reader


@pytest.mark.parametrize("text,plate_w", [("AB123CD", 160), ("ZX908KL", 120), ("FG456HJ", 200)])
def test_reads_rendered_demo_plate(reader: PlateReader, text: str, plate_w: int) -> None:
    reads = reader.read(demo_frame(text, plate_w))
    assert [r.text for r in reads] == [text]
    r = reads[0]
    assert isinstance(r, PlateRead)
    truth = (560, 420, plate_w, round(plate_w * 110 / 520))
    assert box_iou(r.box, truth) >= 0.5, (r.box, truth)
    assert 0.5 < r.confidence <= 1.0
    assert r.crop is not None and r.crop.ndim == 3 and len(r.char_confidences) == len(text)


def test_reads_demo_scene(reader: PlateReader) -> None:
    # The daemon's synthetic scene (no camera): every car that crossed the frame is read, many times.
    src = DemoSource(width=1280, height=720, fps=10.0, car_interval_s=3.0, speed_px_s=250.0, seed=3,
                     realtime=False)
    src.open()
    seen: Counter[str] = Counter()
    for _ in range(120):
        seen.update(r.text for r in reader.read(src.read().image))
    src.close()
    crossed = src.plates_shown[:-1]  # the last car may still be entering
    assert len(crossed) >= 3
    for plate in crossed:
        assert seen[plate] >= 10, (plate, seen.most_common(8))


def test_empty_scene_has_no_plates(reader: PlateReader) -> None:
    assert reader.read(np.full((720, 1280, 3), 128, np.uint8)) == []
    assert reader.read(np.zeros((4, 4, 3), np.uint8)) == []


def test_grey_input_and_versions(reader: PlateReader) -> None:
    grey = cv2.cvtColor(demo_frame("AB123CD"), cv2.COLOR_BGR2GRAY)
    assert [r.text for r in reader.read(grey)] == ["AB123CD"]
    versions = reader.model_versions
    assert set(versions) == {"plate_detector", "plate_ocr"} and all(versions.values())


def test_rejects_non_images(reader: PlateReader) -> None:
    with pytest.raises(ValueError):
        reader.read(np.zeros((10, 10, 3), np.float32))


def test_missing_corrupt_and_wrong_models(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        PlateReader(detector_path=tmp_path / "nope.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"definitely not a flatbuffer" * 10)
    with pytest.raises(ModelError, match="not a valid TFLite model"):
        PlateReader(detector_path=junk)
    # The OCR model is a valid TFLite file, but not a detector.
    with pytest.raises(ModelError, match="not a plate detector model"):
        PlateReader(detector_path=DEFAULT_OCR)
    with pytest.raises(ModelError):
        PlateReader(ocr_path=junk)


# ----------------------------------------------------------------------------- dev-set floors


@pytest.mark.skipif(not DEV.is_dir(), reason=f"dev set not available at {DEV} (set EDGE_AGENT_DATASETS)")
def test_dev_set_regression_floor(reader: PlateReader) -> None:
    # A regression guard, not a target (issue 12: >= 98% exact, >= 99% recall@0.5, <= 0.03 false plates
    # per photo). The floors sit a little below what the shipped models measure (the v3 detector with OCR
    # v5, edge_agent/models/plate_ocr.md: detector recall@0.5 100%, reader recall 100% at IoU 0.3 (98.2% at
    # 0.5 since a deskewed plate's box holds its tilted outline, plate_detector.md "Tilted plates"), exact
    # 96.3%, 0.037 false plates per image, real but unannotated plates), so a regression (OCR v3 read 90.7%)
    # trips them and noise (a plate or two) does not.
    m = eval_alpr.evaluate(DEV, reader, verbose=False)
    assert m["images"] == 54
    assert float(m["detector_recall_iou0.5"]) >= 0.96  # type: ignore[arg-type]
    assert float(m["recall_iou0.3"]) >= 0.93  # type: ignore[arg-type]
    assert float(m["false_plates_per_image"]) <= 0.1  # type: ignore[arg-type]
    assert float(m["exact_accuracy"]) >= 0.92  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- edge-agent read


def _run(paths: list[Path], as_json: bool = False, **alpr: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    # model_copy skips validation: the models are checked by the reader here, as on a pole whose model
    # file went missing after start.
    base = Config()
    cfg = base.model_copy(update={"alpr": base.alpr.model_copy(
        update={k.replace("_path", "_model"): v for k, v in alpr.items()})})
    code = run_read(paths, as_json, out, err, cfg=cfg)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture()
def good_jpg(tmp_path: Path) -> Path:
    p = tmp_path / "demo.jpg"
    cv2.imwrite(str(p), demo_frame("AB123CD"))
    return p


def test_read_json(good_jpg: Path) -> None:
    code, out, err = _run([good_jpg], as_json=True)
    assert code == 0, err
    line = json.loads(out)
    assert line["image"] == str(good_jpg) and line["ms"] >= 0  # the path, as the errors give it
    assert "1 image(s), 1 plate(s) read, 0 failed, median" in err
    assert [p["text"] for p in line["plates"]] == ["AB123CD"]
    assert len(line["plates"][0]["box"]) == 4 and 0 < line["plates"][0]["confidence"] <= 1
    # What a pole would publish for it: the read fields of events/plate, format-checked.
    plate = line["plates"][0]
    assert plate["read_status"] == "read" and plate["low_confidence"] is False
    assert plate["country"] == "IT" and plate["corrected_from"] is None
    # IT, FR and SK plates share AA123AA: the right band leaves IT and FR, and seven characters with no
    # dash between the groups (the demo plate is drawn Italian, AB 123 CD) leave IT.
    assert plate["country_confidence"] == 1.0


def test_read_uses_the_nodes_formats(good_jpg: Path, tmp_path: Path) -> None:
    # `read --config` applies the node's formats as `run` does: with Czech plates only, an Italian
    # plate fits nothing and would be published as a partial read.
    cfg = tmp_path / "node.toml"
    cfg.write_text('[formats]\nenabled = ["CZ"]\n')
    proc = subprocess.run([sys.executable, "-m", "edge_agent", "read", "--json", "--config", str(cfg), str(good_jpg)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    plate = json.loads(proc.stdout)["plates"][0]
    assert (plate["text"], plate["country"], plate["read_status"]) == ("AB123CD", None, "partial")
    bad = tmp_path / "bad.toml"
    bad.write_text('[formats]\nenabled = ["XX"]\n')
    proc = subprocess.run([sys.executable, "-m", "edge_agent", "read", "--config", str(bad), str(good_jpg)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "formats.enabled" in proc.stderr and "Traceback" not in proc.stderr


def test_read_text_and_folder(good_jpg: Path) -> None:
    (good_jpg.parent / "notes.txt").write_text("not an image, ignored in folders")
    code, out, _ = _run([good_jpg.parent])
    assert code == 0
    assert out.startswith(f"{good_jpg}: AB123CD") and out.count("\n") == 1


def test_read_corrupt_file_alone(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    code, out, err = _run([bad])
    assert code == 2 and out == ""
    assert "bad.jpg" in err and "cannot decode" in err and "Traceback" not in err


def test_read_corrupt_among_good(good_jpg: Path) -> None:
    bad = good_jpg.parent / "bad.png"
    bad.write_text("hello")
    code, out, err = _run([good_jpg.parent], as_json=True)
    assert code == 1
    assert [json.loads(x)["image"] for x in out.splitlines()] == [str(good_jpg)]
    assert f"{bad}: not an image" in err and "2 image(s), 1 plate(s) read, 1 failed" in err


def test_read_empty_folder_and_missing_path(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run([empty])
    assert code == 2 and "no images" in err
    code, _, err = _run([tmp_path / "missing.jpg"])
    assert code == 2 and "no such file" in err


def test_read_bad_model(good_jpg: Path, tmp_path: Path) -> None:
    code, out, err = _run([good_jpg], detector_path=tmp_path / "missing.tflite")
    assert code == 2 and out == ""
    assert "cannot load the plate models" in err and "not found" in err
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(os.urandom(256))
    code, _, err = _run([good_jpg], ocr_path=junk)
    assert code == 2 and "Traceback" not in err


def test_packaged_models_exist() -> None:
    for p in (DEFAULT_DETECTOR, DEFAULT_OCR):
        assert p.is_file() and p.stat().st_size < 4_000_000, p


def test_second_look_reads_a_plate_too_small_for_the_whole_frame(reader: PlateReader) -> None:
    # A 1920 px frame is shrunk 6x for the detector: a 90 px plate is 15 px there. Around the moving
    # area the second look sees it at full size.
    rng = np.random.default_rng(3)
    frame = rng.integers(70, 110, (1080, 1920, 3), dtype=np.uint8)
    car = (1200, 600, 260, 160)
    cv2.rectangle(frame, (car[0], car[1]), (car[0] + car[2], car[1] + car[3]), (40, 40, 150), -1)
    plate = cv2.resize(render_plate("GX482KT"), (96, 20), interpolation=cv2.INTER_AREA)
    frame[700:720, 1280:1376] = plate
    looks = reader.second_looks
    reads = reader.read(frame, [car])
    assert reader.second_looks == looks + 1
    assert "GX482KT" in [r.text for r in reads], [r.text for r in reads]
    hit = next(r for r in reads if r.text == "GX482KT")
    x, y = hit.box[:2]
    assert abs(x - 1280) < 15 and abs(y - 700) < 10, "the box is in frame pixels"


def test_second_look_region() -> None:
    assert second_look_region([], 1920, 1080, 320) is None
    assert second_look_region([(0, 0, 1500, 900)], 1920, 1080, 320) is None, "most of the frame: no gain"
    x, y, w, h = second_look_region([(1900, 1000, 10, 10)], 1920, 1080, 320)  # type: ignore[misc]
    assert (w, h) == (320, 320) and x + w <= 1920 and y + h <= 1080, "at least the input size, inside the frame"
    assert second_look_region([(10, 10, 50, 30)], 480, 360, 320) is None, "a small frame is seen whole"


def test_second_looks_one_per_group_of_regions() -> None:
    near = [(900, 500, 120, 80), (1000, 520, 100, 70)]
    assert second_looks(near, 1920, 1080, 320) == [second_look_region(near, 1920, 1080, 320)], "one group: one look"
    left, right = (100, 600, 200, 150), (1600, 600, 260, 160)
    assert second_look_region([left, right], 1920, 1080, 320) is None, "one look around both would be most of it"
    looks = second_looks([left, right], 1920, 1080, 320)
    assert looks == [second_look_region([right], 1920, 1080, 320), second_look_region([left], 1920, 1080, 320)]
    middle = (900, 100, 150, 100)
    assert len(second_looks([left, right, middle], 1920, 1080, 320)) == 2, "at most two looks: the largest groups"
    assert second_looks([(0, 0, 1500, 900), left], 1920, 1080, 320) == [second_look_region([left], 1920, 1080, 320)]
    assert second_looks([], 1920, 1080, 320) == []
    # A frame full of small motion boxes (rain, snow, a shaking mast): still at most two looks, in the frame.
    rng = np.random.default_rng(2)
    noise = [(int(rng.integers(0, 1900)), int(rng.integers(0, 1060)), 20, 20) for _ in range(500)]
    looks = second_looks(noise, 1920, 1080, 320)
    assert 1 <= len(looks) <= 2
    assert all(x >= 0 and y >= 0 and x + w <= 1920 and y + h <= 1080 and min(w, h) >= 320 for x, y, w, h in looks)


def test_two_cars_far_apart_each_get_a_second_look(reader: PlateReader) -> None:
    # Two lanes: one look around both cars would cover most of the frame and gain nothing, so each gets
    # its own; their plates, 8 px wide at the detector's input (found by neither look alone), are read at
    # full size.
    rng = np.random.default_rng(5)
    frame = rng.integers(70, 110, (1080, 1920, 3), dtype=np.uint8)
    cars = [(150, 600, 260, 160), (1500, 600, 260, 160)]
    for (x, y, w, h), text in zip(cars, ("GX482KT", "FB301MZ"), strict=True):
        cv2.rectangle(frame, (x, y), (x + w, y + h), (40, 40, 150), -1)
        frame[y + 100:y + 110, x + 80:x + 128] = cv2.resize(render_plate(text), (48, 10), interpolation=cv2.INTER_AREA)
    assert reader.read(frame) == [], "too small for the whole frame"
    looks = reader.second_looks
    texts = sorted(r.text for r in reader.read(frame, cars))
    assert reader.second_looks == looks + 1, "counted per frame"
    assert texts == ["FB301MZ", "GX482KT"], texts


def test_the_detector_runs_its_weights_at_a_smaller_input() -> None:
    # The closer look runs the shipped file at 96 x 96: the same weights, the upsampling sizes scaled.
    small = PlateDetector(DEFAULT_DETECTOR, input_side=96)
    assert (small.input_w, small.input_h, small.grid_w, small.stride) == (96, 96, 24, 4.0)
    assert small.version == PlateDetector(DEFAULT_DETECTOR).version, "the same model, named the same"
    window = demo_frame("AB123CD", 120, (60, 120))[60:360, 0:300]
    truth = (60, 60, 120, round(120 * 110 / 520))
    found = small.detect(window)
    assert found and box_iou(found[0].box, truth) >= 0.6, (found, truth)
    # Sizes the network's strides cannot take are refused as the model error they are.
    with pytest.raises(ModelError, match=r"cannot run at a 100 x 100 input: .*does not scale"):
        PlateDetector(DEFAULT_DETECTOR, input_side=100)
    with pytest.raises(ModelError):
        PlateDetector(DEFAULT_DETECTOR, input_side=0)


def test_each_box_is_drawn_again_by_a_closer_look() -> None:
    # An 80 px plate in a 1920 px frame is 13 px at the detector's input, whose cells are 24 frame pixels:
    # the closer look, where the plate is ~38 px, draws its box closer. The OCR still reads the first
    # look's cut (the framing it learnt): the same text either way.
    rng = np.random.default_rng(4)
    frame = rng.integers(70, 110, (1080, 1920, 3), dtype=np.uint8)
    truth = (1301, 613, 80, 17)
    frame[613:630, 1301:1381] = cv2.resize(render_plate("GX482KT"), (80, 17), interpolation=cv2.INTER_AREA)
    refined, first = PlateReader().read(frame), PlateReader(refine=False).read(frame)
    assert [r.text for r in refined] == [r.text for r in first] == ["GX482KT"]
    assert box_iou(refined[0].box, truth) >= 0.8 and box_iou(first[0].box, truth) < 0.7, (refined[0].box, first[0].box)
    det = PlateReader().detect(frame)[0]
    assert det.cut_box is not None and det.cut_box != det.box and box_iou(det.cut_box, first[0].box) > 0.9
    # A plate the frame's own look already sees closer than the closer look would (200 px of a 1280 px frame:
    # shrunk 4x there, 5.2x in a window of 2.5 plate widths at 96 px) keeps its box.
    big = PlateReader().detect(demo_frame("AB123CD", 200))
    assert big and big[0].cut_box is None


def test_the_box_measure_sees_leans_the_deskew_measure_leaves() -> None:
    # A plate's border turned 25 deg: past the deskew's +-20 deg (the OCR reads the crop as it is), inside the
    # published box's +-30 deg, which then grows to the plate's outline (tilted_box).
    crop = np.full((140, 300), 200, np.uint8)
    for y in (50, 90):
        cv2.line(crop, (20, y + 60), (280, y - 61), 30, 3)
    assert _skew_angle(crop) == 0.0
    assert abs(abs(_skew_angle(crop, 0.3, 30.0)) - 25.0) < 1.5


def test_reads_below_min_confidence_are_not_returned() -> None:
    # alpr.min_confidence belongs to the reader, so `edge-agent read`, the scorers and the pole agree.
    frame = demo_frame("AB123CD")
    assert [r.text for r in PlateReader(min_confidence=0.0).read(frame)] == ["AB123CD"]
    assert PlateReader(min_confidence=1.0).read(frame) == []


def _two_row_plate(top: str, bottom: str, w: int = 180, h: int = 130) -> np.ndarray:
    """An Italian motorcycle-style plate: EU band at the top left, two letters over five digits."""
    img = np.full((h, w, 3), 240, np.uint8)
    cv2.rectangle(img, (1, 1), (w - 2, h - 2), (20, 20, 20), 3)
    x0 = int(w * 0.16)
    cv2.rectangle(img, (3, 3), (x0, h // 2), (153, 51, 0), -1)
    for row, text in ((0, top), (1, bottom)):
        font = cv2.FONT_HERSHEY_DUPLEX
        (tw, th), _ = cv2.getTextSize(text, font, 1.0, 2)
        scale = min((w - x0 - 12) / tw, (h * 0.36) / th)
        thick = max(2, int(scale * 2.5))
        (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
        cv2.putText(img, text, (x0 + (w - x0 - tw) // 2, int(h * (0.44 if row == 0 else 0.88))), font, scale,
                    (15, 15, 15), thick, cv2.LINE_AA)
    return img


@pytest.mark.parametrize(("top", "bottom"), [("AB", "12345"), ("XK", "40719")])
def test_two_row_plate_is_found_and_read_top_row_first(reader: PlateReader, top: str, bottom: str) -> None:
    frame = np.full((720, 1280, 3), 110, np.uint8)
    cv2.rectangle(frame, (450, 300), (850, 650), (60, 60, 140), -1)
    frame[450:450 + 101, 600:600 + 140] = cv2.resize(_two_row_plate(top, bottom), (140, 101),
                                                     interpolation=cv2.INTER_AREA)
    reads = reader.read(frame)
    assert [(r.text, r.two_row, r.country) for r in reads] == [(top + bottom, True, "IT")]


def test_second_look_survives_any_regions(reader: PlateReader) -> None:
    # Motion boxes come from the frame, but a region off the frame, empty or bigger than it must
    # neither raise nor give boxes outside the image.
    rng = np.random.default_rng(11)
    for shape in ((720, 1280, 3), (1080, 1920, 3), (400, 3000, 3), (2000, 300)):
        frame = rng.integers(0, 255, shape, dtype=np.uint8)
        h, w = shape[:2]
        for regions in ([(-50, -50, 10, 10)], [(w - 5, h - 5, 400, 400)], [(0, 0, 0, 0)], [(10, 10, 5 * w, 5 * h)],
                        [(int(rng.integers(0, w)), int(rng.integers(0, h)), 60, 40) for _ in range(5)]):
            for r in reader.read(frame, regions):
                x, y, bw, bh = r.box
                assert x >= 0 and y >= 0 and x + bw <= w + 1 and y + bh <= h + 1


class _ScriptedOCR:
    """Stands in for the OCR model to pin the reader's choice between its two ways of reading a squarish
    box (the choice is under test, not the model): the side-by-side view of the rows reads ``two_row``,
    the plain crop ``one_row``, each a (text, per-character confidence)."""

    def __init__(self, two_row: tuple[str, float], one_row: tuple[str, float]) -> None:
        self.two_row, self.one_row = two_row, one_row

    def read(self, view: np.ndarray) -> OcrRead:
        text, conf = self.two_row if view.shape[1] > 3 * view.shape[0] else self.one_row
        return OcrRead(text, conf, (conf,) * len(text), ((),) * len(text))


def test_of_a_squarish_boxs_two_reads_the_surer_wins() -> None:
    # Found on the held-out Turkish photos: a one-row plate seen at an angle gets a squarish box, read
    # both ways; the two-row way fitted a layout by chance, unsure, and won for fitting, then fell under
    # alpr.min_confidence, so the sure one-row read (46ABK717, no enabled layout) was lost too.
    reader = PlateReader(min_confidence=0.5)
    reader.ocr = _ScriptedOCR(two_row=("AB12345", 0.2), one_row=("46ABK717", 0.99))
    frame = np.full((200, 300, 3), 200, np.uint8)
    det = Detection((100.0, 60.0, 96.0, 57.0), 0.8)  # w/h 1.7: read both ways
    read = reader.read_crop(frame, det)
    assert read is not None and (read.text, read.two_row) == ("46ABK717", False)
    # Both sure: the surer wins, not the one that fits a layout. Found on the same photos with a better
    # row split: the two-row way read the one-row plate as GW7M, sure, and fitted a short layout.
    reader.ocr = _ScriptedOCR(two_row=("AB12345", 0.95), one_row=("46ABK717", 0.99))
    read = reader.read_crop(frame, det)
    assert read is not None and (read.text, read.two_row) == ("46ABK717", False)
    reader.ocr = _ScriptedOCR(two_row=("AB12345", 0.99), one_row=("46ABK717", 0.9))
    read = reader.read_crop(frame, det)
    assert read is not None and (read.text, read.two_row) == ("AB12345", True)
    # Neither sure: nothing.
    reader.ocr = _ScriptedOCR(two_row=("AB12345", 0.2), one_row=("46ABK717", 0.2))
    assert reader.read_crop(frame, det) is None


class _ViewsOCR:
    """Stands in for the OCR model and keeps every view the reader gives it; reads nothing."""

    def __init__(self) -> None:
        self.views: list[np.ndarray] = []

    def read(self, view: np.ndarray) -> OcrRead:
        self.views.append(view)
        return OcrRead("", 0.0, (), ())


def test_the_two_row_view_is_cut_as_the_ocr_learnt_two_row_plates() -> None:
    # Found with scripts/eval_eu_placed.py: a two-row plate cut with the one-row margin (15% of the box
    # above and below) and split at the gap gave each row more context above or below than any two-row
    # training crop; the rows' view is now cut at the two-row training border (two_row.cut_margin).
    frame = np.full((300, 400, 3), 150, np.uint8)
    x, y, w, h = 150, 100, 100, 80  # w/h 1.25: a motorcycle plate's box
    frame[y:y + h, x:x + w] = 235
    # Black bars 8-12% of the box's height above and below it: inside the one-row cut, outside the two-row one.
    frame[y - 10:y - 6, x:x + w] = 0
    frame[y + h + 6:y + h + 10, x:x + w] = 0
    reader = PlateReader(rectify=False)
    ocr = _ViewsOCR()
    reader.ocr = ocr
    assert reader.read_crop(frame, Detection((x, y, w, h), 0.9)) is None
    rows, whole = ocr.views
    assert rows.shape[1] > 2 * rows.shape[0] and int(rows.min()) > 100
    assert whole.shape[:2] == (round(h * 1.3), round(w * 1.1)) and int(whole.min()) == 0
    # A one-row box is read once, from the one-row cut.
    ocr.views.clear()
    reader.read_crop(frame, Detection((x, y, w, 25.0), 0.9))
    assert len(ocr.views) == 1


def test_a_read_longer_than_any_plate_is_no_plate() -> None:
    # Found on the held-out US photos: a "private property" sign read as two rows, PRVATEPROVPHT, sure.
    reader = PlateReader(min_confidence=0.5)
    frame = np.full((200, 300, 3), 200, np.uint8)
    det = Detection((100.0, 60.0, 96.0, 57.0), 0.9)
    reader.ocr = _ScriptedOCR(two_row=("PRVATEPROVPHT", 0.99), one_row=("PRIV", 0.2))
    assert reader.read_crop(frame, det) is None
    reader.ocr = _ScriptedOCR(two_row=("AB12345678", 0.99), one_row=("PRIV", 0.2))  # 10: the most a plate holds
    read = reader.read_crop(frame, det)
    assert read is not None and read.text == "AB12345678"


class _OneReadOCR:
    """Stands in for the OCR model: every view reads ``text``, the last glyph unsure with ``last_alts``."""

    def __init__(self, text: str, last_alts: tuple[tuple[str, float], ...]) -> None:
        self.text, self.last_alts = text, last_alts

    def read(self, view: np.ndarray) -> OcrRead:
        confs = (0.95,) * (len(self.text) - 1) + (0.6,)
        return OcrRead(self.text, 0.6, confs, ((),) * (len(self.text) - 1) + (self.last_alts,))


def test_a_plate_with_a_right_band_is_read_as_italian_or_french() -> None:
    # The band is seen before the read is checked: a French Q read as O (AB123CO fits Slovak and
    # Austrian layouts as read) becomes the French AB123CQ, the model's own second choice.
    plate = cv2.resize(render_plate("AB123CD"), (260, 55), interpolation=cv2.INTER_AREA)  # both bands
    frame = np.full((300, 500, 3), 90, np.uint8)
    ph, pw = plate.shape[:2]
    frame[100:100 + ph, 50:50 + pw] = plate
    reader = PlateReader(min_confidence=0.5)
    reader.ocr = _OneReadOCR("AB123CO", (("Q", 0.3),))
    read = reader.read_crop(frame, Detection((50.0, 100.0, float(pw), float(ph)), 0.9))
    assert read is not None and read.right_band is True
    assert (read.text, read.corrected_from) == ("AB123CQ", "AB123CO")
    record = plate_record(read, reader.formats, low_confidence=0.6)
    assert (record["text"], record["country"], record["country_confidence"]) == ("AB123CQ", "FR", 1.0)
    # The same plate without its right band keeps the read as it stands.
    frame[100:100 + ph, 50 + pw - pw // 8:50 + pw] = 245
    read = reader.read_crop(frame, Detection((50.0, 100.0, float(pw), float(ph)), 0.9))
    assert read is not None and read.right_band is False and read.text == "AB123CO"


def test_a_read_that_fits_no_enabled_layout_is_published_as_read() -> None:
    # What a pole publishes (`edge-agent read`, a track of one read) once went through a look-alike swap
    # the reader had not made: the Turkish 80HF583, read right, fits no enabled layout and was published
    # as 80HFS83 (the old French layout). Held-out photos: exact reads 81.0% read, 72.4% published.
    read = PlateRead("80HF583", (10, 10, 120, 30), 0.9, (0.9,) * 7, None)
    record = plate_record(read, PlateReader().formats, low_confidence=0.6)
    assert (record["text"], record["country"], record["corrected_from"]) == ("80HF583", None, None)
    assert record["read_status"] == "partial"


def _close_up(text: str, share: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    frame = np.full((480, 640, 3), 110, np.uint8)
    plate = render_plate(text)
    pw = int(640 * share)
    ph = int(pw * plate.shape[0] / plate.shape[1])
    x, y = (640 - pw) // 2, (480 - ph) // 2
    frame[y:y + ph, x:x + pw] = cv2.resize(plate, (pw, ph), interpolation=cv2.INTER_AREA)
    return frame, (x, y, pw, ph)


def test_a_plate_wider_than_the_models_largest_box_is_found_by_a_zoomed_out_look() -> None:
    # A close-up photo: the plate spans the frame, twice the widest box the detector draws. The plain
    # pass misses it (or boxes half of it); the reader looks again with the frame shrunk twice as much.
    reader = PlateReader()
    for text in ("AB123CD", "EF456GH"):
        frame, truth = _close_up(text, 0.95)
        assert not any(box_iou(d.box, truth) >= 0.5 for d in reader.detector.detect(frame))
        before = reader.zoomed_out_looks
        reads = reader.read(frame)
        assert reader.zoomed_out_looks == before + 1
        assert [r.text for r in reads if box_iou(r.box, truth) >= 0.8] == [text]
    # A plate of ordinary size takes no second pass.
    frame, truth = _close_up("AB123CD", 0.25)
    before = reader.zoomed_out_looks
    assert [r.text for r in reader.read(frame) if box_iou(r.box, truth) >= 0.5] == ["AB123CD"]
    assert reader.zoomed_out_looks == before


def test_a_read_that_fits_no_format_is_read_again_from_a_wider_cut() -> None:
    # A box that ends a character short (as the detector's do on small plates) reads 34MEK8, which fits no
    # enabled format; the wider second cut reads the whole plate, which fits one (the old French series).
    frame = np.full((400, 600, 3), 110, np.uint8)
    plate = cv2.resize(render_plate("34MEK85"), (160, 36), interpolation=cv2.INTER_AREA)
    frame[100:136, 200:360] = plate
    short = Detection((200.0, 100.0, 160 * 0.74, 36.0), 0.9)
    first = PlateReader(wide_retry=False).read_crop(frame, short)
    assert first is not None and (first.text, first.country) == ("34MEK8", None)
    again = PlateReader().read_crop(frame, short)
    assert again is not None and (again.text, again.country) == ("34MEK85", "FR")
    # A read that fits no format from the wider cut either (a foreign layout) is kept as it was read.
    frame[100:136, 200:360] = cv2.resize(render_plate("34MEK8"), (160, 36), interpolation=cv2.INTER_AREA)
    whole = Detection((200.0, 100.0, 160.0, 36.0), 0.9)
    kept = PlateReader().read_crop(frame, whole)
    assert kept is not None and (kept.text, kept.country) == ("34MEK8", None)


def _tilted_plate(text: str, angle: float) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A 640x480 frame holding one rendered 200x42 plate turned by ``angle`` degrees about its centre, and
    the upright box around the turned plate (how the datasets box a tilted plate)."""
    frame = np.full((480, 640, 3), 110, np.uint8)
    x, y = 220, 200
    frame[y:y + 42, x:x + 200] = cv2.resize(render_plate(text), (200, 42), interpolation=cv2.INTER_AREA)
    m = cv2.getRotationMatrix2D((x + 100, y + 21), angle, 1.0)
    frame = np.asarray(cv2.warpAffine(frame, m, (640, 480), borderMode=cv2.BORDER_REPLICATE))
    corners = np.array([[[x, y], [x + 200, y], [x + 200, y + 42], [x, y + 42]]], np.float32)
    pts = cv2.transform(corners, m)[0]
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    return frame, (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


@pytest.mark.parametrize("angle", [10.0, -10.0])
def test_a_tilted_plates_published_box_holds_the_whole_plate(reader: PlateReader, angle: float) -> None:
    # The detector boxes a tilted plate about as high as the plate itself; the reader measures the tilt
    # to deskew the crop and publishes the box around the tilted plate, as the datasets box it.
    frame, truth = _tilted_plate("AB123CD", angle)
    dets = reader.detector.detect(frame)
    assert len(dets) == 1 and box_iou(dets[0].box, truth) < 0.7
    reads = reader.read(frame)
    assert [r.text for r in reads] == ["AB123CD"]
    assert box_iou(reads[0].box, truth) >= 0.8, (reads[0].box, dets[0].box, truth)
    assert reads[0].box[3] > dets[0].box[3] + 5
    # A level plate keeps the detector's box.
    level, truth = _tilted_plate("AB123CD", 0.0)
    det = reader.detector.detect(level)[0]
    read = reader.read_crop(level, det)
    assert read is not None and read.box == tuple(round(v) for v in det.box)


def test_the_box_around_a_tilted_plate() -> None:
    assert tilted_box((100.0, 100.0, 200.0, 40.0), 0.0, 480) == (100.0, 100.0, 200.0, 40.0)
    x, y, w, h = tilted_box((100.0, 100.0, 200.0, 40.0), -30.0, 480)
    assert (x, w) == (100.0, 200.0) and h == pytest.approx(200 * 0.5 + 40 * 3 ** 0.5 / 2)
    assert y + h / 2 == pytest.approx(120.0)  # same centre
    # Inside the frame: a plate near the top edge is not boxed above it.
    assert tilted_box((10.0, 2.0, 200.0, 20.0), 20.0, 480)[1] == 0.0
