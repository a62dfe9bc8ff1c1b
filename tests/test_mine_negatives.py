"""No-plate crops for the OCR: where the detector fires off every annotated plate (``scripts/mine_negatives.py``),
and the checked list the OCR trainer reads them from (``scripts/ocr_negatives.tsv``).

Every false plate published on the held-out photos was text that is no plate (a dealer's phone number,
a listing number, a sticker) read by the OCR over the confidence floor: these crops teach it to read nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.sources.plate_render import render_plate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import label_crops  # noqa: E402
import mine_negatives  # noqa: E402
from splits import held_out  # noqa: E402

PLATE_W = 160


def _paste(frame: np.ndarray, text: str, x: int, y: int) -> tuple[int, int, int, int]:
    plate = render_plate(text)
    h = round(PLATE_W * plate.shape[0] / plate.shape[1])
    frame[y : y + h, x : x + PLATE_W] = cv2.resize(plate, (PLATE_W, h), interpolation=cv2.INTER_AREA)
    return x, y, PLATE_W, h


def test_a_box_touching_a_plate_is_part_of_it_and_one_apart_is_not() -> None:
    plate = (100.0, 100.0, 160.0, 36.0)
    assert mine_negatives.touches((90.0, 95.0, 170.0, 45.0), [plate])  # the plate itself, loosely boxed
    assert mine_negatives.touches((200.0, 110.0, 20.0, 10.0), [plate])  # a piece of it
    assert mine_negatives.touches((80.0, 90.0, 400.0, 300.0), [plate])  # a box around it
    assert not mine_negatives.touches((400.0, 100.0, 160.0, 36.0), [plate])
    assert not mine_negatives.touches((258.0, 134.0, 160.0, 36.0), [plate])  # corners graze: < 5% shared
    assert not mine_negatives.touches((0.0, 0.0, 50.0, 20.0), [])


def test_mining_keeps_the_unannotated_box_and_reads_no_held_out_photo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = tmp_path / "datasets"
    folder = ds / "plates-us-train"
    folder.mkdir(parents=True)
    (ds / "backgrounds").mkdir()
    names = [f"car{i:03d}.jpg" for i in range(100)]
    train = next(n for n in names if not held_out("plates-us-train", n))
    held = next(n for n in names if held_out("plates-us-train", n))
    for name in (train, held):
        frame = np.full((720, 1280, 3), 128, np.uint8)
        x, y, w, h = _paste(frame, "AB123CD", 200, 300)
        _paste(frame, "ZX908KL", 860, 420)  # not annotated: what the miner must find
        assert cv2.imwrite(str(folder / name), frame)
        (folder / name).with_suffix(".txt").write_text(f"{name}\t{x}\t{y}\t{w}\t{h}\tAB123CD\n")
    out = tmp_path / "candidates.tsv"
    assert mine_negatives.main(["--datasets", str(ds), "--out", str(out)]) == 0
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert rows, capsys.readouterr().err
    assert {Path(r[0]).name for r in rows} == {train}  # the held-out photo is never read
    for r in rows:
        bx, by = (int(v) for v in r[4].split(",")[:2])
        assert bx >= 760 and by >= 380, r  # only the second plate, never the annotated one
    assert "ZX908KL" in {r[1] for r in rows}  # the shipped OCR's read, for the check by eye


def test_mining_without_backgrounds_says_where_it_looked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mine_negatives.main(["--datasets", str(tmp_path), "--out", str(tmp_path / "x.tsv")]) == 2
    assert "no backgrounds/" in capsys.readouterr().err


def test_the_shipped_negatives_parse_and_none_is_held_out() -> None:
    negatives = label_crops.load_negatives()
    assert len(negatives) >= 700
    folders = {key.partition("/")[0] for key, _ in negatives}
    assert folders <= {"backgrounds", *mine_negatives.PHOTO_SETS}
    for key, (_, _, w, h) in negatives:
        folder, name = key.split("/")
        assert not held_out(folder, name), key  # validation photos never teach
        assert w > 0 and h > 0


def test_a_malformed_negatives_file_is_refused_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "neg.tsv"
    good = "backgrounds/a.jpg\t10,20,30,8\tABC1\n"
    assert label_crops.load_negatives(_write(bad, "# note\n" + good)) == [("backgrounds/a.jpg", (10, 20, 30, 8))]
    for line in ("backgrounds/a.jpg\t10,20,30\t-\n", "backgrounds/a.jpg\t10,20,0,8\t-\n",
                 "backgrounds/a.jpg\t10,20,-3,8\t-\n", "a.jpg\t10,20,30,8\t-\n",
                 "../etc/a.jpg\t10,20,30,8\t-\n", "backgrounds/a.jpg\t10,20,30,8\n"):
        with pytest.raises(ValueError, match=r"neg\.tsv:1"):
            label_crops.load_negatives(_write(bad, line))
    with pytest.raises(ValueError, match=r"neg\.tsv:2"):
        label_crops.load_negatives(_write(bad, good + good))


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
