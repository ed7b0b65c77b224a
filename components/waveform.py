"""A waveform as a plotly min/max envelope band.

Peaks are precomputed by the services (≤ ~1200 points per track), so a ten-minute stem ships a
few kilobytes to the browser instead of millions of samples. Loading is cached by file path and
modification time: reruns never re-read or re-decode anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from services.audio.peaks import Peaks, compute_peaks, load_peaks

MAX_POINTS = 1200
HEIGHT_PX = 96
_CONFIG = {"displayModeBar": False, "staticPlot": True, "responsive": True}


@st.cache_data(max_entries=512, show_spinner=False)
def _load(path: str, mtime_ns: int) -> Peaks:
    del mtime_ns  # part of the cache key only: a rewritten file is read again
    return load_peaks(Path(path))


def peaks_from_file(path: Path) -> Peaks:
    """Stored peaks JSON (see :func:`services.audio.peaks.save_peaks`), cached."""
    return _load(str(path), path.stat().st_mtime_ns)


@st.cache_data(max_entries=64, show_spinner="Drawing the waveform…")
def _compute(path: str, content_hash: str) -> Peaks:
    del content_hash  # the cache key: the same content is never decoded twice
    return compute_peaks(Path(path), points=MAX_POINTS)


def peaks_of_audio(path: Path, content_hash: str) -> Peaks:
    """Peaks computed from an audio file once per content hash (used for inputs)."""
    return _compute(str(path), content_hash)


def _thin(values: list[float], keep_max: bool) -> np.ndarray:
    """≤ MAX_POINTS buckets keeping the envelope (max of maxs, min of mins), as an array.

    Arrays, not lists: plotly validates a 1200-float list ~5× slower, on every rerun.
    """
    arr = np.asarray(values, dtype=np.float32)
    step = -(-len(arr) // MAX_POINTS)
    if step <= 1:
        return arr
    padded = np.pad(arr, (0, (-len(arr)) % step), mode="edge").reshape(-1, step)
    return padded.max(axis=1) if keep_max else padded.min(axis=1)


def figure(peaks: Peaks, colour: str, height: int = HEIGHT_PX) -> go.Figure:
    """The envelope as a filled band between the min and max curves, time on the x axis."""
    maxs = _thin(peaks.maxs, keep_max=True)
    mins = _thin(peaks.mins, keep_max=False)
    xs = np.linspace(0.0, peaks.duration_s, num=len(maxs))
    line = {"width": 0.6, "color": colour}
    fig = go.Figure(
        [
            go.Scatter(x=xs, y=maxs, mode="lines", line=line, hoverinfo="skip"),
            go.Scatter(
                x=xs, y=mins, mode="lines", line=line, fill="tonexty", fillcolor=colour,
                hoverinfo="skip",
            ),
        ]
    )
    fig.update_layout(
        height=height,
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        showlegend=False,
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        xaxis={"visible": False, "range": [0, peaks.duration_s or 1], "fixedrange": True},
        yaxis={"visible": False, "range": [-1.05, 1.05], "fixedrange": True},
    )
    return fig


def show(peaks: Peaks, colour: str, *, key: str, height: int = HEIGHT_PX) -> None:
    """Render a waveform without the modebar or zoom clutter."""
    st.plotly_chart(figure(peaks, colour, height), key=key, config=_CONFIG, theme=None)
