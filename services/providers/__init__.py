"""Separation providers: the protocol (``base``), the registry, one module per provider."""

from services.providers.registry import PROVIDERS, UnknownProvider, get_provider, provider_names

__all__ = ["PROVIDERS", "UnknownProvider", "get_provider", "provider_names"]
