"""Blind listening: per stem, the lanes shuffled and named A, B, C…, rated 1–5, then revealed.

The order comes from ``Comparisons.blind_order`` (stable per comparison and stem, different
between stems, so "A" is not the same provider everywhere). Ratings are saved as they are given
(``Comparisons.rate``), per listener name, so several people can rate one comparison. The whole
round is one fragment: rating or revealing reruns only this part of the page.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.express as px
import streamlit as st

from components import fmt
from components.guard import callback, guarded, show_notice
from components.state import get_comparisons, get_state
from services import stems
from services.compare import Comparison, Comparisons, ProviderScore
from services.jobs.model import Job
from services.runtime import Runtime

DEFAULT_RATER = "default"
_CHART_CONFIG = {"displayModeBar": False}


def letter(position: int) -> str:
    return chr(ord("A") + position)


@callback
def _rate(comparison_id: str, stem: str, lane: int, rater: str, key: str) -> None:
    value = st.session_state.get(key)
    if value is not None:  # st.feedback stars: 0–4
        get_comparisons().rate(comparison_id, stem, lane, int(value) + 1, rater)


def rater_name() -> str:
    name = st.text_input(
        "Listener", key="compare:rater", placeholder="Your name (optional)",
        help="Ratings are kept per listener, so several people can rate the same comparison.",
    )
    return name.strip() or DEFAULT_RATER


def rounds(comparisons: Comparisons, comparison: Comparison) -> dict[str, list[int]]:
    """Stems at least two lanes returned, with their shuffled lanes (canonical stem order)."""
    found = {}
    for stem in sorted({a.stem for job in comparisons.jobs(comparison) if job
                        for a in job.artifacts}, key=stems.sort_key):
        order = comparisons.blind_order(comparison, stem)
        if len(order) >= 2:
            found[stem] = order
    return found


def clip(
    runtime: Runtime, comparison: Comparison, job: Job, stem: str, lane: int, position: int,
    rater: str, given: int | None, reveal_as: str | None,
) -> None:
    """One anonymous clip: letter, player, stars (and, once revealed, the lane's name)."""
    with st.container(border=True, key=f"blind:clip:{comparison.id}:{stem}:{position}"):
        st.markdown(f"### {letter(position)}")
        art = next(a for a in job.artifacts if a.stem == stem)
        st.audio(str(runtime.artifact_path(job, art.preview)), format="audio/mpeg")
        key = f"blind:rate:{comparison.id}:{rater}:{stem}:{lane}"
        st.feedback(
            "stars", key=key, default=None if given is None else given - 1,
            on_change=_rate, args=(comparison.id, stem, lane, rater, key),
        )
        if reveal_as is not None:
            st.markdown(f":material/visibility: **{fmt.md(reveal_as)}**"
                        + ("" if given is None else f" · you gave {given}/5"))


@st.fragment
@guarded
def blind_round(runtime: Runtime, comparison: Comparison, labels: Sequence[str]) -> None:
    """The round: a row of clips per stem, progress, Reveal, and the aggregate once revealed."""
    show_notice()
    comparisons, draft = get_comparisons(), get_state().compare
    found = rounds(comparisons, comparison)
    if not found:
        st.info("Blind listening needs at least two finished lanes that returned the same stem.",
                icon=":material/hearing:")
        return
    rater = rater_name()
    given = {(r.stem, r.lane_index): r.score for r in comparisons.ratings(comparison.id)
             if r.rater == rater}
    revealed = comparison.id in draft.revealed
    jobs = comparisons.jobs(comparison)
    st.caption("Listen to each version and give it 1–5 stars. Names are hidden and the order "
               "is shuffled per stem, so A is not the same provider everywhere.")
    for stem, order in found.items():
        st.markdown(f"#### {stems.label(stem)}")
        for position, (lane, col) in enumerate(zip(order, st.columns(len(order)), strict=True)):
            job = jobs[lane]
            if job is None:
                continue
            with col:
                clip(runtime, comparison, job, stem, lane, position, rater,
                     given.get((stem, lane)), labels[lane] if revealed else None)
    total = sum(len(order) for order in found.values())
    done = sum((stem, lane) in given for stem, order in found.items() for lane in order)
    st.progress(done / total, text=f"{done} of {total} clips rated")
    if not revealed:
        st.button("Reveal", type="primary", icon=":material/visibility:",
                  key=f"blind:reveal:{comparison.id}", on_click=draft.revealed.add,
                  args=(comparison.id,))
        return
    st.button("Hide the names again", icon=":material/visibility_off:",
              key=f"blind:hide:{comparison.id}", on_click=draft.revealed.discard,
              args=(comparison.id,))
    aggregate(comparisons.reveal(comparison.id))


def aggregate(scores: Sequence[ProviderScore]) -> None:
    """Every listener's ratings per lane and stem: mean, count, wins; table and bar chart."""
    st.markdown("#### Results of the blind round")
    if not scores:
        st.info("No ratings yet.", icon=":material/star:")
        return
    ordered = sorted(scores, key=lambda s: (stems.sort_key(s.stem), -s.mean))
    frame = pd.DataFrame(
        [{"Lane": s.provider_label, "Stem": stems.label(s.stem), "Mean": s.mean,
          "Ratings": s.count, "Wins": s.wins} for s in ordered]
    )
    st.table(frame.set_index(["Lane", "Stem"]).style.format({"Mean": "{:.1f} ★"}))
    fig = px.bar(frame, x="Stem", y="Mean", color="Lane", barmode="group", range_y=[0, 5],
                 hover_data=["Ratings", "Wins"], height=320,
                 category_orders={"Stem": list(dict.fromkeys(frame["Stem"]))})
    fig.update_layout(margin={"l": 0, "r": 0, "t": 10, "b": 0}, legend_title_text="")
    st.plotly_chart(fig, key="blind:chart", config=_CHART_CONFIG)
