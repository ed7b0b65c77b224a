"""Live progress of one job: a fragment that polls the runtime once a second.

Only this panel reruns while the job works, so the rest of the page stays responsive. When the
job reaches a terminal state the whole app reruns once (or switches to Results) to show it.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from components import fmt
from components.guard import callback, guarded, show_notice
from services.jobs.model import Job, JobStatus
from services.runtime import Runtime

POLL_S = 1.0


def progress_text(job: Job) -> str:
    """``Separating chunk 3/8 · 42% · about 20 s left``."""
    if job.status is JobStatus.QUEUED:
        return "Waiting for a free worker…"
    parts = [job.stage or "Working", f"{job.progress:.0%}"]
    if job.eta_s is not None and job.eta_s > 0:
        parts.append(f"about {fmt.span(job.eta_s)} left")
    return " · ".join(parts)


@st.fragment(run_every=POLL_S)
@guarded
def panel(runtime: Runtime, job_id: str, on_finish: Callable[[Job], None]) -> None:
    """Progress bar with stage and ETA, and a Cancel button; ``on_finish`` runs once at the end."""
    show_notice()
    job = runtime.get(job_id)
    if job is None:
        st.warning("This job no longer exists (it may have been deleted).")
        return
    if job.status.terminal:
        on_finish(job)
        return
    with st.container(border=True, key=f"progress:{job_id}"):
        st.markdown(f"**Splitting** {fmt.md(job.spec.input_name)}")
        st.progress(min(max(job.progress, 0.0), 1.0), text=progress_text(job))
        st.button(
            "Cancel",
            icon=":material/cancel:",
            key=f"cancel:{job_id}",
            on_click=callback(runtime.cancel),
            args=(job_id,),
        )
