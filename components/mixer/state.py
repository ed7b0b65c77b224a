"""What the mixer's front-end reports to Python, parsed and validated (never trusted)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.mixdown import LaneSettings

log = logging.getLogger("stemdeck.mixer")


@dataclass(frozen=True, slots=True)
class LaneState:
    """One lane as the browser last reported it."""

    stem: str
    settings: LaneSettings
    audible: bool
    status: str  # waiting | loading | decoding | ready | error
    position_s: float | None  # where this lane's own source is (None when not playing/ready)
    level_db: float | None  # post-fader peak level (what is heard), None when silent


@dataclass(frozen=True, slots=True)
class MixerState:
    """The mixer's last report: settings per lane and the transport."""

    seq: int
    playing: bool
    position_s: float
    duration_s: float
    ready: bool
    loop: tuple[bool, float, float]  # (enabled, start_s, end_s)
    lanes: dict[str, LaneState]
    sync: dict[str, Any] | None  # only with diagnostics: measured lane offsets in frames
    raw: dict[str, Any]

    def settings(self) -> dict[str, LaneSettings]:
        return {stem: lane.settings for stem, lane in self.lanes.items()}

    @classmethod
    def parse(cls, raw: object) -> MixerState | None:
        """Validate the browser's JSON (never trusted); None when absent or malformed."""
        if not isinstance(raw, Mapping):
            return None
        try:
            lanes = {}
            for item in raw.get("lanes", []):
                pos, level = item.get("position_s"), item.get("level_db")
                lanes[str(item["stem"])] = LaneState(
                    stem=str(item["stem"]),
                    settings=LaneSettings.from_dict(item),
                    audible=bool(item.get("audible", True)),
                    status=str(item.get("status", "")),
                    position_s=None if pos is None else float(pos),
                    level_db=None if level is None else float(level),
                )
            loop = raw.get("loop") or {}
            return cls(
                seq=int(raw.get("seq", 0)),
                playing=bool(raw.get("playing", False)),
                position_s=float(raw.get("position_s", 0.0)),
                duration_s=float(raw.get("duration_s", 0.0)),
                ready=bool(raw.get("ready", False)),
                loop=(
                    bool(loop.get("enabled", False)),
                    float(loop.get("start_s", 0.0)),
                    float(loop.get("end_s", 0.0)),
                ),
                lanes=lanes,
                sync=raw.get("sync") if isinstance(raw.get("sync"), Mapping) else None,
                raw=dict(raw),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            log.warning("ignoring a malformed mixer report")
            return None
