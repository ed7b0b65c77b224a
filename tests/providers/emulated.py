"""Fixtures shared by the Soundverse, kie.ai and MusicAPI.ai contract tests.

Loaded by ``pytest_plugins = ("tests.providers.emulated",)`` in those modules (which also
``usefixtures("clean_env")``): a stored input with a public file server the emulators can fetch
it from, and emulators started from their class (``sandbox.common.EMULATORS`` only lists
PROVIDERS-1's). ``settings`` is the root conftest's (a fresh data dir per test).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.common import Emulator
from services.config import Settings
from services.inputs import InputInfo, ingest_path
from services.public_files import ENV_BASE_URL, ENV_HOST, ENV_PORT, PublicFiles
from tests.providers.conftest import adapter

ENV_NAMES = ("SOUNDVERSE", "KIE", "MUSICAPI")
ENV_SUFFIXES = ("API_KEY", "BASE_URL", "UPLOAD_BASE_URL", "WEBHOOK_HMAC_KEY", "CALLBACK_URL")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's keys, base URLs or tunnel must never leak into these tests."""
    for name in ENV_NAMES:
        for suffix in (*ENV_SUFFIXES, "POLL_INTERVAL_S"):
            monkeypatch.delenv(f"{name}_{suffix}", raising=False)
    for var in (ENV_BASE_URL, ENV_HOST, ENV_PORT):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def stored(song: Path, settings: Settings) -> InputInfo:
    """The test song in the input store, as the app keeps every upload."""
    return ingest_path(song, settings)


@pytest.fixture
def files(settings: Settings) -> Iterator[PublicFiles]:
    """The app's file server with its own address as public base (as in sandbox mode)."""
    server = PublicFiles.local(settings.inputs_dir, settings.data_dir / "public-files.key")
    yield server
    server.stop()


@pytest.fixture
def running() -> Iterator[Callable[..., Emulator]]:
    """``running(EmulatorClass, **options)``: started now, stopped after the test."""
    started: list[Emulator] = []

    def start(cls: type[Emulator], **options: Any) -> Emulator:
        options.setdefault("latency_s", 0.2)
        emulator = cls(**options)
        emulator.start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def wire(client: httpx.Client) -> Callable[..., Any]:
    """``wire(AdapterClass, emulator, via=client, **options)``: an adapter pointed at the
    emulator (kie.ai also at its upload host), with fast polls and retries."""

    def build(cls: type, emulator: Emulator, *, via: httpx.Client | None = None, **kw: Any) -> Any:
        upload = getattr(emulator, "upload", None)  # kie.ai's second host
        if isinstance(upload, Emulator):
            kw.setdefault("upload_base_url", upload.base_url)
        return adapter(cls, emulator, via or client, **kw)

    return build
