"""Quality figures per lane: a table with lanes as columns (like the grid) and its legend.

Rows are figures (SDR per stem when references exist, then residual, leakage per stem and
vocal-in-instrumental); the best lane per row is highlighted. Each figure is explained in one
line under the table, from ``services.metrics.FIGURE_HELP``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import streamlit as st

from components import fmt
from services import stems
from services.metrics import FIGURE_HELP, LaneFigures

HIGHER_IS_BETTER = {"sdr"}
NAMES = {
    "sdr": "SDR",
    "residual": "Residual",
    "leakage": "Leakage",
    "vocal_in_instrumental": "Vocal in instrumental",
}
BEST_STYLE = "font-weight: 700; color: #3ddc97"


def rows(figures: Sequence[LaneFigures | None]) -> list[tuple[str, str, list[float | None]]]:
    """``(figure key, row label, value per lane)`` for every figure any lane has."""
    present = [f for f in figures if f is not None]

    def per_stem(key: str, attr: str) -> list[tuple[str, str, list[float | None]]]:
        names = sorted({s for f in present for s in getattr(f, attr)}, key=stems.sort_key)
        return [
            (key, f"{NAMES[key]} · {stems.label(s)}",
             [getattr(f, attr).get(s) if f else None for f in figures])
            for s in names
        ]

    out = per_stem("sdr", "sdr_db")
    if any(f.residual_db is not None for f in present):
        out.append(("residual", NAMES["residual"],
                    [f.residual_db if f else None for f in figures]))
    out += per_stem("leakage", "leakage_db")
    if any(f.vocal_in_instrumental_db is not None for f in present):
        out.append(("vocal_in_instrumental", NAMES["vocal_in_instrumental"],
                    [f.vocal_in_instrumental_db if f else None for f in figures]))
    return out


def table(labels: Sequence[str], figures: Sequence[LaneFigures | None]):
    """A styled table (figures × lanes) in dB, best per row highlighted, "–" where unknown."""
    found = rows(figures)
    data = pd.DataFrame(
        [[math.nan if v is None else v for v in values] for _, _, values in found],
        index=[label for _, label, _ in found],
        columns=_unique(labels),
        dtype=float,
    )
    keys = [key for key, _, _ in found]

    def best(row: pd.Series) -> list[str]:
        if row.isna().all() or row.count() < 2:
            return [""] * len(row)
        key = keys[data.index.get_loc(row.name)]
        shown = row.round(1)  # as displayed: lanes that look tied are both highlighted
        target = shown.max() if key in HIGHER_IS_BETTER else shown.min()
        return [BEST_STYLE if v == target else "" for v in shown]

    return data.style.apply(best, axis=1).format(
        lambda v: "–" if pd.isna(v) else f"{v:.1f} dB"
    )


def _unique(labels: Sequence[str]) -> list[str]:
    """Column names must be unique: a repeated lane label gets its lane number."""
    return [f"{label} ({i + 1})" if list(labels).count(label) > 1 else label
            for i, label in enumerate(labels)]


def legend(figures: Sequence[LaneFigures | None]) -> None:
    """One line per figure shown, and how much audio they were computed on."""
    shown = {key for key, _, _ in rows(figures)}
    for key in NAMES:
        if key in shown:
            st.caption(f"**{NAMES[key]}** — {FIGURE_HELP[key]}")
    seconds = max((f.seconds_analysed for f in figures if f is not None), default=0.0)
    if seconds:
        st.caption(f"Computed on the first {fmt.span(seconds)} of every stem.")


def show(
    labels: Sequence[str], figures: Sequence[LaneFigures | None], has_references: bool
) -> None:
    """The table and its legend, or why there is nothing to show yet."""
    if all(f is None for f in figures):
        st.info("Figures appear here as lanes finish.", icon=":material/analytics:")
        return
    st.table(table(labels, figures))
    if not has_references:
        st.caption(
            ":material/info: No reference stems, so no SDR: the figures below are computed "
            "from the stems and the mix alone. Use a bundled example or add reference stems "
            "for SDR."
        )
    legend(figures)
