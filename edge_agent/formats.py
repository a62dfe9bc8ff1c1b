"""Country plate formats: does a read look like a real plate, and can one confusable character fix it?

Texts are upper case without spaces or dashes, as the reader produces them. The
patterns describe the characters only (the separators and the EU band are not
read), so some countries share a shape (IT, FR and SK are all ``AA123AA``); the
first enabled format that fits names the country.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_L = "A-Z"
# Letters each country leaves out of its series (confusable with digits or each other).
_IT_L = "A-HJ-NPR-TV-Z"  # no I O Q U
_ES_L = "BCDFGHJKLMNPRSTVWXYZ"
_CH_CANTONS = "AG|AI|AR|BE|BL|BS|FR|GE|GL|GR|JU|LU|NE|NW|OW|SG|SH|SO|SZ|TG|TI|UR|VD|VS|ZG|ZH"

FORMATS: dict[str, tuple[str, ...]] = {
    "IT": (rf"[{_IT_L}]{{2}}\d{{3}}[{_IT_L}]{{2}}",),
    "DE": (rf"[{_L}]{{1,3}}[{_L}]{{1,2}}[1-9]\d{{0,3}}[EH]?",),
    "FR": (rf"[{_L}]{{2}}\d{{3}}[{_L}]{{2}}", rf"\d{{1,4}}[{_L}]{{1,3}}\d{{2}}"),
    "ES": (rf"\d{{4}}[{_ES_L}]{{3}}", rf"[{_L}]{{1,2}}\d{{4}}[{_L}]{{1,2}}"),
    "CH": (rf"(?:{_CH_CANTONS})\d{{1,6}}",),
    "AT": (rf"[{_L}]{{1,2}}\d{{1,5}}[{_L}]{{1,2}}", rf"[{_L}]{{1,2}}[{_L}]{{1,3}}\d{{1,3}}"),
    "SK": (rf"[{_L}]{{2}}\d{{3}}[{_L}]{{2}}", rf"[{_L}]{{2}}[{_L}]{{3}}\d{{2}}"),
    "CZ": (rf"\d[{_L}][{_L}0-9]\d{{4}}",),
    # Two-letter districts take five characters, three-letter ones four, in a fixed set of shapes.
    "PL": (rf"[{_L}]{{2}}(?:\d{{5}}|\d{{4}}[{_L}]|\d{{3}}[{_L}]{{2}}|[1-9][{_L}]\d{{3}}|[1-9][{_L}]{{2}}\d{{2}})",
           rf"[{_L}]{{3}}(?:[{_L}]\d{{3}}|\d{{2}}[{_L}]{{2}}|[1-9][{_L}]\d{{2}}|\d{{2}}[{_L}][1-9]|[1-9][{_L}]{{2}}[1-9]"
           rf"|[{_L}]{{2}}\d{{2}}|\d{{5}}|\d{{4}}[{_L}]|\d{{3}}[{_L}]{{2}}|[{_L}]\d{{2}}[{_L}]|[{_L}][1-9][{_L}]{{2}})"),
    "GB": (rf"[{_L}]{{2}}\d{{2}}[{_L}]{{3}}",),
    "HR": (rf"[{_L}]{{2}}\d{{3,4}}[{_L}]{{1,2}}",),
    "any": (r"[A-Z0-9]{2,10}",),
}

# Default order: Italy first (the deployment's country), then the rest of the EU presets. "any" is
# not in the default: with it enabled every read fits and nothing is ever corrected.
DEFAULT_ORDER: tuple[str, ...] = ("IT", "DE", "FR", "ES", "AT", "SK", "CZ", "PL", "HR", "CH", "GB")

_CONFUSABLE: dict[str, str] = {}
for _a, _b in ("O0", "I1", "B8", "S5", "Z2", "G6"):
    _CONFUSABLE[_a], _CONFUSABLE[_b] = _b, _a


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

    def countries(self, text: str) -> list[str]:
        """Every enabled country whose layout the text fits, in priority order ("any" is not a country)."""
        return [code for code, rx in self._compiled if code != "any" and rx.match(text)]

    def country(self, text: str) -> str | None:
        for code, rx in self._compiled:
            if rx.match(text):
                return code
        return None

    def check(self, text: str, char_confidences: Sequence[float] = ()) -> FormatCheck:
        """Fits as read, or fixed by swapping one confusable character, or marked as fitting nothing.

        When several single swaps fit, the one at the least confident character wins, then the
        one that fits the higher-priority format.
        """
        found = self.country(text)
        if found is not None:
            return FormatCheck(text, found)
        best: tuple[float, int, str, str] | None = None
        rank = {code: i for i, (code, _) in enumerate(self._compiled)}
        for i, ch in enumerate(text):
            alt = _CONFUSABLE.get(ch)
            if alt is None:
                continue
            candidate = text[:i] + alt + text[i + 1 :]
            code = self.country(candidate)
            if code is None:
                continue
            conf = char_confidences[i] if i < len(char_confidences) else 1.0
            key = (conf, rank[code], candidate, code)
            if best is None or key[:2] < best[:2]:
                best = key
        if best is None:
            return FormatCheck(text, None)
        return FormatCheck(best[2], best[3], corrected_from=text)


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
