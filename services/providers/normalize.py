"""Provider stem names → the canonical vocabulary (``shared/providers/README.md`` §3).

Rules applied here: names match case-insensitively after stripping ``Url``/``_url``
suffixes and turning camelCase, spaces and dashes into snake_case; null/empty URLs are
skipped; identity comes from the name only, never from position or count; unknown names
become ``instrument.<slug>`` and are logged. The provider's raw name is always kept.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

log = logging.getLogger(__name__)

# Union of the names every provider in the comparison table uses (after key normalisation).
_ALIASES: dict[str, str] = {
    "origin": "mix",
    "mix": "mix",
    "vocals": "vocals",
    "vocal": "vocals",
    "lead_vocal": "vocals.lead",
    "back_vocal": "vocals.backing",
    "backing_vocals": "vocals.backing",
    "male_vocal": "vocals.male",
    "female_vocal": "vocals.female",
    "instrumental": "instrumental",
    "accompaniment": "instrumental",
    "no_vocals": "instrumental",
    "drums": "drums",
    "drum": "drums",
    "kick_drum": "drums.kick",
    "snare_drum": "drums.snare",
    "toms": "drums.toms",
    "hi_hat": "drums.hihat",
    "ride": "drums.ride",
    "crash": "drums.crash",
    "percussion": "percussion",
    "bass": "bass",
    "guitar": "guitar",
    "acoustic_guitar": "guitar.acoustic",
    "electric_guitar": "guitar.electric",
    "rhythm_guitar": "guitar.rhythm",
    "solo_guitar": "guitar.lead",
    "piano": "piano",
    "keys": "keys",
    "keyboard": "keys",
    "synth": "synth",
    "strings": "strings",
    "winds": "winds",
    "brass": "winds.brass",
    "woodwinds": "winds.woodwinds",
    "fx": "fx",
    "other": "other",
}
CANONICAL: frozenset[str] = frozenset(_ALIASES.values())

_URL_SUFFIX = re.compile(r"_?url$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_SLUG = re.compile(r"[^a-z0-9]+")


def _key(raw: str) -> str:
    """``backingVocalsUrl`` / ``Backing Vocals`` / ``hi-hat`` → ``backing_vocals`` / ``hi_hat``."""
    snake = _CAMEL.sub("_", raw.strip()).lower()
    snake = _NON_SLUG.sub("_", snake).strip("_")
    return _URL_SUFFIX.sub("", snake).strip("_")


def canonical_stem(raw: str) -> str:
    """The canonical name for a provider's stem name; unknown → ``instrument.<slug>``."""
    if raw.strip().lower() in CANONICAL:
        return raw.strip().lower()
    key = _key(raw)
    found = _ALIASES.get(key)
    if found is None:
        found = f"instrument.{key or 'unnamed'}"
        log.warning("unknown provider stem %r mapped to %s", raw, found)
    return found


def normalize_urls(stems: Mapping[str, object]) -> dict[str, tuple[str, str]]:
    """``{raw: url}`` → ``{canonical: (raw, url)}``, skipping empty URLs; first name wins."""
    found: dict[str, tuple[str, str]] = {}
    for raw, url in stems.items():
        if not isinstance(url, str) or not url.strip():
            continue
        stem = canonical_stem(raw)
        if stem in found:
            log.warning("provider stems %r and %r both map to %s", found[stem][0], raw, stem)
            continue
        found[stem] = (raw, url.strip())
    return found
