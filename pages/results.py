"""Results: the gallery of one job — facts, mixer, and a card per stem."""

from __future__ import annotations

import importlib
import importlib.util

import streamlit as st

from components import cost_table, fmt, job_progress, provider_picker, stem_card
from components.guard import friendly_errors
from components.navigation import JOB_PARAM, SPLIT
from components.shell import run_page
from components.state import get_runtime, get_state
from services import stems
from services.audio.formats import ExportFormat
from services.jobs.model import Job, JobStatus
from services.pricing.table import money_for
from services.runtime import Runtime

COLUMNS = 2


def pick_job(runtime: Runtime) -> Job | None:
    """The job named in the URL, else the one this session last opened, else the newest result."""
    state = get_state()
    wanted = st.query_params.get(JOB_PARAM) or state.results_job_id
    if wanted:
        job = runtime.get(wanted)
        if job is not None:
            return job
        st.warning("That result no longer exists; showing the latest one instead.",
                   icon=":material/warning:")
    return next((j for j in runtime.list_jobs() if j.status is JobStatus.SUCCEEDED), None)


def facts(runtime: Runtime, job: Job, export: ExportFormat) -> None:
    engine, mode = provider_picker.labels(runtime.providers(), job.spec.provider, job.spec.mode)
    parts = (fmt.md(engine), fmt.md(mode), export.label, f"split {fmt.when(job.created_at)}")
    st.caption(" · ".join(parts))
    cols = st.columns(4)
    cols[0].metric("Length", fmt.clock(job.spec.duration_s))
    cols[1].metric("Stems", len(job.artifacts))
    cols[2].metric("Time taken", fmt.span(job.elapsed_s))
    cols[3].metric("Speed", fmt.speed(job.realtime_factor),
                   help="Seconds of audio separated per second of processing.")
    money = money_for(job.spec.provider, job.actual_cost, runtime.settings)
    st.caption(cost_table.job_cost_text(job, money))


def mixer(job: Job, runtime: Runtime) -> None:
    """The synchronized mixer (components/mixer, MIXER helper) above the cards, when installed."""
    if importlib.util.find_spec("components.mixer") is None:
        return
    with friendly_errors("mixer"):
        render = getattr(importlib.import_module("components.mixer"), "render_mixer", None)
        if render is not None:
            render(job, runtime)


def not_finished(job: Job) -> None:
    """Running, failed or cancelled jobs: say so instead of an empty gallery."""
    if job.status.terminal:
        if job.status is JobStatus.FAILED:
            st.error(job.error or "This split failed.", icon=":material/error:")
        else:
            st.info("This split was cancelled.", icon=":material/cancel:")
        st.page_link(SPLIT, label="Try again on the Split page", icon=":material/call_split:")
        return
    job_progress.panel(get_runtime(), job.id, lambda _job: st.rerun())


def gallery(runtime: Runtime, job: Job, export: ExportFormat) -> None:
    workspace = runtime.workspace(job.id)
    ordered = sorted(job.artifacts, key=lambda a: stems.sort_key(a.stem))
    for row_start in range(0, len(ordered), COLUMNS):
        cols = st.columns(COLUMNS)
        for col, artifact in zip(cols, ordered[row_start : row_start + COLUMNS], strict=False):
            with col, friendly_errors(f"stem card {artifact.stem}"):
                stem_card.render(job, artifact, workspace, export)


def main() -> None:
    runtime = get_runtime()
    job = pick_job(runtime)
    if job is None:
        st.title("Results")
        st.info("No results yet. Split a song and its stems will appear here.",
                icon=":material/library_music:")
        st.page_link(SPLIT, label="Split a song", icon=":material/call_split:")
        return
    get_state().results_job_id = job.id
    title, action = st.columns([4, 1], vertical_alignment="bottom")
    title.title(fmt.md(job.spec.input_name), anchor=False)
    if job.status is not JobStatus.SUCCEEDED:
        not_finished(job)
        return
    export = ExportFormat.from_options(job.spec.export)
    action.download_button(
        "Download all (zip)",
        data=lambda: runtime.zip_for(job.id).read_bytes(),  # built on click, then cached on disk
        file_name=stem_card.download_name(job, "stems", "zip"),
        mime="application/zip",
        icon=":material/folder_zip:",
        type="primary",
        on_click="ignore",
        key=f"zip:{job.id}",
        width="stretch",
    )
    facts(runtime, job, export)
    mixer(job, runtime)
    gallery(runtime, job, export)


run_page(main)
