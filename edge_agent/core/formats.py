"""Country plate formats: does a read look like a real plate, and can the OCR's own second choices fix it?

Texts are upper case without spaces or dashes, as the reader produces them. The
patterns describe the characters only (the separators and the EU band are not
read), so some countries share a shape (IT, FR and SK are all ``AA123AA``); the
first enabled format that fits names the country.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

_L = "A-Z"
# Letters each country leaves out of its series (confusable with digits or each other).
_IT_L = "A-HJ-NPR-TV-Z"  # no I O Q U
_FR_L = "A-HJ-NP-TV-Z"  # SIV series (AA-123-AA): no I O U; Q is used
_ES_L = "BCDFGHJKLMNPRSTVWXYZ"
_CH_CANTONS = "AG|AI|AR|BE|BL|BS|FR|GE|GL|GR|JU|LU|NE|NW|OW|SG|SH|SO|SZ|TG|TI|UR|VD|VS|ZG|ZH"

FORMATS: dict[str, tuple[str, ...]] = {
    # Cars AA123AA; motorcycles AA12345 (two rows: AA over 12345, read top row first).
    "IT": (rf"[{_IT_L}]{{2}}\d{{3}}[{_IT_L}]{{2}}", rf"[{_IT_L}]{{2}}\d{{5}}"),
    "DE": (rf"[{_L}]{{1,3}}[{_L}]{{1,2}}[1-9]\d{{0,3}}[EH]?",),
    # SIV AA123AA; the older FNI 1234ABC75, whose department is also Corsica's 2A / 2B or overseas 971-976.
    "FR": (rf"[{_FR_L}]{{2}}\d{{3}}[{_FR_L}]{{2}}", rf"\d{{1,4}}[{_L}]{{1,3}}(?:\d{{2}}|2[AB]|97[1-6])"),
    "ES": (rf"\d{{4}}[{_ES_L}]{{3}}", rf"[{_L}]{{1,2}}\d{{4}}[{_L}]{{1,2}}"),
    "CH": (rf"(?:{_CH_CANTONS})\d{{1,6}}",),
    "AT": (rf"[{_L}]{{1,2}}\d{{1,5}}[{_L}]{{1,2}}", rf"[{_L}]{{1,2}}[{_L}]{{1,3}}\d{{1,3}}"),
    "SK": (rf"[{_L}]{{2}}\d{{3}}[{_L}]{{2}}", rf"[{_L}]{{2}}[{_L}]{{3}}\d{{2}}"),
    "CZ": (rf"\d[{_L}][{_L}0-9]\d{{4}}",),
    # Two-letter districts take five characters, three-letter ones four, in a fixed set of shapes.
    "PL": (rf"[{_L}]{{2}}(?:\d{{5}}|\d{{4}}[{_L}]|\d{{3}}[{_L}]{{2}}|[1-9][{_L}]\d{{3}}|[1-9][{_L}]{{2}}\d{{2}})",
           rf"[{_L}]{{3}}(?:[{_L}]\d{{3}}|\d{{2}}[{_L}]{{2}}|[1-9][{_L}]\d{{2}}|\d{{2}}[{_L}][1-9]|[1-9][{_L}]{{2}}[1-9]"
           rf"|[{_L}]{{2}}\d{{2}}|\d{{5}}|\d{{4}}[{_L}]|\d{{3}}[{_L}]{{2}}|[{_L}]\d{{2}}[{_L}]|[{_L}][1-9][{_L}]{{2}})"),
    # Romania: county LL DD LLL, Bucharest B DD(D) LLL (a large foreign fleet in Italy).
    "RO": (rf"[{_L}]{{2}}\d{{2}}[{_L}]{{3}}", rf"B\d{{2,3}}[{_L}]{{3}}"),
    "GB": (rf"[{_L}]{{2}}\d{{2}}[{_L}]{{3}}",),
    "HR": (rf"[{_L}]{{2}}\d{{3,4}}[{_L}]{{1,2}}",),
    "any": (r"[A-Z0-9]{2,10}",),
}

# Default order: Italy first (the deployment's country), then the rest of the EU presets. "any" is
# not in the default: with it enabled every read fits and nothing is ever corrected.
DEFAULT_ORDER: tuple[str, ...] = ("IT", "DE", "FR", "ES", "AT", "SK", "CZ", "PL", "HR", "CH", "RO", "GB")

# Countries whose plates carry a blue band at the right end too (year/province; department/region).
RIGHT_BAND_COUNTRIES = frozenset({"IT", "FR"})
# Of those, the ones that print a dash between the groups (AB-123-CD; edge_agent.pipeline.alpr.separators).
DASHED_BAND_COUNTRIES = frozenset({"FR"})

# Chosen before any evaluation: below this an edge character is more likely the plate's border or band
# than a glyph (the OCR's per-character confidences of real glyphs sit mostly above 0.9).
EDGE_DROP_CONFIDENCE = 0.5

@dataclass(frozen=True, slots=True)
class FormatCheck:
    text: str  # the (possibly corrected) text
    country: str | None  # the first enabled format that fits, None when nothing fits
    corrected_from: str | None = None  # the original read, when one character was changed

    @property
    def valid(self) -> bool:
        return self.country is not None


class PlateFormats:
    """The enabled formats, compiled once, in priority order."""

    def __init__(self, enabled: Sequence[str] = DEFAULT_ORDER) -> None:
        unknown = [c for c in enabled if c not in FORMATS]
        if unknown:
            raise ValueError(f"unknown plate format(s) {unknown}; known: {sorted(FORMATS)}")
        self._compiled = [(c, re.compile("(?:" + "|".join(FORMATS[c]) + r")\Z")) for c in enabled]
        self._banded = [(c, rx) for c, rx in self._compiled if c in RIGHT_BAND_COUNTRIES]
        self._dashed = [(c, rx) for c, rx in self._banded if c in DASHED_BAND_COUNTRIES]
        self._rank = {code: i for i, code in enumerate(enabled)}

    def countries(self, text: str) -> list[str]:
        """Every enabled country whose layout the text fits, in priority order ("any" is not a country)."""
        return [code for code, rx in self._compiled if code != "any" and rx.match(text)]

    def country(self, text: str) -> str | None:
        return _first_fit(self._compiled, text)

    def check(self, text: str, char_confidences: Sequence[float] = (),
              alternatives: Sequence[Sequence[tuple[str, float]]] = (), right_band: bool | None = None,
              dashes: bool | None = None) -> FormatCheck:
        """Fits as read, or fixed by re-choosing one or two characters, or marked as fitting nothing.

        With ``alternatives`` (per character, the other glyphs the OCR model gave at least 1% at that
        step, ``edge_agent.pipeline.alpr.ocr``), up to two characters may be re-chosen among them, and the most
        probable text that fits wins: the model itself must have seen the other reading. Without them,
        no character is re-chosen: a glyph the model did not offer is never published. (A table of
        look-alikes, O/0, I/1, B/8, S/5, Z/2, G/6, once swapped one character of a text that fitted
        nothing: it changed 96 of the 1,087 labelled EU crops' reads and fixed none of them, and took the
        held-out photos' exact reads from 81.0% to 72.4%, since a plate of a layout that is not enabled
        fits nothing when read right.) Ties go to the higher-priority format. An edge character the model
        was unsure of (below ``EDGE_DROP_CONFIDENCE``) may also be dropped when that alone makes the text
        fit: the plate's border or band read as a character.

        ``right_band`` True (a blue band seen at the plate's right end, ``edge_agent.pipeline.alpr.band``):
        the plate is one of the enabled ``RIGHT_BAND_COUNTRIES`` (IT, FR), so their formats are tried
        first, by the same rules, and the others only when none of theirs can be made to fit. Their
        series leave out letters the OCR confuses (IT: I O Q U; FR: I O U), and a read such as
        ``AB123CO`` fits the Slovak and Austrian formats as it stands: without the cue its O would never
        be re-chosen (the French Q read as O).

        ``dashes`` True (with ``right_band``: dashes seen between the groups, ``edge_agent.pipeline.alpr.separators``):
        the ``DASHED_BAND_COUNTRIES`` (FR) are tried before the other band countries.
        """
        for compiled in self._in_order(right_band, dashes):
            check = self._check(compiled, text, char_confidences, alternatives)
            if check.valid:
                return check
        return check

    def fit(self, text: str, right_band: bool | None = None, dashes: bool | None = None) -> FormatCheck:
        """The format a published text fits (a track's voted text, already checked read by read with the
        model's second choices): as it is, or with its O and 0 read as the layout needs them, since many
        plates draw both with one glyph (the scorers fold them too; a voted ``RK340A0`` is the Slovak
        ``RK340AO``). No other character is changed. ``right_band``, ``dashes``: as for ``check``."""
        for compiled in self._in_order(right_band, dashes):
            found = _first_fit(compiled, text)
            if found is not None:
                return FormatCheck(text, found)
            same_glyph = [(self._rank[code], sum(a != b for a, b in zip(v, text, strict=True)), v, code)
                          for v in _o_zero_variants(text) if (code := _first_fit(compiled, v)) is not None]
            if same_glyph:
                _, _, fitted, code = min(same_glyph)
                return FormatCheck(fitted, code, corrected_from=text)
        return FormatCheck(text, None)

    def _in_order(self, right_band: bool | None, dashes: bool | None = None) -> list[list[tuple[str, re.Pattern[str]]]]:
        """The formats to try, in turn: with a right band seen, the band countries' first (the dashed ones
        before them when dashes were seen), then all."""
        if not right_band or not self._banded:
            return [self._compiled]
        if dashes and self._dashed:
            return [self._dashed, self._banded, self._compiled]
        return [self._banded, self._compiled]

    def _check(self, compiled: Sequence[tuple[str, re.Pattern[str]]], text: str, char_confidences: Sequence[float],
               alternatives: Sequence[Sequence[tuple[str, float]]]) -> FormatCheck:
        found = _first_fit(compiled, text)
        if found is not None:
            return FormatCheck(text, found)
        confs = list(char_confidences) if len(char_confidences) == len(text) else [1.0] * len(text)
        best: tuple[float, int, str, str] | None = None

        def consider(cost: float, candidate: str) -> None:
            nonlocal best
            code = _first_fit(compiled, candidate)
            if code is None:
                return
            key = (cost, self._rank[code], candidate, code)
            if best is None or key[:2] < best[:2]:
                best = key

        if alternatives:
            # Only what the model itself found plausible; the cost of a change is how much less likely
            # the model found it (log ratio), summed.
            per_char = alternatives if len(alternatives) == len(text) else [()] * len(text)
            options = [[(alt, math.log(max(confs[i], 1e-6) / max(p, 1e-6))) for alt, p in per_char[i]]
                       for i in range(len(text))]
            for i, opts in enumerate(options):
                for alt, cost in opts:
                    consider(cost, text[:i] + alt + text[i + 1:])
            if best is None:
                for i, j in itertools.combinations(range(len(text)), 2):
                    for (ai, ci), (aj, cj) in itertools.product(options[i], options[j]):
                        consider(ci + cj, text[:i] + ai + text[i + 1:j] + aj + text[j + 1:])
        if best is None and len(text) > 4:
            for i in (0, len(text) - 1):
                if confs[i] < EDGE_DROP_CONFIDENCE:
                    consider(confs[i], text[:i] + text[i + 1:])
        if best is None:
            return FormatCheck(text, None)
        return FormatCheck(best[2], best[3], corrected_from=text)

    def country_of(self, check: FormatCheck, right_band: bool | None = None,
                   dashes: bool | None = None) -> tuple[str | None, float | None]:
        """The plate's country and how sure the layout and the look make it.

        The candidates are the enabled countries whose formats fit the text (IT, FR and SK plates are
        all AA123AA). A blue band seen at the plate's right end (``edge_agent.pipeline.alpr.band``) keeps those
        whose plates have one (IT, FR), its clear absence drops them; no colour (grey/IR frames) keeps
        all. With a right band seen, ``dashes`` (``edge_agent.pipeline.alpr.separators``) narrows the band countries
        further: True keeps those that print dashes between the groups (FR), False the others (IT); None
        keeps both. The first candidate in priority order is the country, and the confidence is 1 / the
        number of candidates: no prior on which countries drive past the pole. None, None when no
        format fits; "any" gives the country "any" with no confidence.
        """
        if check.country is None:
            return None, None
        fits = self.countries(check.text)
        if not fits:
            return check.country, None
        if right_band is not None:
            narrowed = [c for c in fits if (c in RIGHT_BAND_COUNTRIES) == right_band]
            fits = narrowed or fits
        if right_band and dashes is not None:
            narrowed = [c for c in fits if c in RIGHT_BAND_COUNTRIES and (c in DASHED_BAND_COUNTRIES) == dashes]
            fits = narrowed or fits
        return fits[0], 1.0 / len(fits)


def _o_zero_variants(text: str, most: int = 6) -> list[str]:
    """``text`` with each O or 0 read either way (not ``text`` itself); none past ``most`` of them."""
    at = [i for i, c in enumerate(text) if c in "O0"]
    if not at or len(at) > most:
        return []
    out = []
    for choice in itertools.product("O0", repeat=len(at)):
        chars = list(text)
        for i, c in zip(at, choice, strict=True):
            chars[i] = c
        v = "".join(chars)
        if v != text:
            out.append(v)
    return out


def _first_fit(compiled: Sequence[tuple[str, re.Pattern[str]]], text: str) -> str | None:
    for code, rx in compiled:
        if rx.match(text):
            return code
    return None


def edit_distance_at_most_1(a: str, b: str) -> bool:
    """True when a and b differ by at most one substitution, insertion or deletion."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    if la > lb:
        a, b = b, a
    # b is one longer: skipping one character of b must give a.
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]
