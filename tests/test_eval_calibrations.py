"""``scripts/eval_calibrations.py``: the calibrations it exports, the figures it keeps, and what it refuses.
The exports need TensorFlow (not in CI): an export already in ``--out`` is reused, which is how the scoring
half runs here, on the packaged models and a generated held-out set (real detector and OCR)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from test_eval_eu_placed import _datasets

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import eval_calibrations  # noqa: E402
import eval_eu_placed  # noqa: E402


def test_the_detector_calibrates_on_samples_and_photos_the_ocr_on_samples() -> None:
    assert eval_calibrations.calibrations("detector", [1, 2], ["samples", "photos"]) == [
        ("detector-samples1", 1, "samples"), ("detector-samples2", 2, "samples"),
        ("detector-photos1", 1, "photos"), ("detector-photos2", 2, "photos")]
    assert eval_calibrations.calibrations("ocr", [3], ["samples", "photos"]) == [("ocr-samples3", 3, "samples")]


def test_the_ocr_exports_last_count_of_held_out_crops_is_kept() -> None:
    log = ("step 0 val float tflite: ALL 314/346 (90.8%)\nstep 0 val int8 tflite: ALL 313/346 (90.5%) | x 1/2\n"
           "step 9 val int8 tflite: ALL 320/346 (92.5%)\n")
    assert eval_calibrations.crops_right(log) == 320
    assert eval_calibrations.crops_right("no report") is None


def test_means_skip_what_a_calibration_lacks() -> None:
    rows = [{"score": 70, "europe": 50, "crops": None}, {"score": 75, "europe": 53, "crops": None}]
    m = eval_calibrations.means(rows)
    assert m["score"] == 72.5 and m["europe"] == 51.5 and m["crops"] is None


def test_bad_arguments_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = tmp_path / "labels.tsv"
    labels.write_text("", encoding="utf-8")
    base = ["--ckpt", str(tmp_path), "--labels", str(labels), "--out", str(tmp_path / "out")]
    for argv in (["ocr", *base], ["detector", *base, "--seeds", "1,x"], ["detector", *base, "--calib", "video"]):
        with pytest.raises(SystemExit) as exc:
            eval_calibrations.main(argv)
        assert exc.value.code == 2
    assert eval_calibrations.main(["detector", *base]) == 2  # no last.weights.h5 in --ckpt
    assert "last.weights.h5" in capsys.readouterr().err


def test_an_export_in_out_is_scored_with_the_other_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds, labels = _datasets(tmp_path)
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    ckpt.mkdir()
    (ckpt / "last.weights.h5").write_bytes(b"")  # never read: the export is already there
    out.mkdir()
    shutil.copy(REPO / "edge_agent/models/plate_detector.tflite", out / "detector-samples1.tflite")
    argv = ["detector", "--ckpt", str(ckpt), "--labels", str(labels), "--out", str(out), "--datasets", str(ds),
            "--seeds", "1", "--calib", "samples"]
    assert eval_calibrations.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].startswith("calibration") and "mean" in printed
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    (row,) = results["calibrations"]
    # The generated held-out frame's own plate (GH456JK, a Romanian video: European) is read right.
    assert row["calibration"] == "detector-samples1" and row["europe"] == 1 and row["americas"] is None
    # Placed-EU is eval_eu_placed's own figure for the export beside the packaged OCR.
    capsys.readouterr()
    assert eval_eu_placed.main(["--datasets", str(ds), "--labels", str(labels), "--detector",
                                str(out / "detector-samples1.tflite"), "--json"]) == 0
    placed = json.loads(capsys.readouterr().out)["total"]["score"]
    assert row["det50"] == 1.0 and row["placed"] == placed and row["crops"] is None
    assert results["mean"]["europe"] == 1.0
