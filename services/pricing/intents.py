"""What the user wants, across providers: one intent (2, 4 or 6 stems) → each provider's mode.

Providers name their modes differently (kie "separate_vocal", MusicAPI "basic", …). A cost table
or a comparison of "this track in 2 stems" needs the same wish in every provider's words; this
is the one place that says which mode is the nearest match. A provider with no match for an
intent is left out of that intent.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Intent:
    id: str
    label: str
    modes: MappingProxyType[str, str]  # provider → its mode id


def _intent(id_: str, label: str, **modes: str) -> Intent:
    return Intent(id_, label, MappingProxyType(modes))


INTENTS: tuple[Intent, ...] = (
    _intent(
        "2",
        "2 stems · vocals / instrumental",
        local="2",
        soundverse="vocals",
        musicgpt="2",
        kie="separate_vocal",
        musicapi="basic",
        aistemsplitter="2",
    ),
    _intent(
        "4",
        "4 stems · vocals / drums / bass / other",
        local="4",
        soundverse="all-stems",  # six stems: the smallest set that holds the four
        musicgpt="4",
        kie="split_stem",  # up to 12 stems, no single "other"
        musicapi="full",  # same Suno engine as kie.ai
        aistemsplitter="4",
    ),
    _intent(
        "6",
        "6 stems · + guitar / piano",
        local="6",
        soundverse="all-stems",
        musicgpt="6",
        kie="split_stem",
        musicapi="full",
        aistemsplitter="6",
    ),
)
_BY_ID = {intent.id: intent for intent in INTENTS}


def intent_of(provider: str, mode: str) -> Intent | None:
    """The smallest intent ``provider``'s ``mode`` serves (None: a custom or unlisted mode)."""
    return next((i for i in INTENTS if i.modes.get(provider) == mode), None)


def mode_for(intent_id: str, provider: str) -> str | None:
    return _BY_ID[intent_id].modes.get(provider)
