"""Page registry and cross-page links, so page paths are spelled in one place."""

from __future__ import annotations

import streamlit as st

SPLIT = "pages/split.py"
RESULTS = "pages/results.py"
HISTORY = "pages/history.py"
SETTINGS = "pages/settings.py"
COMPARE = "pages/compare.py"

JOB_PARAM = "job"  # ?job=<id> on Results: bookmarkable, survives a reload
COMPARISON_PARAM = "comparison"  # ?comparison=<id> on Compare, likewise


def pages() -> list[st.Page]:
    """The app's pages in menu order."""
    return [
        st.Page(SPLIT, title="Split", icon=":material/call_split:", default=True),
        st.Page(RESULTS, title="Results", icon=":material/library_music:"),
        st.Page(COMPARE, title="Compare", icon=":material/compare:"),
        st.Page(HISTORY, title="History", icon=":material/history:"),
        st.Page(SETTINGS, title="Settings", icon=":material/key:"),
    ]


def open_results(job_id: str) -> None:
    """Switch to the Results page showing ``job_id`` (stops the current run)."""
    st.switch_page(RESULTS, query_params={JOB_PARAM: job_id})


def results_link(job_id: str, label: str = "Open results") -> None:
    """A link (not a button) to a job's results, so it also opens in a new tab."""
    st.page_link(
        RESULTS, label=label, icon=":material/library_music:", query_params={JOB_PARAM: job_id}
    )


def settings_link(label: str = "Add a key in Settings") -> None:
    """Where a provider that "needs a key" gets one."""
    st.page_link(SETTINGS, label=label, icon=":material/key:")


def comparison_link(comparison_id: str, label: str = "Open") -> None:
    """A link to a stored comparison (opens in a new tab too)."""
    st.page_link(
        COMPARE, label=label, icon=":material/open_in_new:",
        query_params={COMPARISON_PARAM: comparison_id},
    )
