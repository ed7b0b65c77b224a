"""The canonical stem vocabulary (see ``shared/providers/README.md`` §3).

Stems are always identified by name, never by position or count. Display order and colours
live here too so every view (gallery, compare, mixer) agrees.
"""

from __future__ import annotations

VOCALS = "vocals"
INSTRUMENTAL = "instrumental"
DRUMS = "drums"
BASS = "bass"
OTHER = "other"
PIANO = "piano"
GUITAR = "guitar"

ORDER: tuple[str, ...] = (VOCALS, INSTRUMENTAL, DRUMS, BASS, PIANO, GUITAR, OTHER)

COLOURS: dict[str, str] = {
    VOCALS: "#e4572e",
    INSTRUMENTAL: "#4c6ef5",
    DRUMS: "#f2a541",
    BASS: "#7b2cbf",
    PIANO: "#17a398",
    GUITAR: "#c9184a",
    OTHER: "#6c757d",
}

LABELS: dict[str, str] = {
    VOCALS: "Vocals",
    INSTRUMENTAL: "Instrumental",
    DRUMS: "Drums",
    BASS: "Bass",
    PIANO: "Piano",
    GUITAR: "Guitar",
    OTHER: "Other",
}


def family(stem: str) -> str:
    """``drums.kick`` → ``drums``: consumers that only know families truncate at the dot."""
    return stem.split(".", 1)[0]


def sort_key(stem: str) -> tuple[int, str]:
    """Order stems as musicians expect (vocals first, other last), unknown ones alphabetically."""
    fam = family(stem)
    return (ORDER.index(fam) if fam in ORDER else len(ORDER) - 1, stem)


def label(stem: str) -> str:
    """Human label, e.g. ``drums.kick`` → ``Drums · kick``."""
    fam, _, sub = stem.partition(".")
    base = LABELS.get(fam, fam.replace("_", " ").title())
    return f"{base} · {sub.replace('_', ' ')}" if sub else base


def colour(stem: str) -> str:
    """Stable colour per stem family so the same stem looks the same everywhere."""
    return COLOURS.get(family(stem), COLOURS[OTHER])
