"""The borders of the crops the reader really cuts (``scripts/reader_borders.py``), which the OCR trainer
can draw its photo plates' borders from (``--reader-borders``), and the parser of the shipped file."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.pipeline.alpr.reader import cut_bounds
from edge_agent.sources.plate_render import render_plate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import label_crops  # noqa: E402
import reader_borders  # noqa: E402
from eval_holdout import SOURCES  # noqa: E402
from splits import held_out  # noqa: E402

PLATE_W = 160


def test_borders_are_shares_of_the_cut_and_negative_where_it_clips() -> None:
    # A cut 10 px wider than the plate on the left, clipping 5 px of it on the right.
    left, right, top, bottom = reader_borders.borders((100.0, 50.0, 100.0, 20.0), (90, 45, 195, 75))
    assert left == pytest.approx(10 / 105) and right == pytest.approx(-5 / 105)
    assert top == pytest.approx(5 / 30) and bottom == pytest.approx(5 / 30)


def test_the_cut_is_the_box_with_the_readers_margin_inside_the_frame() -> None:
    x0, y0, x1, y1 = cut_bounds((100.0, 50.0, 100.0, 20.0), 640, 480)
    assert x0 < 100 and x1 > 200 and y0 < 50 and y1 > 70
    assert cut_bounds((0.0, 0.0, 100.0, 20.0), 90, 15) == (0, 0, 90, 15)  # never past the frame


def test_measuring_pairs_each_plate_with_its_box_and_reads_no_held_out_photo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = tmp_path / "datasets"
    for name in SOURCES:
        (ds / name).mkdir(parents=True)
    folder = ds / "plates-us-train"
    names = [f"car{i:03d}.jpg" for i in range(100)]
    train = next(n for n in names if not held_out("plates-us-train", n))
    held = next(n for n in names if held_out("plates-us-train", n))
    for name in (train, held):
        frame = np.full((720, 1280, 3), 128, np.uint8)
        plate = render_plate("AB123CD")
        h = round(PLATE_W * plate.shape[0] / plate.shape[1])
        frame[300 : 300 + h, 200 : 200 + PLATE_W] = cv2.resize(plate, (PLATE_W, h), interpolation=cv2.INTER_AREA)
        assert cv2.imwrite(str(folder / name), frame)
        (folder / name).with_suffix(".txt").write_text(f"{name}\t200\t300\t{PLATE_W}\t{h}\tAB123CD\n")
    out = tmp_path / "borders.tsv"
    assert reader_borders.main(["--datasets", str(ds), "--out", str(out)]) == 0
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert len(rows) == 1, capsys.readouterr()  # the training photo's plate; the held-out photo is not read
    assert rows[0][0] == "plates-us-train"
    sides = [float(v) for v in rows[0][1:]]
    assert all(-reader_borders.MAX_CLIP <= v < 0.5 for v in sides), sides
    assert label_crops.load_reader_borders(out) == {"plates-us-train": [tuple(sides)]}


def test_measuring_without_a_photo_set_says_which(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert reader_borders.main(["--datasets", str(tmp_path), "--out", str(tmp_path / "x.tsv")]) == 2
    assert "plates-ro-boxes" in capsys.readouterr().err


def test_the_shipped_borders_parse_for_every_photo_set() -> None:
    borders = label_crops.load_reader_borders()
    assert set(borders) == set(SOURCES)
    assert sum(len(v) for v in borders.values()) >= 1000
    for rows in borders.values():
        assert all(min(r) >= -reader_borders.MAX_CLIP for r in rows)


@pytest.mark.parametrize(
    "line",
    [
        "plates-ro-boxes\t0.1\t0.1\t0.1",  # a border missing
        "plates-ro-boxes\t0.1\t0.1\t0.1\tx",  # not a number
        "plates-ro-boxes\t0.1\t0.1\t0.1\tnan",
        "plates-ro-boxes\t0.1\t0.1\t0.1\t1.5",  # wider than the cut
        "\t0.1\t0.1\t0.1\t0.1",  # no folder
    ],
)
def test_a_malformed_borders_file_is_refused_with_its_line(tmp_path: Path, line: str) -> None:
    bad = tmp_path / "borders.tsv"
    bad.write_text(f"plates-ro-boxes\t0.05\t0.03\t0.1\t0.08\n{line}\n")
    with pytest.raises(ValueError, match=r"borders.tsv:2:"):
        label_crops.load_reader_borders(bad)
    bad.write_text("")
    with pytest.raises(ValueError, match="no borders"):
        label_crops.load_reader_borders(bad)
