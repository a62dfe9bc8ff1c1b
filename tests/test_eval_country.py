"""scripts/eval_country.py: the real Italian and French plates it scores the country cue on."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import eval_country  # noqa: E402


def test_the_labelled_crops_are_italian_and_french_plates_of_eu_plate_crops() -> None:
    crops = eval_country.load_crops(SCRIPTS / "itfr_crops.tsv")
    assert Counter((country, rows) for _, country, rows in crops) == {
        ("IT", 1): 46, ("FR", 1): 43, ("IT", 2): 3, ("FR", 2): 9, ("AL", 1): 2}
    assert all(rel.split("/")[0] in ("eu-plate-crops", "eu-plate-crops-2") for rel, _, _ in crops)
    assert len({rel for rel, _, _ in crops}) == len(crops)


def test_a_bad_line_is_refused_with_its_place(tmp_path: Path) -> None:
    bad = tmp_path / "crops.tsv"
    bad.write_text("# header\neu-plate-crops/eu-1.png\tIT\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="bad line"):
        eval_country.load_crops(bad)
