"""Preview of the validated input on Split: facts, waveform and a player.

The browser gets a small MP3 preview (made once per content hash), never the original file,
so a 200 MB WAV is not re-read and re-sent on every rerun.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from components import fmt, waveform
from services.audio.encode import write_preview
from services.config import Settings
from services.inputs import InputInfo

INPUT_COLOUR = "#9aa4b8"


def preview_path(info: InputInfo, settings: Settings) -> Path:
    """The MP3 the browser plays for this input, made once (``<data_dir>/previews/<hash>.mp3``)."""
    dest = settings.data_dir / "previews" / f"{info.hash}.mp3"
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        with st.spinner("Preparing a preview…"):
            write_preview(info.path, dest)
    return dest


def facts(info: InputInfo) -> str:
    """``MP3 · 3:05 · 44.1 kHz stereo · 4.2 MB``."""
    return f"{info.info.label} · {fmt.size(info.info.size_bytes)}"


def render(info: InputInfo, settings: Settings) -> None:
    """Name, facts, waveform and player of the current input."""
    with st.container(border=True, key="split:input"):
        st.markdown(f"**{fmt.md(info.name)}**")
        st.caption(facts(info) + (f" · from {fmt.md(info.source_url)}" if info.source_url else ""))
        waveform.show(
            waveform.peaks_of_audio(info.path, info.hash), INPUT_COLOUR, key="split:input:wave"
        )
        st.audio(str(preview_path(info, settings)), format="audio/mpeg")
