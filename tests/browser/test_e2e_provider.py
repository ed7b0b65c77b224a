"""End to end in headless Chromium, in sandbox mode: the app wired to the provider emulators as
``python -m sandbox`` wires it, a 4-stem split with AIStemSplitter, and its Results page."""

from __future__ import annotations

from pathlib import Path

from tests.browser.conftest import needs_chromium

pytestmark = needs_chromium

JOB_TIMEOUT_MS = 90_000


def test_a_sandbox_split_with_a_provider_reaches_results(
    sandbox_server, chromium_page, make_song, tmp_path
):
    page = chromium_page
    try:
        _split_with_aistemsplitter(sandbox_server, page, make_song, tmp_path)
    except Exception:
        page.screenshot(path=str(tmp_path / "failure.png"))
        for log in tmp_path.glob("streamlit-*.log"):
            print(f"{log} (tail):\n{log.read_text(errors='replace')[-4000:]}")
        raise


def _split_with_aistemsplitter(server: str, page, make_song, shots: Path) -> None:
    page.goto(server)
    page.get_by_text("Split a song into stems").wait_for()
    page.get_by_text("Sandbox · emulated providers").wait_for()

    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        str(make_song("Sandbox Song.wav", 3.0))
    )
    page.locator('[data-testid="stAudio"]').first.wait_for()

    page.locator(".st-key-split-provider").click()
    page.get_by_role("option", name="AIStemSplitter", exact=False).click()
    modes = page.locator(".st-key-split-aistemsplitter-mode")
    modes.get_by_text("4 stems", exact=True).click()
    page.get_by_text("≈ 3 credits (1 per second of audio)", exact=False).wait_for()
    page.screenshot(path=str(shots / "sandbox-split.png"))

    page.locator(".st-key-split-run button").click()
    page.wait_for_url("**/results?job=*", timeout=JOB_TIMEOUT_MS)
    players = page.locator('[data-testid="stAudio"]')
    players.nth(3).wait_for()
    assert players.count() == 4
    page.get_by_text("AIStemSplitter", exact=False).first.wait_for()
    page.set_viewport_size({"width": 1440, "height": 1800})
    page.wait_for_timeout(500)  # let the waveforms finish drawing before the picture
    page.screenshot(path=str(shots / "sandbox-results.png"))
