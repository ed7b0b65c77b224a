"""Provider name → implementation, imported lazily so unused providers cost nothing.

This dict is the only place that knows which providers exist; everything else (pages, the
worker, the CLI) asks the registry and reads capabilities, never branches on a name.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping

from services.config import Settings
from services.errors import ProviderError
from services.providers.base import SeparationProvider

PROVIDERS: dict[str, str] = {
    "local": "services.providers.local:LocalProvider",
    "soundverse": "services.providers.soundverse:SoundverseProvider",
    "musicgpt": "services.providers.musicgpt:MusicGPTProvider",
    "kie": "services.providers.kie:KieProvider",
    "musicapi": "services.providers.musicapi:MusicAPIProvider",
    "aistemsplitter": "services.providers.aistemsplitter:AIStemSplitterProvider",
}


class UnknownProvider(ProviderError):
    """A job or command named a provider this installation does not have."""


class Registry:
    """Resolves ``"module:Class"`` entries and keeps one instance per (name, settings)."""

    def __init__(self, entries: Mapping[str, str]) -> None:
        self.entries = dict(entries)
        self._instances: dict[tuple[str, Settings], SeparationProvider] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list(self.entries)

    def get(self, name: str, settings: Settings) -> SeparationProvider:
        """The provider instance for ``name``; built once (the local model loads once)."""
        target = self.entries.get(name)
        if target is None:
            known = ", ".join(self.entries) or "none"
            raise UnknownProvider(f"Unknown provider {name!r} (available: {known}).")
        with self._lock:
            instance = self._instances.get((name, settings))
            if instance is None:
                module_name, _, class_name = target.partition(":")
                cls = getattr(importlib.import_module(module_name), class_name)
                instance = cls(settings)
                self._instances[(name, settings)] = instance
        return instance


DEFAULT = Registry(PROVIDERS)


def get_provider(name: str, settings: Settings) -> SeparationProvider:
    """The process-wide instance of provider ``name`` (thread-safe, cached)."""
    return DEFAULT.get(name, settings)


def provider_names() -> list[str]:
    return DEFAULT.names()
