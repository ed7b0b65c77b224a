"""A job's status as a coloured badge: one table, so History and Compare say the same thing."""

from __future__ import annotations

import streamlit as st

from services.jobs.model import JobStatus

BADGE = {
    JobStatus.QUEUED: ("Queued", "gray", ":material/schedule:"),
    JobStatus.RUNNING: ("Running", "blue", ":material/autorenew:"),
    JobStatus.SUCCEEDED: ("Done", "green", ":material/check_circle:"),
    JobStatus.FAILED: ("Failed", "red", ":material/error:"),
    JobStatus.CANCELLED: ("Cancelled", "orange", ":material/cancel:"),
}


def badge(status: JobStatus) -> None:
    label, colour, icon = BADGE[status]
    st.badge(label, color=colour, icon=icon)  # type: ignore[arg-type]
