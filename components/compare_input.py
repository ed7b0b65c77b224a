"""Compare's track: a bundled example with known stems, an upload, a link or the Split input,
plus optional reference stems (they turn on SDR per stem).

Every source ends in one validated, stored input (services/inputs), exactly like Split's, so a
comparison's lanes reuse stored results of the same track.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from components import fmt, input_preview
from components.state import CompareDraft, get_state
from services import stems
from services.config import MB, Settings
from services.errors import StemDeckError
from services.examples import EXAMPLES, materialize
from services.inputs import InputInfo, ingest_bytes, ingest_url

KEY = "compare"
IGNORE = ""  # the stem choice for an uploaded file that is not a reference
DURATION_SLACK_S = 0.5  # a reference this much shorter or longer than the track is flagged


def _set_input(draft: CompareDraft, load: Callable[[], InputInfo]) -> None:
    """Run ``load``; the new track replaces the old one and drops the old references."""
    try:
        info = load()
    except StemDeckError as err:
        draft.input, draft.input_error = None, err.user_message
        return
    draft.input, draft.input_error, draft.example_id = info, None, None
    draft.references, draft.reference_files = {}, {}


def _use_example(draft: CompareDraft, example_id: str, settings: Settings) -> None:
    try:
        info, refs = materialize(example_id, settings)
    except StemDeckError as err:
        draft.input, draft.input_error = None, err.user_message
        return
    draft.input, draft.input_error, draft.example_id = info, None, example_id
    draft.references, draft.reference_files = dict(refs), {}


def example_source(draft: CompareDraft, settings: Settings) -> None:
    """The bundled examples: synthesised, so every lane gets an SDR against the true stems."""
    by_id = {e.id: e for e in EXAMPLES}
    chosen = st.selectbox(
        "Example track", list(by_id), format_func=lambda i: by_id[i].name, key=f"{KEY}:example"
    )
    example = by_id[chosen]
    st.caption(
        f"{example.description}  \nKnown stems: "
        + ", ".join(stems.label(s) for s in example.stems)
    )
    if st.button("Use this example", key=f"{KEY}:use-example", icon=":material/science:"):
        with st.spinner("Preparing the example…"):
            _use_example(draft, chosen, settings)


def _upload_changed() -> None:
    if st.session_state.get(f"{KEY}:upload") is None:
        draft = get_state().compare
        draft.upload_id = None
        if draft.example_id is None:
            draft.input = draft.input_error = None


def upload_source(draft: CompareDraft, settings: Settings) -> None:
    uploaded = st.file_uploader(
        "Audio file",
        key=f"{KEY}:upload",
        max_upload_size=max(1, settings.max_upload_bytes // MB),
        on_change=_upload_changed,
    )
    if uploaded is None or uploaded.file_id == draft.upload_id:
        return
    draft.upload_id = uploaded.file_id
    with st.spinner("Checking the file…"):
        _set_input(draft, lambda: ingest_bytes(uploaded.getvalue(), uploaded.name, settings))


def url_source(draft: CompareDraft, settings: Settings) -> None:
    with st.form(f"{KEY}:url-form", border=False):
        url = st.text_input(
            "Direct link to an audio file",
            key=f"{KEY}:url",
            placeholder="https://example.com/song.mp3",
        )
        fetch = st.form_submit_button("Fetch", icon=":material/download:")
    if not fetch:
        return
    if not url.strip():
        draft.input_error = "Paste a link to an audio file first."
        return
    with st.spinner("Fetching…"):
        _set_input(draft, lambda: ingest_url(url.strip(), settings))


def split_source(draft: CompareDraft) -> None:
    """The track already chosen on Split, one click away."""
    split_input = get_state().input
    if split_input is None:
        st.caption("No track on the Split page yet.")
        return
    st.markdown(f"**{fmt.md(split_input.name)}** · {fmt.clock(split_input.info.duration_s)}")
    if st.button("Use this track", key=f"{KEY}:use-split", icon=":material/call_split:"):
        _set_input(draft, lambda: split_input)


def pick_track(draft: CompareDraft, settings: Settings) -> None:
    """The four sources as tabs, then the chosen track's preview (or why it was refused)."""
    tabs = st.tabs(["Example with known stems", "Upload", "From a link", "From Split"])
    with tabs[0]:
        example_source(draft, settings)
    with tabs[1]:
        upload_source(draft, settings)
    with tabs[2]:
        url_source(draft, settings)
    with tabs[3]:
        split_source(draft)
    if draft.input_error:
        st.error(draft.input_error, icon=":material/error:")
    if draft.input is not None:
        input_preview.render(draft.input, settings)
        references(draft, settings)
    elif not draft.input_error:
        st.info(
            "Pick a bundled example (its true stems are known, so every lane gets an SDR), "
            "or upload or link your own track.",
            icon=":material/music_note:",
        )


def guess_stem(filename: str) -> str:
    """``My Song - vocals.wav`` → ``vocals``; ``IGNORE`` when no canonical stem is named."""
    words = re.split(r"[^a-z]+", Path(filename).stem.lower())
    return next((w for w in reversed(words) if w in stems.ORDER), IGNORE)


def references(draft: CompareDraft, settings: Settings) -> None:
    """Reference stems: the example's own, or files the user uploads (each validated once)."""
    assert draft.input is not None
    if draft.example_id is not None:
        known = sorted(draft.references, key=stems.sort_key)
        st.caption(
            ":material/verified: Reference stems: the example's true "
            + ", ".join(stems.label(s).lower() for s in known)
            + " — every lane gets an SDR per stem."
        )
        return
    with st.expander("Reference stems (optional)", icon=":material/verified:"):
        st.caption(
            "If you have the true stems of this track (e.g. from a multitrack), add them: each "
            "lane then gets an SDR per stem. Name the files after the stem (…vocals.wav) or "
            "pick the stem below."
        )
        files = st.file_uploader(
            "Reference stems", accept_multiple_files=True, key=f"{KEY}:refs",
            max_upload_size=max(1, settings.max_upload_bytes // MB),
        ) or []
        chosen: dict[str, Path] = {}
        for upload in files:
            if upload.file_id not in draft.reference_files:
                try:
                    info = ingest_bytes(upload.getvalue(), upload.name, settings)
                except StemDeckError as err:
                    st.error(f"{fmt.md(upload.name)}: {err.user_message}", icon=":material/error:")
                    continue
                draft.reference_files[upload.file_id] = (upload.name, info)
            name, info = draft.reference_files[upload.file_id]
            stem = _reference_row(upload.file_id, name, info, draft.input)
            if stem:
                if stem in chosen:
                    st.warning(f"Two files are marked {stems.label(stem)}; the last one counts.")
                chosen[stem] = info.path
        draft.references = chosen


def _reference_row(file_id: str, name: str, info: InputInfo, track: InputInfo) -> str:
    left, right = st.columns([3, 2], vertical_alignment="center")
    off = abs(info.info.duration_s - track.info.duration_s) > DURATION_SLACK_S
    left.markdown(
        f"{fmt.md(name)} · {fmt.clock(info.info.duration_s)}"
        + (" :orange[(not the track's length)]" if off else "")
    )
    options = [IGNORE, *stems.ORDER]
    return right.selectbox(
        "Stem",
        options,
        index=options.index(guess_stem(name)),
        format_func=lambda s: stems.label(s) if s else "not a reference",
        key=f"{KEY}:ref:{file_id}",
        label_visibility="collapsed",
    )
