"""The synchronized multitrack mixer: one custom component, plus "Download this mix".

Why ``st.components.v2`` (``st.components.v2.component``) and not v1's ``declare_component``:

- v2 mounts plain JS/CSS/HTML in the app page (in a shadow root), so there is no iframe and no
  hand-written postMessage protocol: keyboard focus, aria and the theme (``--st-*`` CSS
  variables) behave like the rest of the page, and the height follows the content.
- It has a persistent state channel (``setStateValue``), exactly what the mix report needs.
- The assets are ordinary files in ``frontend/`` read at import and passed inline, so nothing is
  built at install or CI time and nothing is fetched from a CDN (v2 serves asset *paths* only
  for installed packages with a manifest; inline content needs none).
- It is the API Streamlit now documents for custom components; v1's ``html``/``iframe`` helpers
  are deprecated in 1.67.

Each browser report reruns the mixer's fragment only (never the whole page), and the front-end
throttles reports (settings ≤ 4/s after a debounce, position ≤ 1/``report_interval_s`` while
playing). The stems reach the browser as the job's MP3 previews; see :mod:`.media` for how.
Modules: :mod:`.state` (the parsed report), :mod:`.download` (mixdown on click), ``frontend/``.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from components import waveform
from components.guard import guarded
from components.mixer.download import download_area
from components.mixer.media import preview_url
from components.mixer.state import LaneState, MixerState
from services import stems
from services.jobs.model import Job, JobStatus
from services.mixdown import PRESETS
from services.runtime import Runtime

__all__ = ["LaneState", "MixerState", "render_mixer"]

_FRONTEND = Path(__file__).with_name("frontend")
COMPONENT_NAME = "stemdeck_mixer"

_component = st.components.v2.component(
    COMPONENT_NAME,
    html='<div class="sdm-mount"></div>',
    css=(_FRONTEND / "mixer.css").read_text(encoding="utf-8"),
    js=(_FRONTEND / "mixer.js").read_text(encoding="utf-8"),
)


# ---------------------------------------------------------------- public entry points


def render_mixer(
    job: Job,
    runtime: Runtime,
    *,
    key: str | None = None,
    on_report: Callable[[MixerState | None], None] | None = None,
    report_interval_s: float = 1.0,
    diagnostics: bool = False,
) -> MixerState | None:
    """Draw the mixer for ``job`` and the "Download this mix" area under it.

    Both live in one fragment, so the browser's reports rerun only this part of the page.
    ``on_report`` is called inside the fragment with each new state (pages and tests can show
    it); ``diagnostics`` adds a measured lane-alignment figure to reports (costs CPU).
    Returns the state known when the page ran.
    """
    if job.status is not JobStatus.SUCCEEDED or not job.artifacts:
        st.info("The mixer opens when the split has finished.", icon=":material/tune:")
        return None
    key = key or f"mixer-{job.id}"
    # Built on full runs only: fragment reruns reuse these arguments, so the previews are not
    # re-registered (re-read and re-hashed) on every report; their references stay valid.
    data = component_data(job, runtime, key, report_interval_s, diagnostics)
    return _mixer_fragment(job, runtime, key, data, on_report)


@st.fragment
@guarded
def _mixer_fragment(
    job: Job,
    runtime: Runtime,
    key: str,
    data: dict[str, Any],
    on_report: Callable[[MixerState | None], None] | None,
) -> MixerState | None:
    state = mount(data, key=key)
    if on_report is not None:
        on_report(state)
    download_area(job, runtime, state, key=key)
    return state


def mount(data: dict[str, Any], *, key: str) -> MixerState | None:
    """Mount the component with prepared :func:`component_data`."""
    if not data["lanes"]:
        st.warning("This job has no playable previews, so the mixer cannot open.",
                   icon=":material/warning:")
        return None
    result = _component(key=key, data=data, default={"state": None}, on_state_change=_ignore)
    return MixerState.parse(result.get("state"))


def _ignore() -> None:
    """State changes need no callback: the fragment rerun reads the new state."""


def component_data(
    job: Job, runtime: Runtime, key: str, report_interval_s: float, diagnostics: bool
) -> dict[str, Any]:
    """Everything the front-end needs: lanes (URL, colour, packed peaks) and presets."""
    artifacts = sorted(job.artifacts, key=lambda a: stems.sort_key(a.stem))
    lanes = []
    for art in artifacts:
        preview = runtime.artifact_path(job, art.preview)
        url = preview_url(preview, f"{key}:{art.stem}") if preview.is_file() else None
        if url is None:
            continue
        duration, packed = _packed_peaks(runtime.artifact_path(job, art.peaks))
        lanes.append({
            "stem": art.stem,
            "label": stems.label(art.stem),
            "colour": stems.colour(art.stem),
            "url": url,
            "duration_s": duration or job.spec.duration_s,
            "peaks": packed,
        })
    names = [lane["stem"] for lane in lanes]
    presets = [
        {
            "name": p.name,
            "label": p.label,
            "description": p.description,
            "lanes": {stem: asdict(s) for stem, s in p(names).items()},
        }
        for p in PRESETS.values()
        if p.applies(names)
    ]
    return {
        "job": job.id,
        "title": job.spec.input_name,
        "duration_s": job.spec.duration_s,
        "report_ms": round(report_interval_s * 1000),
        "diagnostics": diagnostics,
        "lanes": lanes,
        "presets": presets,
    }


def _packed_peaks(path: Path) -> tuple[float, str]:
    """Peaks as base64 int8 (max, min) pairs: ~3 kB per lane instead of ~25 kB of JSON floats."""
    if not path.is_file():
        return 0.0, ""
    peaks = waveform.peaks_from_file(path)  # cached by path + mtime
    return peaks.duration_s, _pack(tuple(peaks.maxs), tuple(peaks.mins))


@functools.lru_cache(maxsize=256)
def _pack(maxs: tuple[float, ...], mins: tuple[float, ...]) -> str:
    pairs = np.empty(2 * len(maxs), dtype=np.int8)
    pairs[0::2] = np.round(np.clip(maxs, -1, 1) * 127)
    pairs[1::2] = np.round(np.clip(mins, -1, 1) * 127)
    return base64.b64encode(pairs.tobytes()).decode("ascii")
