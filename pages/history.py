"""History: stored comparisons and every split, newest first, with open / cancel / delete."""

from __future__ import annotations

import streamlit as st

from components import fmt, job_badge, job_progress, provider_picker
from components.guard import callback, guarded, show_notice
from components.navigation import COMPARE, JOB_PARAM, RESULTS, SPLIT, comparison_link
from components.shell import run_page
from components.state import get_comparisons, get_runtime, get_state
from services.audio.formats import ExportFormat
from services.compare import Comparison, Comparisons
from services.jobs.model import Job, JobStatus
from services.runtime import Runtime

LIMIT = 200
REFRESH_S = 2.0


def describe(runtime: Runtime, job: Job) -> str:
    """``Local engine · 2 stems · WAV 16-bit`` (ids when the provider is gone)."""
    engine, mode = provider_picker.labels(runtime.providers(), job.spec.provider, job.spec.mode)
    export = ExportFormat.from_options(job.spec.export).label
    return " · ".join(fmt.md(part) for part in (engine, mode, export))


@callback
def _delete(runtime: Runtime, job_id: str) -> None:
    runtime.delete(job_id)
    state = get_state()
    if state.results_job_id == job_id:
        state.results_job_id = None
    if state.job_id == job_id:
        state.job_id = None


def row(runtime: Runtime, job: Job) -> None:
    with st.container(border=True, key=f"history:{job.id}"):
        name, status, timing, actions = st.columns([4, 1.3, 2, 2.2], vertical_alignment="center")
        name.markdown(f"**{fmt.md(job.spec.input_name)}**")
        name.caption(describe(runtime, job))
        with status:
            job_badge.badge(job.status)
        timing.caption(
            f"{fmt.when(job.created_at)}  \nlength {fmt.clock(job.spec.duration_s)}"
            + (f" · took {fmt.span(job.elapsed_s)}" if job.elapsed_s is not None else "")
        )
        with actions, st.container(horizontal=True, horizontal_alignment="right"):
            st.page_link(RESULTS, label="Open", icon=":material/open_in_new:",
                         query_params={JOB_PARAM: job.id})
            if not job.status.terminal:
                st.button("Cancel", key=f"history:cancel:{job.id}", icon=":material/cancel:",
                          on_click=callback(runtime.cancel), args=(job.id,))
            else:
                with st.popover("Delete", icon=":material/delete:", key=f"history:pop:{job.id}"):
                    st.markdown("Delete this split and all its files?")
                    st.button("Delete for good", type="primary", key=f"history:delete:{job.id}",
                              on_click=_delete, args=(runtime, job.id))
        if not job.status.terminal:
            st.progress(min(max(job.progress, 0.0), 1.0), text=job_progress.progress_text(job))
        elif job.status is JobStatus.FAILED and job.error:
            st.caption(f":red[{fmt.md(job.error)}]")


def job_list(runtime: Runtime, live: bool) -> None:
    """All rows; a live list refreshes itself until no job is in flight any more."""
    show_notice()
    jobs = runtime.list_jobs(limit=LIMIT)
    if live and all(j.status.terminal for j in jobs):
        st.rerun()  # last job finished: redraw once without the timer
    for job in jobs:
        row(runtime, job)
    if len(jobs) == LIMIT:
        st.caption(f"Showing the newest {LIMIT} splits.")


def lane_summary(jobs: list[Job | None]) -> str:
    """``2 done · 1 failed``: the lanes' states in one line."""
    counts: dict[str, int] = {}
    for job in jobs:
        label = job_badge.BADGE[job.status][0] if job is not None else "Not run"
        counts[label] = counts.get(label, 0) + 1
    return " · ".join(f"{n} {label.lower()}" for label, n in counts.items())


def comparison_status(jobs: list[Job | None]) -> None:
    """One badge for the whole comparison (running, all done, or partly done), then counts."""
    if any(job is not None and not job.status.terminal for job in jobs):
        job_badge.badge(JobStatus.RUNNING)
    elif all(job is not None and job.status is JobStatus.SUCCEEDED for job in jobs):
        job_badge.badge(JobStatus.SUCCEEDED)
    else:
        st.badge("Partly done", color="orange", icon=":material/warning:")
    st.caption(lane_summary(jobs))


@callback
def _delete_comparison(comparison_id: str) -> None:
    get_comparisons().delete(comparison_id)
    compare = get_state().compare
    if compare.comparison_id == comparison_id:
        compare.comparison_id = None


def comparison_row(comparisons: Comparisons, comparison: Comparison) -> None:
    with st.container(border=True, key=f"history:cmp:{comparison.id}"):
        name, status, timing, actions = st.columns([4, 1.3, 2, 2.2], vertical_alignment="center")
        name.markdown(f"**{fmt.md(comparison.input_name)}**")
        name.caption(" vs ".join(
            fmt.md(comparisons.label(comparison, i)) for i in range(len(comparison.lanes))
        ))
        with status:
            comparison_status(comparisons.jobs(comparison))
        timing.caption(f"{fmt.when(comparison.created_at)}  \n"
                       f"length {fmt.clock(comparison.duration_s)}")
        with actions, st.container(horizontal=True, horizontal_alignment="right"):
            comparison_link(comparison.id)
            with st.popover("Delete", icon=":material/delete:",
                            key=f"history:cmp:pop:{comparison.id}"):
                st.markdown("Delete this comparison and its ratings? Its splits stay below.")
                st.button("Delete for good", type="primary",
                          key=f"history:cmp:delete:{comparison.id}",
                          on_click=_delete_comparison, args=(comparison.id,))


def comparison_list() -> None:
    """Stored comparisons (Compare page), each reopenable; nothing at all when there are none."""
    comparisons = get_comparisons()
    stored = comparisons.list(LIMIT)
    if not stored:
        return
    st.subheader("Comparisons", anchor=False)
    for comparison in stored:
        comparison_row(comparisons, comparison)
    st.subheader("Splits", anchor=False)


def main() -> None:
    runtime = get_runtime()
    st.title("History")
    show_notice()
    comparison_list()
    jobs = runtime.list_jobs(limit=LIMIT)
    st.caption("Every split on this server, newest first. Results stay until you delete them.")
    if not jobs:
        st.info("Nothing here yet. Your splits will be listed here.", icon=":material/history:")
        st.page_link(SPLIT, label="Split a song", icon=":material/call_split:")
        st.page_link(COMPARE, label="Compare providers", icon=":material/compare:")
        return
    live = any(not j.status.terminal for j in jobs)
    st.fragment(guarded(job_list), run_every=REFRESH_S if live else None)(runtime, live)


run_page(main)
