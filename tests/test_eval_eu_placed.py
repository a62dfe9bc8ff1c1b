"""The whole reader on held-out European plates placed into held-out frames (``scripts/eval_eu_placed.py``):
real detector and OCR, generated plates and frames; only held-out crops are used, and the frame's own plate
is neither the placed one nor a false plate."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.pipeline.alpr.band import band_sides
from edge_agent.sources.plate_render import render_plate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import eval_eu_placed  # noqa: E402
from splits import held_out  # noqa: E402


def _datasets(tmp_path: Path) -> tuple[Path, Path]:
    ds = tmp_path / "datasets"
    crops, scenes = ds / "eu-plate-crops", ds / eval_eu_placed.SCENE_FOLDER
    crops.mkdir(parents=True)
    scenes.mkdir()
    names = [f"eu-{i}.png" for i in range(60)]
    held = next(n for n in names if held_out("eu-plate-crops", n))
    train = next(n for n in names if not held_out("eu-plate-crops", n))
    assert cv2.imwrite(str(crops / held), render_plate("AB123CD"))
    assert cv2.imwrite(str(crops / train), render_plate("ZX908KL"))
    frame = np.full((720, 1280, 3), 110, np.uint8)
    own = render_plate("GH456JK")
    frame[100 : 100 + own.shape[0] // 2, 900 : 900 + own.shape[1] // 2] = cv2.resize(
        own, (own.shape[1] // 2, own.shape[0] // 2), interpolation=cv2.INTER_AREA)
    name = "ro_dayride_type1_002_t10.jpg"
    assert cv2.imwrite(str(scenes / name), frame)
    (scenes / name).with_suffix(".txt").write_text(
        f"{name}\t900\t100\t{own.shape[1] // 2}\t{own.shape[0] // 2}\tGH456JK\n")
    labels = tmp_path / "labels.tsv"
    labels.write_text(f"{crops / held}\tAB123CD\t0.99\t1\t\n{crops / train}\tZX908KL\t0.99\t1\t\n"
                      f"{scenes / name}\tGH456JK\t0.99\t1\t900,100,10,5\n")
    return ds, labels


def total_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("TOTAL"))


def test_held_out_crops_are_placed_found_and_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds, labels = _datasets(tmp_path)
    crops = eval_eu_placed.held_out_crops(labels, ds)
    assert [(s, p.name, t) for s, p, t, _ in crops] == [("eu-plate-crops", crops[0][1].name, "AB123CD")]
    assert eval_eu_placed.main(["--datasets", str(ds), "--labels", str(labels)]) == 0
    out = capsys.readouterr().out
    total = total_line(out).split()
    plates, right, wrong, false_plates = int(total[1]), int(total[3]), int(total[4]), int(total[5])
    assert plates == len(eval_eu_placed.WIDTHS)  # one crop, every width
    # Every placed plate is found and at least the two wider ones are read right (the 80 px one is the
    # model's to miss); the frame's own plate is not a false plate.
    assert " 100.0% " in total_line(out) and right + wrong <= plates and right >= 2, out
    assert false_plates == 0, out


def test_the_placement_is_the_same_for_every_model(tmp_path: Path) -> None:
    scene = np.full((720, 1280, 3), 90, np.uint8)
    crop = render_plate("AB123CD")
    a = eval_eu_placed.place(scene, [], crop, 120, np.random.default_rng(1))
    b = eval_eu_placed.place(scene, [], crop, 120, np.random.default_rng(1))
    assert a is not None and b is not None and a[1] == b[1] and np.array_equal(a[0], b[0])
    assert a[1][2] == 120 and a[1][1] >= 0.4 * 720  # the given width, in the road's half of the frame
    assert eval_eu_placed.place(scene, [], crop, 1100, np.random.default_rng(1)) is None  # too big to place


def test_missing_inputs_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_eu_placed.main(["--datasets", str(tmp_path), "--labels", str(tmp_path / "none.tsv")]) == 2
    assert "cannot read --labels" in capsys.readouterr().err
    (tmp_path / "empty.tsv").write_text("")
    assert eval_eu_placed.main(["--datasets", str(tmp_path), "--labels", str(tmp_path / "empty.tsv")]) == 2
    assert "no held-out EU crops" in capsys.readouterr().err


def test_plates_given_as_images_are_placed_and_read(tmp_path: Path) -> None:
    # --rendered passes generated plates as images beside the crop files.
    from edge_agent.pipeline.alpr.reader import PlateReader

    ds, _ = _datasets(tmp_path)
    frames = eval_eu_placed.scenes(ds)
    plates: list[tuple[str, Path | np.ndarray, str, int]] = [("rendered-1row", render_plate("KL345MN"), "KL345MN", 1)]
    tallies = eval_eu_placed.evaluate(PlateReader(), plates, frames)
    assert sorted(tallies) == [("rendered-1row", w) for w in eval_eu_placed.WIDTHS]
    assert sum(t.right for t in tallies.values()) >= 2 and sum(t.wrong for t in tallies.values()) == 0


def test_rendered_plates_need_the_training_requirements(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds, labels = _datasets(tmp_path)
    argv = ["--datasets", str(ds), "--labels", str(labels), "--rendered", "1"]
    try:
        import PIL  # noqa: F401
    except ImportError:
        assert eval_eu_placed.main(argv) == 2
        assert "--rendered needs the training requirements" in capsys.readouterr().err
    else:
        code = eval_eu_placed.main(argv)
        out, err = capsys.readouterr()
        if code == 2:  # Pillow without the plate font
            assert "plate font" in err
        else:
            assert code == 0 and any(line.startswith("rendered-2row") for line in out.splitlines())
    with pytest.raises(SystemExit):
        eval_eu_placed.main(["--datasets", str(ds), "--labels", str(labels), "--rendered", "-1"])
    with pytest.raises(SystemExit):
        eval_eu_placed.main(["--datasets", str(ds), "--labels", str(labels), "--rendered-banded", "-1"])


def test_rendered_banded_plates_are_italian_and_french_with_both_bands(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    try:
        plates = eval_eu_placed.rendered_banded(4)
    except OSError:
        pytest.skip("no plate font (EDGE_AGENT_PLATE_FONT)")
    assert [(name, rows) for name, _, _, rows in plates] == [("rendered-banded", 1)] * 4
    assert all(len(text) == 7 and text[:2].isalpha() and text[2:5].isdigit() for _, _, text, _ in plates)
    for _, img, _, _ in plates:
        assert band_sides(img) == (True, True), "the blue band at both ends that makes them Italian or French"
