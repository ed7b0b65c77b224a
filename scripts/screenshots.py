"""Refresh the README screenshots: the sandbox app driven by headless Chromium.

    python3 scripts/screenshots.py [--out docs/screenshots] [--only split,results,compare,blind]

Starts what ``python -m sandbox`` starts (every provider emulator and the app wired to them) on
free ports with a throw-away data directory, then drives Debian's Chromium through Split (with
the cost table), Results (mixer and stem gallery) and Compare (the local engine and two
sandboxed providers on a bundled example with known stems: quality figures, then a blind
round), writing ``split.png``, ``results.png``, ``compare.png`` and ``blind.png``. Nothing
touches the real data directory or a real provider, so it can run anywhere the tests run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: make the repo's packages importable
    sys.path.insert(0, str(ROOT))

from sandbox import __main__ as sandbox  # noqa: E402
from tests.audiogen import bass_like, drum_like, mix, vocal_like, write  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, is_healthy  # noqa: E402

SHOTS = ("split", "results", "compare", "blind")
VIEWPORT = {"width": 1440, "height": 1000}
MAX_HEIGHT = 3200
SPLIT_HEIGHT = 1250  # the top of Split: input, engine, cost table, Split button
STARTUP_S = 90.0
JOB_TIMEOUT_MS = 240_000
SONG_S = 12.0
EMULATOR_LATENCY_S = 2.0
COMPARE_LANES = (("local", 4), ("aistemsplitter", 4), ("musicgpt", 4))
FAILURE = Path(tempfile.gettempdir()) / "stemdeck-screenshots-failure.png"
SETTLE_MS = 800  # waveforms and charts finish drawing before a picture is taken


def song(path: Path) -> Path:
    """A short generated "song" (voice-like line, drums, bass): no third-party audio needed."""
    return write(
        path,
        mix(
            vocal_like(SONG_S, amp=0.35),
            drum_like(SONG_S, amp=0.4),
            bass_like(SONG_S, amp=0.3),
        ),
    )


@contextmanager
def running_sandbox(data_dir: Path) -> Iterator[str]:
    """Emulators + app (own session, own data dir); stopped on exit. Yields the app's URL."""
    box = sandbox.start(
        latency_s=EMULATOR_LATENCY_S, app_port=sandbox.free_port(), data_dir=data_dir
    )
    try:
        assert box.app_url is not None
        _wait_healthy(box.app_url)
        yield box.app_url
    finally:
        box.stop()


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if is_healthy(url):
            return
        time.sleep(0.3)
    raise SystemExit(f"the sandbox app at {url} did not start within {STARTUP_S:.0f} s")


def settle_and_shoot(page, dest: Path, height: int | None = None) -> None:
    """Resize to show the whole page (Streamlit scrolls inside it, so the viewport's height is
    what a picture shows), let charts finish drawing, save."""
    if height is None:
        height = page.evaluate(
            "() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight"
        )
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height), MAX_HEIGHT)})
    page.wait_for_timeout(SETTLE_MS)
    page.screenshot(path=str(dest))
    print(f"wrote {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")


def prepare_split(page, url: str, track: Path) -> None:
    """Split with the track uploaded and AIStemSplitter 4 stems picked (cost table showing)."""
    page.goto(url)
    page.get_by_text("Split a song into stems").wait_for()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(track))
    page.locator('[data-testid="stAudio"]').first.wait_for()
    page.locator(".st-key-split-provider").click()
    page.get_by_role("option", name="AIStemSplitter", exact=False).click()
    page.locator(".st-key-split-aistemsplitter-mode").get_by_text("4 stems", exact=True).click()
    page.get_by_text("credits", exact=False).first.wait_for()


def shoot_split(page, url: str, track: Path, out: Path) -> None:
    prepare_split(page, url, track)
    settle_and_shoot(page, out / "split.png", SPLIT_HEIGHT)


def shoot_results(page, url: str, track: Path, out: Path) -> None:
    """Run that split and picture its Results: facts, mixer and the stem cards."""
    prepare_split(page, url, track)
    page.locator(".st-key-split-run button").click()
    page.wait_for_url("**/results?job=*", timeout=JOB_TIMEOUT_MS)
    page.locator('[data-testid="stAudio"]').nth(3).wait_for()
    page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.wait_for()
    settle_and_shoot(page, out / "results.png")


def shoot_compare(page, url: str, out: Path) -> None:
    """Compare: a bundled example, the local engine and two sandboxed providers, figures."""
    from tests.browser.compare_driver import run_comparison  # the e2e test drives it the same way

    run_comparison(page, url, lanes=COMPARE_LANES, timeout_ms=JOB_TIMEOUT_MS)
    settle_and_shoot(page, out / "compare.png")


def shoot_blind(page, url: str, out: Path) -> None:
    """A blind round on the comparison just run: rate every lane of one stem, then reveal."""
    from tests.browser.compare_driver import blind_round

    blind_round(page)
    settle_and_shoot(page, out / "blind.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", default=",".join(SHOTS), help="comma-separated subset")
    args = parser.parse_args(argv)
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    if unknown := set(wanted) - set(SHOTS):
        parser.error(f"unknown screenshot(s): {', '.join(sorted(unknown))}")
    if not CHROMIUM.exists():
        raise SystemExit(f"needs Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    args.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="stemdeck-shots-") as tmp:
        track = song(Path(tmp) / "Demo Song.wav")
        steps: dict[str, Callable[..., None]] = {
            "split": lambda page, url: shoot_split(page, url, track, args.out),
            "results": lambda page, url: shoot_results(page, url, track, args.out),
            "compare": lambda page, url: shoot_compare(page, url, args.out),
            "blind": lambda page, url: shoot_blind(page, url, args.out),
        }
        with running_sandbox(Path(tmp) / "data") as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT, color_scheme="dark")
            page.set_default_timeout(90_000)
            try:
                for name in SHOTS:
                    if name in wanted:
                        steps[name](page, url)
            except Exception:
                page.screenshot(path=str(FAILURE))
                print(f"failed; the page at that moment: {FAILURE}", file=sys.stderr)
                raise
            finally:
                browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
