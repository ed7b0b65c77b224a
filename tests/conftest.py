"""Shared fixtures: an isolated data directory, the app's runtime, the app, generated songs."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.config import Settings, load_settings
from services.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh STEMDECK_DATA_DIR for this test (the app and services both read it)."""
    path = tmp_path / "stemdeck-data"
    monkeypatch.setenv("STEMDECK_DATA_DIR", str(path))
    monkeypatch.delenv("STEMDECK_DB", raising=False)
    return path


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return load_settings()


@pytest.fixture
def app_runtime(settings: Settings) -> Iterator[Runtime]:
    """The very runtime the Streamlit app caches for these settings (pages and test share it).

    Clearing the cache afterwards shuts it down (``on_release``), so no worker outlives the test.
    """
    from components.state import runtime_for

    runtime_for.clear()
    rt = runtime_for(repr(settings), settings)
    try:
        yield rt
    finally:
        runtime_for.clear()


@pytest.fixture
def app(app_runtime: Runtime):
    """The real app (app.py + pages) under Streamlit's AppTest, on the temp data dir."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


@pytest.fixture
def finished_job(app_runtime: Runtime, settings: Settings, tmp_path: Path):
    """A real 2-stem local job on a generated 3-second song, finished."""
    from services.audio.formats import ExportFormat
    from services.inputs import ingest_path
    from services.jobs.model import JobSpec, JobStatus

    info = ingest_path(_write_song(tmp_path / "Test Song.wav"), settings)
    spec = JobSpec(
        input_hash=info.hash, input_name=info.name, duration_s=info.info.duration_s,
        provider="local", mode="2", export=ExportFormat("wav", 16).as_options(),
    )
    job = app_runtime.wait(app_runtime.submit(spec).id, timeout_s=240)
    assert job.status is JobStatus.SUCCEEDED, job.error
    return job


def pick_free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for servers the tests start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def make_song(tmp_path: Path):
    """Factory: ``make_song("Name.wav", seconds)`` writes a generated song and returns its path."""
    return lambda name, seconds=3.0: _write_song(tmp_path / name, seconds)


def _write_song(path: Path, seconds: float = 3.0) -> Path:
    """A short stereo "song" (voice-like line, drums and bass) from the shared generators."""
    from tests.audiogen import bass_like, drum_like, mix, vocal_like, write

    song = mix(
        vocal_like(seconds, amp=0.35), drum_like(seconds, amp=0.4), bass_like(seconds, amp=0.3)
    )
    return write(path, song)


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the figures the reliability suites collected (tests/figures.py), also without -s."""
    from tests.figures import FIGURES as figures

    if figures:
        terminalreporter.section("reliability figures")
        for line in figures:
            terminalreporter.write_line(line)
