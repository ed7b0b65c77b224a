"""Compare: one track through several (provider, mode) lanes, side by side, with figures and a
blind listening round. ``?comparison=<id>`` shows a stored comparison (History links here)."""

from __future__ import annotations

import streamlit as st

from components import (
    compare_blind,
    compare_figures,
    compare_grid,
    compare_input,
    compare_lanes,
    confirm,
    fmt,
    format_picker,
)
from components.guard import friendly_errors, show_notice
from components.navigation import COMPARISON_PARAM, HISTORY
from components.shell import run_page
from components.state import AppState, get_comparisons, get_runtime, get_state
from services.audio.formats import ExportFormat
from services.compare import Comparison, Comparisons
from services.inputs import safe_filename
from services.jobs.model import Job, JobStatus
from services.runtime import Runtime

SIDE_BY_SIDE, BLIND = "side", "blind"
VIEWS = {SIDE_BY_SIDE: "Side by side", BLIND: "Blind listening"}
EXPORTS = (("html", "HTML", "text/html"), ("csv", "CSV", "text/csv"),
           ("json", "JSON", "application/json"))


# ------------------------------------------------------------------ setting up a comparison


def output_format() -> ExportFormat:
    """The lanes' export format, tucked away: comparisons are about listening, not files."""
    with st.expander("Stem files format", icon=":material/audio_file:"):
        return format_picker.pick("compare:fmt")


def run_section(state: AppState, runtime: Runtime, export: ExportFormat) -> None:
    """Combined estimate, guards (keys, cost confirmation) and the Run button."""
    draft = state.compare
    st.subheader("Estimate", anchor=False)
    if draft.input is None:
        st.caption("Choose a track to see what each lane costs and how long it takes.")
        run_button(why="Choose a track first.")
        return
    lane_specs = compare_lanes.specs(draft, draft.input, export)
    quotes = compare_lanes.quotes(state, runtime, lane_specs)
    compare_lanes.show_estimate(quotes)
    fresh = st.toggle(
        "Run every lane again", key="compare:fresh",
        help="Off: a lane already run on this track with the same settings reuses its stored "
        "result (nothing is spent twice).",
    )
    why = (
        f"Add at least {compare_lanes.MIN_LANES} lanes." if len(quotes) < compare_lanes.MIN_LANES
        else "Fix or remove the lanes marked above." if any(q.problem for q in quotes)
        else None
    )
    token = "|".join(spec.cache_key for spec in lane_specs) + f"|{fresh}"
    reason = compare_lanes.confirm_reason(runtime, quotes)
    if confirm.gate("compare:run", token, reason, run_button(why=why), action="Run"):
        with friendly_errors("start comparison"):
            start(state, get_comparisons(), export, fresh=fresh)


def run_button(why: str | None) -> bool:
    return st.button("Run comparison", type="primary", icon=":material/compare:",
                     key="compare:run", disabled=why is not None, help=why, width="stretch")


def start(state: AppState, comparisons: Comparisons, export: ExportFormat, *, fresh: bool) -> None:
    draft = state.compare
    assert draft.input is not None
    comparison = comparisons.start(
        draft.input, draft.lanes, export,
        {lane.provider: state.session_key(lane.provider) for lane in draft.lanes},
        fresh=fresh, references=draft.references or None, example_id=draft.example_id,
    )
    draft.comparison_id = comparison.id
    st.query_params[COMPARISON_PARAM] = comparison.id
    st.rerun()


def setup(state: AppState, runtime: Runtime) -> None:
    st.title("Compare providers")
    st.caption("One track through several engines at once: cost up front, stems side by side, "
               "quality figures, and a blind listening round.")
    with st.spinner("Loading the separation engines…"):
        providers = runtime.providers()  # waits for the background warm-up on a cold start
    track, lanes = st.columns([3, 2], gap="large")
    with track:
        st.subheader("Track", anchor=False)
        compare_input.pick_track(state.compare, runtime.settings)
    with lanes:
        st.subheader("Lanes", anchor=False)
        show_notice()
        compare_lanes.lane_list(state.compare, providers)
        compare_lanes.add_lane(state.compare, providers)
        export = output_format()
    run_section(state, runtime, export)


# ------------------------------------------------------------------ showing a comparison


def new_comparison() -> None:
    get_state().compare.comparison_id = None
    st.query_params.pop(COMPARISON_PARAM, None)


def timing(comparison: Comparison, jobs: list[Job | None]) -> str:
    """Wall time of the lanes this comparison ran next to its slowest lane (they run at once);
    lanes that reused a stored result took no time and are counted apart."""
    present = [j for j in jobs if j is not None]
    if not present or not all(j.status.terminal for j in present):
        return ""
    ran = [j for j in present if not compare_grid.reused(comparison, j) and j.elapsed_s]
    reused = sum(compare_grid.reused(comparison, j) for j in present)
    parts = []
    if ran:
        wall = max(j.finished_at or 0.0 for j in ran) - min(j.created_at for j in ran)
        parts += [f"All lanes done in {fmt.span(wall)}",
                  f"slowest lane {fmt.span(max(j.elapsed_s or 0.0 for j in ran))}",
                  f"{fmt.span(sum(j.elapsed_s or 0.0 for j in ran))} if run one after another"]
    if reused:
        parts.append(f"{reused} lane{'s' if reused > 1 else ''} reused a stored result")
    return " · ".join(parts)


def header(comparisons: Comparisons, comparison: Comparison, jobs: list[Job | None]) -> str:
    """Title, facts, New / Export actions; returns the chosen view."""
    title, actions = st.columns([3, 2], vertical_alignment="bottom")
    title.title(fmt.md(comparison.input_name), anchor=False)
    with actions, st.container(horizontal=True, horizontal_alignment="right"):
        st.button("New comparison", icon=":material/add:", key="compare:new",
                  on_click=new_comparison)
        with st.popover("Export", icon=":material/ios_share:"):
            for ext, label, mime in EXPORTS:
                export = getattr(comparisons, f"export_{ext}")
                st.download_button(
                    label, data=lambda export=export: export(comparison.id),
                    file_name=safe_filename(f"{comparison.input_name} - comparison.{ext}"),
                    mime=mime, on_click="ignore", key=f"compare:export:{ext}",
                    icon=":material/download:", width="stretch",
                )
    facts = [f"{len(comparison.lanes)} lanes", f"length {fmt.clock(comparison.duration_s)}",
             f"started {fmt.when(comparison.created_at)}",
             "with reference stems" if comparison.references else "no reference stems"]
    st.caption(" · ".join(facts))
    if line := timing(comparison, jobs):
        st.caption(f":material/timer: {line}")
    return st.segmented_control(
        "View", list(VIEWS), format_func=VIEWS.__getitem__, default=SIDE_BY_SIDE,
        required=True, key="compare:view", label_visibility="collapsed",
    ) or SIDE_BY_SIDE


def lane_mixer(runtime: Runtime, comparison: Comparison, labels: list[str],
               jobs: list[Job | None]) -> None:
    """The Results mixer for one lane, built only while its expander is open."""
    ready = [i for i, job in enumerate(jobs) if job and job.status is JobStatus.SUCCEEDED]
    if not ready:
        return
    panel = st.expander("Mix one lane", icon=":material/tune:", key="compare:mixer",
                        on_change="rerun")
    if not panel.open:
        return
    with panel:
        lane = st.selectbox("Lane", ready, format_func=lambda i: labels[i],
                            key="compare:mixer:lane")
        job = jobs[lane]
        assert job is not None
        from components.mixer import render_mixer  # the mixer's component loads on demand

        render_mixer(job, runtime, key=f"compare-mixer-{comparison.id}-{lane}")


def figures(comparisons: Comparisons, comparison: Comparison, labels: list[str],
            jobs: list[Job | None]) -> None:
    st.subheader("Quality figures", anchor=False)
    values = []
    with st.spinner("Computing the quality figures…"):
        for i, job in enumerate(jobs):
            value = None
            if job is not None and job.status is JobStatus.SUCCEEDED:
                with friendly_errors(f"figures of lane {i}"):
                    value = comparisons.figures(comparison, i)
            values.append(value)
    compare_figures.show(labels, values, bool(comparison.references))


def show(runtime: Runtime, comparisons: Comparisons, comparison: Comparison) -> None:
    labels = [comparisons.label(comparison, i) for i in range(len(comparison.lanes))]
    jobs = comparisons.jobs(comparison)
    view = header(comparisons, comparison, jobs)
    if view == BLIND:
        compare_blind.blind_round(runtime, comparison, labels)
        return
    compare_grid.headers(runtime, comparisons, comparison, labels, jobs)
    done = compare_grid.finished(jobs)
    if done < len(jobs):
        compare_grid.progress(comparisons, comparison, done)
    compare_grid.grid(runtime, comparison, jobs)
    lane_mixer(runtime, comparison, labels, jobs)
    figures(comparisons, comparison, labels, jobs)


def main() -> None:
    state, runtime, comparisons = get_state(), get_runtime(), get_comparisons()
    draft = state.compare
    wanted = st.query_params.get(COMPARISON_PARAM) or draft.comparison_id
    comparison = comparisons.get(wanted) if wanted else None
    if wanted and comparison is None:
        st.warning("That comparison no longer exists.", icon=":material/warning:")
        st.page_link(HISTORY, label="Stored comparisons", icon=":material/history:")
        draft.comparison_id = None
    if comparison is None:
        setup(state, runtime)
        return
    draft.comparison_id = comparison.id
    show(runtime, comparisons, comparison)


run_page(main)
