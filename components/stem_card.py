"""One stem of a finished job: coloured label, waveform, player, download, silence note."""

from __future__ import annotations

import html
import math
from pathlib import Path

import streamlit as st

from components import waveform
from services import stems
from services.audio.formats import ExportFormat
from services.inputs import safe_filename
from services.jobs.model import Artifact, Job

NEAR_SILENT_DB = -50.0  # RMS below this: the stem is (almost) empty for this track

MIME = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg"}


def download_name(job: Job, part: str, extension: str) -> str:
    """``My Song.mp3``, ``vocals``, ``wav`` → ``My Song - vocals.wav`` (safe to save as)."""
    return safe_filename(f"{Path(job.spec.input_name).stem} - {part}.{extension}")


def label_html(stem: str) -> str:
    """A colour dot and the stem label; the colour comes from services.stems, never from input."""
    return (
        f'<span style="color:{stems.colour(stem)};font-size:1.25em">●</span>&nbsp;'
        f"<b>{html.escape(stems.label(stem))}</b>"
    )


def render(job: Job, artifact: Artifact, workspace: Path, fmt: ExportFormat) -> None:
    """Draw the card in the current container; files are read lazily (download on click)."""
    stem_file = workspace / artifact.file
    with st.container(border=True, key=f"stem:{job.id}:{artifact.stem}"):
        head, action = st.columns([3, 1], vertical_alignment="center")
        head.markdown(label_html(artifact.stem), unsafe_allow_html=True)
        renamed = artifact.provider_stem and artifact.provider_stem != artifact.stem
        also = f" (the provider calls it “{artifact.provider_stem}”)" if renamed else ""
        action.download_button(
            f"{fmt.extension.upper()}",
            data=stem_file.read_bytes,  # read on click, on Streamlit's thread: not on rerun
            file_name=download_name(job, artifact.stem, fmt.extension),
            mime=MIME[fmt.container],
            icon=":material/download:",
            on_click="ignore",
            key=f"dl:{job.id}:{artifact.stem}",
            help=f"Download {stems.label(artifact.stem)} as {fmt.label}{also}",
            width="stretch",
            disabled=not stem_file.exists(),
        )
        peaks_path = workspace / artifact.peaks
        if peaks_path.exists():
            waveform.show(
                waveform.peaks_from_file(peaks_path),
                stems.colour(artifact.stem),
                key=f"wave:{job.id}:{artifact.stem}",
            )
        preview = workspace / artifact.preview
        if preview.exists():
            st.audio(str(preview), format="audio/mpeg")
        if artifact.rms_db < NEAR_SILENT_DB:
            level = f"{artifact.rms_db:.0f} dB RMS" if math.isfinite(artifact.rms_db) else "silent"
            st.caption(
                f":material/volume_off: Nearly silent ({level}): this track has little or no "
                f"{stems.label(artifact.stem).lower()} content."
            )
