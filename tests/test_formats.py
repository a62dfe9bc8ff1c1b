"""Country formats: recognition, one-character confusable correction, low-confidence marking."""

from __future__ import annotations

import pytest

from edge_agent.config import Config, ConfigError, validate
from edge_agent.formats import FORMATS, PlateFormats, edit_distance_at_most_1


@pytest.mark.parametrize(
    ("text", "country"),
    [("AB123CD", "IT"), ("MXY1234", "DE"), ("AB123CD", "FR"), ("1234BCD", "ES"), ("ZH123456", "CH"),
     ("W12345A", "AT"), ("BA123XY", "SK"), ("1A23456", "CZ"), ("WX12345", "PL"), ("AB12CDE", "GB"), ("KR1234A", "PL"),
     ("ZG1234AB", "HR"), ("Q1", "any")],
)
def test_each_format_accepts_its_plates(text: str, country: str) -> None:
    assert PlateFormats([country]).country(text) == country


def test_first_enabled_format_names_the_country() -> None:
    assert PlateFormats().country("AB123CD") == "IT", "IT first by default"
    assert PlateFormats(["SK", "FR"]).country("BA123XY") == "SK"
    assert PlateFormats(["FR", "SK"]).country("BA123XY") == "FR"
    assert PlateFormats(["IT"]).country("AB12CDE") is None


def test_every_preset_exists() -> None:
    for code in ("IT", "DE", "FR", "ES", "CH", "AT", "SK", "CZ", "PL", "GB", "any"):
        assert code in FORMATS


def test_one_confusable_is_corrected() -> None:
    f = PlateFormats(["IT"])
    c = f.check("AB12SCD")  # S where a digit must be
    assert (c.text, c.country, c.corrected_from) == ("AB125CD", "IT", "AB12SCD")
    c = f.check("A8123CD")  # 8 where a letter must be
    assert (c.text, c.country) == ("AB123CD", "IT")
    c = f.check("AB1Z3CD")
    assert c.text == "AB123CD"


def test_two_wrong_characters_are_not_corrected() -> None:
    assert not PlateFormats(["IT"]).check("0B123C0").valid


def test_unfixable_read_is_marked_invalid() -> None:
    c = PlateFormats(["IT"]).check("XXXXXXX")
    assert not c.valid and c.country is None and c.text == "XXXXXXX" and c.corrected_from is None


def test_any_accepts_all() -> None:
    assert PlateFormats(["any"]).check("Q1").valid


def test_config_validates_formats() -> None:
    assert Config().formats.enabled[0] == "IT"
    with pytest.raises(ConfigError, match=r"formats\.enabled"):
        validate({"formats": {"enabled": ["IT", "XX"]}})


def test_edit_distance() -> None:
    assert edit_distance_at_most_1("AB123CD", "AB123CD")
    assert edit_distance_at_most_1("AB123CD", "AB128CD")
    assert edit_distance_at_most_1("AB123CD", "AB13CD"), "one deletion"
    assert edit_distance_at_most_1("AB123CD", "AB3CD") is False
    assert edit_distance_at_most_1("AB123CD", "AB123C")
    assert edit_distance_at_most_1("AB123CD", "XAB123CD")
    assert not edit_distance_at_most_1("AB123CD", "BA123CD")
