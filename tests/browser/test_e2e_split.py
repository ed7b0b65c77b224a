"""End to end in a real headless Chromium: upload, split 2 stems locally, see, hear, download.

Drives Debian's /usr/bin/chromium through Playwright (no browser download) against
``streamlit run app.py`` on a free local port with its own data directory (fixtures in
tests/browser/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

CHROMIUM = Path("/usr/bin/chromium")
JOB_TIMEOUT_MS = 240_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)


@pytest.fixture
def server(streamlit_server, data_dir: Path) -> str:
    """The real app on a free port with this test's data directory."""
    return streamlit_server("app.py", {"STEMDECK_DATA_DIR": str(data_dir)})


def test_upload_split_listen_and_download(server, chromium_page, make_song, tmp_path):
    try:
        _upload_split_listen_and_download(server, chromium_page, make_song, tmp_path)
    except Exception:
        chromium_page.screenshot(path=str(tmp_path / "failure.png"))
        for log in tmp_path.glob("streamlit-*.log"):
            print(f"{log} (tail):\n{log.read_text(errors='replace')[-4000:]}")
        raise


def _upload_split_listen_and_download(server, page, make_song, tmp_path):
    song = make_song("Browser Song.wav", 3.0)
    page.goto(server)
    page.get_by_text("Split a song into stems").wait_for()

    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(song))
    page.locator('[data-testid="stAudio"]').first.wait_for()  # input preview is ready
    page.screenshot(path=str(tmp_path / "split.png"))

    page.get_by_text("2 stems", exact=False).first.click()
    page.locator(".st-key-split-run button").click()
    page.wait_for_url("**/results?job=*", timeout=JOB_TIMEOUT_MS)

    players = page.locator('[data-testid="stAudio"]')
    players.nth(1).wait_for()
    assert players.count() == 2
    page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.wait_for()
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 2
    # Streamlit scrolls inside the page, so a tall viewport (not full_page) shows every card
    page.set_viewport_size({"width": 1440, "height": 1800})
    page.wait_for_timeout(500)  # let plotly finish drawing before the picture
    page.screenshot(path=str(tmp_path / "results.png"))

    job_id = page.url.rsplit("job=", 1)[1]
    with page.expect_download() as download_info:
        page.locator(f".st-key-dl-{job_id}-vocals button").first.click()
    download = download_info.value
    assert download.suggested_filename == "Browser Song - vocals.wav"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    info = sf.info(str(saved))
    assert (info.samplerate, info.channels, info.subtype) == (44100, 2, "PCM_16")
    assert abs(info.duration - 3.0) < 0.05
