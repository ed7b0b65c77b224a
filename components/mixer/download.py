"""The "Download this mix" area: current settings or a preset, mixed on the server on click."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import streamlit as st

from components import format_picker
from components.mixer.state import MixerState
from components.stem_card import MIME, download_name
from services import stems
from services.audio.formats import ExportFormat
from services.errors import StemDeckError
from services.jobs.model import Job
from services.mixdown import PRESETS, LaneSettings, audible, mixdown
from services.runtime import Runtime

log = logging.getLogger("stemdeck.mixer")

MIXES_DIR = "mixes"
KEEP_MIXES = 6  # per job: older rendered mixes are deleted (they are cheap to redo)
CURRENT = "current"


def download_area(job: Job, runtime: Runtime, state: MixerState | None, *, key: str) -> None:
    """Pick a mix (current settings or a preset) and a format; the mix is rendered on click."""
    names = [a.stem for a in job.artifacts]
    choices = {CURRENT: "Current mix"} | {
        name: p.label for name, p in PRESETS.items() if p.applies(names)
    }
    files = {a.stem: runtime.artifact_path(job, a.file) for a in job.artifacts}
    missing = [stem for stem, path in files.items() if not path.is_file()]
    with st.container(border=True, key=f"{key}-download"):
        st.markdown("**Download this mix**")
        left, right = st.columns([1.25, 1], gap="large")
        with right:
            fmt = format_picker.pick(f"{key}:mixfmt")
        with left:
            choice = st.segmented_control(
                "Mix", list(choices), format_func=choices.__getitem__, default=CURRENT,
                required=True, key=f"{key}:mix", help="Current mix = what the mixer plays now.",
            ) or CURRENT
            lanes = _lanes_for(choice, names, state)
            st.caption(describe(lanes, names))
            st.download_button(
                f"Download {choices[choice].lower()} · {fmt.label}",
                data=functools.partial(
                    _render_mix, files, lanes, runtime.workspace(job.id) / MIXES_DIR, choice, fmt
                ),
                file_name=mix_file_name(job, choice, fmt.extension),
                mime=MIME[fmt.container],
                icon=":material/download:",
                type="primary",
                on_click="ignore",
                key=f"{key}:mixdl",
                disabled=bool(missing),
                help="Mixed on the server from the full-quality stems when you click.",
            )
            if missing:
                st.caption(f"Stem files missing: {', '.join(missing)}.")


def _lanes_for(
    choice: str, names: list[str], state: MixerState | None
) -> dict[str, LaneSettings]:
    if choice in PRESETS:
        return PRESETS[choice](names)
    reported = state.settings() if state else {}
    return {stem: reported.get(stem, LaneSettings()) for stem in names}


def mix_file_name(job: Job, choice: str, extension: str) -> str:
    """``My Song - karaoke.mp3``, whatever the input was called (a name like ``../x`` too)."""
    return download_name(job, _file_label(choice), extension)


def _file_label(choice: str) -> str:
    return "mix" if choice == CURRENT else choice


def describe(lanes: Mapping[str, LaneSettings], names: list[str]) -> str:
    """One line saying how the mix differs from the original, e.g. "Vocals muted · Bass −3 dB"."""
    heard = audible({stem: lanes[stem] for stem in names})
    any_solo = any(lanes[s].solo for s in names)
    parts = []
    if any_solo:
        parts.append(f"Only {', '.join(stems.label(s) for s in names if heard[s]) or 'silence'}")
    for stem in sorted(names, key=stems.sort_key):
        lane, label = lanes[stem], stems.label(stem)
        if not heard[stem]:
            if lane.mute and not any_solo:
                parts.append(f"{label} muted")
            continue
        bits = []
        if lane.gain_db != 0:
            bits.append("−∞ dB" if lane.gain_db == -math.inf else f"{lane.gain_db:+.1f} dB")
        if lane.pan:
            bits.append(f"{'L' if lane.pan < 0 else 'R'}{round(abs(lane.pan) * 100)}")
        if bits:
            parts.append(f"{label} {' '.join(bits)}".replace("-", "−"))
    return " · ".join(parts) or "All stems as separated (the original mix)."


def _render_mix(
    files: dict[str, Path],
    lanes: dict[str, LaneSettings],
    folder: Path,
    choice: str,
    fmt: ExportFormat,
) -> bytes:
    """Runs on download click (not on rerun): reuse an identical earlier mix, else mix now."""
    digest = hashlib.sha256(
        json.dumps(
            {
                "lanes": {s: asdict(lane) for s, lane in sorted(lanes.items())},
                "fmt": fmt.as_options(),
                "files": {s: [str(p), p.stat().st_mtime_ns] for s, p in sorted(files.items())},
            },
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()[:16]
    dest = folder / f"{_file_label(choice)}-{digest}"
    done = dest.with_name(f"{dest.name}.{fmt.extension}")
    try:
        if not done.is_file():
            done = mixdown(files, lanes, dest, fmt)
            _prune(folder)
        return done.read_bytes()
    except StemDeckError:
        raise
    except Exception as exc:
        log.exception("mixdown failed")
        raise StemDeckError("Mixing failed; the details are in the server log.") from exc


def _prune(folder: Path) -> None:
    """Keep the newest few rendered mixes of a job."""
    mixes = sorted(
        (p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in mixes[KEEP_MIXES:]:
        old.unlink(missing_ok=True)
