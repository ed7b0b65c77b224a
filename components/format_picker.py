"""Output format widgets: container, then bit depth (WAV/FLAC) or bitrate (MP3)."""

from __future__ import annotations

import streamlit as st

from components.state import PERSIST
from services.audio.formats import MP3_BITRATES, ExportFormat

_CONTAINERS = {"wav": "WAV", "flac": "FLAC", "mp3": "MP3"}
_HELP = {
    "wav": "Uncompressed; best for editing in a DAW.",
    "flac": "Lossless and about half the size of WAV.",
    "mp3": "Small files for listening and sharing; lossy.",
}


def pick(key: str) -> ExportFormat:
    """Render the format widgets under ``key`` and return the chosen ExportFormat."""
    container = (
        st.segmented_control(
            "Output format",
            list(_CONTAINERS),
            format_func=_CONTAINERS.__getitem__,
            default="wav",
            required=True,
            key=f"{key}:container",
            persist_state=PERSIST,
        )
        or "wav"
    )
    if container == "mp3":
        bitrate = st.select_slider(
            "Bitrate (kbit/s)",
            MP3_BITRATES,
            value=320,
            key=f"{key}:bitrate",
            persist_state=PERSIST,
        )
        fmt = ExportFormat("mp3", bitrate_kbps=int(bitrate))
    else:
        depth = st.segmented_control(
            "Bit depth",
            [16, 24],
            default=16,
            required=True,
            format_func=lambda d: f"{d}-bit",
            key=f"{key}:depth",
            persist_state=PERSIST,
        )
        fmt = ExportFormat(container, bit_depth=int(depth or 16))  # type: ignore[arg-type]
    st.caption(_HELP[container])
    return fmt
