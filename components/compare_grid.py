"""Side by side: one column per lane, one row per canonical stem, live progress while running.

Only the progress panel is a polling fragment; the grid itself is drawn on full runs, and the
fragment triggers one full run each time another lane finishes, so stems appear lane by lane
without the players being rebuilt every second. Cells use the jobs' MP3 previews and stored
peaks (a few kB per waveform), never the exported stems.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import streamlit as st

from components import cost_table, fmt, job_badge, job_progress, waveform
from components.guard import guarded
from components.stem_card import NEAR_SILENT_DB, label_html
from services import stems
from services.compare import Comparison, Comparisons
from services.jobs.model import Artifact, Job, JobStatus
from services.pricing.table import money_for
from services.runtime import Runtime

POLL_S = 1.0
CELL_WAVE_PX = 64


def reused(comparison: Comparison, job: Job) -> bool:
    """The lane's job had finished before the comparison was recorded (its jobs are submitted
    first): a stored result was reused, nothing ran or was charged again."""
    return job.finished_at is not None and job.finished_at < comparison.created_at


def finished(jobs: Sequence[Job | None]) -> int:
    """Lanes with nothing more to wait for (no job, or a terminal one)."""
    return sum(job is None or job.status.terminal for job in jobs)


def lane_header(
    runtime: Runtime, comparisons: Comparisons, comparison: Comparison, index: int, label: str,
    job: Job | None,
) -> None:
    """Name, status, time taken, credits and stems returned (or why the lane has none)."""
    with st.container(border=True, key=f"compare:head:{index}"):
        st.markdown(f"**{fmt.md(label)}**")
        if job is None:
            st.badge("Not run", color="red", icon=":material/block:")
        else:
            job_badge.badge(job.status)
            again = reused(comparison, job)
            facts = (["reused a stored result: not run or charged again"] if again
                     else [f"took {fmt.span(job.elapsed_s)}"] if job.elapsed_s is not None
                     else [])
            if job.status is JobStatus.SUCCEEDED:
                facts.append(f"{len(job.artifacts)} stems")
            if not again:
                money = money_for(job.spec.provider, job.actual_cost, runtime.settings)
                facts.append(cost_table.job_cost_text(job, money))
            st.caption("  \n".join(facts))
        error = comparisons.lane_error(comparison, index)
        if error:
            st.caption(f":red[{fmt.md(error)}]")


def headers(
    runtime: Runtime, comparisons: Comparisons, comparison: Comparison, labels: Sequence[str],
    jobs: Sequence[Job | None],
) -> None:
    for i, col in enumerate(st.columns(len(labels))):
        with col:
            lane_header(runtime, comparisons, comparison, i, labels[i], jobs[i])


@st.fragment(run_every=POLL_S)
@guarded
def progress(comparisons: Comparisons, comparison: Comparison, seen_finished: int) -> None:
    """Per-lane progress bars; a full run whenever another lane finishes (to draw its stems)."""
    jobs = comparisons.jobs(comparison)
    if finished(jobs) != seen_finished:
        st.rerun()
    for job, col in zip(jobs, st.columns(len(jobs)), strict=True):
        if job is not None and not job.status.terminal:
            col.progress(min(max(job.progress, 0.0), 1.0), text=job_progress.progress_text(job))


def returned_stems(jobs: Sequence[Job | None]) -> list[str]:
    """Every stem any finished lane returned, in the canonical order."""
    names = {a.stem for job in jobs if job and job.status is JobStatus.SUCCEEDED
             for a in job.artifacts}
    return sorted(names, key=stems.sort_key)


def artifact(job: Job | None, stem: str) -> Artifact | None:
    if job is None or job.status is not JobStatus.SUCCEEDED:
        return None
    return next((a for a in job.artifacts if a.stem == stem), None)


def cell(runtime: Runtime, comparison: Comparison, index: int, job: Job | None, stem: str) -> None:
    """Waveform and player of one lane's stem; "missing" when the lane did not return it."""
    if job is None or job.status is not JobStatus.SUCCEEDED:
        st.caption("…" if job is not None and not job.status.terminal else "–")
        return
    art = artifact(job, stem)
    if art is None:
        st.caption(":material/block: missing")
        return
    peaks = runtime.artifact_path(job, art.peaks)
    if peaks.is_file():
        waveform.show(waveform.peaks_from_file(peaks), stems.colour(stem),
                      key=f"compare:wave:{comparison.id}:{index}:{stem}", height=CELL_WAVE_PX)
    preview = runtime.artifact_path(job, art.preview)
    if preview.is_file():
        st.audio(str(preview), format="audio/mpeg")
    if art.rms_db < NEAR_SILENT_DB:
        level = f"{art.rms_db:.0f} dB" if math.isfinite(art.rms_db) else "silent"
        st.caption(f":material/volume_off: nearly silent ({level})")


def grid(
    runtime: Runtime, comparison: Comparison, jobs: Sequence[Job | None]
) -> None:
    """One row per stem any lane returned, the lanes' cells aligned under their headers."""
    for stem in returned_stems(jobs):
        with st.container(key=f"compare:row:{stem}"):
            st.markdown(label_html(stem), unsafe_allow_html=True)
            for i, col in enumerate(st.columns(len(jobs))):
                with col:
                    cell(runtime, comparison, i, jobs[i], stem)
