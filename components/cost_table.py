"""Cost before running: one row per (provider, mode) quote — credits, money, time, balance.

Used by Split (every provider for this track and stem count) and Compare (the chosen lanes plus
a combined total). Unknown figures read "unknown", never 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import streamlit as st

from components import fmt
from services.config import Settings
from services.jobs.model import Job
from services.pricing.actual import ESTIMATED, FREE, SOURCE_FACT
from services.pricing.quotes import Quote
from services.pricing.table import price_table
from services.providers.base import Estimate

UNKNOWN = "unknown"
COLUMNS = ("Provider", "Mode", "Credits", "Cost", "Time", "Balance", "Covers", "Status")
HELP = (
    "Prices come from the providers' published price lists (services/pricing/prices.toml); "
    "balances from their balance endpoints, where they have one. Unknown is never shown as 0."
)


def credits_text(estimate: Estimate | None, free: bool) -> str:
    if free:
        return "0 (free)"
    if estimate is None or estimate.credits is None:
        return UNKNOWN
    return f"{estimate.credits:g}"


def money_text(estimate: Estimate | None, free: bool) -> str:
    if free:
        return "free"
    if estimate is None or estimate.money is None:
        return UNKNOWN
    return f"≈ {estimate.money:.2f} {estimate.currency or ''}".strip()


def cost_text(estimate: Estimate | None, free: bool, unit: str = "credits") -> str:
    """``≈ 101 credits · ≈ 0.24 USD``, ``free`` or ``cost unknown``: one phrase for a caption."""
    if free:
        return "free"
    if estimate is None or estimate.credits is None:
        return "cost unknown"
    money = f" · {money_text(estimate, free)}" if estimate.money is not None else ""
    return f"≈ {estimate.credits:g} {unit}{money}"


def covers_text(quote: Quote) -> str:
    covers = quote.covers
    if covers is None:
        return UNKNOWN
    return "✓" if covers else "✗"


def balance_text(quote: Quote) -> str:
    if quote.free:
        return "—"
    if quote.needs_key:
        return UNKNOWN
    if quote.balance is None:
        return quote.balance_note or UNKNOWN
    return f"{quote.balance:g}"


def status_text(quote: Quote) -> str:
    """``ready``, ``needs key`` (the Settings page fixes it) or why it cannot run."""
    if quote.needs_key:
        return "needs key"
    return quote.problem or "ready"


def rows(quotes: list[Quote], chosen: tuple[str, str] | None = None) -> list[dict[str, str]]:
    """The table as plain rows (testable without a browser); ``chosen`` is marked with ▶."""
    out = []
    for q in quotes:
        mark = "▶ " if chosen == (q.provider, q.mode) else ""
        seconds = q.estimate.seconds if q.estimate else None
        values = (
            mark + q.display_name,
            q.mode_label,
            credits_text(q.estimate, q.free),
            money_text(q.estimate, q.free),
            UNKNOWN if seconds is None else f"≈ {fmt.span(seconds)}",
            balance_text(q),
            covers_text(q),
            status_text(q),
        )
        out.append(dict(zip(COLUMNS, values, strict=True)))
    return out


def total(quotes: list[Quote]) -> str:
    """Combined estimate of running all quotes at once (Compare): money summed where it is
    known (credits of different providers are not comparable), and the slowest time."""
    paid = [q for q in quotes if not q.free]
    by_currency: dict[str, float] = {}
    unpriced = []
    for q in paid:
        if q.estimate is None or q.estimate.money is None:
            unpriced.append(q.display_name)
        else:
            currency = q.estimate.currency or ""
            by_currency[currency] = by_currency.get(currency, 0.0) + q.estimate.money
    money = " + ".join(f"≈ {v:.2f} {c}".strip() for c, v in sorted(by_currency.items()))
    money = money or ("free" if not unpriced else "")
    if unpriced:
        money = "; ".join(p for p in (money, f"money unknown for {', '.join(unpriced)}") if p)
    times = [q.estimate.seconds if q.estimate else None for q in quotes]
    known = [t for t in times if t is not None]
    slowest = f"≈ {fmt.span(max(known))}" if known and len(known) == len(times) else UNKNOWN
    return f"{money} · time {slowest} (lanes run at once)"


def render(
    quotes: list[Quote], chosen: tuple[str, str] | None = None, *, with_total: bool = False
) -> None:
    """The quotes as a table, with a one-line explanation (and the combined total)."""
    if not quotes:
        return
    # a static table: it wraps long mode names instead of scrolling sideways in a narrow column
    st.table(pd.DataFrame(rows(quotes, chosen)).set_index(COLUMNS[0]))
    if with_total:
        st.caption(f"Together: {total(quotes)}")
    st.caption(HELP)


def job_cost_text(job: Job, money: tuple[float, str] | None = None) -> str:
    """``Cost: estimated 17 credits · actual 17 credits (reported)``, for a finished job."""

    def credits(value: float | None) -> str:
        return UNKNOWN if value is None else f"{value:g} credits"

    source = job.facts.get(SOURCE_FACT)
    if source == FREE:
        return "Cost: free (ran on this machine)"
    actual = credits(job.actual_cost)
    if job.actual_cost is not None and source:
        actual += " (list price)" if source == ESTIMATED else f" ({source})"
    if money is not None:
        actual += f", ≈ {money[0]:.2f} {money[1]}"
    return f"Cost: estimated {credits(job.estimated_cost)} · actual {actual}"


def settings_note(settings: Settings, providers: Mapping[str, str]) -> None:
    """For Settings: when a run asks first, and the value of a credit per provider (read-only:
    both come from the environment, so every session of this server shares them)."""
    table = price_table(settings.credit_values).providers
    values = [
        f"{label} {entry.credit_value:g} {entry.currency or ''}".strip()
        for name, label in providers.items()
        if (entry := table.get(name)) is not None and entry.credit_value is not None
    ]
    st.subheader("Cost confirmation", anchor=False)
    st.caption(
        f"A paid run asks before it starts when it costs more than "
        f"{settings.confirm_above_money:g} (money, where a credit's value is known) or "
        f"{settings.confirm_above_credits:g} credits, and always when its price is unknown. "
        "Set with STEMDECK_CONFIRM_ABOVE_MONEY / STEMDECK_CONFIRM_ABOVE_CREDITS. Value of a "
        f"credit: {'; '.join(values) or 'none known'} — set others with STEMDECK_CREDIT_VALUES "
        '(e.g. "kie=0.005 USD")'
    )
