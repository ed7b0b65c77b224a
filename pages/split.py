"""Split: pick an input, an engine, a mode and a format; run; watch progress."""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from components import (
    confirm,
    cost_table,
    fmt,
    format_picker,
    input_preview,
    job_progress,
    provider_picker,
)
from components.guard import friendly_errors
from components.navigation import open_results, results_link, settings_link
from components.shell import run_page
from components.state import PERSIST, AppState, get_runtime, get_state
from services.audio import decode
from services.audio.formats import ExportFormat
from services.config import MB
from services.errors import StemDeckError
from services.inputs import InputInfo, ingest_bytes, ingest_url
from services.jobs.model import Job, JobSpec, JobStatus
from services.pricing import intents
from services.pricing.quotes import Quote
from services.providers.base import Capabilities
from services.providers.preflight import Problem
from services.runtime import Runtime

FORMATS_HINT = decode.SUPPORTED


def _accept(state: AppState, info: InputInfo) -> None:
    state.input, state.input_error = info, None


def _reject(state: AppState, err: StemDeckError) -> None:
    state.input, state.input_error = None, err.user_message


def _upload_changed() -> None:
    """The user added, replaced or removed the file (not fired when the page is re-entered)."""
    if st.session_state.get("split:upload") is None:
        state = get_state()
        state.upload_id = None
        state.input = state.input_error = None


def upload_input(state: AppState, runtime: Runtime) -> None:
    """File upload; each upload is validated once (reruns reuse the stored result).

    Leaving the page empties the uploader but keeps the input: only a removal by the user
    (``on_change``) clears it.
    """
    settings = runtime.settings
    uploaded = st.file_uploader(
        "Audio file",
        key="split:upload",
        max_upload_size=max(1, settings.max_upload_bytes // MB),
        help=f"{FORMATS_HINT}. The content is checked, not the file name.",
        on_change=_upload_changed,
    )
    if uploaded is None or uploaded.file_id == state.upload_id:
        return
    state.upload_id = uploaded.file_id
    with st.spinner("Checking the file…"):
        try:
            _accept(state, ingest_bytes(uploaded.getvalue(), uploaded.name, settings))
        except StemDeckError as err:
            _reject(state, err)


def url_input(state: AppState, runtime: Runtime) -> None:
    """A direct link to an audio file, fetched by the server with the address guard."""
    with st.form("split:url-form", border=False):
        url = st.text_input(
            "Direct link to an audio file",
            key="split:url",
            persist_state=PERSIST,
            placeholder="https://example.com/song.mp3",
            help="A page that only embeds a player is not an audio file.",
        )
        fetch = st.form_submit_button("Fetch", icon=":material/download:")
    if fetch:
        if not url.strip():
            state.input_error = "Paste a link to an audio file first."
            return
        state.upload_id = None
        with st.spinner("Fetching…"):
            try:
                _accept(state, ingest_url(url.strip(), runtime.settings))
            except StemDeckError as err:
                _reject(state, err)


def submit(state: AppState, runtime: Runtime, spec: JobSpec, *, fresh: bool) -> None:
    """Queue the job (or reuse the stored result) and show it; a refusal is shown in place."""
    with friendly_errors("submit"):
        _submit(state, runtime, spec, fresh=fresh)


def _submit(state: AppState, runtime: Runtime, spec: JobSpec, *, fresh: bool) -> None:
    job = runtime.submit(spec, fresh=fresh, session=state.session_key(spec.provider))
    state.job_id = job.id
    if job.status is JobStatus.SUCCEEDED:
        state.results_job_id = job.id
        open_results(job.id)
    st.rerun()


def on_finish(job: Job) -> None:
    """Called by the progress fragment when the job ends."""
    if job.status is JobStatus.SUCCEEDED:
        get_state().results_job_id = job.id
        open_results(job.id)
    st.rerun()


def outcome(job: Job) -> None:
    """The end state of this session's last job."""
    name = fmt.md(job.spec.input_name)
    if job.status is JobStatus.SUCCEEDED:
        st.success(f"**{name}** is split.", icon=":material/check_circle:")
        results_link(job.id)
    elif job.status is JobStatus.FAILED:
        st.error(job.error or "The split failed.", icon=":material/error:")
    else:
        st.info(f"The split of **{name}** was cancelled.", icon=":material/cancel:")


def split_button(*, disabled: bool = False, why: str | None = None) -> bool:
    return st.button(
        "Split",
        type="primary",
        icon=":material/call_split:",
        key="split:run",
        disabled=disabled,
        help=why,
        width="stretch",
    )


def explain(problem: Problem) -> None:
    """Why the Split button is off, with the way out (a key on Settings) where there is one."""
    st.warning(
        problem.message,
        icon=":material/key:" if problem.kind == "needs_key" else ":material/warning:",
    )
    if problem.kind == "needs_key":
        settings_link()


def costs(
    state: AppState, runtime: Runtime, info: InputInfo, spec: JobSpec, slot: DeltaGenerator
) -> Quote:
    """Every provider's quote for this track and stem count (in ``slot``); the chosen one's."""
    intent = intents.intent_of(spec.provider, spec.mode)
    export = ExportFormat.from_options(spec.export)
    if intent is None:  # a custom selection: only the chosen provider can quote it
        quotes = runtime.quote_specs([spec], state.keys)
    else:
        quotes = runtime.quotes(info, intent.id, export, state.keys, chosen=spec)
    with slot:
        label = intent.label if intent else "these settings"
        st.subheader(f"Cost before you run · {label}", anchor=False)
        cost_table.render(quotes, (spec.provider, spec.mode))
    return next(q for q in quotes if (q.provider, q.mode) == (spec.provider, spec.mode))


def spend_reason(
    runtime: Runtime, quote: Quote | None, caps: Capabilities, *, fresh: bool
) -> str | None:
    """Why to confirm before this run may spend, or None. A fresh run of a paid provider pays
    again, so it is always confirmed (never spend twice by accident)."""
    if caps.pricing_unit == "free":
        return None
    if quote is None:
        return f"{caps.display_name}'s cost could not be estimated."
    reason = runtime.confirm_reason(quote)
    if not fresh:
        return reason
    again = f"{caps.display_name} charges again for a fresh run."
    return f"{again} {reason}" if reason else again


def run_controls(
    state: AppState,
    runtime: Runtime,
    info: InputInfo | None,
    current: Job | None,
    cost_slot: DeltaGenerator,
) -> None:
    """Engine, mode, format, estimate, the cost table (in ``cost_slot``) and the Split button(s).

    A paid run above the configured threshold, or of unknown cost, is confirmed first.
    """
    with st.spinner("Loading the separation engines…"):
        providers = runtime.providers()  # waits for the background warm-up on a cold start
    key_problems = {
        name: problem
        for name in providers
        if (problem := runtime.key_problem(name, state.session_key(name)))
    }
    choice = provider_picker.pick(providers, key_problems)
    key_problem = key_problems.get(choice.provider) if choice else None
    if key_problem:
        explain(key_problem)  # right under the engine, before the format settings
    export = format_picker.pick("split:fmt")
    if choice is None:
        return
    if key_problem or info is None:
        split_button(
            disabled=True, why=key_problem.message if key_problem else "Choose an input first."
        )
        return
    spec = JobSpec.for_input(
        info, choice.provider, choice.mode, export, choice.stems, choice.preprocessing
    )
    quote = None
    with friendly_errors("cost table"):
        quote = costs(state, runtime, info, spec, cost_slot)
    if problem := runtime.preflight(spec, state.session_key(choice.provider)):
        explain(problem)
        split_button(disabled=True, why=problem.message)
        return
    with friendly_errors("estimate"):
        estimate = provider_picker.estimate_text(runtime.estimate(spec), choice.capabilities)
        st.caption(f":material/timer: Estimate: {estimate}")
    busy = current is not None and not current.status.terminal
    stored = runtime.stored_result(spec)
    if stored is None:
        clicked = split_button(disabled=busy, why="A split is already running." if busy else None)
        reason = spend_reason(runtime, quote, choice.capabilities, fresh=False)
        if confirm.gate("split:run", spec.cache_key, reason, clicked, "Split"):
            submit(state, runtime, spec, fresh=False)
        return
    st.info(
        "This input was already split with these settings: opening it is instant and free. "
        "Run again fresh separates it again (a paid provider charges again).",
        icon=":material/bolt:",
    )
    left, right = st.columns(2)
    if left.button("Open stored result", type="primary", key="split:open", width="stretch"):
        state.results_job_id = stored.id
        open_results(stored.id)
    clicked = right.button(
        "Run again fresh",
        key="split:fresh",
        disabled=busy,
        width="stretch",
        help="Ignore the stored result and separate again.",
    )
    reason = spend_reason(runtime, quote, choice.capabilities, fresh=True)
    if confirm.gate("split:fresh", spec.cache_key, reason, clicked, "Run"):
        submit(state, runtime, spec, fresh=True)


def main() -> None:
    state, runtime = get_state(), get_runtime()
    st.title("Split a song into stems")
    st.caption(
        "Vocals, drums, bass and more — on this machine with no account needed, or with "
        "a hosted provider and its API key."
    )
    left, right = st.columns([3, 2], gap="large")
    current = runtime.get(state.job_id) if state.job_id else None
    with left:
        upload_tab, url_tab = st.tabs(["Upload", "From a link"])
        with upload_tab:
            upload_input(state, runtime)
        with url_tab:
            url_input(state, runtime)
        if state.input_error:
            st.error(state.input_error, icon=":material/error:")
        if state.input is not None:
            input_preview.render(state.input, runtime.settings)
        elif not state.input_error:
            limits = runtime.settings
            st.info(
                f"Upload a song ({FORMATS_HINT}; up to {fmt.size(limits.max_upload_bytes)} and "
                f"{fmt.clock(limits.max_duration_s)} long) or paste a direct link to one.",
                icon=":material/music_note:",
            )
        # under the input rather than below the long settings column: visible without scrolling
        if current is not None and not current.status.terminal:
            job_progress.panel(runtime, current.id, on_finish)
        elif current is not None:
            outcome(current)
        cost_slot = st.container()  # filled by run_controls, which knows the chosen settings
    with right:
        run_controls(state, runtime, state.input, current, cost_slot)


run_page(main)
