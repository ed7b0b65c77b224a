"""End to end in headless Chromium, in sandbox mode: a two-lane comparison (the local engine and
an emulated AIStemSplitter) on the bundled example, with the quality figures read off the page."""

from __future__ import annotations

import re

from tests.browser.compare_driver import run_comparison
from tests.browser.conftest import needs_chromium

pytestmark = needs_chromium

JOB_TIMEOUT_MS = 240_000
DB = re.compile(r"^-?\d+\.\d dB$")
LANES = (("local", 2), ("aistemsplitter", 4))  # local 2-stem: the quickest local lane


def test_a_two_lane_comparison_shows_figures_for_both_lanes(
    sandbox_server, chromium_page, tmp_path
):
    page = chromium_page
    try:
        figures = run_comparison(
            page, sandbox_server, lanes=LANES, timeout_ms=JOB_TIMEOUT_MS
        )
    except Exception:
        page.screenshot(path=str(tmp_path / "failure.png"))
        for log in tmp_path.glob("streamlit-*.log"):
            print(f"{log} (tail):\n{log.read_text(errors='replace')[-4000:]}")
        raise
    page.screenshot(path=str(tmp_path / "compare.png"))
    # the example's true stems give each lane an SDR for every stem it returned, in dB
    assert all(DB.match(c) for c in figures["SDR · Vocals"]), figures
    for stem in ("Drums", "Bass", "Other"):  # not in a 2-stem split: "–" for the local lane
        local, remote = figures[f"SDR · {stem}"]
        assert local == "–" and DB.match(remote), (stem, local, remote)
    assert all(DB.match(c) for c in figures["Residual"])
    # the emulator's stems are complementary filters of the mix: they add back up to it
    assert float(figures["Residual"][1].split()[0]) < -20
    page.get_by_text("Local (built-in) · 2 stems").first.wait_for()
    page.get_by_text("Cost: estimated 16 credits").wait_for()  # 1 credit per second, 16 s
