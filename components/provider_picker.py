"""Provider, mode, stem and preprocessing widgets, built only from each provider's Capabilities.

No provider is named here: a new adapter in the registry shows up with its own modes and options.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import streamlit as st

from components import cost_table, fmt
from components.state import PERSIST
from services import stems
from services.providers.base import Capabilities, Estimate, SeparationProvider

KEY = "split"  # widget key namespace on the Split page


@dataclass(frozen=True)
class ProviderChoice:
    provider: str
    capabilities: Capabilities
    mode: str
    stems: tuple[str, ...] = ()
    preprocessing: tuple[str, ...] = ()


def _provider_label(caps: Capabilities, key_missing: bool) -> str:
    parts = [caps.display_name, caps.pricing_unit]
    if caps.needs_key:
        parts.append("needs an API key" if key_missing else "key set")
    return " · ".join(parts)


def pick(
    providers: Mapping[str, SeparationProvider], key_missing: Collection[str] = ()
) -> ProviderChoice | None:
    """Render the pickers; ``None`` when no provider is available.

    ``key_missing`` names the providers that need a key and have none yet (their label says so).
    """
    if not providers:
        st.warning("No separation provider is available. Check the server configuration.")
        return None
    names = list(providers)
    name = st.selectbox(
        "Engine",
        names,
        format_func=lambda n: _provider_label(providers[n].capabilities, n in key_missing),
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


def estimate_text(estimate: Estimate, caps: Capabilities) -> str:
    """What the run will cost (credits, money where known) and how long it should take."""
    cost = cost_table.cost_text(estimate, caps.pricing_unit == "free", caps.pricing_unit)
    time_part = "time unknown" if estimate.seconds is None else f"≈ {fmt.span(estimate.seconds)}"
    return " · ".join(p for p in (time_part, cost, estimate.note) if p)


def labels(
    providers: Mapping[str, SeparationProvider], provider: str, mode: str
) -> tuple[str, str]:
    """Display name and mode label for a job, or the raw ids when the provider is gone."""
    impl = providers.get(provider)
    if impl is None:
        return provider, mode
    caps = impl.capabilities
    return caps.display_name, next((m.label for m in caps.modes if m.id == mode), mode)
