"""Provider, mode, stem and preprocessing widgets, built only from each provider's Capabilities.

No provider is named here: a new adapter in the registry shows up with its own modes and options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import streamlit as st

from components import fmt
from components.state import PERSIST
from services import stems
from services.inputs import InputInfo
from services.providers.base import Capabilities, SeparationProvider, SeparationRequest

KEY = "split"  # widget key namespace on the Split page


@dataclass(frozen=True)
class ProviderChoice:
    provider: str
    capabilities: Capabilities
    mode: str
    stems: tuple[str, ...] = ()
    preprocessing: tuple[str, ...] = ()


def _provider_label(caps: Capabilities) -> str:
    cost = "free" if caps.pricing_unit == "free" else f"per {caps.pricing_unit}"
    parts = [caps.display_name, cost]
    if caps.needs_key:
        parts.append("needs an API key")
    return " · ".join(parts)


def pick(providers: Mapping[str, SeparationProvider]) -> ProviderChoice | None:
    """Render the pickers; ``None`` when no provider is available."""
    if not providers:
        st.warning("No separation provider is available. Check the server configuration.")
        return None
    names = list(providers)
    name = st.selectbox(
        "Engine",
        names,
        format_func=lambda n: _provider_label(providers[n].capabilities),
        key=f"{KEY}:provider",
        persist_state=PERSIST,
        help="Where the separation runs. The local engine needs no key and no network.",
    )
    caps = providers[name].capabilities
    if caps.description:
        st.caption(caps.description)
    modes = {m.id: m for m in caps.modes}
    mode = st.radio(
        "Stems",
        list(modes),
        format_func=lambda m: modes[m].label,
        captions=[m.description for m in caps.modes],
        key=f"{KEY}:{name}:mode",
        persist_state=PERSIST,
    )
    chosen_stems: tuple[str, ...] = ()
    if caps.selectable_stems:
        chosen_stems = tuple(
            st.multiselect(
                "Only these stems (optional)",
                list(caps.selectable_stems),
                format_func=stems.label,
                key=f"{KEY}:{name}:stems",
                persist_state=PERSIST,
            )
        )
    pre: tuple[str, ...] = ()
    if caps.preprocessing:
        pre = tuple(
            st.pills(
                "Clean-up before separation",
                list(caps.preprocessing),
                selection_mode="multi",
                format_func=lambda p: p.replace("_", " ").capitalize(),
                key=f"{KEY}:{name}:pre",
                persist_state=PERSIST,
            )
            or ()
        )
    return ProviderChoice(name, caps, mode or caps.modes[0].id, chosen_stems, pre)


def estimate_text(provider: SeparationProvider, choice: ProviderChoice, info: InputInfo) -> str:
    """What the run will cost and how long it should take, before it starts."""
    est = provider.estimate(
        SeparationRequest(
            input_path=info.path,
            input_hash=info.hash,
            duration_s=info.info.duration_s,
            mode=choice.mode,
            stems=choice.stems,
            preprocessing=choice.preprocessing,
            source_url=info.source_url,
        )
    )
    unit = choice.capabilities.pricing_unit
    if unit == "free":
        cost = "free"
    else:
        cost = "cost unknown" if est.credits is None else f"≈ {est.credits:g} {unit}"
    time_part = "time unknown" if est.seconds is None else f"≈ {fmt.span(est.seconds)}"
    return " · ".join(p for p in (time_part, cost, est.note) if p)


def limits_problem(choice: ProviderChoice, info: InputInfo) -> str | None:
    """Why this provider cannot take this input, checked before anything is spent."""
    caps = choice.capabilities
    if caps.max_duration_s is not None and info.info.duration_s > caps.max_duration_s:
        return (
            f"{caps.display_name} takes at most {fmt.clock(caps.max_duration_s)}; "
            f"this track is {fmt.clock(info.info.duration_s)}."
        )
    if caps.max_bytes is not None and info.info.size_bytes > caps.max_bytes:
        return f"{caps.display_name} takes files up to {fmt.size(caps.max_bytes)}."
    return None


def labels(
    providers: Mapping[str, SeparationProvider], provider: str, mode: str
) -> tuple[str, str]:
    """Display name and mode label for a job, or the raw ids when the provider is gone."""
    impl = providers.get(provider)
    if impl is None:
        return provider, mode
    caps = impl.capabilities
    return caps.display_name, next((m.label for m in caps.modes if m.id == mode), mode)
