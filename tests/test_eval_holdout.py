# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""scripts/eval_holdout.py on a tiny synthetic datasets folder (rendered plates, no real dataset needed):
which images count as held out, how sources are named, and what the scorer and the sweep report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge_agent.pipeline.alpr.types import PlateRead
from edge_agent.sources.plate_render import render_plate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import eval_holdout  # noqa: E402
from eval_alpr import UNBOXED_PLATES, Tally, Truth, score_image, unboxed_plates  # noqa: E402
from splits import held_out  # noqa: E402

PLATE_W, AT = 160, (560, 420)


def _write(folder: Path, name: str, text: str, with_text: bool) -> None:
    frame = np.full((720, 1280, 3), 128, np.uint8)
    plate = render_plate(text)
    h = round(PLATE_W * plate.shape[0] / plate.shape[1])
    x, y = AT
    frame[y : y + h, x : x + PLATE_W] = cv2.resize(plate, (PLATE_W, h), interpolation=cv2.INTER_AREA)
    folder.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(folder / name), frame)
    label = text if with_text else ""
    (folder / name).with_suffix(".txt").write_text(f"{name}\t{x}\t{y}\t{PLATE_W}\t{h}\t{label}\n")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    names = [f"AB{i:03d}CD.jpg" for i in range(200)]
    held = next(n for n in names if held_out("plates-br-train", n))
    train = next(n for n in names if not held_out("plates-br-train", n))
    _write(root / "plates-br-train", held, held[:7], with_text=True)
    _write(root / "plates-br-train", train, train[:7], with_text=True)
    _write(root / "plates-tr-boxes", "tr_plate2-1.jpg", "ZX908KL", with_text=False)  # highway: held out, boxes only
    return root


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    monkeypatch.setattr(sys, "argv", ["eval_holdout.py", "--json", *args])
    assert eval_holdout.main() == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_source_names() -> None:
    assert eval_holdout.source_name("plates-ro-boxes", "ro_dayride_type1_002_t225.jpg", True) == "ro:dayride_type1_002"
    assert eval_holdout.source_name("plates-tr-boxes", "tr_plate2-7.jpg", True) == "tr:highway"
    assert eval_holdout.source_name("plates-tr-boxes", "tr_plate-12.jpg", True) == "tr:photos"
    assert eval_holdout.source_name("plates-us-train", "car1.jpg", True) == "us"
    assert eval_holdout.source_name("plates-pl-boxes", "pl000.jpg", False) == "pl:train"


def test_box_only_plates_count_for_recall_not_for_reads() -> None:
    t = Tally()
    truths = [Truth((10.0, 10.0, 100.0, 25.0), ""), Truth((300.0, 10.0, 100.0, 25.0), "AB123CD")]
    score_image("x.jpg", truths, [(10.0, 10.0, 100.0, 25.0)], [], t, [])
    assert (t.images, t.plates, t.det5, t.hit5, t.false_plates) == (1, 2, 1, 0, 0)
    assert (t.texted, t.texted_exact, t.texted_edits, t.chars) == (1, 0, 7, 7)


def test_reader_score_counts_right_wrong_and_false_plates() -> None:
    t = Tally()
    truths = [Truth((10.0, 10.0, 100.0, 25.0), "AB123CD"), Truth((300.0, 10.0, 100.0, 25.0), "XY987ZW"),
              Truth((10.0, 200.0, 100.0, 25.0), "KR461EI")]
    reads = [PlateRead("AB123CD", (10, 10, 100, 25), 0.9), PlateRead("XY987ZV", (300, 10, 100, 25), 0.9),
             PlateRead("QQ111QQ", (500, 300, 100, 25), 0.9)]
    score_image("x.jpg", truths, [], reads, t, [])
    # The third plate is not read at all: neither right nor wrong.
    assert (t.texted, t.texted_exact, t.texted_wrong, t.false_plates) == (3, 1, 1, 1)
    m = eval_holdout.metrics("x", "f", "validation", t, 0)
    assert (m["texted_read_right"], m["texted_read_wrong"], m["false_plates"], m["reader_score"]) == (1, 1, 1, -1)


def test_a_read_on_a_plate_the_dataset_left_unboxed_is_not_a_false_plate() -> None:
    truths = [Truth((10.0, 10.0, 100.0, 25.0), "AB123CD")]
    reads = [PlateRead("AB123CD", (10, 10, 100, 25), 0.9), PlateRead("B642STB", (4, 397, 85, 20), 0.8),
             PlateRead("QQ111QQ", (500, 300, 100, 25), 0.9)]
    plain, listed = Tally(), Tally()
    score_image("x.jpg", truths, [], reads, plain, [])
    score_image("x.jpg", truths, [], reads, listed, [], unboxed=[(6.0, 398.0, 80.0, 19.0)])
    assert (plain.texted_exact, plain.false_plates) == (1, 2)
    # Neither right nor false: only the read touching no plate at all is a false plate.
    assert (listed.plates, listed.texted_exact, listed.texted_wrong, listed.false_plates) == (1, 1, 0, 1)


def test_the_unboxed_plates_list_names_held_out_frames_only(tmp_path: Path) -> None:
    listed = unboxed_plates()
    assert listed and all(held_out("plates-ro-boxes", name) for name in listed), "never a training frame"
    assert all(w >= 25 and 2.0 <= w / h <= 6.5 for boxes in listed.values() for _, _, w, h in boxes)
    own = tmp_path / "u.tsv"
    own.write_text("# a comment\nimg.jpg\t1\t2\t30\t10\tplate\nshort\tline\n", encoding="utf-8")
    assert unboxed_plates(own) == {"img.jpg": [(1.0, 2.0, 30.0, 10.0)]}
    assert UNBOXED_PLATES.is_file()


def test_scores_held_out_part_per_source(
    datasets: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _run(monkeypatch, capsys, "--datasets", str(datasets))
    rows = {r["source"]: r for r in out["sources"]}
    # The training image of br is left out; the pooled rows by region follow the TOTAL.
    assert list(rows) == ["tr:highway", "br", "TOTAL", "TOTAL europe", "TOTAL americas", "TOTAL >= 25 px"]
    assert out["split"].startswith("scripts/splits.py@")
    assert set(out["models"]) == {"plate_detector", "plate_ocr"}
    br, tr, total = rows["br"], rows["tr:highway"], rows["TOTAL"]
    assert (br["images"], br["plates"], br["texted_plates"]) == (1, 1, 1)
    assert br["detector_recall_iou0.5"] == 1.0 and br["exact_accuracy"] == 1.0 and br["char_error_rate"] == 0.0
    assert br["false_plates_per_image"] == 0.0
    assert tr["detector_recall_iou0.5"] == 1.0 and tr["exact_accuracy"] is None and tr["char_error_rate"] is None
    assert (total["images"], total["plates"], total["texted_plates"]) == (2, 2, 1)
    europe, americas = rows["TOTAL europe"], rows["TOTAL americas"]
    assert (europe["images"], europe["plates"], europe["texted_plates"]) == (1, 1, 0)
    assert (americas["images"], americas["texted_plates"], americas["reader_score"]) == (1, 1, 1)
    assert out["sweep"] is None


def test_sweep_and_training_part(
    datasets: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _run(monkeypatch, capsys, "--datasets", str(datasets), "--sweep", "--all")
    rows = {r["source"]: r for r in out["sources"]}
    assert list(rows) == ["tr:highway", "br", "TOTAL", "TOTAL europe", "TOTAL americas", "TOTAL >= 25 px", "br:train",
                          "TOTAL train"]
    assert rows["br:train"]["part"] == "training" and rows["TOTAL"]["plates"] == 2
    sweep = out["sweep"]
    assert [r["threshold"] for r in sweep["rows"]] == list(eval_holdout.SWEEP_THRESHOLDS)
    first = sweep["rows"][0]
    assert first["detector_recall_iou0.5"] == 1.0 and first["false_plates_per_image"] == 0.0
    # The operating threshold's figures match a plain run's.
    assert rows["TOTAL"]["detector_recall_iou0.5"] == 1.0
    assert sweep["recommended_threshold"] in eval_holdout.SWEEP_THRESHOLDS


DATASETS = eval_holdout.datasets_dir()


@pytest.mark.skipif(not (DATASETS / "plates-ro-boxes").is_dir(), reason=f"datasets not available at {DATASETS}")
def test_held_out_sources_regression_floor() -> None:
    # The reader on the sources neither model trained on (scripts/splits.py), pooled. A guard a little
    # below what the shipped v3 models measure with this reader (edge_agent/models/plate_detector.md:
    # detector recall@0.5 71.5%, reader 65.0%, 0.019 false plates per photo), so a model or reader
    # regression trips it.
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "eval_holdout.py"), "--json"],
                          capture_output=True, text=True, timeout=600, check=True)
    total = next(r for r in json.loads(proc.stdout)["sources"] if r["source"] == "TOTAL")
    assert total["plates"] >= 200
    assert total["detector_recall_iou0.5"] >= 0.66
    assert total["recall_iou0.5"] >= 0.62
    assert total["false_plates_per_image"] <= 0.05


def test_the_pole_range_row_counts_only_plates_a_pole_is_set_up_to_read() -> None:
    # A 20 px plate (a Turkish highway frame's) is under the pole's 25 px: neither found nor missed there,
    # and a read on it is not a false plate.
    truths = [Truth((10.0, 10.0, 100.0, 25.0), "AB123CD"), Truth((300.0, 10.0, 20.0, 6.0), "")]
    reads: list[PlateRead | None] = [PlateRead("AB123CD", (10, 10, 100, 25), 0.9),
                                     PlateRead("34AB12", (300, 10, 20, 6), 0.6)]
    image = eval_holdout.Image("x.jpg", truths, [], reads)
    every = eval_holdout.tally([image])
    pole = eval_holdout.tally([image], min_width=eval_holdout.POLE_MIN_WIDTH)
    assert (every.plates, every.hit5, every.false_plates) == (2, 2, 0)
    assert (pole.plates, pole.hit5, pole.texted_exact, pole.false_plates) == (1, 1, 1, 0)


def test_motion_regions_score_the_second_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A plate 28 px wide in a 1280 px frame is 7 px at the detector's input: the whole-frame pass misses
    # it, the second look around its vehicle sees it at the frame's own pixels.
    names = [f"AB{i:03d}CD.jpg" for i in range(200)]
    name = next(n for n in names if held_out("plates-br-train", n))
    frame = np.full((720, 1280, 3), 128, np.uint8)
    frame[500:506, 700:728] = cv2.resize(render_plate("AB123CD"), (28, 6), interpolation=cv2.INTER_AREA)
    folder = tmp_path / "plates-br-train"
    folder.mkdir()
    assert cv2.imwrite(str(folder / name), frame)
    (folder / name).with_suffix(".txt").write_text(f"{name}\t700\t500\t28\t6\tAB123CD\n")
    whole = {r["source"]: r for r in _run(monkeypatch, capsys, "--datasets", str(tmp_path))["sources"]}
    run = _run(monkeypatch, capsys, "--datasets", str(tmp_path), "--motion-regions")
    looked = {r["source"]: r for r in run["sources"]}
    assert whole["br"]["detector_recall_iou0.3"] == 0.0
    assert run["motion_regions"] is True
    assert looked["br"]["detector_recall_iou0.3"] == 1.0
    monkeypatch.setattr(sys, "argv", ["eval_holdout.py", "--datasets", str(tmp_path), "--motion-regions", "--sweep"])
    assert eval_holdout.main() == 2, "the sweep scores the detector alone, without regions"
