"""The one typed protocol every separation provider implements, local engine included.

A provider translates a :class:`SeparationRequest` into stems written to files in the job's
workspace. Everything around that (validation, caching, export to the user's format, previews,
waveform peaks, the job record) is done once by the job runner, never per provider.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from services.progress import ProgressCallback


@dataclass(frozen=True, slots=True)
class ModeSpec:
    """A separation mode as the user picks it: id, label, the stems it yields, and honesty."""

    id: str
    label: str
    stems: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider can do; pages build their widgets from this, never from names."""

    display_name: str
    modes: tuple[ModeSpec, ...]
    selectable_stems: tuple[str, ...] = ()  # non-empty: the user may pick a custom stem list
    preprocessing: tuple[str, ...] = ()  # e.g. ("denoise", "deecho", "dereverb")
    input_kinds: tuple[str, ...] = ("file",)  # "file" and/or "url"
    max_bytes: int | None = None
    max_duration_s: float | None = None
    needs_key: bool = False
    pricing_unit: str = "free"
    description: str = ""

    def mode(self, mode_id: str) -> ModeSpec:
        for spec in self.modes:
            if spec.id == mode_id:
                return spec
        raise KeyError(mode_id)


@dataclass(frozen=True, slots=True)
class SeparationRequest:
    """One validated input and what to do with it."""

    input_path: Path  # the validated original file (any supported container)
    input_hash: str  # sha256 of the input bytes
    duration_s: float
    mode: str
    stems: tuple[str, ...] = ()  # custom stem list where the provider allows one
    preprocessing: tuple[str, ...] = ()
    source_url: str | None = None  # the user's URL, for providers that take URLs


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a run will cost before it starts; ``None`` means unknown, never zero.

    ``money`` is ``credits`` times the configured value of a credit (services/pricing), in
    ``currency``; 0.0 for a free provider.
    """

    credits: float | None
    seconds: float | None
    note: str = ""
    money: float | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class SeparatedStem:
    """One stem a provider produced, as a file under the job workspace."""

    stem: str  # canonical name (services.stems)
    provider_stem: str  # the provider's own name, kept for transparency
    path: Path


@dataclass(slots=True)
class RunContext:
    """What a provider gets from the job runner while it works."""

    workspace: Path  # writable folder owned by this job
    progress: ProgressCallback
    remember: Callable[[str, str], None] = field(default=lambda _k, _v: None)
    """Persist a small fact on the job (e.g. the remote id) so a restart can resume it."""
    facts: Mapping[str, str] = field(default_factory=dict)
    """What earlier attempts of this job remembered: a restarted job resumes, never pays twice."""


@runtime_checkable
class SeparationProvider(Protocol):
    """A stem-separation backend. ``run`` blocks until stems are on disk or raises a typed error."""

    name: str
    capabilities: Capabilities

    def estimate(self, request: SeparationRequest) -> Estimate: ...

    def run(self, request: SeparationRequest, ctx: RunContext) -> list[SeparatedStem]: ...
