"""The frame every page runs in: page config, navigation, runtime, friendly errors.

``app.py`` is the entry point, but Streamlit runs a file under ``pages/`` on its own in its
legacy pages-folder mode: on the first visit of a fresh server process straight to a
sub-page URL (``/results?job=…``), and in every AppTest run. Each page therefore ends with
:func:`run_page`, which then does what app.py does, in the same run: a rerun would swallow
the click that started it, and running the body directly would give its widgets new ids
(Streamlit keys them by the page that runs them).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import streamlit as st

from components.guard import friendly_errors
from components.navigation import pages
from components.state import get_runtime, get_state
from services.providers.keys import RedactFilter

_run = threading.local()  # each script run is one thread: "inside the frame" is per run


def configure() -> st.Page:
    """Page config and the real navigation (this also ends Streamlit's legacy page mode)."""
    root = logging.getLogger()
    if not root.handlers:  # (a test runner brings its own handlers: leave those alone)
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        for handler in root.handlers:  # defence in depth: a key never reaches the server log
            handler.addFilter(RedactFilter())
    st.set_page_config(
        page_title="StemDeck",
        page_icon=":material/graphic_eq:",
        layout="wide",
        initial_sidebar_state="collapsed",
    )
    page = st.navigation(pages(), position="top")
    get_state()
    return page


def sandbox_badge() -> None:
    """Say so on every page when the providers are emulators (``python -m sandbox``)."""
    st.badge(
        "Sandbox · emulated providers, no real keys or charges",
        icon=":material/science:",
        color="orange",
    )


def _framed(body: Callable[[], None], where: str) -> None:
    _run.active = True
    try:
        with friendly_errors(where):
            runtime = get_runtime()  # start the shared runtime before the page needs it
            if runtime.settings.sandbox:
                sandbox_badge()
            body()
    finally:
        _run.active = False


def run_app() -> None:
    """The entry point's whole job."""
    page = configure()
    _framed(page.run, f"page {page.title}")


def run_page(body: Callable[[], None]) -> None:
    """Run a page's ``main``: inside app.py's frame, or in one of its own."""
    if getattr(_run, "active", False):
        body()
    else:
        run_app()  # runs this same page file again, now inside the frame
