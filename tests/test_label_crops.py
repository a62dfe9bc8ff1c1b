"""Teacher labelling: the plate's blue end bands are painted over before the teacher reads.

The teacher read the EU band's country letters as characters (``EDW00001`` for a Polish
``DW 00001``); 39 of the first labels began with such a letter and taught the OCR to do the same.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from edge_agent.pipeline.alpr.band import band_sides
from edge_agent.sources.plate_render import render_plate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import label_crops


def _label_crops() -> ModuleType:
    return label_crops


def _crop(plate: np.ndarray) -> np.ndarray:
    pad = cv2.copyMakeBorder(plate, 10, 10, 14, 14, cv2.BORDER_CONSTANT, value=(60, 60, 60))
    return np.asarray(cv2.resize(pad, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))


def test_both_bands_of_an_italian_plate_are_painted_over_and_the_characters_kept() -> None:
    lc = _label_crops()
    crop = _crop(render_plate("AB123CD"))
    assert band_sides(crop) == (True, True)
    out = lc.blank_blue_ends(crop)
    assert out is not crop and crop.shape == out.shape
    hsv = cv2.cvtColor(out, cv2.COLOR_BGR2HSV)
    assert float(hsv[:, :, 1].mean()) < 40, "no band-blue left"
    w = crop.shape[1]
    middle = slice(int(w * 0.2), int(w * 0.8))
    assert np.array_equal(out[:, middle], crop[:, middle]), "the characters are untouched"


def test_plates_without_bands_blue_plates_and_grey_crops_are_left_alone() -> None:
    lc = _label_crops()
    plain = np.full((40, 180, 3), 235, np.uint8)
    cv2.putText(plain, "BA123XY", (8, 30), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (20, 20, 20), 2)
    assert lc.blank_blue_ends(plain) is plain
    blue = np.full((40, 180, 3), (160, 60, 0), np.uint8)
    assert lc.blank_blue_ends(blue) is blue
    grey = cv2.cvtColor(_crop(render_plate("AB123CD")), cv2.COLOR_BGR2GRAY)
    assert lc.blank_blue_ends(grey) is grey


def test_the_shipped_fixes_parse_and_name_each_crop_once() -> None:
    fixes = label_crops.load_fixes()
    assert len(fixes) >= 60
    for key, (teacher, text) in fixes.items():
        folder, _, name = key.partition("/")
        assert folder and name and "/" not in name, key
        assert teacher and teacher != text, key
        assert text is None or (text.isalnum() and text.isupper()), key


def test_a_fix_applies_only_to_the_teacher_text_it_was_checked_against(tmp_path: Path) -> None:
    fixes_file = tmp_path / "fixes.tsv"
    fixes_file.write_text("# comment\neu-plate-crops/eu-1.png\tKR461E1\tKR461EI\n"
                          "eu-plate-crops/eu-2.png\tAA148954\t-\n", encoding="utf-8")
    fixes = label_crops.load_fixes(fixes_file)
    crops = Path("/data/eu-plate-crops")
    assert label_crops.fixed_label(fixes, crops / "eu-1.png", "KR461E1") == "KR461EI"
    # Another teacher read of the same crop was never checked: kept as read.
    assert label_crops.fixed_label(fixes, crops / "eu-1.png", "KR461EL") == "KR461EL"
    assert label_crops.fixed_label(fixes, crops / "eu-2.png", "AA148954") is None
    assert label_crops.fixed_label(fixes, crops / "eu-3.png", "AB123CD") == "AB123CD"
    lines = [f"{crops}/eu-1.png\tKR461E1\t0.95\t1\t", f"{crops}/eu-2.png\tAA148954\t0.93\t1\t",
             f"{crops}/eu-3.png\tAB123CD\t0.99\t1\t"]
    out, changed = label_crops.apply_fixes(lines, fixes)
    assert changed == 2
    assert [line.split("\t")[1] for line in out] == ["KR461EI", "AB123CD"]


def test_a_malformed_fixes_file_is_refused_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "fixes.tsv"
    bad.write_text("eu-plate-crops/eu-1.png\tKR461E1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"fixes\.tsv:1"):
        label_crops.load_fixes(bad)


def test_the_shipped_hand_labels_parse_and_name_crops_the_teacher_left() -> None:
    hand = label_crops.load_hand_labels()
    assert len(hand) >= 400
    crops = {key for key in hand if "@" not in key}
    assert {key.partition("/")[0] for key in crops} <= {"eu-plate-crops", "eu-plate-crops-2"}
    photo_folders = {"plates-ro-boxes", "plates-tr-boxes", "plates-pl-boxes"}
    assert {key.partition("/")[0] for key in set(hand) - crops} <= photo_folders
    fixes = label_crops.load_fixes()
    assert not set(hand) & set(fixes), "a crop is either fixed or read by hand, not both"


def test_fix_only_adds_hand_read_crops_once_and_refuses_bad_lines(tmp_path: Path) -> None:
    datasets = tmp_path / "datasets"
    hand_file = tmp_path / "hand.tsv"
    hand_file.write_text("# comment\neu-plate-crops/eu-5.png\tIEB7989\t1\neu-plate-crops-2/x.jpg\tAH59817\t2\n",
                         encoding="utf-8")
    hand = label_crops.load_hand_labels(hand_file)
    have = {"eu-plate-crops/eu-5.png"}  # already labelled (by the teacher): left as it is
    lines = label_crops.hand_label_lines(datasets, hand, have)
    assert lines == [f"{(datasets / 'eu-plate-crops-2/x.jpg').resolve()}\tAH59817\t1.0000\t2\t"]
    for bad in ("eu-plate-crops/eu-1.png\tab123\t1\n", "eu-plate-crops/eu-1.png\tAB123CD\t3\n",
                "eu-plate-crops/eu-1.png\tAB123CD\n", "plates-ro-boxes/a.jpg\tB75MCY\t1\t1,2,3\n",
                "plates-ro-boxes/a.jpg\tB75MCY\t1\t1,2,0,4\n", "plates-ro-boxes/a.jpg\tB75MCY\t1\t1,2,-3,4\n"):
        hand_file.write_text(bad, encoding="utf-8")
        with pytest.raises(ValueError, match=r"hand\.tsv:1"):
            label_crops.load_hand_labels(hand_file)


def test_a_hand_read_photo_plate_is_keyed_by_its_box_and_added_only_where_the_teacher_gave_none(tmp_path: Path) -> None:
    datasets = tmp_path / "datasets"
    hand_file = tmp_path / "hand.tsv"
    hand_file.write_text("plates-ro-boxes/a.jpg\tB75MCY\t1\t10,20,140,38\n"
                         "plates-ro-boxes/a.jpg\tB58BBP\t1\t500,20,140,38\n", encoding="utf-8")
    hand = label_crops.load_hand_labels(hand_file)
    assert set(hand) == {"plates-ro-boxes/a.jpg@10,20,140,38", "plates-ro-boxes/a.jpg@500,20,140,38"}
    # The teacher labelled the first plate of the photo: the person's read of the other one is added, with its box.
    teacher_line = f"{datasets / 'plates-ro-boxes/a.jpg'}\tB75MCY\t0.9500\t1\t10,20,140,38"
    have = {label_crops._label_key(teacher_line)}
    lines = label_crops.hand_label_lines(datasets, hand, have)
    assert lines == [f"{(datasets / 'plates-ro-boxes/a.jpg').resolve()}\tB58BBP\t1.0000\t1\t500,20,140,38"]


def test_the_hand_read_photo_plates_are_annotated_held_out_boxes() -> None:
    """They exist to judge candidates on plates no trainer sees: each must be a box of its photo's
    annotation, and held out by scripts/splits.py."""
    import splits

    env = os.environ.get("EDGE_AGENT_DATASETS")
    datasets = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "datasets"
    if not (datasets / "plates-ro-boxes").is_dir():
        pytest.skip("datasets not beside the repository")
    boxed = [key for key in label_crops.load_hand_labels() if "@" in key]
    assert len(boxed) >= 50
    for key in boxed:
        image, _, box = key.partition("@")
        folder, _, name = image.partition("/")
        assert splits.held_out(folder, name), key
        ann = (datasets / image).with_suffix(".txt").read_text(encoding="utf-8").splitlines()
        boxes = {",".join(str(int(float(v))) for v in line.split("\t")[1:5]) for line in ann}
        assert box in boxes, key


def test_label_sheets_show_every_label_numbered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import label_sheets

    crops = []
    for i, text in enumerate(("AB123CD", "KR461EI", "AH59817")):
        path = tmp_path / f"c{i}.png"
        cv2.imwrite(str(path), render_plate(text))
        crops.append(f"{path}\t{text}\t0.95\t1\t")
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), np.full((200, 300, 3), 128, np.uint8))
    crops.append(f"{photo}\tZZ999ZZ\t0.95\t1\t20,30,120,30")
    crops.append(f"{tmp_path / 'gone.png'}\tXX\t0.9\t1\t")
    labels = tmp_path / "labels.tsv"
    labels.write_text("\n".join(crops) + "\n", encoding="utf-8")
    out = tmp_path / "sheets"
    assert label_sheets.main([str(labels), "--out", str(out), "--per-sheet", "2"]) == 0
    sheets = sorted(out.glob("sheet-*.png"))
    assert len(sheets) == 2  # two crops each; the last sheet would hold only the unreadable one
    first = cv2.imread(str(sheets[0]))
    assert first.shape == (label_sheets.TILE_H, 2 * (label_sheets.TILE_W + label_sheets.TEXT_W), 3)
    said = capsys.readouterr().out
    assert "5 labels on 2 sheets" in said and "1 unreadable" in said
