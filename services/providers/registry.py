"""Provider name → implementation, imported lazily so unused providers cost nothing.

This dict is the only place that knows which providers exist; everything else (pages, the
worker, the CLI) asks the registry and reads capabilities, never branches on a name.

Instances are cached per (name, settings, key, base URL): a key typed on the Settings page
gets its own adapter, the local engine (which needs no key) is built once. The cache holds a
salted hash of the key, never the key itself, so the cache's keys are safe to log.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import secrets
import threading
from collections.abc import Mapping
from typing import Any

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


_SALT = secrets.token_bytes(16)  # per process: a key's cache hash is useless elsewhere

InstanceKey = tuple[str, Settings, str | None, str | None]


def key_digest(api_key: str | None) -> str | None:
    """A salted hash standing in for a key wherever a key must be told apart from another."""
    if not api_key:
        return None
    return hmac.new(_SALT, api_key.encode(), hashlib.sha256).hexdigest()[:32]


class Registry:
    """Resolves ``"module:Class"`` entries and caches instances per (name, settings, key, URL).

    ``options`` are extra constructor arguments per provider (tests: fast polling).
    """

    def __init__(
        self, entries: Mapping[str, str], options: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        self.entries = dict(entries)
        self.options = {name: dict(opts) for name, opts in (options or {}).items()}
        self._instances: dict[InstanceKey, SeparationProvider] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list(self.entries)

    def provider_class(self, name: str) -> type:
        """The implementation class (imports its module on first use)."""
        target = self.entries.get(name)
        if target is None:
            known = ", ".join(self.entries) or "none"
            raise UnknownProvider(f"Unknown provider {name!r} (available: {known}).")
        module_name, _, class_name = target.partition(":")
        return getattr(importlib.import_module(module_name), class_name)

    def get(
        self,
        name: str,
        settings: Settings,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
    ) -> SeparationProvider:
        """The instance of ``name`` for this key and base URL; built once per combination.

        Providers that need no key ignore both (the local model loads once); without them a
        remote adapter falls back to its ``<NAME>_API_KEY``/``<NAME>_BASE_URL`` variables.
        Whether a provider takes a key is read from its *class* ``capabilities`` (a class
        that sets them only per instance, like the local engine, takes none).
        """
        cls = self.provider_class(name)
        if not getattr(getattr(cls, "capabilities", None), "needs_key", False):
            api_key = base_url = None
        cache_key = (name, settings, key_digest(api_key), base_url)
        with self._lock:
            instance = self._instances.get(cache_key)
            if instance is None:
                credentials = {"api_key": api_key, "base_url": base_url}
                extra = {k: v for k, v in credentials.items() if v is not None}
                instance = cls(settings, **self.options.get(name, {}), **extra)
                self._instances[cache_key] = instance
        return instance

    def forget(self, name: str, api_key: str) -> None:
        """Drop the instances built with ``api_key`` (they hold it in memory)."""
        digest = key_digest(api_key)
        with self._lock:
            for cache_key in [k for k in self._instances if k[0] == name and k[2] == digest]:
                del self._instances[cache_key]


DEFAULT = Registry(PROVIDERS)


def get_provider(
    name: str, settings: Settings, *, api_key: str | None = None, base_url: str | None = None
) -> SeparationProvider:
    """The process-wide instance of provider ``name`` for this key and base URL (cached)."""
    return DEFAULT.get(name, settings, api_key=api_key, base_url=base_url)


def provider_names() -> list[str]:
    return DEFAULT.names()
