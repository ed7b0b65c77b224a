"""Browser-test fixtures: a Streamlit server for any script, and a headless Chromium page.

``streamlit_server(script, env)`` runs ``streamlit run <script>`` from the repo root (so the
repo's ``.streamlit/config.toml`` applies) on a free local port and stops it after the test.
``chromium_page`` drives Debian's /usr/bin/chromium through Playwright (no browser download).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.__main__ import app_env, free_port, start_emulators
from tests.conftest import pick_free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
STARTUP_S = 90

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)


@pytest.fixture
def streamlit_server(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Factory: start ``script`` (repo-relative) with extra ``env``; returns the base URL."""
    procs: list[subprocess.Popen] = []

    def start(script: str, env: dict[str, str] | None = None) -> str:
        port = pick_free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = tmp_path / f"streamlit-{port}.log"
        log = log_path.open("wb")
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", script,
                "--server.headless", "true",
                "--server.port", str(port),
                "--server.address", "127.0.0.1",
                "--server.fileWatcherType", "none",
                "--browser.gatherUsageStats", "false",
            ],
            cwd=ROOT,
            env=os.environ | {"PYTHONPATH": str(ROOT)} | (env or {}),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        procs.append(proc)
        _wait_healthy(url, proc, log_path)
        return url

    try:
        yield start
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def is_healthy(url: str) -> bool:
    """Streamlit's own health endpoint answers 200 once the server accepts sessions."""
    try:
        return httpx.get(f"{url}/_stcore/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_healthy(url: str, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited early:\n{log_path.read_text(errors='replace')}")
        if is_healthy(url):
            return
        time.sleep(0.3)
    pytest.fail(f"streamlit did not become healthy:\n{log_path.read_text(errors='replace')}")


@pytest.fixture
def sandbox_server(streamlit_server, data_dir: Path) -> Iterator[str]:
    """The app wired to fresh provider emulators, as ``python -m sandbox`` wires it."""
    emulators, env = start_emulators(latency_s=0.5)
    try:
        yield streamlit_server("app.py", app_env(env, data_dir, free_port()))
    finally:
        for emulator in emulators.values():
            emulator.stop()


@pytest.fixture
def chromium_page():
    """A Playwright page in headless Chromium that may play audio and accepts downloads."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(
            accept_downloads=True, viewport={"width": 1400, "height": 1000}
        )
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()
