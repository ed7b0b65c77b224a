"""Fixtures for tests that run whole jobs on provider emulators (Runtime, CLI, pages).

Loaded with ``pytest_plugins = ("tests.provider_fixtures",)``. Every emulator gets a distinctive
key made for the test (:mod:`tests.leakcheck`), so a leak check can look for exactly that
string anywhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.__main__ import EMULATORS
from sandbox.common import Emulator
from services import public_files
from services.config import load_settings
from services.providers.registry import PROVIDERS, Registry
from tests.conftest import pick_free_port
from tests.leakcheck import distinctive_key
from tests.providers.conftest import FAST_RETRY

PROVIDER_VARS = ("API_KEY", "BASE_URL", "UPLOAD_BASE_URL", "WEBHOOK_HMAC_KEY", "CALLBACK_URL",
                 "POLL_INTERVAL_S")
FAST = {"poll_interval_s": 0.05, "retry_policy": FAST_RETRY}


@pytest.fixture
def clean_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer key, base URL or tunnel reaches these tests."""
    for name in PROVIDERS:
        for suffix in PROVIDER_VARS:
            monkeypatch.delenv(f"{name.upper()}_{suffix}", raising=False)
    for var in (public_files.ENV_BASE_URL, public_files.ENV_HOST, public_files.ENV_PORT,
                "STEMDECK_SANDBOX"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def public_base(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Iterator[str]:
    """The app's file server on a free port as its public address (what sandbox mode does),
    so URL-only providers can fetch uploads; stopped after the test."""
    port = pick_free_port()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv(public_files.ENV_PORT, str(port))
    monkeypatch.setenv(public_files.ENV_BASE_URL, url)
    yield url
    public_files.for_settings(load_settings()).stop()


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Emulator]]:
    """``emulator(name, **options)``: started with a distinctive key, stopped after the test.

    kie.ai's upload host is a second server; ``KIE_UPLOAD_BASE_URL`` points at it, as the
    sandbox does (``--base-url`` names the API host only).
    """
    started: list[Emulator] = []

    def start(name: str, **options: Any) -> Emulator:
        module, _, cls_name = EMULATORS[name].partition(":")
        options.setdefault("latency_s", 0.2)
        options.setdefault("api_key", distinctive_key(name))
        found: Emulator = getattr(importlib.import_module(module), cls_name)(**options)
        found.start()
        started.append(found)
        upload = getattr(found, "upload", None)
        if isinstance(upload, Emulator):
            monkeypatch.setenv("KIE_UPLOAD_BASE_URL", upload.base_url)
        return found

    yield start
    for found in started:
        found.stop()


@pytest.fixture
def fast_registry() -> Registry:
    """Every provider, remote ones polling and retrying fast (emulators answer at once)."""
    return Registry(PROVIDERS, options={name: FAST for name in PROVIDERS if name != "local"})
