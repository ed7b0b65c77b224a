"""Compare's lanes: add/remove (provider, mode) combinations, and their combined estimate.

Widgets come from each provider's Capabilities (as on Split), so a new adapter shows up here
without a change. The estimate is the Split page's cost table (services' quotes) for exactly
these lanes, with the combined total: money adds up, time does not (lanes run at once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from components import cost_table, fmt
from components.guard import callback
from components.navigation import settings_link
from components.state import AppState, CompareDraft, get_state
from services import stems
from services.audio.formats import ExportFormat
from services.compare import LaneSpec, lane_label
from services.inputs import InputInfo
from services.jobs.model import JobSpec
from services.pricing.quotes import Quote
from services.providers.base import SeparationProvider
from services.runtime import Runtime

KEY = "compare:add"
MAX_LANES = 6
MIN_LANES = 2


def label_for(providers: Mapping[str, SeparationProvider], lane: LaneSpec) -> str:
    impl = providers.get(lane.provider)
    return lane_label(lane, impl.capabilities if impl else None)


@callback
def _remove(index: int) -> None:
    lanes = get_state().compare.lanes
    if 0 <= index < len(lanes):
        del lanes[index]


def lane_list(draft: CompareDraft, providers: Mapping[str, SeparationProvider]) -> None:
    """The chosen lanes, each with a remove button."""
    for i, lane in enumerate(draft.lanes):
        with st.container(border=True, key=f"compare:lane:{i}"):
            name, action = st.columns([6, 1], vertical_alignment="center")
            name.markdown(f"**{i + 1}.** {fmt.md(label_for(providers, lane))}")
            action.button(
                "", icon=":material/close:", key=f"compare:remove:{i}", help="Remove this lane",
                on_click=_remove, args=(i,),
            )


def add_lane(draft: CompareDraft, providers: Mapping[str, SeparationProvider]) -> None:
    """Provider, mode and (where offered) stems and clean-up for one more lane."""
    full = len(draft.lanes) >= MAX_LANES
    with st.container(border=True, key="compare:adder"):
        st.markdown("**Add a lane**")
        names = list(providers)
        left, right = st.columns(2)
        name = left.selectbox(
            "Provider", names, key=f"{KEY}:provider",
            format_func=lambda n: providers[n].capabilities.display_name,
        )
        caps = providers[name].capabilities
        modes = {m.id: m for m in caps.modes}
        mode = right.selectbox(
            "Mode", list(modes), format_func=lambda m: modes[m].label, key=f"{KEY}:{name}:mode"
        )
        chosen: tuple[str, ...] = ()
        if caps.selectable_stems:
            chosen = tuple(st.multiselect(
                "Only these stems (optional)", list(caps.selectable_stems),
                format_func=stems.label, key=f"{KEY}:{name}:stems",
            ))
        pre: tuple[str, ...] = ()
        if caps.preprocessing:
            pre = tuple(st.pills(
                "Clean-up before separation", list(caps.preprocessing), selection_mode="multi",
                format_func=lambda p: p.replace("_", " ").capitalize(), key=f"{KEY}:{name}:pre",
            ) or ())
        lane = LaneSpec(name, mode or caps.modes[0].id, chosen, pre)
        duplicate = lane in draft.lanes
        why = (f"At most {MAX_LANES} lanes." if full
               else "This lane is already in the comparison." if duplicate else None)
        if st.button("Add lane", icon=":material/add:", key=KEY, disabled=why is not None,
                     help=why, width="stretch"):
            draft.lanes.append(lane)
            st.rerun()


def specs(draft: CompareDraft, info: InputInfo, export: ExportFormat) -> list[JobSpec]:
    """The job each lane would submit for this track."""
    return [
        JobSpec.for_input(info, lane.provider, lane.mode, export, lane.stems, lane.preprocessing)
        for lane in draft.lanes
    ]


def quotes(state: AppState, runtime: Runtime, lane_specs: Sequence[JobSpec]) -> list[Quote]:
    """Per lane: estimate, balance, and why it cannot run (the services' quote, as on Split)."""
    sessions = {
        spec.provider: key for spec in lane_specs
        if (key := state.session_key(spec.provider)) is not None
    }
    return runtime.quote_specs(lane_specs, sessions)


def show_estimate(lane_quotes: Sequence[Quote]) -> None:
    """The shared cost table with the combined total, then each lane's way out of a problem."""
    cost_table.render(list(lane_quotes), with_total=True)
    for quote in lane_quotes:
        if quote.problem:
            st.warning(f"**{fmt.md(quote.display_name)}**: {quote.problem}",
                       icon=":material/key:" if quote.needs_key else ":material/warning:")
    if any(q.needs_key for q in lane_quotes):
        settings_link()


def confirm_reason(runtime: Runtime, lane_quotes: Sequence[Quote]) -> str | None:
    """Every paid lane's reason to confirm (above the threshold, or an unpublished price)."""
    reasons = [r for q in lane_quotes if (r := runtime.confirm_reason(q))]
    return " ".join(reasons) or None
