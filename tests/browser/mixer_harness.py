"""Test page: the mixer for the job named in ``STEMDECK_MIXER_JOB``, plus its reports as JSON.

The browser test reads the ``mixer-report`` block to see exactly what Python received.
"""

from __future__ import annotations

import json
import os

import streamlit as st

from components.mixer import MixerState, render_mixer
from components.state import get_runtime

st.set_page_config(page_title="Mixer harness", layout="wide")
runtime = get_runtime()
job = runtime.get(os.environ["STEMDECK_MIXER_JOB"])
st.title(job.spec.input_name if job else "no job", anchor=False)


def show(state: MixerState | None) -> None:
    with st.container(key="mixer-report"):
        st.code(json.dumps(state.raw if state else None, sort_keys=True), language="json")


if job is not None:
    render_mixer(job, runtime, on_report=show, report_interval_s=0.5, diagnostics=True)
