"""Country formats: recognition, correction among the OCR's own second choices, the right-band cue."""

from __future__ import annotations

import pytest

from edge_agent.config import Config, ConfigError, validate
from edge_agent.core.formats import FORMATS, PlateFormats, edit_distance_at_most_1


@pytest.mark.parametrize(
    ("text", "country"),
    [("AB123CD", "IT"), ("AB12345", "IT"), ("MXY1234", "DE"), ("AB123CD", "FR"), ("1234BCD", "ES"), ("ZH123456", "CH"),
     ("W12345A", "AT"), ("BA123XY", "SK"), ("1A23456", "CZ"), ("WX12345", "PL"), ("AB12CDE", "GB"), ("KR1234A", "PL"),
     ("ZG1234AB", "HR"), ("Q1", "any")],
)
def test_each_format_accepts_its_plates(text: str, country: str) -> None:
    assert PlateFormats([country]).country(text) == country


def test_old_french_plates_end_with_any_department() -> None:
    # The FNI layout's department: two digits, Corsica's 2A and 2B, or overseas 971-976 (978 ZBF 971).
    f = PlateFormats(["FR"])
    for text in ("1234AB75", "682ZBG971", "123AB976", "45ABC2A", "45ABC2B"):
        assert f.country(text) == "FR", text
    for text in ("682ZBG977", "45ABC2C", "45ABC7"):
        assert f.country(text) is None, text


def test_first_enabled_format_names_the_country() -> None:
    assert PlateFormats().country("AB123CD") == "IT", "IT first by default"
    assert PlateFormats(["SK", "FR"]).country("BA123XY") == "SK"
    assert PlateFormats(["FR", "SK"]).country("BA123XY") == "FR"
    assert PlateFormats(["IT"]).country("AB12CDE") is None


def test_every_preset_exists() -> None:
    for code in ("IT", "DE", "FR", "ES", "CH", "AT", "SK", "CZ", "PL", "RO", "GB", "any"):
        assert code in FORMATS


def test_romanian_plates_are_kept_as_read() -> None:
    # Without the RO layout a voted Bucharest plate B68SPK fitted nothing, and one look-alike swap made it
    # the Austrian-shaped B685PK: a correct read published wrong.
    f = PlateFormats()
    for text in ("B68SPK", "B123ABC", "SB90TZI"):
        c = f.check(text, [0.9] * len(text))
        assert (c.text, c.country, c.corrected_from) == (text, "RO", None)
    assert f.countries("SB90TZI") == ["RO", "GB"], "county plates share the British layout"


def test_without_the_models_alternatives_nothing_is_re_chosen() -> None:
    # A look-alike table (S/5, B/8, I/1...) once swapped one character of a text that fitted nothing: on
    # the held-out photos it turned right reads of layouts that are not enabled into wrong ones that fit
    # (the Turkish 80HF583 became 80HFS83, an old French layout; the US NYZ0897 became NY20897) and on
    # the labelled EU crops it fixed none of the 96 reads it changed.
    f = PlateFormats()
    for text in ("80HF583", "NYZ0897", "1TXC035", "AB12SCD"):
        c = f.check(text, [0.6] * len(text))
        assert (c.text, c.corrected_from) == (text, None)
    c = PlateFormats(["IT"]).check("AB12SCD")
    assert not c.valid and c.text == "AB12SCD"


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


def test_the_models_own_alternatives_may_fix_two_glyphs() -> None:
    # The OCR offers, per character, the other glyphs it gave at least 1%: up to two are re-chosen.
    alts = [(("B", 0.3),), (), (), (), (), (), (("B", 0.2), ("E", 0.05))]
    c = PlateFormats(["IT"]).check("8B123C8", [0.6, 0.99, 0.99, 0.99, 0.99, 0.99, 0.7], alts)
    assert (c.text, c.country, c.corrected_from) == ("BB123CB", "IT", "8B123C8")


def test_a_published_text_may_only_read_o_and_0_as_its_layout_needs() -> None:
    # Many plates draw O and 0 with one glyph: a voted RK340A0 is the Slovak-shaped RK340AO (a pole
    # published it as "read" before the look-alike table went, and must still). Nothing else changes.
    f = PlateFormats(["IT", "SK"])
    c = f.fit("RK340A0")
    assert (c.text, c.country, c.corrected_from) == ("RK340AO", "SK", "RK340A0")
    assert f.fit("AB1O3CD").text == "AB103CD"
    assert f.fit("AB123CD") == f.check("AB123CD")
    for text in ("80HF583", "LM298A1", "AB12SCD"):
        c = f.fit(text)
        assert (c.text, c.country, c.corrected_from) == (text, None, None)
    # The right band: Italian or French first, as for check.
    assert PlateFormats(["SK", "FR"]).fit("AB123CD", right_band=True).country == "FR"


def test_a_glyph_the_model_did_not_offer_is_never_chosen() -> None:
    # With the model's alternatives given, the static confusable table is not used: S -> 5 needs the model.
    c = PlateFormats(["IT"]).check("AB12SCD", [0.9] * 7, [()] * 7)
    assert not c.valid and c.text == "AB12SCD"
    c = PlateFormats(["IT"]).check("AB12SCD", [0.9] * 7, [(), (), (), (), (("5", 0.04),), (), ()])
    assert c.text == "AB125CD"


def test_the_most_probable_fix_wins() -> None:
    alts = [(), (), (), (), (), (("D", 0.01), ("B", 0.3)), ()]  # 8 read where a letter must be
    c = PlateFormats(["FR"]).check("AB1238C", [0.9, 0.9, 0.9, 0.9, 0.9, 0.6, 0.9], alts)
    assert c.text == "AB123BC"


def test_french_series_skip_i_o_and_u() -> None:
    # SIV plates (AA-123-AA) leave out I, O and U; Q is theirs (test below).
    f = PlateFormats(["FR"])
    assert f.check("AB123CD").valid and f.check("AQ123QB").valid
    assert not any(f.check(t).valid for t in ("AB123CO", "AI123CD", "AB123UD"))


def test_q_is_kept_apart_from_o_and_0() -> None:
    # French and German plates use Q: a read that fits with Q stays Q, and it is never swapped for O or 0
    # without the model's say-so.
    assert PlateFormats().check("AQ123BQ").text == "AQ123BQ"
    assert PlateFormats().check("AQ123BQ").country == "FR"  # Italian series skip Q
    assert not PlateFormats(["IT"]).check("AB12QCD").valid


def test_an_unsure_edge_character_may_be_dropped() -> None:
    # The plate's border or blue band read as a first character.
    confs = [0.3] + [0.95] * 7
    c = PlateFormats(["IT"]).check("IAB123CD", confs)
    assert (c.text, c.corrected_from) == ("AB123CD", "IAB123CD")
    assert not PlateFormats(["IT"]).check("IAB123CD", [0.9] * 8).valid, "a sure character stays"


def test_country_counts_the_layouts_that_fit_and_the_right_band_narrows_them() -> None:
    f = PlateFormats(["IT", "FR", "SK", "CZ"])
    assert f.country_of(f.check("AB123CD")) == ("IT", pytest.approx(1 / 3))
    assert f.country_of(f.check("1AB2345")) == ("CZ", 1.0)
    assert f.country_of(f.check("XXXXXXX")) == (None, None)
    # A blue band at the right end: Italian or French; none: the Slovak plate it also fits.
    assert f.country_of(f.check("AB123CD"), right_band=True) == ("IT", 0.5)
    assert f.country_of(f.check("BA123XY"), right_band=False) == ("SK", 1.0)
    # The band cannot overrule the layout: a Czech layout stays Czech whatever the colour says.
    assert f.country_of(f.check("1AB2345"), right_band=True) == ("CZ", 1.0)
    assert PlateFormats(["any"]).country_of(PlateFormats(["any"]).check("Q1")) == ("any", None)


def test_a_right_band_checks_the_read_as_italian_or_french_first() -> None:
    # A French Q read as O: AB123CO fits the Austrian and Slovak layouts as it stands, so without the
    # band cue the O stays; Italian and French series never use O, so with the band seen the model's
    # own second choice for that glyph is taken.
    f = PlateFormats()
    confs = [0.95] * 6 + [0.6]
    alts = [()] * 6 + [(("Q", 0.3), ("D", 0.02))]
    assert f.check("AB123CO", confs, alts).text == "AB123CO"
    assert f.check("AB123CO", confs, alts, right_band=False).text == "AB123CO"
    c = f.check("AB123CO", confs, alts, right_band=True)
    assert (c.text, c.country, c.corrected_from) == ("AB123CQ", "FR", "AB123CO")
    assert f.country_of(c, right_band=True) == ("FR", 1.0)
    # Nothing the model offered makes it Italian or French: the read is checked as before.
    c = f.check("AB123CO", confs, [()] * 7, right_band=True)
    assert (c.text, c.country, c.corrected_from) == ("AB123CO", "AT", None)
    # A read that already fits IT/FR is kept; with no band country enabled the cue changes nothing.
    assert f.check("AB123CD", confs, alts, right_band=True).text == "AB123CD"
    assert PlateFormats(["AT", "SK"]).check("AB123CO", confs, alts, right_band=True).text == "AB123CO"


def test_dashes_between_the_groups_tell_french_from_italian() -> None:
    # Italian and French plates share the band and the layout; French ones print AB-123-CD.
    f = PlateFormats()
    check = f.check("AB123CD", right_band=True, dashes=True)
    assert (check.text, check.country) == ("AB123CD", "FR")
    assert f.country_of(check, right_band=True, dashes=True) == ("FR", 1.0)
    plain = f.check("AB123CD", right_band=True, dashes=False)
    assert plain.country == "IT" and f.country_of(plain, right_band=True, dashes=False) == ("IT", 1.0)
    assert f.country_of(plain, right_band=True) == ("IT", 0.5), "no say: Italian or French"
    assert f.fit("AB123CD", right_band=True, dashes=True).country == "FR"
    # The dashes only narrow the band countries: without a band seen they say nothing, and a layout only
    # one of them uses stays that country's (the Italian motorcycle AB12345; a French Q).
    assert f.country_of(f.check("AB123CD"), dashes=True) == ("IT", pytest.approx(1 / 6))
    assert f.country_of(f.check("AB12345", right_band=True, dashes=True), right_band=True, dashes=True) == ("IT", 1.0)
    assert f.country_of(f.check("AB123CQ", right_band=True, dashes=False), right_band=True, dashes=False) == ("FR", 1.0)
