"""Why a provider cannot take a job, found before anything is sent or spent.

Checked from capabilities and the provider's own ``estimate`` (which validates the options
through the adapter's plan), so no page or command branches on a provider's name. The same
checks guard :meth:`services.runtime.Runtime.submit`, the Split page's button and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from services import public_files
from services.config import MB, Settings
from services.errors import InputRejected, MissingKey, ProviderError, StemDeckError
from services.providers import keys
from services.providers.base import SeparationProvider, SeparationRequest

Kind = Literal["mode", "needs_key", "limits", "needs_public_url", "options"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a job cannot run; ``kind`` lets a page offer the matching fix."""

    kind: Kind
    message: str

    def error(self) -> StemDeckError:
        """The typed error :meth:`Runtime.submit` raises for this problem."""
        if self.kind == "needs_key":
            return MissingKey(self.message)
        if self.kind == "needs_public_url":
            return public_files.NeedsPublicUrl(self.message)
        if self.kind == "mode":
            return ProviderError(self.message)
        return InputRejected(self.message)


def clock(seconds: float) -> str:
    """``m:ss`` (the way durations are shown everywhere in the app)."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def key_problem(provider: SeparationProvider, has_key: bool) -> Problem | None:
    caps = provider.capabilities
    if not caps.needs_key or has_key:
        return None
    return Problem(
        "needs_key",
        f"{caps.display_name} needs an API key: add one on the Settings page, or set "
        f"{keys.env_var(provider.name)} in the environment.",
    )


def mode_problem(provider: SeparationProvider, mode: str) -> Problem | None:
    caps = provider.capabilities
    modes = [m.id for m in caps.modes]
    if mode in modes:
        return None
    return Problem(
        "mode", f"{caps.display_name} has no mode {mode!r} (available: {', '.join(modes)})."
    )


def check(
    provider: SeparationProvider,
    request: SeparationRequest,
    size_bytes: int,
    has_key: bool,
    settings: Settings,
) -> Problem | None:
    """The first problem with running ``request`` on ``provider``, or None."""
    caps = provider.capabilities
    found = mode_problem(provider, request.mode) or key_problem(provider, has_key)
    if found:
        return found
    if caps.max_duration_s is not None and request.duration_s > caps.max_duration_s:
        return Problem(
            "limits",
            f"{caps.display_name} takes at most {clock(caps.max_duration_s)}; this track is "
            f"{clock(request.duration_s)}.",
        )
    if caps.max_bytes is not None and size_bytes > caps.max_bytes:
        return Problem(
            "limits",
            f"{caps.display_name} takes files up to {caps.max_bytes / MB:.0f} MB; this one is "
            f"{size_bytes / MB:.1f} MB.",
        )
    if "file" not in caps.input_kinds and not request.source_url:
        message = public_files.for_settings(settings).problem(request, caps.display_name)
        return Problem("needs_public_url", message or f"{caps.display_name} needs a URL.")
    try:
        provider.estimate(request)  # the adapter's plan validates stems and pre-processing
    except InputRejected as exc:
        return Problem("options", exc.user_message)
    return None
