"""The comparison records: lanes, the comparison itself, blind ratings and their aggregate."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

from services.providers.base import Capabilities
from services.stems import label as stem_label


@dataclass(frozen=True)
class LaneSpec:
    """One (provider, mode, options) combination a comparison runs."""

    provider: str
    mode: str
    stems: tuple[str, ...] = ()
    preprocessing: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """A label without capabilities (e.g. in an export of an uninstalled provider)."""
        return lane_label(self, None)


def lane_label(lane: LaneSpec, capabilities: Capabilities | None) -> str:
    """``MusicGPT · 4 stems``, ``MusicGPT · Vocals, Piano + denoise``: what a column is called.

    Uses the provider's display name and the mode's short label when ``capabilities`` is given.
    """
    name = capabilities.display_name if capabilities else lane.provider
    if lane.stems:
        what = ", ".join(stem_label(s) for s in lane.stems)
    else:
        what = f"mode {lane.mode}"
        if capabilities is not None:
            with contextlib.suppress(KeyError):
                # "2 stems (vocals / instrumental)" / "4 stems · vocals / …" → "2 stems"
                what = re.split(r" \(| · ", capabilities.mode(lane.mode).label)[0]
    extra = f" + {', '.join(lane.preprocessing)}" if lane.preprocessing else ""
    return f"{name} · {what}{extra}"


@dataclass(frozen=True)
class Comparison:
    """One track run through several lanes.

    ``job_ids[i]`` is lane ``i``'s job; a lane whose submission was refused has job id ``""``
    and its message in ``lane_errors[i]`` (so one bad lane never hides the others).
    ``references`` maps stem → absolute path of a reference stem (empty: no SDR).
    """

    id: str
    input_hash: str
    input_name: str
    duration_s: float
    lanes: tuple[LaneSpec, ...]
    job_ids: tuple[str, ...]
    created_at: float
    references: dict[str, str] = field(default_factory=dict)
    example_id: str | None = None
    lane_errors: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rating:
    """One listener's 1–5 score of one lane's stem (a re-rating replaces it)."""

    comparison_id: str
    stem: str
    lane_index: int
    score: int
    rater: str
    created_at: float


@dataclass(frozen=True)
class ProviderScore:
    """The revealed aggregate for one lane label and stem.

    ``wins``: (stem, rater) rounds in which this lane got the top score (ties count for all).
    """

    provider_label: str
    stem: str
    mean: float
    count: int
    wins: int
