"""Drive the Compare page in Chromium: one comparison on the bundled example, a blind round.

Shared by tests/browser/test_e2e_compare.py and scripts/screenshots.py, so the README's
pictures are taken along the very path the end-to-end test checks. Widget keys become CSS
classes (``compare:add:provider`` → ``.st-key-compare-add-provider``).
"""

from __future__ import annotations

from collections.abc import Sequence

SETTLED = "() => !document.querySelector('[data-stale=\"true\"]')"
DISPLAY = {"local": "Local", "aistemsplitter": "AIStemSplitter", "musicgpt": "MusicGPT"}


def settle(page) -> None:
    """Wait for the rerun a click started to finish (no element from the last run left stale)."""
    page.wait_for_timeout(200)
    page.wait_for_function(SETTLED)


def key(name: str) -> str:
    """The live element of widget key ``name`` (never its stale copy from the last run)."""
    return f'.st-key-{name}:not([data-stale="true"])'


def open_compare(page, url: str) -> None:
    page.goto(f"{url}/compare")
    page.get_by_text("Compare providers").first.wait_for()


def use_example(page) -> None:
    page.locator(key("compare-use-example") + " button").click()
    page.get_by_text("Reference stems: the example's true").wait_for()
    settle(page)


def add_lane(page, provider: str, stems: int) -> None:
    """Pick ``provider`` and its ``stems``-stem mode in the "Add a lane" box, then add it."""
    lanes_before = page.locator('[class*="st-key-compare-lane-"]').count()
    page.locator(key("compare-add-provider")).click()
    page.get_by_role("option", name=DISPLAY[provider], exact=False).click()
    settle(page)
    page.locator(key(f"compare-add-{provider}-mode")).click()
    page.get_by_role("option", name=f"{stems} stems", exact=False).first.click()
    settle(page)
    page.locator(key("compare-add") + " button").click()
    page.locator(key(f"compare-lane-{lanes_before}")).wait_for()
    settle(page)


def run_comparison(
    page, url: str, *, lanes: Sequence[tuple[str, int]], timeout_ms: int
) -> dict[str, list[str]]:
    """Example track, ``lanes`` as (provider, stem count) in place of the default lane, run,
    wait for every figure. Returns the figures table as ``{row: [cell per lane]}``."""
    open_compare(page, url)
    use_example(page)
    page.locator(key("compare-remove-0")).locator("button").first.click()
    settle(page)
    for provider, stems in lanes:
        add_lane(page, provider, stems)
    page.get_by_text("Together:", exact=False).wait_for()
    page.locator(key("compare-run") + " button").click()
    settle(page)
    confirm = page.locator(key("compare-run-confirm-yes") + " button")
    if confirm.count():  # a paid lane of unpublished price or above the threshold asks first
        confirm.click()
    page.wait_for_url("**/compare?comparison=*")
    page.get_by_text("All lanes done in", exact=False).wait_for(timeout=timeout_ms)
    page.get_by_text("SDR · Vocals").first.wait_for(timeout=timeout_ms)
    settle(page)  # the figures of the last lane are computed in this run
    return read_figures(page)


def read_figures(page) -> dict[str, list[str]]:
    """The figures table (the last table on the side-by-side view) as text."""
    table = page.locator('[data-testid="stTable"] table').last
    rows = {}
    for row in table.locator("tbody tr").all():
        head = row.locator("th").last.inner_text().strip()
        rows[head] = [cell.inner_text().strip() for cell in row.locator("td").all()]
    return rows


def blind_round(page) -> None:
    """Switch to blind listening, rate every clip (a fixed pattern of stars), reveal the names."""
    page.locator(key("compare-view")).get_by_text("Blind listening").click()
    page.get_by_text("Names are hidden", exact=False).wait_for()
    settle(page)
    clips = page.locator('[class*="st-key-blind-clip-"]:not([data-stale="true"])')
    for i in range(clips.count()):
        stars = clips.nth(i).locator('[data-testid="stFeedback"] button')
        stars.nth((5 - i) % 5 if i % 3 else 4).click()
        settle(page)  # each rating reruns the round's fragment
    page.locator('[class*="st-key-blind-reveal-"]:not([data-stale="true"]) button').click()
    page.get_by_text("Results of the blind round").wait_for()
    page.locator('[data-testid="stPlotlyChart"]').last.wait_for()
    settle(page)
